package energy

import (
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sleepWork is work whose calls take perCall each; it counts calls and
// batches.
type sleepWork struct {
	perCall time.Duration
	calls   int
	batches []int
	failAt  int // the call number (from 1) that fails; 0: never
	err     error
	before  func(n int) // called before each batch
}

func (w *sleepWork) run(n int) error {
	if w.before != nil {
		w.before(n)
	}
	if w.failAt > 0 && w.calls+n >= w.failAt {
		return w.err
	}
	time.Sleep(time.Duration(n) * w.perCall)
	w.calls += n
	w.batches = append(w.batches, n)
	return nil
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

// A constant 300 W with 50 W idle: the counter gives 300 W × the window
// and the net energy 250 W × the window.
func TestMeasureConstantPower(t *testing.T) {
	src := NewFakeSource("gpu:0 fake").Constant(300)
	src.EnergyFn = func(t time.Duration) (float64, error) { return 123456 + 300*t.Seconds(), nil }
	w := &sleepWork{perCall: 2 * time.Millisecond}
	win, err := Measure(src, Options{MinWindow: 200 * time.Millisecond, Interval: 20 * time.Millisecond}, 50, w.run)
	if err != nil {
		t.Fatal(err)
	}
	if win.Method != Counter || win.Note != "" || win.Source != "gpu:0 fake" {
		t.Errorf("Method %q, Note %q, Source %q", win.Method, win.Note, win.Source)
	}
	if win.Seconds < 0.2 || win.Seconds > 1 {
		t.Errorf("Seconds = %v, want ≥ 0.2", win.Seconds)
	}
	if !near(win.EnergyJ, 300*win.Seconds, 0.02) {
		t.Errorf("EnergyJ = %v, want ≈ 300 W × %v s = %v", win.EnergyJ, win.Seconds, 300*win.Seconds)
	}
	if !near(win.NetEnergyJ, 250*win.Seconds, 0.02) || win.IdleW != 50 {
		t.Errorf("NetEnergyJ = %v (idle %v W), want ≈ %v", win.NetEnergyJ, win.IdleW, 250*win.Seconds)
	}
	if !near(win.AvgPowerW, 300, 0.02) || win.PeakPowerW != 300 {
		t.Errorf("AvgPowerW = %v, PeakPowerW = %v", win.AvgPowerW, win.PeakPowerW)
	}
	// The warm-up call is not in the window.
	if win.Calls != w.calls-1 || win.Calls < 2 {
		t.Errorf("Calls = %d, work ran %d calls (1 warm-up)", win.Calls, w.calls)
	}
	if !near(win.PerCall(), win.EnergyJ/float64(win.Calls), 1e-12) {
		t.Errorf("PerCall = %v", win.PerCall())
	}
	if win.Samples != nil {
		t.Errorf("%d samples kept without KeepSamples", len(win.Samples))
	}
}

// Work runs in batches sized from the warm-up: more than one call each,
// about a quarter of the window, until the window is filled.
func TestMeasureBatches(t *testing.T) {
	src := NewFakeSource("fake").Constant(100)
	w := &sleepWork{perCall: time.Millisecond}
	var windowStart time.Time
	w.before = func(n int) {
		if len(w.batches) == 1 && windowStart.IsZero() {
			windowStart = time.Now()
		}
	}
	const minWindow = 200 * time.Millisecond
	win, err := Measure(src, Options{MinWindow: minWindow, Interval: 50 * time.Millisecond, KeepSamples: true}, 0, w.run)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(windowStart)
	if w.batches[0] != 1 {
		t.Errorf("warm-up ran %d calls, want 1", w.batches[0])
	}
	window := w.batches[1:]
	sum := 0
	for _, n := range window {
		sum += n
	}
	if sum != win.Calls {
		t.Errorf("Calls = %d, batches in the window sum to %d (%v)", win.Calls, sum, window)
	}
	if win.Seconds < minWindow.Seconds() || elapsed < minWindow {
		t.Errorf("window %v s (batches took %v): shorter than %v", win.Seconds, elapsed, minWindow)
	}
	// About 50 calls per batch, 4 batches; a slow machine sleeps longer
	// than asked and gets fewer calls per batch (on a loaded machine the
	// first batch, sized from the warm-up call, can be a few calls), so the
	// bounds are wide: batching must have grown past single calls.
	if len(window) < 2 || len(window) > 20 || slices.Max(window) < 5 {
		t.Errorf("batches %v, want a few of about a quarter window each", window)
	}
	if len(win.Samples) < 3 {
		t.Errorf("KeepSamples kept %d samples", len(win.Samples))
	}
}

// A RAPL-style counter that wraps in the window still gives the energy by
// counter.
func TestMeasureCounterWrap(t *testing.T) {
	src := NewFakeSource("cpu package-0 (RAPL)")
	src.Wrap = 262143.328850
	// 150 W, wrapping about 30 ms after the fake starts: inside the window.
	src.EnergyFn = func(t time.Duration) (float64, error) {
		return math.Mod(src.Wrap-4.5+150*t.Seconds(), src.Wrap), nil
	}
	w := &sleepWork{perCall: time.Millisecond}
	win, err := Measure(src, Options{MinWindow: 150 * time.Millisecond, Interval: 20 * time.Millisecond}, 20, w.run)
	if err != nil {
		t.Fatal(err)
	}
	if win.Method != Counter {
		t.Errorf("Method %q (%s), want counter across the wrap", win.Method, win.Note)
	}
	if !near(win.EnergyJ, 150*win.Seconds, 0.02) || !near(win.NetEnergyJ, 130*win.Seconds, 0.02) {
		t.Errorf("EnergyJ = %v, NetEnergyJ = %v over %v s, want 150 W and 130 W", win.EnergyJ, win.NetEnergyJ, win.Seconds)
	}
	// Peak power is derived from the counter, since there is no Power.
	if !near(win.PeakPowerW, 150, 0.05) {
		t.Errorf("PeakPowerW = %v, want ≈ 150 (derived)", win.PeakPowerW)
	}
}

// A counter that resets in the window (a driver reload) cannot be
// trusted: the energy comes from sampled power, and the Note says why.
func TestMeasureCounterReset(t *testing.T) {
	var reset atomic.Bool
	src := NewFakeSource("gpu:0 fake").Constant(300)
	src.EnergyFn = func(t time.Duration) (float64, error) {
		if reset.Load() {
			return 300 * t.Seconds(), nil
		}
		return 5e6 + 300*t.Seconds(), nil
	}
	w := &sleepWork{perCall: time.Millisecond}
	w.before = func(int) {
		if len(w.batches) == 2 { // after the first batch of the window
			reset.Store(true)
		}
	}
	win, err := Measure(src, Options{MinWindow: 150 * time.Millisecond, Interval: 10 * time.Millisecond}, 0, w.run)
	if err != nil {
		t.Fatal(err)
	}
	if win.Method != Sampled || !strings.Contains(win.Note, "counter reset during the window") {
		t.Errorf("Method %q, Note %q: want sampled-power because of the reset", win.Method, win.Note)
	}
	if !near(win.EnergyJ, 300*win.Seconds, 0.05) {
		t.Errorf("EnergyJ = %v, want ≈ 300 W × %v s", win.EnergyJ, win.Seconds)
	}
}

// Without a counter the energy is the integral of sampled power.
func TestMeasureNoCounter(t *testing.T) {
	src := NewFakeSource("old gpu")
	src.PowerFn = func(t time.Duration) (float64, error) { return 100 + 1000*t.Seconds(), nil } // a ramp
	w := &sleepWork{perCall: time.Millisecond}
	win, err := Measure(src, Options{MinWindow: 150 * time.Millisecond, Interval: 10 * time.Millisecond, KeepSamples: true}, 0, w.run)
	if err != nil {
		t.Fatal(err)
	}
	if win.Method != Sampled || !strings.HasPrefix(win.Note, "no energy counter") {
		t.Errorf("Method %q, Note %q", win.Method, win.Note)
	}
	// The integral of the ramp over the sampled span.
	s := win.Samples
	t0, t1 := s[0].T.Seconds(), s[len(s)-1].T.Seconds()
	if win.EnergyJ <= 0 || !near(win.EnergyJ, Integrate(s), 1e-12) {
		t.Errorf("EnergyJ = %v, Integrate(samples) = %v", win.EnergyJ, Integrate(s))
	}
	if lo, hi := 100*(t1-t0), 100*(t1-t0)+1000*t1*t1; win.EnergyJ < lo || win.EnergyJ > hi {
		t.Errorf("EnergyJ = %v outside [%v, %v]", win.EnergyJ, lo, hi)
	}
	if win.PeakPowerW < 100+1000*0.15 || win.PeakPowerW != s[len(s)-1].PowerW {
		t.Errorf("PeakPowerW = %v, last sample %v", win.PeakPowerW, s[len(s)-1].PowerW)
	}
}

func TestMeasureNoCounterNoPower(t *testing.T) {
	src := NewFakeSource("blind")
	calls := 0
	_, err := Measure(src, Options{MinWindow: 50 * time.Millisecond}, 0, func(n int) error { calls += n; return nil })
	if err == nil || !strings.Contains(err.Error(), "no energy counter") || calls != 0 {
		t.Errorf("Measure on a source with neither: err %v after %d calls", err, calls)
	}
	start := time.Now()
	_, err = IdlePower(src, time.Second, 10*time.Millisecond)
	if err == nil || !errors.Is(err, ErrNotSupported) {
		t.Errorf("IdlePower on a source with neither: %v", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Errorf("IdlePower waited %v before failing", time.Since(start))
	}
}

// An error from work ends the measurement, is returned wrapped, and
// leaves no sampler running.
func TestMeasureWorkError(t *testing.T) {
	before := runtime.NumGoroutine()
	boom := errors.New("kernel launch failed")
	for _, failAt := range []int{1, 5} { // the warm-up, then in the window
		w := &sleepWork{perCall: time.Millisecond, failAt: failAt, err: boom}
		_, err := Measure(NewFakeSource("fake").Constant(10), Options{MinWindow: 100 * time.Millisecond, Interval: 5 * time.Millisecond}, 0, w.run)
		if !errors.Is(err, boom) {
			t.Errorf("fail at call %d: err = %v", failAt, err)
		}
	}
	goroutinesSettle(t, before)
}

func TestIdlePower(t *testing.T) {
	counter := NewFakeSource("counter").Constant(70)
	counter.PowerFn = func(time.Duration) (float64, error) { return 1000, nil } // a wrong power reading the counter must win over
	power := NewFakeSource("power only")
	power.PowerFn = func(time.Duration) (float64, error) { return 45, nil }
	rapl := NewFakeSource("rapl")
	rapl.Wrap = 100
	rapl.EnergyFn = func(t time.Duration) (float64, error) { return math.Mod(95+30*t.Seconds(), 100), nil }
	reset := NewFakeSource("reset").Constant(60)
	reset.EnergyFn = func(t time.Duration) (float64, error) { // resets at 50 ms, no wrap
		if t < 50*time.Millisecond {
			return 1e4 + 60*t.Seconds(), nil
		}
		return 60 * (t - 50*time.Millisecond).Seconds(), nil
	}
	for _, tc := range []struct {
		src  *FakeSource
		want float64
	}{{counter, 70}, {power, 45}, {rapl, 30}, {reset, 60}} {
		w, err := IdlePower(tc.src, 100*time.Millisecond, 10*time.Millisecond)
		if err != nil || !near(w, tc.want, 0.03) {
			t.Errorf("%s: IdlePower = %v W, %v; want %v", tc.src.NameV, w, err, tc.want)
		}
	}
}
