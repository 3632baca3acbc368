//go:build integration

package llamacpp

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
)

// TestLlamaCppRunsStories260K checks the probability harness itself:
// llama.cpp loads stories260K.gguf, gives a proper distribution over the
// whole vocabulary at every position, and, teacher-forced on "Once upon a
// time", predicts the story llama2.c tells from BOS (each next word the
// most likely token).
func TestLlamaCppRunsStories260K(t *testing.T) {
	p := llamaProbs(t, storiesGGUF)
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tokens, _ := f.Strings("tokenizer.ggml.tokens")
	if p.NVocab != len(tokens) || p.NVocab != 512 {
		t.Fatalf("llama.cpp gives %d probabilities a position; the GGUF has %d tokens (512 expected)", p.NVocab, len(tokens))
	}
	for i, row := range p.Probs {
		var sum float64
		for tok, v := range row {
			if math.IsNaN(v) || v < 0 || v > 1 {
				t.Fatalf("position %d: p(token %d) = %v is no probability", i, tok, v)
			}
			sum += v
		}
		// float32 softmax: within about 5e-6 of 1 (node-llama-cpp's note).
		if math.Abs(sum-1) > 1e-4 {
			t.Errorf("position %d: probabilities sum to %.9f, want 1 within 1e-4", i, sum)
		}
	}
	// "<s> Once upon a time" → "Once", "upon", "a", "time", ",".
	want := []string{"▁Once", "▁upon", "▁a", "▁time", ","}
	for i, w := range want {
		got := argmax(p.Probs[i])
		if tokens[got] != w {
			t.Errorf("after %q the most likely token is %q (id %d, p=%.3f), want %q",
				detok(tokens, prompt[:i+1]), tokens[got], got, p.Probs[i][got], w)
		}
	}
}

func detok(vocab []string, ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(vocab[id])
	}
	return b.String()
}

// TestPaddedStories260KIsTheSameModel checks the fixture of the Q8_0/Q4_0
// comparison: zero-padding the FFN leaves llama.cpp's next-token
// probabilities as they were.
func TestPaddedStories260KIsTheSameModel(t *testing.T) {
	padded := filepath.Join(t.TempDir(), "stories260K-ffn192.gguf")
	writePaddedStories260K(t, padded)
	want, got := llamaProbs(t, storiesGGUF), llamaProbs(t, padded)
	for i := range want.Probs {
		if kl := klDivergence(want.Probs[i], got.Probs[i]); kl > 1e-9 {
			t.Errorf("position %d: KL(stories260K ‖ padded) = %.3g, want ≤ 1e-9", i, kl)
		}
	}
}

// quantkitQuantize runs quantkit's GGUF → GGUF quantization (or, for an HF
// folder, its conversion) through the command line, as a user would, and
// fails the test naming the command and what quantkit said when it exits
// non-zero (the flags are refused, or the conversion is not there yet).
func quantkitQuantize(t *testing.T, in, out, typ string, extra ...string) {
	t.Helper()
	args := append([]string{"quantize", in, "-o", out, "--format", "gguf", "--type", typ}, extra...)
	if _, err := runErr(quantkitBin(t), args...); err != nil {
		t.Fatalf("quantkit refused or failed (issue 15 needs `quantize --format gguf --type %s%s`): %v",
			typ, strings.Join(append([]string{""}, extra...), " "), err)
	}
}

// TestQuantizeMatchesLlamaQuantize: quantkit's GGUF → GGUF output is
// byte-identical to llama_model_quantize's for the same input and type
// (--pure: every 2-D weight gets the type, or llama.cpp's fallback where
// its rows do not divide into blocks). A difference is reported as the
// first metadata pair, tensor or block that differs.
func TestQuantizeMatchesLlamaQuantize(t *testing.T) {
	dir := t.TempDir()
	padded := filepath.Join(dir, "stories260K-ffn192.gguf")
	writePaddedStories260K(t, padded)
	var random string // made on first use
	for _, c := range []struct {
		name, in, typ string
	}{
		// stories260K with rows of 64 and 192: every 2-D tensor quantized.
		{"stories260K-ffn192/Q8_0", padded, "Q8_0"},
		{"stories260K-ffn192/Q4_0", padded, "Q4_0"},
		// stories260K as it is: ffn_down's rows of 172 fall back to F16.
		{"stories260K/Q8_0", storiesGGUF, "Q8_0"},
		// rows of 256 and more: K-quant blocks (Q4_K_M --pure is all Q4_K).
		{"random-llama-256/Q4_K_M", "random", "Q4_K_M"},
		{"random-llama-256/Q6_K", "random", "Q6_K"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			if in == "random" {
				if random == "" {
					random = filepath.Join(dir, "random-llama-256.gguf")
					writeRandomLlama(t, random, llamaShape{dim: 256, ffn: 768, layers: 8, heads: 8, kvHeads: 2}, 1)
				}
				in = random
			}
			want := filepath.Join(t.TempDir(), "llama.cpp.gguf")
			got := filepath.Join(t.TempDir(), "quantkit.gguf")
			llamaQuantize(t, in, want, c.typ, true)
			quantkitQuantize(t, in, got, c.typ, "--pure")
			diffs, err := diffGGUF(want, got)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Errorf("quantkit quantize %s --type %s --pure differs from llama_model_quantize (pure %s):\n  %s",
					filepath.Base(in), c.typ, c.typ, strings.Join(diffs, "\n  "))
			}
		})
	}
}

// TestMixTypesMatchLlamaQuantize: for llama-quantize's mixes quantkit
// gives every tensor the type llama.cpp's rules give it (output.weight,
// attn_v and ffn_down promoted on the layers its use_more_bits picks),
// on a model of 8 layers whose rows divide by 256. Types are the check
// here; whether the bytes agree too is logged.
func TestMixTypesMatchLlamaQuantize(t *testing.T) {
	in := filepath.Join(t.TempDir(), "random-llama-256.gguf")
	writeRandomLlama(t, in, llamaShape{dim: 256, ffn: 768, layers: 8, heads: 8, kvHeads: 2}, 2)
	for _, typ := range []string{"Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0"} {
		t.Run(typ, func(t *testing.T) {
			want := filepath.Join(t.TempDir(), "llama.cpp.gguf")
			got := filepath.Join(t.TempDir(), "quantkit.gguf")
			llamaQuantize(t, in, want, typ, false)
			quantkitQuantize(t, in, got, typ)
			w, err := gguf.Open(want)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			g, err := gguf.Open(got)
			if err != nil {
				t.Fatalf("quantkit's output: %v", err)
			}
			defer g.Close()
			var bad []string
			for _, a := range w.Tensors() {
				b, ok := g.Tensor(a.Name)
				switch {
				case !ok:
					bad = append(bad, fmt.Sprintf("%s: llama.cpp %v, quantkit has no such tensor", a.Name, a.Type))
				case a.Type != b.Type:
					bad = append(bad, fmt.Sprintf("%s: llama.cpp %v, quantkit %v", a.Name, a.Type, b.Type))
				}
			}
			if len(bad) > 0 {
				t.Errorf("%s: %d of %d tensors get another type than llama-quantize gives them:\n  %s",
					typ, len(bad), len(w.Tensors()), strings.Join(bad, "\n  "))
			}
			if n := len(g.Tensors()); n != len(w.Tensors()) {
				t.Errorf("%s: quantkit wrote %d tensors, llama.cpp %d", typ, n, len(w.Tensors()))
			}
			if diffs, err := diffGGUF(want, got); err == nil && len(diffs) > 0 {
				t.Logf("%s: not byte-identical (not required for mixes):\n  %s", typ, strings.Join(diffs, "\n  "))
			}
		})
	}
}

// TestConvertHFMatchesLlamaCpp: quantkit's HF → GGUF conversion of
// stories260K (F32) loads in llama.cpp and gives the next-token
// probabilities of stories260K.gguf, which llama.cpp's own tools converted
// from the same weights: KL below 1e-6 nats at every position of the prompt.
func TestConvertHFMatchesLlamaCpp(t *testing.T) {
	const maxKL = 1e-6
	want := llamaProbs(t, storiesGGUF)
	out := filepath.Join(t.TempDir(), "stories260K-quantkit.gguf")
	quantkitQuantize(t, filepath.Join(stories260K, "hf"), out, "F32")
	got := llamaProbs(t, out)
	if got.NVocab != want.NVocab {
		t.Fatalf("quantkit's GGUF gives %d probabilities a position, stories260K.gguf %d", got.NVocab, want.NVocab)
	}
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vocab, _ := f.Strings("tokenizer.ggml.tokens")
	var bad []string
	for i := range want.Probs {
		kl := klDivergence(want.Probs[i], got.Probs[i])
		line := fmt.Sprintf("position %d (after %q): KL %.3g; top tokens stories260K.gguf %s, quantkit %s",
			i, detok(vocab, prompt[:i+1]), kl, top(vocab, want.Probs[i], 3), top(vocab, got.Probs[i], 3))
		if kl > maxKL || math.IsNaN(kl) {
			bad = append(bad, line)
		} else {
			t.Log(line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("llama.cpp's next-token probabilities of quantkit's conversion differ from stories260K.gguf's by more than KL %g at %d of %d positions:\n  %s",
			maxKL, len(bad), len(want.Probs), strings.Join(bad, "\n  "))
	}
}

// top lists the n most likely tokens with their probabilities.
func top(vocab []string, p []float64, n int) string {
	ids := make([]int, len(p))
	for i := range ids {
		ids[i] = i
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return 0
	})
	var parts []string
	for _, id := range ids[:min(n, len(ids))] {
		parts = append(parts, fmt.Sprintf("%q %.4f", vocab[id], p[id]))
	}
	return strings.Join(parts, ", ")
}

// TestHFToMixInOnePass: a Hugging Face checkpoint quantized by quantkit in
// one pass (conversion and mix together) is byte for byte what
// llama_model_quantize makes of quantkit's F32 conversion of it, for
// llama-quantize's mixes; and llama.cpp runs it, its predictions close to
// the F32 model's (the same most likely next token at most positions).
func TestHFToMixInOnePass(t *testing.T) {
	hf := filepath.Join(stories260K, "hf")
	f32 := filepath.Join(t.TempDir(), "stories260K-f32.gguf")
	quantkitQuantize(t, hf, f32, "F32")
	ref := llamaProbs(t, f32)
	for _, typ := range []string{"Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q4_0"} {
		t.Run(typ, func(t *testing.T) {
			want := filepath.Join(t.TempDir(), "llama.cpp.gguf")
			got := filepath.Join(t.TempDir(), "quantkit.gguf")
			llamaQuantize(t, f32, want, typ, false)
			quantkitQuantize(t, hf, got, typ)
			diffs, err := diffGGUF(want, got)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Errorf("quantkit quantize hf --type %s differs from llama_model_quantize of its F32 conversion:\n  %s",
					typ, strings.Join(diffs, "\n  "))
			}
			p := llamaProbs(t, got)
			same := 0
			for i := range p.Probs {
				if argmax(p.Probs[i]) == argmax(ref.Probs[i]) {
					same++
				}
				if kl := klDivergence(ref.Probs[i], p.Probs[i]); math.IsNaN(kl) || math.IsInf(kl, 0) {
					t.Errorf("position %d: KL to the F32 model is %v", i, kl)
				}
			}
			if 2*same < len(p.Probs) {
				t.Errorf("%s: the most likely next token agrees with F32 at %d of %d positions", typ, same, len(p.Probs))
			}
			t.Logf("%s: top-1 agrees with F32 at %d of %d positions", typ, same, len(p.Probs))
		})
	}
}
