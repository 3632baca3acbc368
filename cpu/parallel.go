package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

var threadSetting atomic.Int64

// SetThreads sets the number of goroutines kernels use and returns the
// previous setting; n <= 0 restores the default, GOMAXPROCS.
func SetThreads(n int) (previous int) {
	if n < 0 {
		n = 0
	}
	return int(threadSetting.Swap(int64(n)))
}

// Threads is the number of goroutines kernels use.
func Threads() int {
	if n := int(threadSetting.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// workers is how many goroutines to use for tasks tasks, each about work
// elementary operations, so that each goroutine gets at least minWork.
func workers(tasks, work, minWork int) int {
	return workersOf(Threads(), tasks, work, minWork)
}

// workersOf is workers with threads goroutines at most.
func workersOf(threads, tasks, work, minWork int) int {
	w := min(threads, tasks)
	if per := work / max(minWork, 1); per < w {
		w = per
	}
	return max(w, 1)
}

// parallelTasks runs fn(worker, task) for every task in [0, tasks) on w
// goroutines (the caller's among them), handing out tasks in order
// through an atomic counter so that uneven tasks balance.
func parallelTasks(w, tasks int, fn func(worker, task int)) {
	if w <= 1 || tasks <= 1 {
		for t := range tasks {
			fn(0, t)
		}
		return
	}
	w = min(w, tasks)
	var next atomic.Int64
	run := func(worker int) {
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				return
			}
			fn(worker, t)
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(i)
		}()
	}
	run(0)
	wg.Wait()
}

// parallelRange splits [0, n) into w contiguous chunks whose boundaries
// are multiples of align (except n itself) and runs fn(worker, lo, hi) for
// each on its own goroutine.
func parallelRange(w, n, align int, fn func(worker, lo, hi int)) {
	if w <= 1 || n <= align {
		fn(0, 0, n)
		return
	}
	chunk := (n + w - 1) / w
	chunk = (chunk + align - 1) / align * align
	w = (n + chunk - 1) / chunk
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, i*chunk, min((i+1)*chunk, n))
		}()
	}
	fn(0, 0, min(chunk, n))
	wg.Wait()
}
