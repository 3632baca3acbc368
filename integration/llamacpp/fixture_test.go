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

	"github.com/quantkit/quantkit/model/gguf"
)

// storiesGGUF is stories260K as llama.cpp's tools converted it (all F32).
var storiesGGUF = filepath.Join(stories260K, "stories260K.gguf")

// paddedFFN is the FFN width of the padded model: stories260K's 172 rounded
// up to a multiple of 32.
const paddedFFN = 192

// writePaddedStories260K writes stories260K.gguf with its FFN widened from
// 172 to 192 by zero rows of ffn_gate and ffn_up and zero columns of
// ffn_down: the same function (silu(0)·0 = 0), but every row length a
// multiple of 32, so llama-quantize quantizes every 2-D tensor to Q8_0 or
// Q4_0 with no fallback. A real model, with all-zero blocks besides.
func writePaddedStories260K(t *testing.T, path string) {
	t.Helper()
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ffn, ok := f.Uint32("llama.feed_forward_length")
	if !ok {
		t.Fatalf("%s: no uint32 llama.feed_forward_length", storiesGGUF)
	}
	meta := f.Metadata()
	for i := range meta {
		if meta[i].Key == "llama.feed_forward_length" {
			meta[i].Value = uint32(paddedFFN)
		}
	}
	var tensors []gguf.Tensor
	for _, ti := range f.Tensors() {
		data, err := f.Bytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if ti.Type != gguf.TypeF32 {
			t.Fatalf("%s: tensor %q is %v, want F32", storiesGGUF, ti.Name, ti.Type)
		}
		dims := append([]int(nil), ti.Dims...)
		switch {
		case strings.HasSuffix(ti.Name, ".ffn_gate.weight"), strings.HasSuffix(ti.Name, ".ffn_up.weight"):
			if dims[1] != int(ffn) {
				t.Fatalf("%s: tensor %q dims %v, want [_ %d]", storiesGGUF, ti.Name, dims, ffn)
			}
			dims[1] = paddedFFN
			data = append(append([]byte(nil), data...), make([]byte, (paddedFFN-int(ffn))*dims[0]*4)...)
		case strings.HasSuffix(ti.Name, ".ffn_down.weight"):
			if dims[0] != int(ffn) {
				t.Fatalf("%s: tensor %q dims %v, want [%d _]", storiesGGUF, ti.Name, dims, ffn)
			}
			dims[0] = paddedFFN
			padded := make([]byte, 0, paddedFFN*dims[1]*4)
			for r := range dims[1] {
				padded = append(padded, data[r*int(ffn)*4:(r+1)*int(ffn)*4]...)
				padded = append(padded, make([]byte, (paddedFFN-int(ffn))*4)...)
			}
			data = padded
		}
		tensors = append(tensors, gguf.Tensor{Name: ti.Name, Type: ti.Type, Dims: dims, Data: data})
	}
	if err := gguf.WriteFile(path, meta, tensors); err != nil {
		t.Fatal(err)
	}
}

// llamaShape is the shape of a Llama-family model.
type llamaShape struct {
	dim, ffn, layers, heads, kvHeads int
}

// writeRandomLlama writes an F32 Llama GGUF of the given shape with
// random weights (heavy-tailed, with a few outlier columns, as trained
// weights have) and stories260K's tokenizer and vocabulary of 512: a model
// llama.cpp loads, for the rules and block types of llama-quantize that
// need rows of 256 (K-quants) and more layers than stories260K has.
func writeRandomLlama(t *testing.T, path string, s llamaShape, seed uint64) {
	t.Helper()
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set := map[string]any{
		"general.name":                  fmt.Sprintf("random-llama-%d-%d-%d", s.dim, s.ffn, s.layers),
		"llama.embedding_length":        uint32(s.dim),
		"llama.feed_forward_length":     uint32(s.ffn),
		"llama.block_count":             uint32(s.layers),
		"llama.attention.head_count":    uint32(s.heads),
		"llama.attention.head_count_kv": uint32(s.kvHeads),
		"llama.rope.dimension_count":    uint32(s.dim / s.heads),
	}
	meta := f.Metadata()
	for i := range meta {
		if v, ok := set[meta[i].Key]; ok {
			meta[i].Value = v
			delete(set, meta[i].Key)
		}
	}
	if len(set) != 0 {
		t.Fatalf("%s lacks keys %v", storiesGGUF, set)
	}
	vocab := len(must(f.Strings("tokenizer.ggml.tokens")))
	rng := rand.New(rand.NewPCG(seed, 1))
	kvDim := s.dim / s.heads * s.kvHeads
	var tensors []gguf.Tensor
	add := func(name string, dims ...int) {
		n := 1
		for _, d := range dims {
			n *= d
		}
		data := make([]byte, 4*n)
		if len(dims) == 1 { // a norm: 1 ± 0.05
			for i := range n {
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(1+0.05*rng.NormFloat64())))
			}
		} else {
			scale := 1 / math.Sqrt(float64(dims[0]))
			outlier := rng.IntN(dims[0])
			for i := range n {
				// Student-t with 4 degrees of freedom: N / sqrt(χ²₄/4).
				chi := 0.0
				for range 4 {
					z := rng.NormFloat64()
					chi += z * z
				}
				v := rng.NormFloat64() / math.Sqrt(chi/4) * scale
				if i%dims[0] == outlier {
					v *= 12
				}
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(v)))
			}
		}
		tensors = append(tensors, gguf.Tensor{Name: name, Type: gguf.TypeF32, Dims: dims, Data: data})
	}
	add("token_embd.weight", s.dim, vocab)
	add("output_norm.weight", s.dim)
	add("output.weight", s.dim, vocab)
	for l := range s.layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", s.dim)
		add(p+"attn_q.weight", s.dim, s.dim)
		add(p+"attn_k.weight", s.dim, kvDim)
		add(p+"attn_v.weight", s.dim, kvDim)
		add(p+"attn_output.weight", s.dim, s.dim)
		add(p+"ffn_norm.weight", s.dim)
		add(p+"ffn_gate.weight", s.dim, s.ffn)
		add(p+"ffn_up.weight", s.dim, s.ffn)
		add(p+"ffn_down.weight", s.ffn, s.dim)
	}
	if err := gguf.WriteFile(path, meta, tensors); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, ok bool) T {
	if !ok {
		panic("missing value")
	}
	return v
}
