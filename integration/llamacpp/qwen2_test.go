//go:build integration

package llamacpp

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/gguf"
)

// writeRandomQwen2 writes an F32 GGUF of llama.cpp's qwen2 architecture
// with stories260K's shape, tokenizer and vocabulary (its llama.* keys
// renamed qwen2.*), random weights and q, k and v biases large enough to
// matter, and extra metadata appended. qwen2's rope type is NEOX: its q and
// k rows are in Hugging Face's order, not permuted as llama's.
func writeRandomQwen2(t *testing.T, path string, seed uint64, extra ...gguf.KV) {
	t.Helper()
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta := f.Metadata()
	for i := range meta {
		if meta[i].Key == gguf.KeyArchitecture {
			meta[i].Value = "qwen2"
		}
		if rest, ok := strings.CutPrefix(meta[i].Key, "llama."); ok {
			meta[i].Key = "qwen2." + rest
		}
	}
	meta = append(meta, extra...)
	key := func(k string) int {
		v, ok := f.Int("llama." + k)
		if !ok {
			t.Fatalf("%s lacks llama.%s", storiesGGUF, k)
		}
		return int(v)
	}
	dim, ffn, layers := key("embedding_length"), key("feed_forward_length"), key("block_count")
	heads, kvHeads := key("attention.head_count"), key("attention.head_count_kv")
	kvDim := dim / heads * kvHeads
	vocab := len(must(f.Strings("tokenizer.ggml.tokens")))
	rng := rand.New(rand.NewPCG(seed, 2))
	var tensors []gguf.Tensor
	add := func(name string, scale, mean float64, dims ...int) {
		n := 1
		for _, d := range dims {
			n *= d
		}
		data := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(mean+scale*rng.NormFloat64())))
		}
		tensors = append(tensors, gguf.Tensor{Name: name, Type: gguf.TypeF32, Dims: dims, Data: data})
	}
	mat := func(name string, in, out int) { add(name, 1/math.Sqrt(float64(in)), 0, in, out) }
	add("token_embd.weight", 1, 0, dim, vocab)
	add("output_norm.weight", 0.05, 1, dim)
	mat("output.weight", dim, vocab)
	for l := range layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", 0.05, 1, dim)
		mat(p+"attn_q.weight", dim, dim)
		mat(p+"attn_k.weight", dim, kvDim)
		mat(p+"attn_v.weight", dim, kvDim)
		add(p+"attn_q.bias", 0.5, 0, dim)
		add(p+"attn_k.bias", 0.5, 0, kvDim)
		add(p+"attn_v.bias", 0.2, 0, kvDim)
		mat(p+"attn_output.weight", dim, dim)
		add(p+"ffn_norm.weight", 0.05, 1, dim)
		mat(p+"ffn_gate.weight", dim, ffn)
		mat(p+"ffn_up.weight", dim, ffn)
		mat(p+"ffn_down.weight", ffn, dim)
	}
	if err := gguf.WriteFile(path, meta, tensors); err != nil {
		t.Fatal(err)
	}
}

// TestLMMatchesLlamaCppQwen2: on random F32 GGUF files of llama.cpp's qwen2
// architecture (q, k and v biases, NEOX RoPE), plain and with YaRN rope
// scaling whose original context (32) the 72 positions pass, lm.LoadGGUF's
// next-token distributions are llama.cpp's: KL below 1e-6 nats at every
// position, as on stories260K.
func TestLMMatchesLlamaCppQwen2(t *testing.T) {
	const bound = 1e-6
	vocab := storiesVocab(t)
	for _, c := range []struct {
		name  string
		extra []gguf.KV
	}{
		{"plain", nil},
		{"yarn", []gguf.KV{
			{Key: "qwen2.rope.scaling.type", Value: "yarn"},
			{Key: "qwen2.rope.scaling.factor", Value: float32(4)},
			{Key: "qwen2.rope.scaling.original_context_length", Value: uint32(32)},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "qwen2-"+c.name+".gguf")
			writeRandomQwen2(t, path, 17, c.extra...)
			want := llamaProbsOf(t, path, lmTokens)
			m, err := lm.LoadGGUF(cpu.New(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			t.Logf("rope scaling %+v", m.Config.Rope)
			klReport(t, "random qwen2 "+c.name+" (F32)", vocab, lmTokens, want, lmProbs(t, m, lmTokens), bound)
		})
	}
}
