package kernel

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// Every index is visited exactly once, in pieces that are contiguous and
// ordered within one call, whatever the number of cores and the work.
func TestParallelForCoversOnce(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for _, procs := range []int{1, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 2, 7, 100, 1001} {
			for _, per := range []int{0, 1, 1 << 10, 1 << 15, 1 << 20} {
				seen := make([]int32, n)
				var calls atomic.Int32
				ParallelFor(n, per, func(lo, hi int) {
					calls.Add(1)
					if lo > hi || lo < 0 || hi > n {
						t.Errorf("n %d: piece [%d, %d)", n, lo, hi)
						return
					}
					for i := lo; i < hi; i++ {
						atomic.AddInt32(&seen[i], 1)
					}
				})
				for i, c := range seen {
					if c != 1 {
						t.Fatalf("procs %d, n %d, per %d: index %d visited %d times", procs, n, per, i, c)
					}
				}
				// Small work stays on the calling goroutine; large work
				// spreads over at most GOMAXPROCS pieces.
				want := min(procs, n, max(1, n*per/(1<<15)))
				if n == 0 {
					want = 1
				}
				if got := int(calls.Load()); got != want {
					t.Errorf("procs %d, n %d, per %d: %d pieces, want %d", procs, n, per, got, want)
				}
			}
		}
	}
}

func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	inf := float32(math.Inf(1))
	cases := [][]float32{{0}, {1, 2, 3}, {1000, 1001, 999}, {-1000, -1e4, -999}, {-inf, 0, 1}, {5, 5, 5, 5}}
	v := make([]float32, 37)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 20)
	}
	cases = append(cases, v)
	for _, x := range cases {
		// The float64 reference, exp(x − max) / Σ.
		m := math.Inf(-1)
		for _, e := range x {
			m = math.Max(m, float64(e))
		}
		var s float64
		for _, e := range x {
			s += math.Exp(float64(e) - m)
		}
		x0 := append([]float32(nil), x...)
		y := make([]float32, len(x)+1)
		y[len(x)] = 42 // guard
		Softmax(y[:len(x)], x)
		if y[len(x)] != 42 {
			t.Fatal("Softmax wrote past y")
		}
		for i, e := range x {
			if x[i] != x0[i] {
				t.Fatalf("%v: Softmax changed x", x0)
			}
			// x − max is rounded to float32 (a relative error of 2⁻²⁴ in
			// it is one of 2⁻²⁴·|x − max| in the exponential), then the
			// exponential and the quotient, to float32 (subnormal near 0).
			want := math.Exp(float64(e)-m) / s
			tol := want*0x1p-23*(2+math.Abs(float64(e)-m)) + 0x1p-148 // and float32 subnormals
			if d := math.Abs(float64(y[i]) - want); d > tol {
				t.Errorf("%v: y[%d] = %g, want %g", x0, i, y[i], want)
			}
		}
		// In place gives the same.
		Softmax(x, x)
		for i := range x {
			if x[i] != y[i] {
				t.Errorf("%v: in place y[%d] = %g, want %g", x0, i, x[i], y[i])
			}
		}
	}
}
