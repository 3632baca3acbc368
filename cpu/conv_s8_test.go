package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// TestConvS8 checks ConvS8 against a naive loop in int64 on NHWC images
// with padding cells of a nonzero code, with every kernel set.
func TestConvS8(t *testing.T) {
	for _, set := range KernelSets() {
		t.Run(set, func(t *testing.T) {
			defer UseKernelSet(set)()
			testConvS8(t)
		})
	}
}

func testConvS8(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct{ n, c, h, w, outC, kh, kw, sh, sw, pad, trim int }{
		{1, 1, 28, 28, 8, 5, 5, 1, 1, 2, 0},  // the MNIST CNN's first convolution
		{3, 8, 14, 14, 16, 5, 5, 1, 1, 2, 0}, // and its second
		{3, 8, 14, 14, 16, 5, 5, 1, 1, 2, 2}, // trimmed to the 12×12 a 3×3 pool reads
		{2, 3, 9, 7, 15, 3, 3, 2, 1, 1, 0},   // strides, a partial row tile, 9 codes a row
		{5, 2, 6, 6, 30, 1, 1, 1, 1, 0, 0},   // 1×1, two row tiles
		{1, 4, 5, 5, 3, 5, 5, 1, 1, 0, 0},    // one output pixel
	}
	for _, tc := range cases {
		H, W := tc.h+2*tc.pad, tc.w+2*tc.pad
		// Fewer output rows and columns than the planes allow (trim).
		oh, ow := (H-tc.kh)/tc.sh+1-tc.trim, (W-tc.kw)/tc.sw+1-tc.trim
		x := make([]int8, tc.n*H*W*tc.c)
		for i := range x {
			x[i] = int8(rng.IntN(256) - 128)
		}
		wt := make([]int8, tc.outC*tc.kh*tc.kw*tc.c)
		for i := range wt {
			wt[i] = int8(rng.IntN(255) - 127)
		}
		off := make([]int32, tc.outC)
		for i := range off {
			off[i] = int32(rng.IntN(1<<20) - 1<<19)
		}
		for _, withOff := range []bool{false, true} {
			cv := &ConvS8{InC: tc.c, OutC: tc.outC, KH: tc.kh, KW: tc.kw, StrideH: tc.sh, StrideW: tc.sw,
				H: H, W: W, OH: oh, OW: ow, Weight: wt}
			if withOff {
				cv.Offset = off
			}
			got := make([]int32, tc.n*oh*ow*tc.outC)
			for i := range got {
				got[i] = -7
			}
			cv.Run(got, x, tc.n)
			for i := range tc.n {
				for y := range oh {
					for z := range ow {
						for o := range tc.outC {
							var s int64
							if withOff {
								s = int64(off[o])
							}
							for u := range tc.kh {
								for v := range tc.kw {
									for c := range tc.c {
										s += int64(wt[((o*tc.kh+u)*tc.kw+v)*tc.c+c]) * int64(x[((i*H+y*tc.sh+u)*W+z*tc.sw+v)*tc.c+c])
									}
								}
							}
							if g := got[((i*oh+y)*ow+z)*tc.outC+o]; int64(g) != s {
								t.Fatalf("%+v offset %v: image %d pixel (%d,%d) channel %d: %d, want %d", tc, withOff, i, y, z, o, g, s)
							}
						}
					}
				}
			}
		}
	}
}

// TestQuantizeS8 checks QuantizeS8 with every kernel set against
// quant.QuantizeValue on random and awkward values (NaN, ±Inf, halves,
// huge), at lengths that leave every tail of the vector kernels.
func TestQuantizeS8(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	awkward := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0.5, 1.5, 2.5, -0.5, -1.5, 1e30, -1e30, 127.5, -128.5, 0}
	for _, set := range KernelSets() {
		t.Run(set, func(t *testing.T) {
			defer UseKernelSet(set)()
			for _, n := range []int{0, 1, 31, 32, 63, 64, 65, 130} {
				x := make([]float32, n)
				for i := range x {
					if rng.IntN(4) == 0 {
						x[i] = awkward[rng.IntN(len(awkward))]
					} else {
						x[i] = float32(rng.NormFloat64() * 100)
					}
				}
				for _, p := range []struct {
					scale float32
					zp    int32
				}{{1, 0}, {0.37, -5}, {2.5, 100}} {
					got := make([]int8, n)
					QuantizeS8(got, x, p.scale, p.zp)
					for i, v := range x {
						if want := int8(quant.QuantizeValue(v, p.scale, p.zp, -128, 127)); got[i] != want {
							t.Fatalf("n=%d scale %g zp %d: code %d of %g = %d, want %d", n, p.scale, p.zp, i, v, got[i], want)
						}
					}
				}
			}
		})
	}
}
