package bench

import (
	"sort"
	"time"
)

// Timing says how long to measure each kernel.
type Timing struct {
	MinTime time.Duration // measure at least this long (after warm-up)
	MinReps int           // and at least this many calls
	MaxReps int           // but no more than this many
}

// DefaultTiming suits CPU kernels from microseconds to seconds.
var DefaultTiming = Timing{MinTime: 500 * time.Millisecond, MinReps: 3, MaxReps: 1000}

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
	var times []float64
	start := time.Now()
	for len(times) < t.MaxReps && (len(times) < t.MinReps || time.Since(start) < t.MinTime) {
		sec, err := fn()
		if err != nil {
			return 0, 0, err
		}
		times = append(times, sec)
	}
	return Median(times), len(times), nil
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
