package cpu

import (
	"fmt"
	"testing"
)

// BenchmarkConvF32 is ConvF32 on the MNIST CNN's two convolutions, 20
// images, one goroutine, with window rows read in place or copied into
// panels.
func BenchmarkConvF32(b *testing.B) {
	for _, tc := range []struct{ c, h, outC int }{{1, 28, 8}, {8, 14, 16}} {
		for _, inPlace := range []bool{false, true} {
			b.Run(fmt.Sprintf("c=%d/inplace=%v", tc.c, inPlace), func(b *testing.B) {
				convInPlace = inPlace
				defer func() { convInPlace = true }()
				const n = 20
				H := tc.h + 4
				x := make([]float32, tc.c*n*H*H)
				for i := range x {
					x[i] = float32(i%7) - 3
				}
				w := make([]float32, tc.outC*tc.c*25)
				for i := range w {
					w[i] = float32(i%5) - 2
				}
				cv := &ConvF32{InC: tc.c, OutC: tc.outC, KH: 5, KW: 5, StrideH: 1, StrideW: 1, H: H, W: H, OH: tc.h, OW: tc.h,
					Weight: w, Bias: make([]float32, tc.outC), Threads: 1}
				dst := make([]float32, tc.outC*n*tc.h*tc.h)
				b.ResetTimer()
				for range b.N {
					cv.Run(dst, x, n)
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
			})
		}
	}
}

// BenchmarkConvS8 is ConvS8 on the MNIST CNN's two convolutions, 16
// images, one goroutine.
func BenchmarkConvS8(b *testing.B) {
	for _, tc := range []struct{ c, h, outC int }{{1, 28, 8}, {8, 14, 16}} {
		b.Run(fmt.Sprintf("c=%d", tc.c), func(b *testing.B) {
			const n = 16
			H := tc.h + 4
			x := make([]int8, n*H*H*tc.c)
			for i := range x {
				x[i] = int8(i%7 - 3)
			}
			w := make([]int8, tc.outC*25*tc.c)
			for i := range w {
				w[i] = int8(i%5 - 2)
			}
			cv := &ConvS8{InC: tc.c, OutC: tc.outC, KH: 5, KW: 5, StrideH: 1, StrideW: 1, H: H, W: H, OH: tc.h, OW: tc.h, Weight: w, Threads: 1}
			dst := make([]int32, n*tc.h*tc.h*tc.outC)
			b.ResetTimer()
			for range b.N {
				cv.Run(dst, x, n)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
