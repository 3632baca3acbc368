package energy

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// DefaultMinWindow is the shortest measured window when Options.MinWindow
// is not set.
const DefaultMinWindow = 2 * time.Second

// DefaultIdle is IdlePower's window when none is given: longer than the
// one-second average behind NVML's power reading on H100/H200.
const DefaultIdle = 2 * time.Second

// maxBatch bounds one call of work so that sizing a batch from a very fast
// warm-up cannot overflow.
const maxBatch = 1 << 30

// IdlePower measures src's power over d while nothing else is queued on
// it: the counter's energy over d when there is a counter (and it neither
// reset nor failed), else the time-weighted mean of the power sampled
// every interval. d ≤ 0 means DefaultIdle, interval ≤ 0 DefaultInterval.
// It fails at once, without waiting, when src has neither a counter nor
// power.
func IdlePower(src Source, d, interval time.Duration) (watts float64, err error) {
	if d <= 0 {
		d = DefaultIdle
	}
	if err := probe(src); err != nil {
		return 0, fmt.Errorf("energy: idle power of %s: %w", src.Name(), err)
	}
	s := StartSampler(src, interval)
	e0, err0 := src.Energy()
	t0 := time.Now()
	time.Sleep(d)
	t1 := time.Now()
	e1, err1 := src.Energy()
	samples := s.Stop()
	if err0 == nil && err1 == nil {
		if de, ok := Delta(e0, e1, src.WrapJ()); ok {
			return de / t1.Sub(t0).Seconds(), nil
		}
	}
	if w, ok := meanPower(samples); ok {
		return w, nil
	}
	return 0, fmt.Errorf("energy: idle power of %s: no usable counter reading and no power sample", src.Name())
}

// probe says why src can be measured neither by counter nor by power.
func probe(src Source) error {
	_, errE := src.Energy()
	if errE == nil {
		return nil // a counter, and power derivable from it
	}
	_, errP := src.Power()
	if errP == nil {
		return nil
	}
	return &unmeasurableError{errE, errP}
}

// unmeasurableError is a source with neither counter nor power; it wraps
// both reasons (errors.Is(err, ErrNotSupported) holds when either is
// missing rather than failing).
type unmeasurableError struct{ energy, power error }

func (e *unmeasurableError) Error() string {
	return lack("energy counter", e.energy) + " and " + lack("power reading", e.power)
}

func (e *unmeasurableError) Unwrap() []error { return []error{e.energy, e.power} }

// lack is "no what", or "what unreadable (err)" for a failure other than
// ErrNotSupported.
func lack(what string, err error) string {
	if errors.Is(err, ErrNotSupported) {
		return "no " + what
	}
	return fmt.Sprintf("%s unreadable (%v)", what, err)
}

// meanPower is the time-weighted mean power of samples (the plain mean
// when fewer than two have power).
func meanPower(samples []Sample) (watts float64, ok bool) {
	var first, last time.Duration
	var sum float64
	n := 0
	for _, s := range samples {
		if s.NoPower {
			continue
		}
		if n == 0 {
			first = s.T
		}
		last = s.T
		sum += s.PowerW
		n++
	}
	switch {
	case n == 0:
		return 0, false
	case n == 1 || last <= first:
		return sum / float64(n), true
	}
	return Integrate(samples) / (last - first).Seconds(), true
}

// Measure runs work in a window of at least opt.MinWindow and returns its
// energy on src. work(n) must run n calls of the measured work and return
// only when they have finished on the device (synchronized), so that the
// counter readings bracket exactly that work. Measure first calls work(1)
// as a warm-up and to size the window, then repeats work in batches until
// the window is filled. idleW (from IdlePower; 0 when unknown) gives
// Window.NetEnergyJ.
//
// The window: the sampler starts, the counter is read, work runs in
// batches of about a quarter of MinWindow each (the first sized from the
// warm-up, later ones from the calls so far, the last trimmed towards the
// end of the window; at least one call each) until MinWindow has passed,
// the counter is read again and the sampler stopped. Method is Counter
// when both readings succeed and Delta accepts them; otherwise the
// sampled power is integrated (Sampled) and Note says why. An error from
// work is returned, wrapped; so is a source with neither counter nor power
// (before any work runs).
func Measure(src Source, opt Options, idleW float64, work func(n int) error) (Window, error) {
	if opt.MinWindow <= 0 {
		opt.MinWindow = DefaultMinWindow
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	name := src.Name()
	if err := probe(src); err != nil {
		return Window{}, fmt.Errorf("energy: %s: %w", name, err)
	}

	w0 := time.Now()
	if err := work(1); err != nil {
		return Window{}, fmt.Errorf("energy: %s: warm-up: %w", name, err)
	}
	quarter := opt.MinWindow / 4
	batch := batchSize(quarter, time.Since(w0))

	s := StartSampler(src, opt.Interval)
	e0, errE0 := src.Energy()
	t0 := time.Now()
	calls := 0
	for {
		if err := work(batch); err != nil {
			s.Stop()
			return Window{}, fmt.Errorf("energy: %s: after %d calls in the window: %w", name, calls, err)
		}
		calls += batch
		elapsed := time.Since(t0)
		if elapsed >= opt.MinWindow {
			break
		}
		perCall := elapsed / time.Duration(calls)
		batch = batchSize(min(quarter, opt.MinWindow-elapsed), perCall)
	}
	t1 := time.Now()
	e1, errE1 := src.Energy()
	samples := s.Stop()

	w := Window{
		Source:  name,
		Method:  Counter,
		Seconds: t1.Sub(t0).Seconds(),
		Calls:   calls,
		IdleW:   idleW,
	}
	var why string
	switch de, ok := Delta(e0, e1, src.WrapJ()); {
	case errE0 != nil || errE1 != nil:
		why = lack("energy counter", cmp.Or(errE0, errE1))
	case !ok:
		why = "counter reset during the window"
	default:
		w.EnergyJ = de
	}
	var n int
	w.PeakPowerW, n = peakPower(samples)
	if why != "" {
		if n < 2 {
			return Window{}, fmt.Errorf("energy: %s: %s and only %d power samples", name, why, n)
		}
		w.Method = Sampled
		w.EnergyJ = Integrate(samples)
		w.Note = fmt.Sprintf("%s: energy integrated from %d power samples", why, n)
	}
	if w.Seconds > 0 {
		w.AvgPowerW = w.EnergyJ / w.Seconds
	}
	w.NetEnergyJ = w.EnergyJ - idleW*w.Seconds
	if opt.KeepSamples {
		w.Samples = samples
	}
	return w, nil
}

// batchSize is how many calls of perCall fit in target, rounded up, at
// least 1 and at most maxBatch.
func batchSize(target, perCall time.Duration) int {
	perCall = max(perCall, 1)
	n := (target + perCall - 1) / perCall
	return int(min(max(n, 1), maxBatch))
}

// CallsPerSecond is the rate of calls in the window.
func (w Window) CallsPerSecond() float64 {
	if w.Seconds <= 0 {
		return 0
	}
	return float64(w.Calls) / w.Seconds
}

// OpsPerJoule is the work done per joule of gross energy, where one call
// does opsPerCall operations (2·M·N·K for a GEMM): multiply by 1e-9 for
// GOPS/W. 0 when the window has no energy.
func (w Window) OpsPerJoule(opsPerCall float64) float64 {
	if w.EnergyJ <= 0 {
		return 0
	}
	return opsPerCall * float64(w.Calls) / w.EnergyJ
}

// NetOpsPerJoule is OpsPerJoule over the idle-subtracted energy; 0 when
// that is not positive (idle power at or above the measured power).
func (w Window) NetOpsPerJoule(opsPerCall float64) float64 {
	if w.NetEnergyJ <= 0 {
		return 0
	}
	return opsPerCall * float64(w.Calls) / w.NetEnergyJ
}
