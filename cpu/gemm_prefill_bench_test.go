package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGemmF32Prefill times GemmF32 on the shapes of a prefill of
// 128 tokens through the 150M Llama of the llama.cpp comparison (hidden
// 576, key/value width 192, intermediate 1536) and the 1B one (hidden
// 2048): A the activations [m, k], B a weight [n, k]. The sub-benchmarks
// packB pack B (the weight) on every call, as gemmF32SIMD did before it
// packed the smaller operand, for a comparison in one run.
func BenchmarkGemmF32Prefill(b *testing.B) {
	for _, s := range [][3]int{{128, 576, 576}, {128, 192, 576}, {128, 1536, 576}, {128, 576, 1536},
		{512, 1536, 576}, {128, 2048, 2048}, {32, 576, 576},
		{256, 1536, 576}, {512, 576, 1536}, {512, 2048, 2048}} {
		m, n, k := s[0], s[1], s[2]
		a, w, c := benchRandF32(m*k, 1), benchRandF32(n*k, 2), make([]float32, m*n)
		for _, packB := range []bool{true, false} {
			name := fmt.Sprintf("%dx%dx%d", m, n, k)
			if packB {
				name += "/packB"
			}
			b.Run(name, func(b *testing.B) {
				defer func(old bool) { gemmF32PackWeights = old }(gemmF32PackWeights)
				gemmF32PackWeights = packB
				for b.Loop() {
					GemmF32(m, n, k, a, w, c)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func benchRandF32(n int, seed uint64) []float32 {
	rnd := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rnd.NormFloat64())
	}
	return x
}

// BenchmarkGemmF32Decode times GemmF32 with one row of A (a decode
// step's GEMV) against weights of the 150M model's shapes, cycling
// through enough copies of the weight (about 128 MiB) that each call
// reads it from memory, as a decode step does; GB/s is the weight bytes
// read per second.
func BenchmarkGemmF32Decode(b *testing.B) {
	for _, s := range [][2]int{{576, 576}, {1536, 576}, {576, 1536}, {49152, 576}} {
		n, k := s[0], s[1]
		copies := max(1, (128<<20)/(4*n*k))
		ws := make([][]float32, copies)
		for i := range ws {
			ws[i] = benchRandF32(n*k, uint64(i))
		}
		a, c := benchRandF32(k, 99), make([]float32, n)
		b.Run(fmt.Sprintf("1x%dx%d", n, k), func(b *testing.B) {
			i := 0
			for b.Loop() {
				GemmF32(1, n, k, a, ws[i%copies], c)
				i++
			}
			b.ReportMetric(4*float64(n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
