package energy

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// goroutinesSettle waits until no more than n goroutines run, failing the
// test after a second: a leaked sampler keeps its goroutine.
func goroutinesSettle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines running, want at most %d: a sampler leaked", runtime.NumGoroutine(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSamplerTiming(t *testing.T) {
	before := runtime.NumGoroutine()
	src := NewFakeSource("fake").Constant(250)
	src.StateV = State{SMClockMHz: 1980, TemperatureC: 45, Throttle: []string{"sw_power_cap"}}
	s := StartSampler(src, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	samples := s.Stop()
	select {
	case <-s.done:
	default:
		t.Fatal("Stop returned before the sampling goroutine ended")
	}
	goroutinesSettle(t, before)

	// First + ~10 ticks + last ≈ 12; a loaded machine drops ticks, so
	// the bounds are loose.
	if n := len(samples); n < 5 || n > 16 {
		t.Errorf("%d samples at 10 ms over 100 ms, want about 12", n)
	}
	if samples[0].T > 5*time.Millisecond {
		t.Errorf("first sample at %v, want immediate", samples[0].T)
	}
	if last := samples[len(samples)-1].T; last < 100*time.Millisecond || last > time.Second {
		t.Errorf("last sample at %v, want at Stop (≈100 ms)", last)
	}
	for i, smp := range samples {
		if i > 0 && smp.T < samples[i-1].T {
			t.Errorf("sample %d at %v before sample %d at %v", i, smp.T, i-1, samples[i-1].T)
		}
		if smp.NoPower || smp.PowerW != 250 || !reflect.DeepEqual(smp.State, src.StateV) {
			t.Errorf("sample %d = %+v", i, smp)
		}
	}
	// Integrating the samples gives the energy of the sampled span.
	span := (samples[len(samples)-1].T - samples[0].T).Seconds()
	if got := Integrate(samples); math.Abs(got-250*span) > 1e-9 {
		t.Errorf("Integrate = %v J, want %v", got, 250*span)
	}
}

// Stop may be called again, and concurrently; every call returns the same
// samples and none blocks.
func TestSamplerStopTwice(t *testing.T) {
	s := StartSampler(NewFakeSource("fake").Constant(1), time.Millisecond)
	var wg sync.WaitGroup
	got := make([][]Sample, 4)
	for i := range got {
		wg.Go(func() { got[i] = s.Stop() })
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) < 2 || &got[i][0] != &got[0][0] || len(got[i]) != len(got[0]) {
			t.Errorf("Stop %d returned %d samples, Stop 0 %d", i, len(got[i]), len(got[0]))
		}
	}
}

// A RAPL-style source has a counter but no power: the sampler derives
// power from successive counter readings, the first sample included.
func TestSamplerDerivesPower(t *testing.T) {
	src := NewFakeSource("cpu package-0 (RAPL)")
	src.Wrap = 262143.328850
	src.EnergyFn = func(t time.Duration) (float64, error) {
		return math.Mod(262140+65*t.Seconds(), src.Wrap), nil // wraps after ~50 ms
	}
	// The sampler runs on the wall clock: on a loaded machine its ticks
	// come late and its reads a moment apart from the fake's, so a run
	// that misses is tried again, and a broken sampler fails all three.
	var errs []string
	for range 3 {
		errs = derivedPowerRun(src)
		if len(errs) == 0 {
			return
		}
	}
	for _, e := range errs {
		t.Error(e)
	}
}

func derivedPowerRun(src *FakeSource) (errs []string) {
	s := StartSampler(src, 20*time.Millisecond)
	time.Sleep(150 * time.Millisecond)
	samples := s.Stop()
	withPower := 0
	for i, smp := range samples {
		if smp.NoPower {
			if i != len(samples)-1 {
				errs = append(errs, fmt.Sprintf("sample %d of %d has no power", i, len(samples)))
			}
			continue // the last may come too soon after a tick
		}
		withPower++
		if math.Abs(smp.PowerW-65) > 0.65 {
			errs = append(errs, fmt.Sprintf("sample %d: %v W, want 65", i, smp.PowerW))
		}
	}
	if withPower < 3 {
		errs = append(errs, fmt.Sprintf("only %d of %d samples have power", withPower, len(samples)))
	}
	return errs
}

// A counter that resets costs one sample its power, no more; a source
// with neither power nor counter still records State.
func TestSamplerDerivedReset(t *testing.T) {
	src := NewFakeSource("fake")
	src.EnergyFn = func(t time.Duration) (float64, error) {
		if t < 50*time.Millisecond {
			return 1e6 + 40*t.Seconds(), nil
		}
		return 40 * (t - 50*time.Millisecond).Seconds(), nil
	}
	s := StartSampler(src, 10*time.Millisecond)
	time.Sleep(120 * time.Millisecond)
	samples := s.Stop()
	// The fake's clock and the sampler's are read a moment apart, which a
	// loaded machine stretches: each sample's power is checked loosely
	// (a reset taken as a delta would be -10⁷ W and more), their median
	// tightly; samples too close together (a late tick) have no power,
	// like the reset's.
	noPower := 0
	var powers []float64
	for _, smp := range samples {
		if smp.NoPower {
			noPower++
			continue
		}
		powers = append(powers, smp.PowerW)
		if !(smp.PowerW > 0 && smp.PowerW < 200) {
			t.Errorf("sample at %v: %v W, want about 40", smp.T, smp.PowerW)
		}
	}
	if noPower < 1 || noPower > len(samples)/2 { // the reset, the last, late ticks
		t.Errorf("%d of %d samples without power, want the reset's and few more", noPower, len(samples))
	}
	if len(powers) < 2 {
		t.Fatalf("%d samples with power of %d", len(powers), len(samples))
	}
	slices.Sort(powers)
	if med := powers[len(powers)/2]; math.Abs(med-40) > 1 {
		t.Errorf("median power %v W, want 40", med)
	}

	src = NewFakeSource("blind")
	src.PowerFn = func(time.Duration) (float64, error) { return 0, errors.New("NVML: unknown error") }
	src.StateV.TemperatureC = 60
	samples = StartSampler(src, 5*time.Millisecond).Stop()
	if len(samples) < 2 || !samples[0].NoPower || samples[0].TemperatureC != 60 {
		t.Errorf("samples of a source without power = %+v", samples)
	}
}

func TestFakeSourceClock(t *testing.T) {
	now := time.Unix(1000, 0)
	f := NewFakeSource("fake").Constant(300)
	f.Start, f.Now = now, func() time.Time { return now }
	now = now.Add(1500 * time.Millisecond)
	if e, err := f.Energy(); err != nil || e != 450 {
		t.Errorf("Energy after 1.5 s at 300 W = %v, %v", e, err)
	}
	f = NewFakeSource("empty")
	if _, err := f.Energy(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Energy without EnergyFn: %v", err)
	}
	if _, err := f.Power(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Power without PowerFn: %v", err)
	}
}
