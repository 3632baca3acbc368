package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// poolValue is a random value, sometimes one of the awkward ones.
func poolValue(rng *rand.Rand) float32 {
	switch rng.IntN(12) {
	case 0:
		return float32(math.NaN())
	case 1:
		return float32(math.Inf(1 - 2*rng.IntN(2)))
	case 2:
		return float32(math.Copysign(0, -1))
	}
	return float32(rng.NormFloat64())
}

// samePool reports whether got is want, a NaN any NaN.
func samePool(got, want float32) bool {
	return got == want || got != got && want != want
}

// TestMaxPoolRows checks MaxPool2x2Row and MaxInto with every kernel set
// against max over float64 windows (NaN wins), at every length up to 40
// (all vector tails), with guard values around the outputs and the inputs
// unchanged.
func TestMaxPoolRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	fmax := func(v ...float32) float32 {
		m := math.Inf(-1)
		for _, f := range v {
			if f != f {
				return f
			}
			m = math.Max(m, float64(f))
		}
		return float32(m)
	}
	const guard = 9
	for _, set := range KernelSets() {
		t.Run(set, func(t *testing.T) {
			defer UseKernelSet(set)()
			for n := range 41 {
				r0, r1, x := make([]float32, 2*n), make([]float32, 2*n), make([]float32, n)
				for i := range r0 {
					r0[i], r1[i] = poolValue(rng), poolValue(rng)
				}
				for i := range x {
					x[i] = poolValue(rng)
				}
				c0, c1, cx := append([]float32(nil), r0...), append([]float32(nil), r1...), append([]float32(nil), x...)
				buf := make([]float32, n+2*guard)
				for i := range buf {
					buf[i] = float32(i) + 0.25
				}
				y := buf[guard : guard+n]
				MaxPool2x2Row(y, r0, r1)
				for j := range y {
					if want := fmax(r0[2*j], r0[2*j+1], r1[2*j], r1[2*j+1]); !samePool(y[j], want) {
						t.Fatalf("MaxPool2x2Row n=%d: y[%d] = %g, want %g", n, j, y[j], want)
					}
				}
				prev := append([]float32(nil), y...)
				MaxInto(y, x)
				for j := range y {
					if want := fmax(prev[j], x[j]); !samePool(y[j], want) {
						t.Fatalf("MaxInto n=%d: y[%d] = %g, want %g (max of %g, %g)", n, j, y[j], want, prev[j], x[j])
					}
				}
				for i := range guard {
					if buf[i] != float32(i)+0.25 || buf[guard+n+i] != float32(guard+n+i)+0.25 {
						t.Fatalf("n=%d: written outside the row", n)
					}
				}
				if fmt.Sprint(c0, c1, cx) != fmt.Sprint(r0, r1, x) {
					t.Fatalf("n=%d: inputs changed", n)
				}
			}
		})
	}
}

// TestMaxWindows checks MaxWindows with every kernel set against max over
// float64 windows (NaN wins) for window shapes and lengths that cover the
// vector tails, reading x to its last value.
func TestMaxWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, set := range KernelSets() {
		t.Run(set, func(t *testing.T) {
			defer UseKernelSet(set)()
			for _, win := range [][2]int{{1, 1}, {2, 2}, {3, 3}, {1, 4}, {4, 1}, {2, 3}} {
				kh, kw := win[0], win[1]
				for n := range 27 {
					rs := n + kw - 1 + rng.IntN(5)
					x := make([]float32, (kh-1)*rs+n+kw-1)
					for i := range x {
						x[i] = poolValue(rng)
					}
					buf := make([]float32, n+1)
					buf[n] = 42
					MaxWindows(buf[:n], x, rs, kh, kw)
					for j := range n {
						want := float32(math.Inf(-1))
						for h := range kh {
							for u := range kw {
								v := x[h*rs+j+u]
								if v != v || want != want {
									want = float32(math.NaN())
								} else {
									want = max(want, v)
								}
							}
						}
						if !samePool(buf[j], want) {
							t.Fatalf("%d×%d windows, n=%d, rows %d apart: t[%d] = %g, want %g", kh, kw, n, rs, j, buf[j], want)
						}
					}
					if buf[n] != 42 {
						t.Fatalf("%d×%d windows, n=%d: written past t", kh, kw, n)
					}
				}
			}
		})
	}
}

// TestMaxWindowsS32 checks MaxWindowsS32 with every kernel set against
// the loop its doc comment states, with extreme values, for window
// shapes, column steps and lengths that cover the vector tails.
func TestMaxWindowsS32(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, set := range KernelSets() {
		t.Run(set, func(t *testing.T) {
			defer UseKernelSet(set)()
			for _, win := range [][3]int{{1, 1, 1}, {2, 2, 8}, {3, 3, 16}, {1, 4, 3}, {4, 1, 1}, {2, 3, 5}} {
				kh, kw, step := win[0], win[1], win[2]
				for n := range 27 {
					rs := n + (kw-1)*step + rng.IntN(5)
					x := make([]int32, (kh-1)*rs+(kw-1)*step+n)
					for i := range x {
						switch rng.IntN(8) {
						case 0:
							x[i] = math.MinInt32
						case 1:
							x[i] = math.MaxInt32
						default:
							x[i] = int32(rng.Uint32())
						}
					}
					buf := make([]int32, n+1)
					buf[n] = 42
					MaxWindowsS32(buf[:n], x, rs, kh, kw, step)
					for j := range n {
						want := int32(math.MinInt32)
						for h := range kh {
							for u := range kw {
								want = max(want, x[h*rs+u*step+j])
							}
						}
						if buf[j] != want {
							t.Fatalf("%d×%d windows, step %d, n=%d: t[%d] = %d, want %d", kh, kw, step, n, j, buf[j], want)
						}
					}
					if buf[n] != 42 {
						t.Fatalf("%d×%d windows, n=%d: written past t", kh, kw, n)
					}
				}
			}
		})
	}
}
