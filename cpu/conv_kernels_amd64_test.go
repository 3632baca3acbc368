//go:build !noasm && !gccgo && !safe

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// convRowsGo is the Go twin of the convolution kernels that read B's rows
// where they lie (cpu/_gen/conv): the loop their doc comments state, for
// a tile of mr rows by nr columns, summed in float64.
func convRowsGo(mr, nr, kc int, a []float32, lda int, b []float32, steps []int, c []float32, ldc int, bias []float32, relu bool) {
	for r := range mr {
		for j := range nr {
			s := float64(bias[r])
			for p := range kc {
				s += float64(a[r*lda+p]) * float64(b[steps[p]+j])
			}
			if relu && s < 0 {
				s = 0
			}
			c[r*ldc+j] = float32(s)
		}
	}
}

// TestConvRowKernels checks every convolution kernel this processor runs
// against convRowsGo, with B's rows at random offsets in a buffer and a C
// whose rows are longer than the tile (the values in between must
// survive).
func TestConvRowKernels(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	type kern struct {
		mr, nr int
		avx512 bool
		fn     func(kc int, a *float32, lda int, b *float32, steps *int, c *float32, ldc int, bias *float32, relu bool)
	}
	for _, k := range []kern{
		{14, 32, true, convF32Kernel14x32AVX512},
		{8, 48, true, convF32Kernel8x48AVX512},
		{8, 32, true, convF32Kernel8x32AVX512},
		{6, 16, false, convF32Kernel6x16AVX2},
		{4, 24, false, convF32Kernel4x24AVX2},
	} {
		if (k.avx512 && !hw.AVX512) || !hw.AVX2FMA {
			continue
		}
		for _, kc := range []int{1, 3, 25, 201} {
			t.Run(fmt.Sprintf("%dx%d/kc=%d", k.mr, k.nr, kc), func(t *testing.T) {
				lda, ldc := kc+3, k.nr+5
				a := make([]float32, k.mr*lda)
				for i := range a {
					a[i] = float32(rnd.NormFloat64())
				}
				buf := make([]float32, (kc+1)*(k.nr+7))
				for i := range buf {
					buf[i] = float32(rnd.NormFloat64())
				}
				steps := make([]int, kc)
				for p := range steps {
					steps[p] = rnd.IntN(len(buf) - k.nr + 1)
				}
				bias := make([]float32, k.mr)
				for i := range bias {
					bias[i] = float32(rnd.NormFloat64())
				}
				bias[k.mr-1] = float32(math.NaN())
				for _, relu := range []bool{false, true} {
					c := make([]float32, k.mr*ldc)
					for i := range c {
						c[i] = float32(i%9) - 4
					}
					want := append([]float32(nil), c...)
					convRowsGo(k.mr, k.nr, kc, a, lda, buf, steps, want, ldc, bias, relu)
					k.fn(kc, &a[0], lda, &buf[0], &steps[0], &c[0], ldc, &bias[0], relu)
					tol := 1e-5 * float64(kc+4)
					for i := range c {
						if i%ldc >= k.nr {
							if c[i] != float32(i%9)-4 {
								t.Fatalf("relu %v: c[%d] past the tile written", relu, i)
							}
							continue
						}
						g, w := float64(c[i]), float64(want[i])
						if math.IsNaN(w) != math.IsNaN(g) || math.Abs(g-w) > tol {
							t.Fatalf("relu %v: row %d column %d: %g, want %g", relu, i/ldc, i%ldc, g, w)
						}
					}
				}
			})
		}
	}
}

// TestConvKernelFor checks that a convolution with few output channels
// takes a tile of few rows, and the positions' count picks its width.
func TestConvKernelFor(t *testing.T) {
	cases := []struct {
		outC, h, w, oh, ow int
		kern               *f32Kern
		mr, nr             int
	}{
		{8, 32, 32, 28, 28, &f32AVX512, 8, 32},   // 28·32 positions, a multiple of 32
		{16, 14, 12, 12, 10, &f32AVX512, 8, 48},  // 12·12, a multiple of 48
		{14, 32, 32, 28, 28, &f32AVX512, 14, 32}, // 14 channels fill the wide tile
		{30, 32, 32, 28, 28, &f32AVX512, 14, 32}, // many channels
		{8, 18, 18, 14, 14, &f32AVX2, 4, 24},
		{12, 18, 18, 14, 14, &f32AVX2, 6, 16}, // 12 channels fill two 6-row tiles
	}
	for _, tc := range cases {
		cv := &ConvF32{InC: 1, OutC: tc.outC, KH: tc.h - tc.oh + 1, KW: tc.w - tc.ow + 1, StrideH: 1, StrideW: 1,
			H: tc.h, W: tc.w, OH: tc.oh, OW: tc.ow}
		if k := convKernelFor(tc.kern, cv, 3); k.mr != tc.mr || k.nr != tc.nr || k.rows == nil {
			t.Errorf("%s, %d channels, %d×%d positions: a %d×%d tile, want %d×%d", tc.kern.name, tc.outC, tc.oh, tc.w, k.mr, k.nr, tc.mr, tc.nr)
		}
	}
}
