package bench

import (
	"math/rand/v2"
	"sort"
	"time"
)

// Timing says how long to measure each kernel.
type Timing struct {
	MinTime time.Duration // measure at least this long (after warm-up)
	MinReps int           // and at least this many calls
	MaxReps int           // but no more than this many calls; 0: no limit, MinTime decides
	// Keep bounds the call times kept for the median: past it, a uniform
	// random sample of Keep of them is kept (reservoir sampling, fixed
	// seed), so that a long MinTime over a fast kernel takes bounded
	// memory and every call still counts. 0: DefaultKeep.
	Keep int
}

// DefaultKeep is the sample the median of a long measurement is taken
// over: its quantile error (about 1/√Keep) is well below the noise of a
// timed kernel.
const DefaultKeep = 1 << 14

// DefaultTiming suits CPU kernels from microseconds to seconds.
var DefaultTiming = Timing{MinTime: 500 * time.Millisecond, MinReps: 3}

// Measure calls fn once to warm up, then repeatedly, and returns the median
// time of one call and the number of timed calls.
func (t Timing) Measure(fn func() error) (median float64, reps int, err error) {
	return t.MeasureTimed(func() (float64, error) {
		t0 := time.Now()
		err := fn()
		return time.Since(t0).Seconds(), err
	})
}

// MeasureTimed is Measure for a fn that times itself (with a device's
// clock, say) and returns the seconds of its call.
func (t Timing) MeasureTimed(fn func() (float64, error)) (median float64, reps int, err error) {
	if _, err := fn(); err != nil {
		return 0, 0, err
	}
	keep := t.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var times []float64
	start := time.Now()
	for (t.MaxReps <= 0 || reps < t.MaxReps) && (reps < t.MinReps || time.Since(start) < t.MinTime) {
		sec, err := fn()
		if err != nil {
			return 0, 0, err
		}
		reps++
		if len(times) < keep {
			times = append(times, sec)
		} else if j := rng.IntN(reps); j < keep {
			times[j] = sec // each of the reps calls is kept with probability keep/reps
		}
	}
	return Median(times), reps, nil
}

// Median of xs (the mean of the middle two for an even count); xs is
// sorted in place.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}
