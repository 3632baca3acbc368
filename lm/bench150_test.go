package lm

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/testenv"
)

// BenchmarkModel150M times the forward pass of the 150M Llama of the
// llama.cpp comparison (26 layers, hidden 576, intermediate 1536, a
// vocabulary of 49,152), loaded from the Hugging Face folder
// $QUANTKIT_BENCH_150M (by default
// ~/.cache/quantkit/bench-llamacpp/llama-150M-seed0/hf, as
// bench/llamacpp makes it) as `quantkit bench lm --precisions fp32,bf16`
// loads it (LoadOptions Float32, or BF16: the float tensors rounded to
// bfloat16 and kept 16-bit): prefill128 is a 128-token prompt from an
// empty cache with the last token's logits, decode_at128 one generated
// token with 128 positions in the cache (undone after each iteration).
// tokens/s as in BenchmarkForward.
func BenchmarkModel150M(b *testing.B) {
	dir := os.Getenv("QUANTKIT_BENCH_150M")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache/quantkit/bench-llamacpp/llama-150M-seed0/hf")
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		testenv.Missing(b, "the 150M benchmark model: %v (bench/llamacpp makes it)", err)
	}
	for _, prec := range []struct {
		name string
		opt  LoadOptions
	}{{"fp32", LoadOptions{Float32: true}}, {"bf16", LoadOptions{BF16: true}}} {
		b.Run(prec.name, func(b *testing.B) { bench150M(b, dir, prec.opt) })
	}
}

func bench150M(b *testing.B, dir string, opt LoadOptions) {
	m, err := LoadHFWith(cpu.New(), dir, opt)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	prompt := make([]int, 129)
	for i := range prompt {
		prompt[i] = (i * 7919) % m.Config.Vocab
	}
	b.Run("prefill128", func(b *testing.B) {
		c := m.NewCache()
		defer c.Close()
		for b.Loop() {
			c.Reset()
			if _, err := m.ForwardLast(c, prompt[:128]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*128)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("decode_at128", func(b *testing.B) {
		c := m.NewCache()
		defer c.Close()
		if _, err := m.ForwardLast(c, prompt[:128]); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := m.ForwardLast(c, prompt[128:129]); err != nil {
				b.Fatal(err)
			}
			c.Truncate(128)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
