package cpu

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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

// The kernels' helper goroutines are started once and parked, not started
// per call: a decode step makes dozens of parallel calls per token, and a
// goroutine start and exit per helper per call cost more than the small
// calls' work. A call offers its job to the parked helpers through a
// buffered channel and then runs the job itself; a helper that takes the
// offer claims tasks from the same atomic counter. The caller never waits
// for a helper to arrive, only for tasks a helper has claimed to finish,
// so a call whose helpers are all busy (nested calls, several goroutines
// calling at once) runs on its own goroutine and cannot deadlock.

// job is one parallelTasks call as helpers see it.
type job struct {
	fn     func(worker, task int)
	tasks  int64
	w      int64        // worker indices [0, w) exist
	next   atomic.Int64 // next task to claim
	joined atomic.Int64 // worker indices handed out (the caller's is 0)
	done   atomic.Int64 // tasks finished
	wg     sync.WaitGroup
}

// run claims and runs tasks as worker until none is left.
func (j *job) run(worker int) {
	for {
		t := j.next.Add(1) - 1
		if t >= j.tasks {
			return
		}
		j.fn(worker, int(t))
		j.done.Add(1)
		j.wg.Done()
	}
}

// help runs j on a parked helper: it takes the next worker index, if one
// is left, and claims tasks as the caller does.
func (j *job) help() {
	if j.next.Load() >= j.tasks {
		return // a stale offer: the work is claimed already
	}
	worker := j.joined.Add(1)
	if worker >= j.w {
		return
	}
	j.run(int(worker))
}

// helpers holds the parked helpers.
var helpers struct {
	mu      sync.Mutex
	started atomic.Int64 // helpers running
	offers  chan *job    // buffered: offers wait here for a helper
	size    int          // capacity of offers
}

// maxHelpers caps the parked helpers, and so the threads a call can use.
const maxHelpers = 1024

func init() {
	helpers.offers = make(chan *job, maxHelpers)
}

// ensureHelpers starts helpers until n are parked or running.
func ensureHelpers(n int) {
	n = min(n, maxHelpers)
	if int(helpers.started.Load()) >= n {
		return
	}
	helpers.mu.Lock()
	defer helpers.mu.Unlock()
	for int(helpers.started.Load()) < n {
		helpers.started.Add(1)
		go helper()
	}
}

// helper is a parked goroutine of the pool: it runs the jobs offered to
// it, polling for the next one for the spin time (SetSpin) before it
// parks on the channel.
func helper() {
	for {
		j := spinForOffer()
		if j == nil {
			j = <-helpers.offers
		}
		j.help()
	}
}

// A parked helper is slow to wake: the caller's send readies it onto the
// caller's own processor (runnext), and the idle processor that is woken
// to steal it waits a few µs before stealing from a running one (a
// usleep that timer slack makes 50 µs and more on Linux), after a futex
// wake of its thread. Measured on a 2-vCPU virtual machine (shared, load
// average 8-10), a parallel call of two 100 µs tasks after a 10 µs
// serial gap took 175-200 µs, the helper joining after 70 µs at best or
// not at all; the profile of a decode step shows the usleep under
// runqgrab. So the GEMVs of a small model's decode step (50-200 µs each,
// about 160 a token at 150M) run mostly on the caller alone. A helper
// that polls instead joins at once; OpenMP's threads, which llama.cpp
// uses, spin the same way between ops. The caller, its own tasks done,
// polls too until the helpers' tasks finish rather than parking on the
// wait group (whose wake-up is as slow). The polling must keep its
// processor: a runtime.Gosched between polls handed it to the caller's
// goroutine and left the other processor asleep, which is why a first
// version lost. Polling costs a processor while it lasts, and with more
// runnable threads than cores it loses a little: a helper descheduled in
// the middle of a task makes the caller wait. On a quiet 2-vCPU EPYC VM,
// 200 µs of polling made the 150M model's int8 and int4 decode 17-30 %
// faster; with one CPU-bound process beside it, about 10 % slower. So
// it is on by default, 200 µs, as OpenMP's default wait policy spins for
// a while before sleeping.

var spinSetting atomic.Int64 // time.Duration

// defaultSpin is the spin time unless SetSpin or QUANTKIT_SPIN says
// otherwise.
const defaultSpin = 200 * time.Microsecond

func init() {
	spinSetting.Store(int64(defaultSpin))
	if v := os.Getenv("QUANTKIT_SPIN"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			spinSetting.Store(int64(d))
		}
	}
}

// SetSpin sets how long a helper goroutine of the kernels' pool, its
// task done, polls for the next parallel call before it parks, and
// returns the previous setting; 0 parks at once. The default is 200 µs,
// or the duration the environment variable QUANTKIT_SPIN holds ("0" or
// "50us"). A spin of about 200 µs spans the serial gaps of a decode step,
// so that its parallel calls start on every thread without a wake-up;
// it spends that processor time polling after the last call.
func SetSpin(d time.Duration) (previous time.Duration) {
	return time.Duration(spinSetting.Swap(int64(max(d, 0))))
}

// spinForOffer polls the offers for the spin time, keeping its
// processor (a yield would hand it to the caller's goroutine and leave
// the other processor asleep), and returns the first it takes, or nil.
func spinForOffer() *job {
	d := time.Duration(spinSetting.Load())
	if d <= 0 {
		return nil
	}
	deadline := time.Now().Add(d)
	for i := 1; ; i++ {
		select {
		case j := <-helpers.offers:
			return j
		default:
		}
		if i%32 == 0 && time.Now().After(deadline) {
			return nil
		}
	}
}

// spinForDone polls, for the spin time at most, until every task of j is
// finished, so that a caller whose helpers are still running does not
// park (and need a wake-up) for the last microseconds of a call.
func spinForDone(j *job) {
	d := time.Duration(spinSetting.Load())
	if d <= 0 {
		return
	}
	deadline := time.Now().Add(d)
	for i := 1; j.done.Load() < j.tasks; i++ {
		if i%64 == 0 && time.Now().After(deadline) {
			return
		}
	}
}

// parallelTasks runs fn(worker, task) for every task in [0, tasks) on up
// to w goroutines (the caller's among them, as worker 0; helpers of the
// pool as workers 1..w-1), handing out tasks in order through an atomic
// counter so that uneven tasks balance. Calls may nest and run from
// several goroutines at once: a call whose helpers are busy runs on the
// caller's goroutine alone.
func parallelTasks(w, tasks int, fn func(worker, task int)) {
	if w <= 1 || tasks <= 1 {
		for t := range tasks {
			fn(0, t)
		}
		return
	}
	w = min(w, tasks, maxHelpers+1)
	ensureHelpers(w - 1)
	j := &job{fn: fn, tasks: int64(tasks), w: int64(w)}
	j.wg.Add(tasks)
	for range w - 1 {
		select {
		case helpers.offers <- j:
		default: // every offer slot is full: the helpers are busy
		}
	}
	j.run(0)
	spinForDone(j)
	j.wg.Wait()
}

// parallelRange splits [0, n) into at most w contiguous chunks whose
// boundaries are multiples of align (except n itself) and runs
// fn(worker, lo, hi) for each, chunk i as worker i, on the goroutines of
// parallelTasks.
func parallelRange(w, n, align int, fn func(worker, lo, hi int)) {
	if w <= 1 || n <= align {
		fn(0, 0, n)
		return
	}
	chunk := (n + w - 1) / w
	chunk = (chunk + align - 1) / align * align
	w = (n + chunk - 1) / chunk
	parallelTasks(w, w, func(_, i int) {
		fn(i, i*chunk, min((i+1)*chunk, n))
	})
}
