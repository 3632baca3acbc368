package llmq

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant/gptq"
)

// TestProductsMatchCross checks the two ways the pipeline accumulates the
// asymmetric correction's statistics on the CPU backend: a weight moved
// with W·D from addProducts equals the one moved with D from addCross
// (float32 GEMMs summed in different orders: to 1e-3 of the move), for an
// input wider than gramBlock so that the products go in two column
// blocks, and the move is not negligible.
func TestProductsMatchCross(t *testing.T) {
	b := cpu.New()
	rng := rand.New(rand.NewPCG(11, 3))
	const n, cols, rows = 96, gramBlock + 40, 3
	xq, e, w := make([]float32, n*cols), make([]float32, n*cols), make([]float32, rows*cols)
	for i := range xq {
		xq[i] = float32(rng.NormFloat64())
		e[i] = 0.2 * float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	xt := transposeRows(nil, xq, n, cols)
	h := gptq.NewHessian(cols)
	if err := addGram(b, h, xt, cols, n); err != nil {
		t.Fatal(err)
	}
	opt := gptq.Options{ActOrder: true, Gemm: cpu.GemmF32}
	f, err := gptq.Factorize(h, opt)
	if err != nil || f.Fallback {
		t.Fatalf("Factorize: %v", err)
	}
	cross := gptq.NewCross(cols)
	if err := addCross(b, cross, xt, transposeRows(nil, e, n, cols), cols, n); err != nil {
		t.Fatal(err)
	}
	prod := gptq.NewCrossProducts(cols, rows)
	if err := addProducts(b, prod, [][]float32{w}, slices.Clone(e), xt, cols, n); err != nil {
		t.Fatal(err)
	}
	w1, w2 := slices.Clone(w), slices.Clone(w)
	if err := f.Asymmetric(cross, opt, w1); err != nil {
		t.Fatal(err)
	}
	if err := f.Asymmetric(prod, opt, w2); err != nil {
		t.Fatal(err)
	}
	var moved, diff float64
	for i := range w {
		moved = max(moved, math.Abs(float64(w1[i]-w[i])))
		diff = max(diff, math.Abs(float64(w2[i]-w1[i])))
	}
	if moved < 0.01 || diff > 1e-3*moved {
		t.Errorf("largest move %g, products against cross product %g", moved, diff)
	}
}
