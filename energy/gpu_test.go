package energy

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

func TestGPUSources(t *testing.T) {
	energyJ := 1000.0
	sys := &telemetry.Fake{Devices: []*telemetry.FakeDevice{
		{NameV: "NVIDIA H100 80GB HBM3", MemUsed: 3 << 30,
			PowerFn: func() float64 { return 312.5 }, EnergyFn: func() float64 { return energyJ },
			TempV: 52, SMMHz: 1980, MemMHz: 2619, UtilGPU: 97,
			ThrottleV: []string{"sw_power_cap"}},
		{NameV: "old card", TempV: 40, SMMHz: 1200, UtilGPU: 10, ThrottleV: []string{"gpu_idle"},
			Errs: map[string]error{
				"clocks":   errors.New("NVML: unknown error"),
				"throttle": telemetry.ErrNotSupported,
				"power":    errors.New("NVML: GPU is lost"),
			}},
	}}
	srcs, err := GPUSources(sys)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].Name() != "gpu:0 NVIDIA H100 80GB HBM3" || srcs[1].Name() != "gpu:1 old card" {
		t.Fatalf("sources %v", srcs)
	}
	h := srcs[0]
	if e, err := h.Energy(); err != nil || e != 1000 || h.WrapJ() != 0 {
		t.Errorf("Energy = %v, %v, WrapJ %v", e, err, h.WrapJ())
	}
	if p, err := h.Power(); err != nil || p != 312.5 {
		t.Errorf("Power = %v, %v", p, err)
	}
	want := State{SMClockMHz: 1980, MemClockMHz: 2619, TemperatureC: 52, MemoryUsed: 3 << 30, UtilPct: 97, Throttle: []string{"sw_power_cap"}}
	if got := h.State(); !reflect.DeepEqual(got, want) {
		t.Errorf("State = %+v, want %+v", got, want)
	}

	old := srcs[1]
	if _, err := old.Energy(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Energy of a GPU without counter: %v, want ErrNotSupported", err)
	}
	if _, err := old.Power(); err == nil || errors.Is(err, ErrNotSupported) || err.Error() != "energy: gpu:1 old card: reading power: NVML: GPU is lost" {
		t.Errorf("Power of a lost GPU: %v", err)
	}
	// Failed fields are zero; the others are read.
	if got, want := old.State(), (State{TemperatureC: 40, UtilPct: 10}); !reflect.DeepEqual(got, want) {
		t.Errorf("State = %+v, want %+v", got, want)
	}

	if s := GPUSource(7, sys.Devices[0], ""); s.Name() != "gpu:7" {
		t.Errorf("unnamed GPU: %q", s.Name())
	}

	// The GPU's counter drives Measure.
	win, err := Measure(h, Options{MinWindow: time.Millisecond, Interval: time.Millisecond}, 0, func(n int) error { energyJ += 2 * float64(n); return nil })
	if err != nil || win.Method != Counter || win.Calls < 1 || !near(win.EnergyJ, 2*float64(win.Calls), 1e-9) {
		t.Errorf("Measure on a fake GPU: %+v, %v", win, err)
	}
}
