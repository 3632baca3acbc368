package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMinMaxObserver(t *testing.T) {
	o := NewMinMaxObserver()
	if _, _, ok := o.Range(); ok {
		t.Fatal("range before any value")
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	o.Observe([]float32{nan, inf, -inf})
	o.Observe(nil)
	if _, _, ok := o.Range(); ok {
		t.Fatal("range from non-finite values only")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	lo, hi := math.Inf(1), math.Inf(-1)
	for range 10 {
		x := randomTensor(rng, 500, true)
		for _, v := range x {
			if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
				lo, hi = min(lo, f), max(hi, f)
			}
		}
		o.Observe(x)
	}
	if l, h, ok := o.Range(); !ok || float64(l) != lo || float64(h) != hi {
		t.Errorf("range [%g, %g] %v, want [%g, %g]", l, h, ok, lo, hi)
	}
}

func TestMovingAverageObserver(t *testing.T) {
	o := NewMovingAverageObserver(0.5)
	o.Observe([]float32{-1, 2, float32(math.NaN())})
	o.Observe([]float32{-3, 4})
	// lo = -1 + 0.5·(-3 - -1) = -2, hi = 2 + 0.5·(4 - 2) = 3.
	if l, h, ok := o.Range(); !ok || l != -2 || h != 3 {
		t.Errorf("range [%g, %g] %v, want [-2, 3]", l, h, ok)
	}
	o.Observe([]float32{float32(math.Inf(1))}) // no finite value: unchanged
	if l, h, _ := o.Range(); l != -2 || h != 3 {
		t.Errorf("after a non-finite batch: [%g, %g]", l, h)
	}

	// Default constant 0.01, against the recurrence written out.
	d := NewMovingAverageObserver(0)
	rng := rand.New(rand.NewPCG(1, 1))
	var lo, hi float64
	for b := range 20 {
		x := make([]float32, 100)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		mn, mx := float64(x[0]), float64(x[0])
		for _, v := range x {
			mn, mx = min(mn, float64(v)), max(mx, float64(v))
		}
		if b == 0 {
			lo, hi = mn, mx
		} else {
			lo = lo + 0.01*(mn-lo)
			hi = hi + 0.01*(mx-hi)
		}
		d.Observe(x)
	}
	if l, h, _ := d.Range(); l != float32(lo) || h != float32(hi) {
		t.Errorf("default moving average [%g, %g], want [%g, %g]", l, h, lo, hi)
	}
	for _, c := range []float64{-0.1, 1.5, math.NaN()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewMovingAverageObserver(%g) did not panic", c)
				}
			}()
			NewMovingAverageObserver(c)
		}()
	}
}
