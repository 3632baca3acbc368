package cpu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallelTasksRunsEachOnce checks that every task runs exactly once,
// with worker indices below w, for sizes around the worker count.
func TestParallelTasksRunsEachOnce(t *testing.T) {
	for _, w := range []int{1, 2, 3, 8} {
		for _, tasks := range []int{0, 1, 2, 7, 100} {
			counts := make([]atomic.Int32, tasks)
			var bad atomic.Int32
			parallelTasks(w, tasks, func(worker, task int) {
				if worker < 0 || worker >= max(w, 1) {
					bad.Add(1)
				}
				counts[task].Add(1)
			})
			if bad.Load() != 0 {
				t.Errorf("w %d, %d tasks: %d calls with a worker index outside [0, %d)", w, tasks, bad.Load(), w)
			}
			for i := range counts {
				if c := counts[i].Load(); c != 1 {
					t.Errorf("w %d, %d tasks: task %d ran %d times", w, tasks, i, c)
				}
			}
		}
	}
}

// TestParallelWorkersExclusive checks that no two goroutines hold the
// same worker index at once, the property callers' per-worker scratch
// relies on.
func TestParallelWorkersExclusive(t *testing.T) {
	const w = 4
	var busy [w]atomic.Int32
	var clash atomic.Int32
	for range 50 {
		parallelTasks(w, 64, func(worker, _ int) {
			if busy[worker].Add(1) != 1 {
				clash.Add(1)
			}
			for i := 0; i < 200; i++ {
				_ = i * i
			}
			busy[worker].Add(-1)
		})
	}
	if clash.Load() != 0 {
		t.Fatalf("%d tasks ran with a worker index another goroutine held", clash.Load())
	}
}

// TestParallelRangeCovers checks that the chunks of parallelRange cover
// [0, n) once, aligned, chunk i as worker i.
func TestParallelRangeCovers(t *testing.T) {
	for _, c := range []struct{ w, n, align int }{{1, 10, 1}, {2, 10, 1}, {3, 100, 8}, {8, 5, 1}, {4, 64, 64}, {4, 1000, 64}} {
		seen := make([]atomic.Int32, c.n)
		var bad atomic.Int32
		parallelRange(c.w, c.n, c.align, func(worker, lo, hi int) {
			if lo%c.align != 0 || (hi != c.n && hi%c.align != 0) || worker >= c.w {
				bad.Add(1)
			}
			chunk := hi - lo
			if worker > 0 && lo/max(chunk, 1) != worker && hi != c.n {
				bad.Add(1)
			}
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		if bad.Load() != 0 {
			t.Errorf("%+v: %d misaligned chunks or wrong worker indices", c, bad.Load())
		}
		for i := range seen {
			if seen[i].Load() != 1 {
				t.Errorf("%+v: element %d covered %d times", c, i, seen[i].Load())
			}
		}
	}
}

// TestParallelNestedAndConcurrent runs GEMMs inside parallel tasks and
// from several goroutines at once, with more threads than the machine
// has: every result must be right and nothing may deadlock (the test
// would hang).
func TestParallelNestedAndConcurrent(t *testing.T) {
	defer SetThreads(SetThreads(4))
	const m, n, k = 67, 61, 96
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for i := range b {
		b[i] = float32(i%5) - 2
	}
	want := make([]float32, m*n)
	for i := range m {
		for j := range n {
			var s float32
			for p := range k {
				s += a[i*k+p] * b[j*k+p]
			}
			want[i*n+j] = s
		}
	}
	gemm := func() error {
		c := make([]float32, m*n)
		GemmF32(m, n, k, a, b, c)
		for i := range c {
			if c[i] != want[i] {
				return fmt.Errorf("c[%d] = %g, want %g", i, c[i], want[i])
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				// A GEMM from inside every task of an outer parallel call.
				parallelTasks(4, 8, func(_, _ int) {
					if err := gemm(); err != nil {
						errs <- err
					}
				})
				if err := gemm(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// BenchmarkParallelTasksSmall times a parallel call of little work, as a
// decode step makes dozens of per token: the cost is the call's, not the
// tasks'.
func BenchmarkParallelTasksSmall(b *testing.B) {
	for _, w := range []int{2, 4} {
		b.Run(fmt.Sprintf("w%d_tasks%d", w, 2*w), func(b *testing.B) {
			var sink atomic.Int64
			for b.Loop() {
				parallelTasks(w, 2*w, func(_, t int) { sink.Add(int64(t)) })
			}
		})
	}
}

// TestParallelSpin checks SetSpin's previous values and that calls with
// polling helpers still run every task once, also when calls follow one
// another faster than the spin time (the helpers take the offers while
// polling) and when a stale offer is left.
func TestParallelSpin(t *testing.T) {
	prev := SetSpin(5 * time.Millisecond)
	defer SetSpin(prev)
	if got := SetSpin(3 * time.Millisecond); got != 5*time.Millisecond {
		t.Fatalf("SetSpin returned %v, want 5ms", got)
	}
	if got := SetSpin(-1); got != 3*time.Millisecond {
		t.Fatalf("SetSpin returned %v, want 3ms", got)
	}
	if got := SetSpin(2 * time.Millisecond); got != 0 {
		t.Fatalf("SetSpin(-1) stored %v, want 0", got)
	}
	for range 200 {
		for _, tasks := range []int{1, 2, 7, 64} {
			counts := make([]atomic.Int32, tasks)
			parallelTasks(4, tasks, func(_, task int) { counts[task].Add(1) })
			for i := range counts {
				if c := counts[i].Load(); c != 1 {
					t.Fatalf("%d tasks: task %d ran %d times", tasks, i, c)
				}
			}
		}
	}
}
