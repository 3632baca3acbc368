package telemetry

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestDecodeThrottleReasons(t *testing.T) {
	for _, tc := range []struct {
		mask uint64
		want []string
	}{
		{0, nil},
		{nvml.ClocksEventReasonGpuIdle, []string{"gpu_idle"}},
		{nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown,
			[]string{"sw_power_cap", "hw_thermal_slowdown"}},
		{1 << 3, []string{"hw_slowdown"}},
		{1 << 7, []string{"hw_power_brake_slowdown"}},
		{1 << 8, []string{"display_clock_setting"}},
		{1<<4 | 1<<40, []string{"sync_boost", "unknown_0x10000000000"}},
	} {
		if got := DecodeThrottleReasons(tc.mask); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeThrottleReasons(%#x) = %q, want %q", tc.mask, got, tc.want)
		}
	}
}

// Every known bit has its own name, and the names the brief fixes are the
// bits NVML documents for them: names are part of the JSON output.
func TestThrottleReasonTable(t *testing.T) {
	want := map[string]uint64{
		"gpu_idle":                    1 << 0,
		"applications_clocks_setting": 1 << 1,
		"sw_power_cap":                1 << 2,
		"hw_slowdown":                 1 << 3,
		"sync_boost":                  1 << 4,
		"sw_thermal_slowdown":         1 << 5,
		"hw_thermal_slowdown":         1 << 6,
		"hw_power_brake_slowdown":     1 << 7,
		"display_clock_setting":       1 << 8,
	}
	var all uint64
	for _, r := range throttleReasons {
		if r.bit == 0 || r.bit&(r.bit-1) != 0 || all&r.bit != 0 {
			t.Errorf("%s: bit %#x is not a single new bit", r.name, r.bit)
		}
		all |= r.bit
		if b, ok := want[r.name]; ok && b != r.bit {
			t.Errorf("%s: bit %#x, want %#x", r.name, r.bit, b)
		}
	}
	for name := range want {
		if !slices.Contains(ThrottleReasonNames(), name) {
			t.Errorf("%s missing from the table", name)
		}
	}
	if got := DecodeThrottleReasons(all); !reflect.DeepEqual(got, ThrottleReasonNames()) {
		t.Errorf("all bits decode to %q", got)
	}
}

func TestReadDeviceThrottleAndErrors(t *testing.T) {
	d := &FakeDevice{NameV: "g", SMMHz: 1410, TempV: 80,
		ThrottleV: []string{"sw_thermal_slowdown"},
		Errs:      map[string]error{"clocks": errors.New("NVML: unknown error")}}
	g := ReadDevice(3, d)
	if !reflect.DeepEqual(g.Throttle, []string{"sw_thermal_slowdown"}) {
		t.Errorf("Throttle = %q", g.Throttle)
	}
	if g.Index != 3 || g.SMClockMHz != 0 || g.TemperatureC != 80 {
		t.Errorf("GPU = %+v", g)
	}
	if !reflect.DeepEqual(g.Missing, []string{"power", "energy", "clocks"}) {
		t.Errorf("Missing = %q", g.Missing)
	}

	d.Errs = map[string]error{"throttle": ErrNotSupported}
	g = ReadDevice(0, d)
	if g.Throttle != nil || !slices.Contains(g.Missing, "throttle") || g.SMClockMHz != 1410 {
		t.Errorf("with throttle failing: %+v", g)
	}
}
