// Package kernel holds the loops that nn's engines share: a parallel-for
// over contiguous ranges and the softmax of one row.
package kernel

import (
	"math"
	"runtime"
	"sync"
)

// ParallelFor runs fn over [0, n) in contiguous pieces on up to
// GOMAXPROCS goroutines when the work (per item) makes it worth it: one
// goroutine per 32 Ki units of n·per, at least one.
func ParallelFor(n, per int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n, max(1, n*per/(1<<15)))
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for k := range w {
		lo, hi := n*k/w, n*(k+1)/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// Softmax is y = exp(x − max x) / Σ exp(x − max x), the sum in float64;
// y may be x.
func Softmax(y, x []float32) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	var s float64
	for i, v := range x {
		e := math.Exp(float64(v - m))
		y[i] = float32(e)
		s += e
	}
	for i := range y {
		y[i] = float32(float64(y[i]) / s)
	}
}
