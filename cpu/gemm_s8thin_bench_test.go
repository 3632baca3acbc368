package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/quant"
)

// BenchmarkGemmS8DecodeStream compares the two int8 decode paths as a
// model's decode step meets them, its weights streaming from memory:
// GemmS8 of one token row (W8A8: codes from QuantizeRows, float32 out
// through the per-token and per-channel scales) and GemmPacked of the
// same row in float32 (weight-only int8 per channel, rounded to 8 bits in
// blocks of 32 inside), each call on the next of 64 different weights
// (35–270 MB in all, past the L3 of most machines). GB/s is weight bytes
// per second.
//
//	go test ./cpu -run - -bench GemmS8DecodeStream -count 5
func BenchmarkGemmS8DecodeStream(b *testing.B) {
	const count = 64
	for _, nk := range [][2]int{{576, 1536}, {1536, 576}, {2048, 2048}} {
		n, k := nk[0], nk[1]
		rnd := rand.New(rand.NewPCG(1, 1))
		f := quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: k}
		s8 := make([][]int8, count)
		packed := make([][]byte, count)
		for w := range count {
			s8[w] = make([]int8, n*k)
			for i := range s8[w] {
				s8[w][i] = int8(rnd.IntN(255) - 127)
			}
			packed[w] = randPackedQ8(rnd, f, n, k)
		}
		x := make([]float32, k)
		for i := range x {
			x[i] = float32(rnd.NormFloat64())
		}
		a, rs, cs := make([]int8, k), make([]float32, 1), make([]float32, n)
		backend.QuantizeRowS8(a, &rs[0], x)
		for i := range cs {
			cs[i] = 1e-3
		}
		c := make([]float32, n)
		ep := &backend.Epilogue{RowScale: rs, ColScale: cs}
		b.Run(fmt.Sprintf("w8a8/%dx%d", n, k), func(b *testing.B) {
			w := 0
			for b.Loop() {
				if err := GemmS8(1, n, k, a, s8[w%count], c, ep); err != nil {
					b.Fatal(err)
				}
				w++
			}
			b.ReportMetric(float64(n*k)*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "GB/s")
		})
		b.Run(fmt.Sprintf("w8a16/%dx%d", n, k), func(b *testing.B) {
			w := 0
			for b.Loop() {
				GemmPacked(1, n, k, x, f, packed[w%count], c)
				w++
			}
			b.ReportMetric(float64(n*k)*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "GB/s")
		})
	}
}
