package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/filetest"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/model/synth"
)

// writeFile writes data to name under dir, making its directory.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckpointLlamaLike(t *testing.T) {
	dir := t.TempDir()
	if _, err := synth.Write(dir, synth.LlamaLike(1_000_000), synth.Options{}); err != nil {
		t.Fatal(err)
	}
	// The directory and the file give the same report but for the path.
	var reps [2]CheckpointReport
	for i, path := range []string{dir, filepath.Join(dir, checkpoint.SingleFileName)} {
		rep, err := Path(path)
		if err != nil {
			t.Fatal(err)
		}
		reps[i] = rep.(CheckpointReport)
		if reps[i].Path != path {
			t.Errorf("path %q, want %q", reps[i].Path, path)
		}
	}
	r := reps[0]
	if len(reps[1].Tensors) != len(r.Tensors) || !slices.Equal(reps[1].Estimates, r.Estimates) {
		t.Error("the file and its directory give different reports")
	}
	if len(r.Files) != 1 || r.Total.Tensors != 75 || r.Total.Params != 1016896 || r.Total.Bytes != 4*1016896 ||
		len(r.DTypes) != 1 || r.DTypes[0] != (DTypeTotal{"F32", 75, 1016896, 4 * 1016896}) {
		t.Errorf("totals: files %v, %+v, %+v", r.Files, r.Total, r.DTypes)
	}
	// The rule: every linear layer of the 8 decoder layers, nothing else.
	quantized := 0
	for _, tt := range r.Tensors {
		if linear := strings.Contains(tt.Name, "_proj."); tt.Quantize != linear {
			t.Errorf("%s: quantize %v (%s)", tt.Name, tt.Quantize, tt.KeepReason)
		} else if linear {
			quantized++
		}
	}
	if quantized != 7*8 {
		t.Errorf("%d tensors quantized, want 56", quantized)
	}
	checkEstimates(t, r)
}

// checkEstimates recomputes r's size estimates from its tensors, by the
// formulas of the package documentation, in loops of its own.
func checkEstimates(t *testing.T, r CheckpointReport) {
	t.Helper()
	if len(r.Estimates) != 3 || r.Estimates[0] != (SizeEstimate{Format: "original", KeptBytes: r.Total.Bytes, Bytes: r.Total.Bytes, Ratio: 1}) {
		t.Fatalf("estimates %+v", r.Estimates)
	}
	var kept, qParams, int8Bytes, int4Bytes int64
	qTensors := 0
	for _, tt := range r.Tensors {
		if !tt.Quantize {
			kept += tt.Bytes
			continue
		}
		qTensors++
		qParams += tt.Params
		rows, cols := int64(tt.Shape[0]), int64(tt.Shape[1])
		int8Bytes += rows*cols + 4*rows
		groups := int64(0)
		for c := int64(0); c < cols; c += 128 {
			groups++
		}
		int4Bytes += int64(math.Ceil(float64(rows*cols)/2)) + 4*rows*groups
	}
	for i, want := range []int64{int8Bytes, int4Bytes} {
		e := r.Estimates[i+1]
		if e.Format != []string{"int8-per-channel", "int4-group128"}[i] || e.Bytes != want+kept || e.KeptBytes != kept ||
			e.CodeBytes+e.ScaleBytes != want || e.QuantizedTensors != qTensors || e.QuantizedParams != qParams {
			t.Errorf("%s: %+v, want %d bytes (%d kept), %d tensors, %d params", e.Format, e, want+kept, kept, qTensors, qParams)
		}
		if r.Total.Bytes > 0 && e.Ratio != float64(e.Bytes)/float64(r.Total.Bytes) {
			t.Errorf("%s: ratio %g", e.Format, e.Ratio)
		}
	}
}

// The keep rule on tensors of every kind, and estimates of odd shapes: an
// odd number of int4 codes, a last group shorter than 128, half precision.
func TestCheckpointKeepReasons(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, dtype string
		shape       []int
		want        string
	}{
		{"model.layers.0.mlp.up_proj.weight", "BF16", []int{3, 129}, ""},
		{"model.layers.0.self_attn.q_proj.weight", "F32", []int{5, 7}, ""},
		{"model.layers.0.mlp.up_proj.bias", "F32", []int{8}, "1-D"},
		{"model.layers.0.mlp.down_proj.bias", "F32", []int{8, 1}, "not a .weight"},
		{"model.layers.0.mlp.gate_proj.weight", "I8", []int{8, 4}, "not floating-point"},
		{"model.embed_tokens.weight", "F16", []int{8, 4}, "embedding"},
		{"transformer.wte.weight", "F16", []int{8, 4}, "embedding"},
		{"lm_head.weight", "F16", []int{8, 4}, "lm_head"},
		{"vision.conv.weight", "F32", []int{8, 4, 3, 3}, "4-D"},
		{"scalar", "F32", []int{}, "0-D"},
	}
	size := map[string]int{"BF16": 2, "F16": 2, "F32": 4, "I8": 1}
	var tensors []safetensors.Tensor
	for _, c := range cases {
		n := 1
		for _, d := range c.shape {
			n *= d
		}
		tensors = append(tensors, safetensors.Tensor{Name: c.name, DType: c.dtype, Shape: c.shape, Data: make([]byte, n*size[c.dtype])})
	}
	path := filepath.Join(dir, "m.safetensors")
	if err := safetensors.WriteFile(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	r, err := Checkpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Tensor{}
	for _, tt := range r.Tensors {
		got[tt.Name] = tt
	}
	for _, c := range cases {
		tt := got[c.name]
		if tt.KeepReason != c.want || tt.Quantize != (c.want == "") || tt.DType != c.dtype || !slices.Equal(tt.Shape, c.shape) || tt.File != path {
			t.Errorf("%s: %+v, want keep reason %q", c.name, tt, c.want)
		}
	}
	if len(r.DTypes) != 4 || r.DTypes[0].DType != "BF16" || r.DTypes[3] != (DTypeTotal{"I8", 1, 32, 32}) {
		t.Errorf("dtypes %+v", r.DTypes)
	}
	checkEstimates(t, r)
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"10 tensors in 1 file", "no: not a .weight", "[3, 129]", "[]", "all    10", "int4-group128     2 tensors, 422 params  212 B  44 B"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, text.String())
		}
	}
}

func TestCheckpointSharded(t *testing.T) {
	dir := t.TempDir()
	if _, err := synth.Write(dir, synth.LlamaLike(1_000_000), synth.Options{ShardSize: 500_000}); err != nil {
		t.Fatal(err)
	}
	r, err := Checkpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Files) < 2 || r.Total.Tensors != 75 || r.Total.Params != 1016896 {
		t.Fatalf("%d files, total %+v", len(r.Files), r.Total)
	}
	// Each tensor is named in the shard that holds it.
	for _, tt := range r.Tensors[:5] {
		f, err := safetensors.Open(tt.File)
		if err != nil {
			t.Fatal(err)
		}
		found := slices.ContainsFunc(f.Tensors(), func(x safetensors.TensorInfo) bool { return x.Name == tt.Name })
		f.Close()
		if !found || !slices.Contains(r.Files, tt.File) {
			t.Errorf("%s is not in %s", tt.Name, tt.File)
		}
	}
	checkEstimates(t, r)
}

func TestCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.safetensors", []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json}      "))
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	idx := writeFile(t, dir, "sharded/model.safetensors.index.json", []byte(`{"weight_map": {"w": "model-00001-of-00001.safetensors"}}`))
	badIdx := writeFile(t, dir, "badidx/model.safetensors.index.json", []byte(`{"weight_map": {"w": "../../etc/passwd"}}`))
	// A shard that lacks a tensor the index puts in it.
	lacking := filepath.Dir(writeFile(t, dir, "lacking/model.safetensors.index.json", []byte(`{"weight_map": {"a": "s.safetensors", "b": "s.safetensors"}}`)))
	if err := safetensors.WriteFile(filepath.Join(lacking, "s.safetensors"), []safetensors.Tensor{{Name: "a", DType: "F32", Shape: []int{1}, Data: make([]byte, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{bad, "bad.safetensors"},
		{filepath.Join(dir, "missing.safetensors"), "missing.safetensors"},
		{empty, "neither model.safetensors"},
		{filepath.Dir(idx), "model-00001-of-00001.safetensors"},
		{filepath.Dir(badIdx), "model.safetensors.index.json"},
		{lacking, `tensor "b"`},
	} {
		if _, err := Path(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.path, err, tc.want)
		}
	}
}

// writeTinyGGUF writes a small GGUF model: metadata of every kind the
// report summarises, tensors of three types.
func writeTinyGGUF(t *testing.T, path string) {
	t.Helper()
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = string(rune('a' + i%26))
	}
	meta := []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: "tiny"},
		{Key: "llama.block_count", Value: uint32(2)},
		{Key: "llama.rope.freq_base", Value: float32(math.Inf(1))},
		{Key: "llama.nan", Value: math.NaN()},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: []float32{1, float32(math.Inf(-1))}},
		{Key: "tokenizer.ggml.merges", Value: []any{[]uint8{1, 2}, []uint8{}}},
	}
	tensors := []gguf.Tensor{
		{Name: "token_embd.weight", Type: gguf.TypeF16, Dims: []int{4, 3}, Data: make([]byte, 24)},
		{Name: "blk.0.attn_q.weight", Type: gguf.TypeQ8_0, Dims: []int{32, 2}, Data: make([]byte, 2*34)}, // two Q8_0 blocks
		{Name: "output_norm.weight", Type: gguf.TypeF32, Dims: []int{4}, Data: make([]byte, 16)},
	}
	if err := gguf.WriteFile(path, meta, tensors); err != nil {
		t.Fatal(err)
	}
}

func TestGGUF(t *testing.T) {
	// Named .safetensors: the content says what it is.
	for _, name := range []string{"tiny.gguf", "misnamed.safetensors"} {
		path := filepath.Join(t.TempDir(), name)
		writeTinyGGUF(t, path)
		rep, err := Path(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r, ok := rep.(GGUFReport)
		if !ok || r.Format != "gguf" || r.Path != path || r.Version != 3 || r.Alignment != 32 || len(r.Tensors) != 3 || len(r.Metadata) != 8 {
			t.Fatalf("%s: %+v", name, rep)
		}
		q := r.Tensors[1]
		if q.Name != "blk.0.attn_q.weight" || q.Type != "Q8_0" || !slices.Equal(q.Shape, []int{2, 32}) || !slices.Equal(q.Dims, []int{32, 2}) || q.Params != 64 || q.Bytes != 68 {
			t.Errorf("tensor %+v", q)
		}
		if r.Total != (GGUFTotal{"", 3, 12 + 64 + 4, 24 + 68 + 16, 8 * 108.0 / 80}) || len(r.Types) != 3 || r.Types[0] != (GGUFTotal{"F16", 1, 12, 24, 16}) ||
			r.Types[1] != (GGUFTotal{"F32", 1, 4, 16, 32}) || r.Types[2] != (GGUFTotal{"Q8_0", 1, 64, 68, 8.5}) || r.FileType != nil || r.FileTypeName != "" {
			t.Errorf("totals %+v %+v", r.Total, r.Types)
		}
		// The JSON form, as a script reads it.
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			Metadata []struct {
				Key   string `json:"key"`
				Type  string `json:"type"`
				Value any    `json:"value"`
				Count *int   `json:"count"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		md := map[string]int{}
		for i, m := range back.Metadata {
			md[m.Key] = i
		}
		for _, c := range []struct {
			key, typ, value string
			count           int // -1: none
		}{
			{"general.architecture", "string", `"llama"`, -1},
			{"llama.block_count", "uint32", `2`, -1},
			{"llama.rope.freq_base", "float32", `"+Inf"`, -1},
			{"llama.nan", "float64", `"NaN"`, -1},
			{"tokenizer.ggml.tokens", "array of string", `["a","b","c","d","e","f","g","h"]`, 100},
			{"tokenizer.ggml.scores", "array of float32", `[1,"-Inf"]`, 2},
			{"tokenizer.ggml.merges", "array of array", `null`, 2},
		} {
			m := back.Metadata[md[c.key]]
			v, _ := json.Marshal(m.Value)
			if m.Key != c.key || m.Type != c.typ || string(v) != c.value || (m.Count == nil) != (c.count < 0) || (m.Count != nil && *m.Count != c.count) {
				t.Errorf("%s: %+v (value %s), want type %s, value %s, count %d", c.key, m, v, c.typ, c.value, c.count)
			}
		}
		var text bytes.Buffer
		if err := r.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"GGUF v3, 3 tensors", "general.architecture", `"llama"`, `array of string   100 elements: "a", "b"`, `"h", …`,
			"blk.0.attn_q.weight", "Q8_0", "[2, 32]", "type  tensors", "all   3", "(10.80 bits per weight)", "bits/weight", "68 B   8.50"} {
			if !strings.Contains(text.String(), s) {
				t.Errorf("text lacks %q:\n%s", s, text.String())
			}
		}
	}
}

func TestNPY(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		shape []int
		text  string
	}{{[]int{2, 3}, "shape (2, 3), 6 elements, 24 B"}, {[]int{6}, "shape (6,), 6 elements"}, {[]int{}, "shape (), 1 elements, 4 B"}} {
		path := filepath.Join(dir, "acts.npy")
		n := 1
		for _, d := range c.shape {
			n *= d
		}
		if err := npy.WriteFile(path, make([]float32, n), c.shape); err != nil {
			t.Fatal(err)
		}
		rep, err := Path(path)
		if err != nil {
			t.Fatal(err)
		}
		r := rep.(NPYReport)
		if r.Format != "npy" || r.Path != path || r.Version != 1 || r.DType != "<f4" || r.Type != "float32" || !slices.Equal(r.Shape, c.shape) ||
			r.Elements != int64(n) || r.Bytes != int64(4*n) || r.DataOffset != 128 {
			t.Errorf("%+v", r)
		}
		var text bytes.Buffer
		if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "<f4 (float32), "+c.text) {
			t.Errorf("%v %s, want %q", err, text.String(), c.text)
		}
	}
	// A damaged .npy gives npy's own error.
	bad := writeFile(t, dir, "bad.npy", []byte("\x93NUMPY\x01\x00\xff\xff{}"))
	if _, err := Path(bad); err == nil || !strings.Contains(err.Error(), "npy: "+bad+": header length 65535 exceeds file size") {
		t.Errorf("damaged .npy: %v", err)
	}
}

// Files of formats inspect does not read, or of none, get an error that
// says what they are, not one from the safetensors reader.
func TestPathOtherFormats(t *testing.T) {
	dir := t.TempDir()
	onnx, err := os.ReadFile("../onnx/testdata/mnist-cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"model.onnx", onnx, "model.onnx is an ONNX model; inspect reads safetensors, GGUF and .npy"},
		{"model", onnx, "model is an ONNX model; inspect reads"},
		{"pytorch_model.bin", []byte("PK\x03\x04\x14\x00\x00\x00"), "pytorch_model.bin is a PyTorch checkpoint; inspect reads"},
		{"config", []byte(`{"model_type": "llama"}`), "config is a JSON file; inspect reads"},
		{"notes.txt", []byte("hello, world"), `notes.txt is not a safetensors, GGUF or .npy file (it starts with "hello, world")`},
		{"empty", nil, "empty is empty"},
	} {
		path := writeFile(t, dir, tc.name, tc.data)
		if _, err := Path(path); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, tc.want)) {
			t.Errorf("%s: %v, want %q", path, err, tc.want)
		}
	}
}

// A named pipe (whose plain open would block until a writer came) and a
// device are refused at once.
func TestPathSpecialFiles(t *testing.T) {
	special := map[string]string{filetest.NamedPipe(t, "x.gguf"): "a named pipe"}
	if _, err := os.Stat("/dev/zero"); err == nil {
		special["/dev/zero"] = "a character device"
	}
	for path, what := range special {
		err := filetest.Within(t, path, func() error { _, err := Path(path); return err })
		if want := path + ": not a regular file (" + what + ")"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

// TestGGUFFileType: general.file_type by llama.cpp's name, whatever
// integer type holds it, and bits per weight from ggml's block sizes
// (Q4_K: 144 bytes a block of 256, 4.5 bits; Q6_K: 210 bytes, 6.5625).
func TestGGUFFileType(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		value any
		ft    int64
		name  string
	}{
		{uint32(15), 15, "MOSTLY_Q4_K_M"},
		{int32(0), 0, "ALL_F32"},
		{uint32(7), 7, "MOSTLY_Q8_0"},
		{uint32(32), 32, "MOSTLY_BF16"},
		{uint32(12), 12, "MOSTLY_Q3_K_M"},
		{uint32(19), 19, "file type 19"}, // IQ2_XXS: not a mix quantkit writes
	} {
		path := filepath.Join(dir, tc.name+".gguf")
		meta := []gguf.KV{{Key: "general.architecture", Value: "llama"}, {Key: "general.file_type", Value: tc.value}}
		tensors := []gguf.Tensor{
			{Name: "blk.0.attn_q.weight", Type: gguf.TypeQ4_K, Dims: []int{256, 4}, Data: make([]byte, 4*144)},
			{Name: "blk.0.attn_v.weight", Type: gguf.TypeQ6_K, Dims: []int{256, 2}, Data: make([]byte, 2*210)},
			{Name: "blk.0.attn_k.weight", Type: gguf.TypeQ4_K, Dims: []int{256, 2}, Data: make([]byte, 2*144)},
		}
		if err := gguf.WriteFile(path, meta, tensors); err != nil {
			t.Fatal(err)
		}
		r, err := GGUF(path)
		if err != nil {
			t.Fatal(err)
		}
		if r.FileType == nil || *r.FileType != tc.ft || r.FileTypeName != tc.name {
			t.Errorf("%v: file type %v %q, want %d %q", tc.value, r.FileType, r.FileTypeName, tc.ft, tc.name)
		}
		want := []GGUFTotal{{"Q4_K", 2, 1536, 864, 4.5}, {"Q6_K", 1, 512, 420, 6.5625}}
		if !slices.Equal(r.Types, want) || r.Total != (GGUFTotal{"", 3, 2048, 1284, 8 * 1284.0 / 2048}) {
			t.Errorf("types %+v, total %+v", r.Types, r.Total)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{fmt.Sprintf(`"file_type":%d,"file_type_name":%q`, tc.ft, tc.name), `"bits_per_weight":6.5625`, `"bits_per_weight":5.015625`} {
			if !strings.Contains(string(data), s) {
				t.Errorf("JSON lacks %s:\n%s", s, data)
			}
		}
		var text bytes.Buffer
		if err := r.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{fmt.Sprintf("file type: %s (general.file_type %d)", tc.name, tc.ft), "(5.02 bits per weight)", "4.50\n", "6.56\n"} {
			if !strings.Contains(text.String(), s) {
				t.Errorf("text lacks %q:\n%s", s, text.String())
			}
		}
	}
	// The real model, all F32, as llama.cpp's tools converted it from
	// llama2.c, has no general.file_type.
	r, err := GGUF("../../testdata/llm/stories260K/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if r.FileType != nil || r.FileTypeName != "" || r.Total.BitsPerWeight != 32 {
		t.Errorf("stories260K: file type %v %q, %g bits per weight", r.FileType, r.FileTypeName, r.Total.BitsPerWeight)
	}
}
