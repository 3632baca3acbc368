package backendtest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// testQuantizeRows checks backend.QuantizeRows exactly against a float64
// reference written here: each row's scale is its largest finite |x|
// divided by 127 (a float64 quotient of float32 operands rounded to
// float32 is the float32 quotient), each code the quotient x/scale
// rounded half to even and clamped to [-127, 127]; NaN gives 0, a zero
// scale gives zero codes. It also checks the codes reconstruct x within
// half a scale. Rows include zeros, NaN, infinities, ties and subnormals.
func testQuantizeRows(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(5, 8))
	for _, c := range []struct{ rows, cols int }{{1, 1}, {3, 7}, {5, 64}, {33, 130}, {2, 4099}} {
		t.Run(sizeName(c.rows, c.cols), func(t *testing.T) {
			x := lmValues(rnd, c.rows*c.cols, 2)
			row := func(r int) []float32 { return x[r*c.cols : (r+1)*c.cols] }
			if c.rows >= 3 {
				clear(row(1)) // all zeros: scale 0
				r := row(2)   // exact ties: amax 127, values k+0.5
				for i := range r {
					r[i] = float32(i%254-127) + 0.5
				}
				r[0] = 127
				if c.cols > 4 {
					r[1], r[2], r[3] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
				}
			}
			wantC := make([]int8, len(x))
			wantS := make([]float32, c.rows)
			for r := range c.rows {
				xr := row(r)
				amax := 0.0
				for _, v := range xr {
					if a := math.Abs(float64(v)); a > amax && !math.IsInf(a, 0) {
						amax = a
					}
				}
				s := float32(amax / 127)
				wantS[r] = s
				for i, v := range xr {
					q := 0.0
					if s != 0 && v == v {
						q = math.RoundToEven(float64(float32(float64(v) / float64(s))))
						q = math.Max(-127, math.Min(127, q))
					}
					wantC[r*c.cols+i] = int8(q)
					if s != 0 && !math.IsInf(float64(v), 0) && v == v {
						if d := math.Abs(q*float64(s) - float64(v)); d > float64(s)*(0.5+1e-6) {
							t.Fatalf("reference: row %d value %g reconstructs off by %g, scale %g", r, v, d, s)
						}
					}
				}
			}
			xb := upload(t, b, x)
			codes, scales := newOutput[int8](t, b, len(x)), newOutput[float32](t, b, c.rows)
			if err := backend.QuantizeRows(b, codes.mid, scales.mid, xb, c.rows, c.cols); err != nil {
				t.Fatal(err)
			}
			gotC, gotS := codes.read(t, b), scales.read(t, b)
			m := &mismatches{t: t}
			for r, g := range gotS {
				if !same(g, wantS[r]) && !m.add("scale %d is %g, want %g", r, g, wantS[r]) {
					break
				}
			}
			for i, g := range gotC {
				if g != wantC[i] && !m.add("code %d (row %d, x %g) is %d, want %d", i, i/c.cols, x[i], g, wantC[i]) {
					break
				}
			}
			m.done("quantize rows")
			checkUnchanged(t, b, xb, x, "x")
		})
	}
	f := func(n int) backend.Buffer { return upload(t, b, make([]float32, n)) }
	s8 := func(n int) backend.Buffer { return upload(t, b, make([]int8, n)) }
	calls := map[string]func() error{
		"QuantizeRows f32 codes":     func() error { return backend.QuantizeRows(b, f(6), f(2), f(6), 2, 3) },
		"QuantizeRows scales length": func() error { return backend.QuantizeRows(b, s8(6), f(3), f(6), 2, 3) },
		"QuantizeRows x length":      func() error { return backend.QuantizeRows(b, s8(6), f(2), f(5), 2, 3) },
		"QuantizeRows zero cols":     func() error { return backend.QuantizeRows(b, s8(0), f(2), f(0), 2, 0) },
	}
	if lm, ok := b.(backend.LMOps); ok {
		calls["method QuantizeRows scales length"] = func() error { return lm.QuantizeRows(s8(6), f(3), f(6), 2, 3) }
	}
	for what, fn := range calls {
		mustFail(t, what, fn)
	}
}
