package energy

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestDelta(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name                string
		before, after, wrap float64
		want                float64
		ok                  bool
	}{
		{"forward", 10, 25.5, 0, 15.5, true},
		{"still", 7, 7, 0, 0, true},
		{"forward with wrap", 10, 25.5, 100, 15.5, true},
		{"wrap", 95, 3, 100, 8, true},
		{"wrap to exactly 0", 99.5, 0, 100, 0.5, true},
		{"reset without wrap", 5000, 12, 0, 0, false},
		{"reading above the wrap", 150, 3, 100, 0, false},
		{"NaN", nan, 3, 0, 0, false},
		{"Inf", 1, inf, 0, 0, false},
		{"negative", -1, 3, 0, 0, false},
		{"negative wrap", 5, 3, -10, 0, false},
	} {
		got, ok := Delta(tc.before, tc.after, tc.wrap)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: Delta(%v, %v, %v) = %v, %v; want %v, %v", tc.name, tc.before, tc.after, tc.wrap, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIntegrate(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		samples []Sample
		want    float64
	}{
		{"none", nil, 0},
		{"one", []Sample{{T: 0, PowerW: 300}}, 0},
		{"constant", []Sample{{T: 0, PowerW: 300}, {T: 100 * ms, PowerW: 300}, {T: 350 * ms, PowerW: 300}}, 105},
		// A ramp from 0 to 200 W over 2 s is 200 J, exactly, whatever the
		// uneven sample spacing.
		{"ramp", []Sample{{T: 0, PowerW: 0}, {T: 300 * ms, PowerW: 30}, {T: 1700 * ms, PowerW: 170}, {T: 2000 * ms, PowerW: 200}}, 200},
		// A sample without power is bridged, not read as 0 W.
		{"gap", []Sample{{T: 0, PowerW: 100}, {T: 500 * ms, NoPower: true}, {T: 1000 * ms, PowerW: 100}}, 100},
		{"no power at all", []Sample{{T: 0, NoPower: true}, {T: 1000 * ms, NoPower: true}}, 0},
	} {
		if got := Integrate(tc.samples); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: Integrate = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWindowHelpers(t *testing.T) {
	w := Window{Seconds: 2, Calls: 100, EnergyJ: 400, NetEnergyJ: 100}
	if got := w.PerCall(); got != 4 {
		t.Errorf("PerCall = %v", got)
	}
	if got := w.OpsPerJoule(1e9); got != 2.5e8 {
		t.Errorf("OpsPerJoule = %v", got)
	}
	if got := w.NetOpsPerJoule(1e9); got != 1e9 {
		t.Errorf("NetOpsPerJoule = %v", got)
	}
	if got := w.CallsPerSecond(); got != 50 {
		t.Errorf("CallsPerSecond = %v", got)
	}
	if got := (Window{Calls: 3, NetEnergyJ: -1}).NetOpsPerJoule(1); got != 0 {
		t.Errorf("NetOpsPerJoule with negative net energy = %v", got)
	}
}

// Around measures the counter over the work, across a wrap, and reports a
// reset and a failed work as such.
func TestAround(t *testing.T) {
	src := NewFakeSource("fake")
	src.Wrap = 100
	reads := []float64{90, 30}
	src.EnergyFn = func(time.Duration) (float64, error) { e := reads[0]; reads = reads[1:]; return e, nil }
	j, _, workErr, err := Around(src, func() error { return nil })
	if workErr != nil || err != nil || math.Abs(j-40) > 1e-12 {
		t.Errorf("across a wrap: %v J, %v, %v; want 40 J", j, workErr, err)
	}
	src.Wrap, reads = 0, []float64{90, 30}
	if _, _, _, err := Around(src, func() error { return nil }); !errors.Is(err, ErrCounterReset) {
		t.Errorf("a counter that went back: %v", err)
	}
	boom := errors.New("boom")
	reads = []float64{1, 2}
	if _, _, workErr, _ := Around(src, func() error { return boom }); workErr != boom {
		t.Errorf("failed work: %v", workErr)
	}
}
