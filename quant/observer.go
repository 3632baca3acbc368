package quant

import (
	"fmt"
	"math"
)

// RangeObserver tracks the range [lo, hi] of the finite values of a tensor
// over batches, as PyTorch's MinMaxObserver and
// MovingAverageMinMaxObserver do, in float64 (Range rounds to float32).
// Feed the range to Scheme.ScaleZeroPoint. It is not safe for concurrent
// use.
type RangeObserver struct {
	c      float64 // averaging constant; 0 for the running min/max
	lo, hi float64
	ok     bool
}

// NewMinMaxObserver returns an observer of the running minimum and maximum:
// after each batch, lo = min(lo, min(batch)) and hi = max(hi, max(batch)).
func NewMinMaxObserver() *RangeObserver { return &RangeObserver{} }

// NewMovingAverageObserver returns an observer of the exponential moving
// average of the batch minima and maxima: the first batch sets lo and hi,
// each later one does
//
//	lo += c·(min(batch) − lo)
//	hi += c·(max(batch) − hi)
//
// c = 0 means 0.01, PyTorch's default; c must lie in [0, 1] (it panics
// otherwise).
func NewMovingAverageObserver(c float64) *RangeObserver {
	if c == 0 {
		c = 0.01
	}
	if !(c > 0 && c <= 1) {
		panic(fmt.Sprintf("quant: moving average constant %g outside (0, 1]", c))
	}
	return &RangeObserver{c: c}
}

// Observe updates the range with the finite values of x. A batch without
// finite values changes nothing.
func (o *RangeObserver) Observe(x []float32) {
	mn, mx := math.Inf(1), math.Inf(-1)
	for _, v := range x {
		if v-v != 0 { // NaN or ±Inf
			continue
		}
		mn = min(mn, float64(v))
		mx = max(mx, float64(v))
	}
	switch {
	case mn > mx: // no finite value
	case !o.ok:
		o.lo, o.hi, o.ok = mn, mx, true
	case o.c == 0:
		o.lo, o.hi = min(o.lo, mn), max(o.hi, mx)
	default:
		o.lo += o.c * (mn - o.lo)
		o.hi += o.c * (mx - o.hi)
	}
}

// Range returns the observed range, with ok false while no finite value
// has been seen.
func (o *RangeObserver) Range() (lo, hi float32, ok bool) {
	return float32(o.lo), float32(o.hi), o.ok
}
