package gguf

import (
	"math"
	"math/rand/v2"
)

// namedImportance is one importance vector for rows of n values.
type namedImportance struct {
	name string
	w    []float32
}

// importanceSets are the importance vectors (one value per column) the
// importance quantizers are checked with: llama-imatrix-like (log-normal,
// a few hot columns), uniform, constant, and the edges where the weights
// vanish or dominate: zero everywhere, zero in some columns and blocks,
// tiny (1e-30, 1e-40) and huge (1e30, 3e38) values.
func importanceSets(n int, seed uint64) []namedImportance {
	r := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	gen := func(f func(i int) float32) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = f(i)
		}
		return w
	}
	return []namedImportance{
		{"imatrix-like log-normal", gen(func(int) float32 { return float32(math.Exp(r.NormFloat64() * 1.5)) })},
		{"hot columns", gen(func(i int) float32 {
			if r.IntN(50) == 0 {
				return float32(1000 * r.Float64())
			}
			return float32(0.01 + r.Float64()*0.1)
		})},
		{"uniform", gen(func(int) float32 { return float32(r.Float64()) })},
		{"ones", gen(func(int) float32 { return 1 })},
		{"all zero", make([]float32, n)},
		{"zero in some columns", gen(func(i int) float32 {
			if r.IntN(3) == 0 {
				return 0
			}
			return float32(r.Float64() * 4)
		})},
		{"zero in alternate blocks of 32", gen(func(i int) float32 {
			if i/32%2 == 0 {
				return 0
			}
			return float32(0.5 + r.Float64())
		})},
		{"zero but one per block of 16", gen(func(i int) float32 {
			if i%16 == 3 {
				return 2
			}
			return 0
		})},
		{"tiny 1e-30", gen(func(int) float32 { return float32(1e-30 * (0.5 + r.Float64())) })},
		{"subnormal 1e-40", gen(func(int) float32 { return float32(1e-40 * (0.5 + r.Float64())) })},
		{"huge 1e30", gen(func(int) float32 { return float32(1e30 * (0.5 + r.Float64())) })},
		{"near float32 max", gen(func(int) float32 { return float32(3e38 * r.Float64()) })},
		{"mixed tiny and huge", gen(func(int) float32 { return float32(math.Pow(10, float64(r.IntN(61)-30))) })},
	}
}

// realLikeRows are rows of a weight matrix as trained models have them:
// normal values of a per-row scale, a few outlier columns shared by all
// rows, for importance vectors whose hot columns meet them.
func realLikeRows(rows, n int, seed uint64) []namedRow {
	r := rand.New(rand.NewPCG(seed, 7))
	colScale := make([]float64, n)
	for j := range colScale {
		colScale[j] = 1
		if r.IntN(64) == 0 {
			colScale[j] = 8 + 20*r.Float64()
		}
	}
	out := make([]namedRow, rows)
	for k := range out {
		x := make([]float32, n)
		s := 0.02 * math.Exp(r.NormFloat64()*0.3)
		for j := range x {
			x[j] = float32(r.NormFloat64() * s * colScale[j])
		}
		out[k] = namedRow{"real-like", x}
	}
	return out
}
