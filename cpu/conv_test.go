package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// convRef is the convolution of NCHW images (unpadded) with zero padding,
// in float64.
func convRef(x []float32, n, c, h, w int, wt, b []float32, outC, kh, kw, sh, sw, pt, pl, oh, ow int, relu bool) []float64 {
	out := make([]float64, n*outC*oh*ow)
	for i := range n {
		for o := range outC {
			for y := range oh {
				for z := range ow {
					s := float64(b[o])
					for ci := range c {
						for u := range kh {
							for v := range kw {
								ih, iw := y*sh+u-pt, z*sw+v-pl
								if ih < 0 || ih >= h || iw < 0 || iw >= w {
									continue
								}
								s += float64(wt[((o*c+ci)*kh+u)*kw+v]) * float64(x[((i*c+ci)*h+ih)*w+iw])
							}
						}
					}
					if relu {
						s = max(s, 0)
					}
					out[((i*outC+o)*oh+y)*ow+z] = s
				}
			}
		}
	}
	return out
}

// TestConvF32 checks ConvF32 against a float64 reference on zero-padded
// NCHW images, with every kernel set this processor runs.
func TestConvF32(t *testing.T) {
	for _, set := range KernelSets() {
		for _, inPlace := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/inplace=%v", set, inPlace), func(t *testing.T) {
				defer UseKernelSet(set)()
				convInPlace = inPlace
				defer func() { convInPlace = true }()
				testConvF32(t)
			})
		}
	}
}

func testConvF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []struct{ n, c, h, w, outC, kh, kw, sh, sw, pad int }{
		{1, 1, 28, 28, 8, 5, 5, 1, 1, 2},  // the MNIST CNN's first convolution
		{3, 8, 14, 14, 16, 5, 5, 1, 1, 2}, // and its second, on three images
		{2, 3, 9, 7, 15, 3, 3, 2, 1, 1},   // a partial row tile, strides
		{5, 2, 6, 6, 30, 1, 1, 1, 1, 0},   // 1×1, two row tiles
		{1, 4, 5, 5, 3, 5, 5, 1, 1, 0},    // one output pixel
		// Few output channels (tiles of 8 or 4 rows), odd sizes.
		{2, 3, 12, 10, 16, 3, 3, 1, 1, 1}, // 12·12 positions an image, 48-wide tiles
		{3, 2, 11, 13, 16, 3, 3, 1, 1, 1}, // positions in no tile's multiple
		{3, 1, 7, 9, 5, 3, 3, 1, 1, 0},    // 5 channels, a partial tile
		{2, 2, 10, 9, 8, 3, 3, 2, 2, 1},   // strides, 8 channels
		{5, 3, 9, 17, 12, 1, 3, 1, 1, 0},  // 12 channels
		{1, 1, 3, 3, 8, 3, 3, 1, 1, 0},    // one output pixel, few channels
	}
	for _, tc := range cases {
		for _, relu := range []bool{false, true} {
			H, W := tc.h+2*tc.pad, tc.w+2*tc.pad
			oh, ow := (H-tc.kh)/tc.sh+1, (W-tc.kw)/tc.sw+1
			x := make([]float32, tc.n*tc.c*tc.h*tc.w)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			wt := make([]float32, tc.outC*tc.c*tc.kh*tc.kw)
			for i := range wt {
				wt[i] = float32(rng.NormFloat64())
			}
			b := make([]float32, tc.outC)
			for i := range b {
				b[i] = float32(rng.NormFloat64())
			}
			// Channel-major padded planes.
			planes := make([]float32, tc.c*tc.n*H*W)
			for i := range tc.n {
				for c := range tc.c {
					for y := range tc.h {
						for z := range tc.w {
							planes[((c*tc.n+i)*H+y+tc.pad)*W+z+tc.pad] = x[((i*tc.c+c)*tc.h+y)*tc.w+z]
						}
					}
				}
			}
			want := convRef(x, tc.n, tc.c, tc.h, tc.w, wt, b, tc.outC, tc.kh, tc.kw, tc.sh, tc.sw, tc.pad, tc.pad, oh, ow, relu)
			cv := &ConvF32{InC: tc.c, OutC: tc.outC, KH: tc.kh, KW: tc.kw, StrideH: tc.sh, StrideW: tc.sw,
				H: H, W: W, OH: oh, OW: ow, Weight: wt, Bias: b, ReLU: relu}
			// The planes again with NaNs in their capacity past them, which
			// the kernels' last tiles may read and must drop.
			slack := append(append([]float32(nil), planes...), make([]float32, 300)...)[:len(planes)]
			for i := range slack[len(planes):cap(slack)] {
				slack[:cap(slack)][len(planes)+i] = float32(math.NaN())
			}
			for _, mode := range []struct{ generic, wide, slack bool }{
				{false, false, false}, {true, false, false}, {false, true, false}, {true, true, false}, {false, false, true}, {false, true, true},
			} {
				cv.Wide = mode.wide
				row, img := cv.OutStrides(tc.n)
				if !mode.wide && (row != ow || img != oh*ow) || row < ow || img < oh*row-(row-ow) {
					t.Fatalf("%+v wide %v: strides %d, %d for %d×%d outputs", tc, mode.wide, row, img, oh, ow)
				}
				// NaN where no output goes, and guards past the end.
				const guard = 7
				got := make([]float32, tc.outC*tc.n*img+guard)
				for i := range got {
					got[i] = float32(math.NaN())
				}
				for i := range guard {
					got[len(got)-guard+i] = float32(i) + 0.5
				}
				switch {
				case mode.generic:
					convF32Generic(cv, got[:len(got)-guard], planes, tc.n, row, img)
				case mode.slack:
					cv.Run(got[:len(got)-guard], slack, tc.n)
				default:
					cv.Run(got[:len(got)-guard], planes, tc.n)
				}
				for i := range guard {
					if got[len(got)-guard+i] != float32(i)+0.5 {
						t.Fatalf("%+v %+v: written past the output", tc, mode)
					}
				}
				tol := 1e-4 * float64(tc.c*tc.kh*tc.kw)
				for i := range tc.n {
					for o := range tc.outC {
						for p := range oh * ow {
							g := float64(got[(o*tc.n+i)*img+p/ow*row+p%ow])
							wv := want[(i*tc.outC+o)*oh*ow+p]
							if !(math.Abs(g-wv) <= tol) {
								t.Fatalf("%+v relu %v %+v: image %d channel %d pixel %d: %g, want %g", tc, relu, mode, i, o, p, g, wv)
							}
						}
					}
				}
			}
		}
	}
}

func TestReLUBits(t *testing.T) {
	nan := float32(math.NaN())
	for _, v := range []float32{0, 1, -1, 1e-45, -1e-45, float32(math.Inf(1)), float32(math.Inf(-1)), 3.5, -3.5} {
		if got, want := convReLU(v), max(v, 0); got != want {
			t.Errorf("convReLU(%g) = %g, want %g", v, got, want)
		}
	}
	if got := convReLU(float32(math.Copysign(0, -1))); math.Signbit(float64(got)) {
		t.Error("convReLU(-0) is -0")
	}
	if got := convReLU(nan); got == got {
		t.Error("convReLU(NaN) is not NaN")
	}
	if got := convReLU(-nan); got == got {
		t.Error("convReLU(-NaN) is not NaN")
	}
}
