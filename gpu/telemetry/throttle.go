package telemetry

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// throttleReasons maps NVML's clock event (formerly "throttle") reason
// bits to stable names, in bit order. The names are part of quantkit's
// JSON output: add rows, never rename.
var throttleReasons = []struct {
	bit  uint64
	name string
}{
	{nvml.ClocksEventReasonGpuIdle, "gpu_idle"},
	{nvml.ClocksEventReasonApplicationsClocksSetting, "applications_clocks_setting"},
	{nvml.ClocksEventReasonSwPowerCap, "sw_power_cap"},
	{nvml.ClocksThrottleReasonHwSlowdown, "hw_slowdown"},
	{nvml.ClocksEventReasonSyncBoost, "sync_boost"},
	{nvml.ClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown"},
	{nvml.ClocksThrottleReasonHwThermalSlowdown, "hw_thermal_slowdown"},
	{nvml.ClocksThrottleReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"},
	{nvml.ClocksEventReasonDisplayClockSetting, "display_clock_setting"},
	{nvml.ClocksEventReasonBoardLimit, "board_limit"},
	{nvml.ClocksEventReasonReliability, "reliability"},
}

// ThrottleReasonNames are the names DecodeThrottleReasons gives, in bit
// order.
func ThrottleReasonNames() []string {
	names := make([]string, len(throttleReasons))
	for i, r := range throttleReasons {
		names[i] = r.name
	}
	return names
}

// DecodeThrottleReasons names the bits of an NVML clock event reasons mask
// (nvmlDeviceGetCurrentClocksEventReasons), in bit order. Bits this
// version does not know are named "unknown_0x…" so that they are seen,
// not dropped. A zero mask gives nil.
func DecodeThrottleReasons(mask uint64) []string {
	var names []string
	for _, r := range throttleReasons {
		if mask&r.bit != 0 {
			names = append(names, r.name)
			mask &^= r.bit
		}
	}
	if mask != 0 {
		names = append(names, fmt.Sprintf("unknown_%#x", mask))
	}
	return names
}
