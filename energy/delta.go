package energy

import (
	"errors"
	"math"
	"time"
)

// Delta is after − before of a cumulative counter that wraps to 0 at wrap
// (0: never wraps). ok is false when the counter went backwards without a
// wrap to explain it (a reset, such as a driver reload), or when a
// reading is not a finite, non-negative number (or, with a wrap, exceeds
// it).
//
// A counter that wraps cannot tell one wrap from a reset or from several
// wraps: the caller must read it more often than it can wrap (RAPL's
// package counter wraps after minutes at full power, so any window of
// seconds is safe).
func Delta(before, after, wrap float64) (delta float64, ok bool) {
	if !valid(before) || !valid(after) || !valid(wrap) {
		return 0, false
	}
	if wrap > 0 && (before > wrap || after > wrap) {
		return 0, false
	}
	switch {
	case after >= before:
		return after - before, true
	case wrap > 0:
		return wrap - before + after, true
	}
	return 0, false
}

func valid(x float64) bool { return x >= 0 && !math.IsInf(x, 0) } // NaN fails x >= 0

// Integrate is the energy in joules of the power curve of samples: the
// trapezoids between consecutive samples that have power,
//
//	for i := 1; i < len(s); i++ { e += (s[i].T-s[i-1].T).Seconds() * (s[i].PowerW+s[i-1].PowerW) / 2 }
//
// Samples marked NoPower are skipped (the curve is a straight line across
// them). Fewer than two samples with power give 0.
func Integrate(samples []Sample) float64 {
	var e float64
	prev := -1
	for i, s := range samples {
		if s.NoPower {
			continue
		}
		if prev >= 0 {
			p := samples[prev]
			e += (s.T - p.T).Seconds() * (s.PowerW + p.PowerW) / 2
		}
		prev = i
	}
	return e
}

// peakPower is the highest power among samples (0 when none has power),
// and how many have power.
func peakPower(samples []Sample) (peak float64, n int) {
	for _, s := range samples {
		if s.NoPower {
			continue
		}
		if n == 0 || s.PowerW > peak {
			peak = s.PowerW
		}
		n++
	}
	return peak, n
}

// ErrCounterReset is Around's error when the counter went back while the
// work ran (a reset, not a wrap).
var ErrCounterReset = errors.New("the energy counter went back (a reset)")

// Around runs work between two readings of src's energy counter and
// returns the joules counted (across one wrap) and the seconds taken. A
// failed work is returned as workErr, with no measurement; err is a
// reading that failed, or ErrCounterReset.
func Around(src Source, work func() error) (joules, seconds float64, workErr, err error) {
	start := time.Now()
	before, errBefore := src.Energy()
	if workErr = work(); workErr != nil {
		return 0, 0, workErr, nil
	}
	after, errAfter := src.Energy()
	seconds = time.Since(start).Seconds()
	if err := errors.Join(errBefore, errAfter); err != nil {
		return 0, seconds, nil, err
	}
	joules, ok := Delta(before, after, src.WrapJ())
	if !ok {
		return 0, seconds, nil, ErrCounterReset
	}
	return joules, seconds, nil, nil
}
