package llmq

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestHalfRows: rows stored as float16 with a power of two each come back
// within half a float16 step of the row's largest value (2^-11 of it,
// relative), whatever the row's range (beyond float16's 65504, below its
// smallest normal), zero rows as zeros; and put at an offset replaces only
// those rows.
func TestHalfRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const cols = 33
	scales := []float64{1, 1e6, 3e-9, 0, 7e4, 1e30, 1e-30}
	x := make([]float32, len(scales)*cols)
	for r, s := range scales {
		for j := range cols {
			x[r*cols+j] = float32(s * rng.NormFloat64())
		}
	}
	h := newHalfRows(x, cols)
	if h.bytes() != int64(len(x))*2+int64(len(scales)) {
		t.Errorf("bytes %d", h.bytes())
	}
	check := func(got, want []float32) {
		t.Helper()
		for r := range len(want) / cols {
			var m float64
			for _, v := range want[r*cols : (r+1)*cols] {
				m = max(m, math.Abs(float64(v)))
			}
			for j := range cols {
				g, w := got[r*cols+j], want[r*cols+j]
				if e := math.Abs(float64(g) - float64(w)); e > m*math.Ldexp(1, -11) || m == 0 && g != 0 {
					t.Fatalf("row %d value %d: %g for %g (row max %g)", r, j, g, w, m)
				}
			}
		}
	}
	check(h.get(0, len(scales), nil), x)
	// One row rewritten at an offset; the others stay.
	y := make([]float32, cols)
	for j := range y {
		y[j] = float32(j) - 16
	}
	h.put(2, y)
	want := append([]float32(nil), x...)
	copy(want[2*cols:], y)
	check(h.get(0, len(scales), make([]float32, 3)), want)
	check(h.get(2, 1, nil), y)
}
