package llmq

import (
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
	"github.com/quantkit/quantkit/quant/clip"
)

// TestFitOutputCPUGemm checks AWQ's clip as the pipeline runs it
// (fitOutput: clip.FitOutput on cpu.GemmF32Serial, a goroutine a core):
// a weight fitted whole and row by row gets the same scales (a row's
// errors do not depend on the rows beside it in the GEMM), and the same
// as with clip's plain Go GEMM.
func TestFitOutputCPUGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 1))
	rows, cols, n, group := 300, 96, 40, 32
	w, x := make([]float32, rows*cols), make([]float32, n*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	g, err := clip.NewGram(x, n, cols, group)
	if err != nil {
		t.Fatal(err)
	}
	s := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: group}
	all, err := fitOutput(s, w, rows, cols, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := clip.FitOutput(s, w, rows, cols, g, clip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	per := cols / group
	for r := range rows {
		one, err := fitOutput(s, w[r*cols:(r+1)*cols], 1, cols, g, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k := range per {
			if got := all.Scales[r*per+k]; one.Scales[k] != got || plain.Scales[r*per+k] != got {
				t.Fatalf("row %d group %d: scale %g among all rows, %g alone, %g with the Go GEMM", r, k, got, one.Scales[k], plain.Scales[r*per+k])
			}
		}
	}
}

// BenchmarkFitOutput fits a 1B Llama's gate_proj (8192 × 2048, int4 in
// groups of 128) on the Gram of 512 input rows, as AWQ's search does for
// each of its candidates, with the CPU GEMM as the pipeline runs it (fitOutput); -cpu 1,2 shows the spread
// over the cores.
//
//	go test ./job/llmq -run - -bench FitOutput -cpu 1,2
func BenchmarkFitOutput(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows, cols, n := 8192, 2048, 512
	w, x := make([]float32, rows*cols), make([]float32, n*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	g, err := clip.NewGram(x, n, cols, 128)
	if err != nil {
		b.Fatal(err)
	}
	s := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 128}
	for b.Loop() {
		if _, err := fitOutput(s, w, rows, cols, g, nil); err != nil {
			b.Fatal(err)
		}
	}
}
