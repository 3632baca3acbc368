package quantize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/ggufmix"
)

const stories260K = "../../testdata/llm/stories260K/stories260K.gguf"

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// llamaQuantizeDigests are the SHA-256 of the files llama.cpp's
// llama_model_quantize (libllama of node-llama-cpp 3.21.1, llama.cpp
// release v0.4.0, called as llama-quantize calls it, 2 threads) wrote from
// stories260K.gguf and from synthLlama's file, for each mix, plain and
// --pure (model/ggufmix/testdata/mixref/lq.c made them).
var llamaQuantizeDigests = map[string]string{
	"stories260K Q2_K":        "94967a2bf35ea5fc57aedcc8fe06e2b94454323b4899a260927830860274267b",
	"stories260K Q2_K pure":   "aeb4f1b23bacd4f0c7ca9392c4f858a52aadc6b8c2631496b70fb7fbb8e40990",
	"stories260K Q3_K_S":      "c9d3191472266bf63362214aa05e48a6ab226dd38cc39faa843d78bb3c171768",
	"stories260K Q3_K_S pure": "74ba63816c78e7e958c6cb9295d2dccf9a51ef6dd1b100e79748ae018200ee24",
	"stories260K Q3_K_M":      "1b8cf84b50f0676d7580c30d76ab0f80f337f782824b7f312de674c521bcf79d",
	"stories260K Q3_K_M pure": "df877c0aa08861ff7b228657f06697fc142b7eec71a4d982f6fbc3a7172d273e",
	"stories260K Q3_K_L":      "0b715a6c2598aac375ef30f200ac19d157a1431eb40a57041c5243c994fdfb42",
	"stories260K Q3_K_L pure": "cb80f0bd367c1cc6261e47b4206bcf995eab44868cf3c090e9e765e6f64b2f14",
	"synth Q2_K":              "b4f3d14d03f1ee32de126dc933f3ad7e5f3c94f8ed8ad47ee903f31ef2d235b3",
	"synth Q2_K pure":         "29ff46dd27570da747d0750d56359e759b71d90cf4e9f3eaf2346d1bc9b8fcae",
	"synth Q3_K_S":            "f346cec33b6bc4508d820ac6df2a45b1d7c3940b6a01fe51595342b9bede5960",
	"synth Q3_K_S pure":       "059401208fe4a4bcc8d4c71d2960c04185a8fdc97df99da83756d846c3ef5db8",
	"synth Q3_K_M":            "04b7e1a8f853fb76b98f9fffc2fef744dfaefeda821fe0d4eb715f2652507e43",
	"synth Q3_K_M pure":       "5890e5da3ba6e7ccfce5bd31bce6ec8ef0593b59cdb2935a0ab5a84af5225167",
	"synth Q3_K_L":            "48f544da2e36a4bd9ed1b81dcda7996fdd52669b059156ce095f0e10a1675d1d",
	"synth Q3_K_L pure":       "88362fff795eb2da9b3c2e888ed18854db28584544d93ad8169c7a0a68a014fb",
	"stories260K Q8_0":        "ff8701a45da28293b7af11a695ab33575b692e9b109a2eae6238c906c31415da",
	"stories260K Q8_0 pure":   "ff8701a45da28293b7af11a695ab33575b692e9b109a2eae6238c906c31415da",
	"stories260K Q4_0":        "fd93abd9957992763c863e7e3f30934baf1e7a2e31b6c911a720cd109daed40d",
	"stories260K Q4_0 pure":   "d6eafc51d502a0fb7c2a30f0cf17395302502196b0ac3bd4df1ee90a6b56480c",
	"stories260K Q4_1":        "2ddb634a1e71dffd234b5fa3ecb0608b43e9a913b19012e4fbc616c29d9a3c66",
	"stories260K Q5_0":        "749e10e0a33dbef8df92045c6add0d807dc5d1105667c96ad3f81ae3deb64ac7",
	"stories260K Q5_1":        "c36497248a0a883836c36c96bf707bd176b94911d34af9bf7681df98cd22025d",
	"stories260K Q4_K_S":      "ec7a769903d8b4cb18e5ed29b288c60f9d8a15437321c67ac319ddb6191125b6",
	"stories260K Q4_K_M":      "7f61512f1889080c73b2afd3ac7fdfe55a368e83570b20e5019829adfa734a2a",
	"stories260K Q5_K_S":      "66ed769a4df768d67b88ea4395e9dab273b717de9f64980b9cd5cfe832108b6f",
	"stories260K Q5_K_M":      "017253a152346d29609472739647c6c1136557abaad67c24e6966fccd07eafda",
	"stories260K Q6_K":        "137d1fbe834a43bc20cc1e04a9459af61953a7579baeedba17590faacfb13104",
	"stories260K F16":         "4cd29bbe9cb3b735750837816a43c3dd4b473dbd658e8612816f7c4d3926ac21",
	"stories260K BF16":        "633551c4cd934c2090c88fd56a8e7b1263b1bc6e91b22e41f398a16f4245ebb0",
	"stories260K F32":         "f18837d06914bcc627d8b93c818b453823493a057041a85a8484819de8938664",
	"synth Q8_0":              "6fff9095bc02a24dfff1e2a5c1e43ad93ce042c227b9807be3ddd21566ced569",
	"synth Q4_0":              "d590ef16ab74148f181d0a85e7165d6c7e70678bab25baea8eb25cafdfbe6656",
	"synth Q4_0 pure":         "244f6493e3317d1f6986fa595f59d5990331246be9bd8b2027363dabb7d155f8",
	"synth Q4_1":              "21e3b1c3fb431a03b63c9f12a932b94fc69d759f78c170d4fb9ef1900bdac2b0",
	"synth Q5_0":              "4664720750c1065ca00b04a63c97f01a66eb1f04661bc8f74d4c6e9980e38e98",
	"synth Q5_1":              "aa4fb9b2845deb23f2a27446fc4d9faac87f39051400921789618e98c09f5329",
	"synth Q4_K_S":            "87c2019bbd20f4a7fa5180aa3e73d2c445b5e9dd57399ee4a7d1c441d37aed41",
	"synth Q4_K_M":            "b7ac9c012ade4448176b3ff59b0c62c2f56ae8198c49fc697dcc1598e3ef5c77",
	"synth Q4_K_M pure":       "693b16ded30576b95c4259fbf1610c7950dc3477f4b88e40b7beed09fd482472",
	"synth Q5_K_S":            "b5854f3cb04eb4f702e9872515413c7a9cbaef527060d0c3d39949f7d0715fce",
	"synth Q5_K_M":            "4e932bb4ca30558a344e78f70533fcb67e2fbead785f3ce61568e81095ae4a42",
	"synth Q6_K":              "d2812d50a5629a4fc44e02f703674f67f85d614f56e8d6b3347e90fd933da220",
	"synth F16":               "a480c1eb67e8fb5bc0077e94349d1e1a955ef7285c205d8832a39cdccfc7541d",
	"synth BF16":              "ad53ed79b9a0ef6ae4ec7b60bdceb7296feaefee10ef34ab41ab0ade78c612b1",
	"synth F32":               "7f6afcd1c4c44dbb2b3017ba56ba8194ba349eb9163673918a40b49d8c3999fb",
}

// synthDigest is the SHA-256 of synthLlama's file: the llama-quantize
// digests above are of outputs from exactly this input.
const synthDigest = "1726d9140a36be3d47e4545cf809b90d8a2b0e2a0ff42e268c0bc64e4ae4940e"

// TestGGUFAsLlamaQuantize quantizes the real stories260K (FFN 172:
// ffn_down falls back to F16, output.weight to Q8_0 in Q4_0) and an F16
// Llama whose shapes divide 256 to every mix llama-quantize was run with,
// and compares the whole files with llama-quantize's, byte for byte. A
// mix whose types this build cannot encode yet must be refused instead.
func TestGGUFAsLlamaQuantize(t *testing.T) {
	dir := t.TempDir()
	synth := filepath.Join(dir, "synth-f16.gguf")
	synthLlama(t, synth)
	if got := fileDigest(t, synth); got != synthDigest {
		t.Fatalf("synthLlama's file has changed (sha256 %s, was %s): make llama-quantize's outputs of the new one and update the digests", got, synthDigest)
	}
	inputs := map[string]string{"stories260K": stories260K, "synth": synth}
	compared := 0
	for _, key := range slices.Sorted(maps.Keys(llamaQuantizeDigests)) {
		t.Run(key, func(t *testing.T) {
			f := strings.Fields(key)
			mix, err := ggufmix.ParseMix(f[1])
			if err != nil {
				t.Fatal(err)
			}
			pure := len(f) == 3
			out := filepath.Join(t.TempDir(), "out.gguf")
			var seen []string
			opt := GGUFOptions{Input: inputs[f[0]], Output: out, Mix: mix, Pure: pure, Workers: 3,
				Progress: func(p Progress) { seen = append(seen, p.Tensor) }}
			plan, err := PlanGGUF(opt)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := RunGGUF(context.Background(), opt)
			if len(plan.Unsupported) > 0 {
				if err == nil || !strings.Contains(err.Error(), "cannot encode") {
					t.Errorf("types %v not encodable, run: %v", plan.Unsupported, err)
				}
				t.Logf("not compared: this build cannot encode %v yet", plan.Unsupported)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			compared++
			if got, want := fileDigest(t, out), llamaQuantizeDigests[key]; got != want {
				t.Errorf("output sha256 %s, llama-quantize's %s", got, want)
			}
			if len(seen) != rep.Totals.Tensors || seen[len(seen)-1] != rep.Tensors[len(rep.Tensors)-1].Name {
				t.Errorf("progress for %d tensors, report %d", len(seen), rep.Totals.Tensors)
			}
			fi, _ := os.Stat(out)
			if rep.Device != Device || fi.Size() < rep.Totals.BytesOut {
				t.Errorf("report %+v, file of %d bytes", rep.Totals, fi.Size())
			}
		})
	}
	if compared < 6 {
		t.Errorf("only %d files compared", compared)
	}
}

// synthLlama writes a small Llama-shaped F16 GGUF whose shapes divide 256
// (4 layers, dim 256, FFN 512, GQA 4/2, vocab 320, an output.weight),
// with llama.cpp's required metadata and a tokenizer list, from a fixed
// seed, in convert_hf_to_gguf.py's tensor order.
func synthLlama(t *testing.T, path string, extra ...gguf.KV) {
	t.Helper()
	const dim, ff, vocab, layers = 256, 512, 320, 4
	rng := rand.New(rand.NewPCG(15, 2))
	f16 := func(dims ...int) []byte {
		n := 1
		for _, d := range dims {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.05)
		}
		if n > 7 {
			v[7] = 0.9 // an outlier
		}
		b := make([]byte, 2*n)
		if err := gguf.EncodeFloat32(b, v, gguf.TypeF16); err != nil {
			t.Fatal(err)
		}
		return b
	}
	f32 := func(n int) []byte {
		b := make([]byte, 4*n)
		if err := gguf.EncodeFloat32(b, slices.Repeat([]float32{1}, n), gguf.TypeF32); err != nil {
			t.Fatal(err)
		}
		return b
	}
	tokens := make([]string, vocab)
	for i := range tokens {
		tokens[i] = "t" + strconv.Itoa(i)
	}
	meta := []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: "synth"},
		{Key: "general.file_type", Value: uint32(1)},
		{Key: "llama.context_length", Value: uint32(128)},
		{Key: "llama.embedding_length", Value: uint32(dim)},
		{Key: "llama.block_count", Value: uint32(layers)},
		{Key: "llama.feed_forward_length", Value: uint32(ff)},
		{Key: "llama.attention.head_count", Value: uint32(4)},
		{Key: "llama.attention.head_count_kv", Value: uint32(2)},
		{Key: "llama.rope.dimension_count", Value: uint32(64)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(1e-5)},
		{Key: "general.quantization_version", Value: uint32(2)},
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
	}
	meta = append(meta, extra...)
	ts := []gguf.Tensor{{Name: "token_embd.weight", Type: gguf.TypeF16, Dims: []int{dim, vocab}, Data: f16(dim, vocab)}}
	for i := range layers {
		p := "blk." + strconv.Itoa(i) + "."
		ts = append(ts,
			gguf.Tensor{Name: p + "attn_norm.weight", Type: gguf.TypeF32, Dims: []int{dim}, Data: f32(dim)},
			gguf.Tensor{Name: p + "attn_q.weight", Type: gguf.TypeF16, Dims: []int{dim, dim}, Data: f16(dim, dim)},
			gguf.Tensor{Name: p + "attn_k.weight", Type: gguf.TypeF16, Dims: []int{dim, dim / 2}, Data: f16(dim, dim/2)},
			gguf.Tensor{Name: p + "attn_v.weight", Type: gguf.TypeF16, Dims: []int{dim, dim / 2}, Data: f16(dim, dim/2)},
			gguf.Tensor{Name: p + "attn_output.weight", Type: gguf.TypeF16, Dims: []int{dim, dim}, Data: f16(dim, dim)},
			gguf.Tensor{Name: p + "ffn_norm.weight", Type: gguf.TypeF32, Dims: []int{dim}, Data: f32(dim)},
			gguf.Tensor{Name: p + "ffn_gate.weight", Type: gguf.TypeF16, Dims: []int{dim, ff}, Data: f16(dim, ff)},
			gguf.Tensor{Name: p + "ffn_up.weight", Type: gguf.TypeF16, Dims: []int{dim, ff}, Data: f16(dim, ff)},
			gguf.Tensor{Name: p + "ffn_down.weight", Type: gguf.TypeF16, Dims: []int{ff, dim}, Data: f16(ff, dim)})
	}
	ts = append(ts,
		gguf.Tensor{Name: "output_norm.weight", Type: gguf.TypeF32, Dims: []int{dim}, Data: f32(dim)},
		gguf.Tensor{Name: "output.weight", Type: gguf.TypeF16, Dims: []int{dim, vocab}, Data: f16(dim, vocab)})
	if err := gguf.WriteFile(path, meta, ts); err != nil {
		t.Fatal(err)
	}
}

// TestGGUFLayout reads a written file back: metadata carried over in
// order with the two keys llama-quantize sets moved to the end, tensors
// in llama-quantize's order, each decoding to the input quantized with
// the chosen type.
func TestGGUFLayout(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.gguf"), filepath.Join(dir, "out.gguf")
	synthLlama(t, in, gguf.KV{Key: "split.count", Value: uint16(1)})
	rep, err := RunGGUF(context.Background(), GGUFOptions{Input: in, Output: out, Mix: ggufmix.Q8_0, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := gguf.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer fi.Close()
	fo, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer fo.Close()
	var keysIn, keysOut []string
	for _, kv := range fi.Metadata() {
		if kv.Key != "general.file_type" && kv.Key != "general.quantization_version" && kv.Key != "split.count" {
			keysIn = append(keysIn, kv.Key)
		}
	}
	keysIn = append(keysIn, "general.quantization_version", "general.file_type")
	for _, kv := range fo.Metadata() {
		keysOut = append(keysOut, kv.Key)
	}
	if !slices.Equal(keysIn, keysOut) {
		t.Errorf("keys %v, want %v", keysOut, keysIn)
	}
	if ft, _ := fo.Uint32("general.file_type"); ft != 7 {
		t.Errorf("general.file_type %d", ft)
	}
	if toks, _ := fo.Strings("tokenizer.ggml.tokens"); len(toks) != 320 || toks[319] != "t319" {
		t.Error("tokenizer not carried over")
	}
	var names []string
	for _, ti := range fo.Tensors() {
		names = append(names, ti.Name)
	}
	if names[0] != "output.weight" || names[1] != "output_norm.weight" || names[2] != "token_embd.weight" || names[3] != "blk.0.attn_k.weight" {
		t.Errorf("order %v", names[:4])
	}
	for i, ti := range fo.Tensors() {
		if ti.Offset%32 != 0 || ti.Name != rep.Tensors[i].Name || ti.Type.String() != rep.Tensors[i].OutputType {
			t.Errorf("%s: %v at %d, report %+v", ti.Name, ti.Type, ti.Offset, rep.Tensors[i])
		}
		src, _ := fi.Float32(ti.Name)
		want := make([]byte, rep.Tensors[i].BytesOut)
		if err := gguf.EncodeFloat32(want, src, ti.Type); err != nil {
			t.Fatal(err)
		}
		if got, _ := fo.Bytes(ti.Name); string(got) != string(want) {
			t.Errorf("%s: data differs from the input encoded as %v", ti.Name, ti.Type)
		}
	}
}

func TestGGUFDryRunWritesNothing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.gguf")
	rep, err := PlanGGUF(GGUFOptions{Input: stories260K, Output: out, Mix: ggufmix.Q4_K_M})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the dry run wrote the output")
	}
	byName := map[string]GGUFTensor{}
	for _, tn := range rep.Tensors {
		byName[tn.Name] = tn
	}
	down := byName["blk.2.ffn_down.weight"]
	if down.OutputType != "F16" || !down.Fallback || !strings.Contains(down.Reason, "172 columns") || down.Action != "convert" {
		t.Errorf("ffn_down: %+v", down)
	}
	if v := byName["blk.2.attn_v.weight"]; v.OutputType != "Q8_0" || !strings.Contains(v.Reason, "use_more_bits") {
		t.Errorf("attn_v: %+v", v)
	}
	if n := byName["output_norm.weight"]; n.Action != "copy" || n.OutputType != "F32" {
		t.Errorf("output_norm: %+v", n)
	}
	if !rep.DryRun || rep.FileType != 15 || rep.Mix != "Q4_K_M" || rep.Totals.Tensors != 48 {
		t.Errorf("report %+v", rep)
	}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil || !strings.Contains(b.String(), "dry run: nothing written") {
		t.Errorf("table: %v\n%s", err, b.String())
	}
}

// TestGGUFRefusesWhatItCannotEncode: a mix needing a type this build has
// no encoder for is refused before anything is written.
func TestGGUFRefusesWhatItCannotEncode(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.gguf")
	rep, err := PlanGGUF(GGUFOptions{Input: stories260K, Output: out, Mix: ggufmix.Q4_K_M})
	if err != nil {
		t.Fatal(err)
	}
	if gguf.TypeQ5_0.CanEncode() {
		t.Skip("this build encodes Q5_0: nothing of Q4_K_M on stories260K is refused")
	}
	if !slices.Contains(rep.Unsupported, "Q5_0") {
		t.Errorf("unsupported %v", rep.Unsupported)
	}
	_, err = RunGGUF(context.Background(), GGUFOptions{Input: stories260K, Output: out, Mix: ggufmix.Q4_K_M})
	if err == nil || !inputerr.Is(err) || !strings.Contains(err.Error(), "cannot encode Q5_0") {
		t.Errorf("Q4_K_M: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused run wrote the output")
	}
}

// TestGGUFRefusals: bad inputs are refused naming the file and the
// problem, and nothing is written.
func TestGGUFRefusals(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.gguf")
	write := func(name string, meta []gguf.KV, ts []gguf.Tensor) string {
		p := filepath.Join(dir, name)
		if err := gguf.WriteFile(p, meta, ts); err != nil {
			t.Fatal(err)
		}
		return p
	}
	llama := []gguf.KV{{Key: "general.architecture", Value: "llama"}, {Key: "llama.block_count", Value: uint32(1)}}
	nan := make([]byte, 4*64)
	copy(nan[4*5:], []byte{0, 0, 0xc0, 0x7f})
	q8 := make([]byte, 34*2)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"no architecture", write("noarch.gguf", nil, nil), "general.architecture"},
		{"no layers", write("nolayers.gguf", llama[:1], nil), "llama.block_count"},
		{"NaN", write("nan.gguf", llama, []gguf.Tensor{{Name: "blk.0.attn_q.weight", Type: gguf.TypeF32, Dims: []int{32, 2}, Data: nan}}), `"blk.0.attn_q.weight": row 0 holds NaN`},
		{"quantized input", write("q8.gguf", llama, []gguf.Tensor{{Name: "blk.0.attn_q.weight", Type: gguf.TypeQ8_0, Dims: []int{32, 2}, Data: q8}}), "is Q8_0: only F32, F16 and BF16"},
		{"not a GGUF", stories260K + ".missing", "no such file"},
	} {
		_, err := RunGGUF(context.Background(), GGUFOptions{Input: tc.path, Output: out, Mix: ggufmix.Q4_0})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !inputerr.Is(err) {
			t.Errorf("%s: %v, want an input error saying %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: the output was written", tc.name)
		}
	}
	if _, err := RunGGUF(context.Background(), GGUFOptions{Input: stories260K, Output: stories260K, Mix: ggufmix.Q8_0, Force: true}); err == nil || !strings.Contains(err.Error(), "is the input") {
		t.Errorf("output = input: %v", err)
	}
}

func TestGGUFCancel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := RunGGUF(ctx, GGUFOptions{Input: stories260K, Output: out, Mix: ggufmix.Q8_0, Workers: 2,
		Progress: func(p Progress) {
			if p.TensorsDone == 3 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// memSource is a GGUFSource without raw bytes, as a conversion supplies:
// every tensor goes through float32, copies included.
type memSource struct {
	meta  gguf.Metadata
	infos []gguf.TensorInfo
	data  map[string][]float32
}

func (m *memSource) Metadata() gguf.Metadata    { return m.meta }
func (m *memSource) Tensors() []gguf.TensorInfo { return m.infos }
func (m *memSource) Paths() []string            { return nil }
func (m *memSource) Close() error               { return nil }
func (m *memSource) ReadFloat32(name string, first int64, dst []float32) error {
	cols := int64(0)
	for _, t := range m.infos {
		if t.Name == name {
			cols = int64(t.Dims[0])
		}
	}
	copy(dst, m.data[name][first*cols:])
	return nil
}

// TestGGUFFromSource writes a model from a source that is not a file and
// has no raw bytes (the shape of an HF conversion), F16 norms included.
func TestGGUFFromSource(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = half.Float16ToFloat32(half.Float32ToFloat16(float32(rng.NormFloat64())))
		}
		return v
	}
	src := &memSource{
		meta: gguf.Metadata{{Key: "general.architecture", Value: "llama"}, {Key: "llama.block_count", Value: uint32(1)}},
		infos: []gguf.TensorInfo{
			{Name: "blk.0.attn_norm.weight", Type: gguf.TypeF16, Dims: []int{64}},
			{Name: "blk.0.ffn_down.weight", Type: gguf.TypeF32, Dims: []int{64, 3000}},
		},
		data: map[string][]float32{"blk.0.attn_norm.weight": vals(64), "blk.0.ffn_down.weight": vals(64 * 3000)},
	}
	out := filepath.Join(t.TempDir(), "out.gguf")
	rep, err := RunGGUF(context.Background(), GGUFOptions{Input: "memory", Source: src, Output: out, Mix: ggufmix.Q8_0, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	norm, _ := f.Float32("blk.0.attn_norm.weight")
	if ti, _ := f.Tensor("blk.0.attn_norm.weight"); ti.Type != gguf.TypeF16 || !slices.Equal(norm, src.data["blk.0.attn_norm.weight"]) {
		t.Errorf("norm: %v, %v", ti.Type, rep.Tensors[0])
	}
	down, _ := f.Float32("blk.0.ffn_down.weight")
	var maxErr float64
	for i, v := range down {
		maxErr = math.Max(maxErr, math.Abs(float64(v-src.data["blk.0.ffn_down.weight"][i])))
	}
	if ti, _ := f.Tensor("blk.0.ffn_down.weight"); ti.Type != gguf.TypeQ8_0 || maxErr > 0.05 {
		t.Errorf("ffn_down: %v, max error %g", ti.Type, maxErr)
	}
}

// A GGUF input rewritten or truncated while it is read ends the run with an
// error naming it (no crash from the mapping), and nothing is written.
func TestGGUFInputChangedDuringRun(t *testing.T) {
	data, err := os.ReadFile(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"rewrite", "truncate"} {
		dir := t.TempDir()
		in := filepath.Join(dir, "in.gguf")
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out.gguf")
		var once sync.Once
		opt := GGUFOptions{Input: in, Output: out, Mix: ggufmix.Q8_0, Workers: 1, Progress: func(Progress) {
			once.Do(func() {
				if how == "truncate" {
					os.Truncate(in, int64(len(data))/2)
					return
				}
				os.WriteFile(in, data, 0o644)
				later := time.Now().Add(time.Second)
				os.Chtimes(in, later, later)
			})
		}}
		_, err := RunGGUF(context.Background(), opt)
		if err == nil || !strings.Contains(err.Error(), in+" changed or was truncated while reading") {
			t.Errorf("%s: error %v, want one naming %s", how, err, in)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: output written", how)
		}
	}
}

// countingSource is a GGUF file source that records which tensors RunGGUF
// lets go, and when.
type countingSource struct {
	*GGUFFile
	mu       sync.Mutex
	released []string
}

func (s *countingSource) Release(name string) {
	s.mu.Lock()
	s.released = append(s.released, name)
	s.mu.Unlock()
	s.GGUFFile.Release(name)
}

// RunGGUF lets each tensor's input pages go once it is written, every
// tensor once, in output order: the bounded memory that matched
// llama-quantize's peak RSS rests on it.
func TestGGUFReleasesEachTensorOnce(t *testing.T) {
	f, err := OpenGGUFSource(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	src := &countingSource{GGUFFile: f}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "out.gguf")
	rep, err := RunGGUF(context.Background(), GGUFOptions{Input: stories260K, Source: src, Output: out, Mix: ggufmix.Q8_0, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tn := range rep.Tensors {
		want = append(want, tn.Name)
	}
	if !slices.Equal(src.released, want) {
		t.Errorf("released %v\nwant every tensor once, in output order: %v", src.released, want)
	}
}

// rangeCountingSource records the byte ranges RunGGUF lets go of each
// tensor it copies block by block.
type rangeCountingSource struct {
	*GGUFFile
	mu     sync.Mutex
	ranges map[string][][2]int64
}

func (s *rangeCountingSource) ReleaseRange(name string, off, n int64) {
	s.mu.Lock()
	s.ranges[name] = append(s.ranges[name], [2]int64{off, n})
	s.mu.Unlock()
	s.GGUFFile.ReleaseRange(name, off, n)
}

// A tensor copied as it is goes in blocks of rows, each let go once
// written, and the file is byte for byte the one copied whole.
func TestGGUFCopiesInBlocks(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.gguf")
	synthLlama(t, in)
	whole := filepath.Join(dir, "whole.gguf")
	if _, err := RunGGUF(context.Background(), GGUFOptions{Input: in, Output: whole, Mix: ggufmix.F16, Workers: 2}); err != nil {
		t.Fatal(err)
	}
	defer func(n int64) { ggufChunkElems = n }(ggufChunkElems)
	ggufChunkElems = 1000 // copies in blocks of at most 4000 bytes
	f, err := OpenGGUFSource(in)
	if err != nil {
		t.Fatal(err)
	}
	src := &rangeCountingSource{GGUFFile: f, ranges: map[string][][2]int64{}}
	defer src.Close()
	out := filepath.Join(dir, "blocks.gguf")
	rep, err := RunGGUF(context.Background(), GGUFOptions{Input: in, Source: src, Output: out, Mix: ggufmix.F16, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if fileDigest(t, out) != fileDigest(t, whole) {
		t.Error("copied in blocks, the file differs")
	}
	for _, tn := range rep.Tensors {
		rs := src.ranges[tn.Name]
		var next int64
		for _, r := range rs {
			if r[0] != next || r[1] > 4000 {
				t.Errorf("%s: ranges %v: not consecutive blocks of at most 4000 bytes", tn.Name, rs)
				break
			}
			next += r[1]
		}
		if next != tn.BytesOut || tn.BytesOut > 4000 && len(rs) < 2 {
			t.Errorf("%s: %d bytes let go in %d blocks, of %d", tn.Name, next, len(rs), tn.BytesOut)
		}
	}
}
