package telemetry

import (
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Open starts NVML. Without a driver it returns an error wrapping ErrNoGPU
// that says why, e.g. "no NVIDIA GPU found (NVML: library not found)"; no
// other NVML function is called after a failed start.
func Open() (System, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w (NVML: %s)", ErrNoGPU, describe(ret))
	}
	return nvmlSystem{}, nil
}

func describe(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "library not found"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "driver not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission"
	case nvml.ERROR_NOT_SUPPORTED:
		return "not supported"
	}
	return nvml.ErrorString(ret)
}

func check(ret nvml.Return) error {
	switch ret {
	case nvml.SUCCESS:
		return nil
	case nvml.ERROR_NOT_SUPPORTED:
		return ErrNotSupported
	}
	return fmt.Errorf("NVML: %s", describe(ret))
}

type nvmlSystem struct{}

func (nvmlSystem) DriverVersion() (string, error) {
	v, ret := nvml.SystemGetDriverVersion()
	return v, check(ret)
}

func (nvmlSystem) CUDAVersion() (string, error) {
	v, ret := nvml.SystemGetCudaDriverVersion_v2()
	if err := check(ret); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10), nil
}

func (nvmlSystem) Count() (int, error) {
	n, ret := nvml.DeviceGetCount()
	return n, check(ret)
}

func (nvmlSystem) Device(i int) (Device, error) {
	d, ret := nvml.DeviceGetHandleByIndex(i)
	return nvmlDevice{d}, check(ret)
}

func (nvmlSystem) Close() error { return check(nvml.Shutdown()) }

type nvmlDevice struct{ d nvml.Device }

func (x nvmlDevice) Name() (string, error) {
	v, ret := x.d.GetName()
	return v, check(ret)
}

func (x nvmlDevice) UUID() (string, error) {
	v, ret := x.d.GetUUID()
	return v, check(ret)
}

func (x nvmlDevice) Memory() (total, used uint64, err error) {
	m, ret := x.d.GetMemoryInfo()
	return m.Total, m.Used, check(ret)
}

func (x nvmlDevice) PowerDraw() (float64, error) {
	mw, ret := x.d.GetPowerUsage()
	return float64(mw) / 1e3, check(ret)
}

func (x nvmlDevice) PowerLimit() (float64, error) {
	mw, ret := x.d.GetEnforcedPowerLimit()
	return float64(mw) / 1e3, check(ret)
}

func (x nvmlDevice) TotalEnergy() (float64, error) {
	mj, ret := x.d.GetTotalEnergyConsumption()
	return MillijoulesToJoules(mj), check(ret)
}

func (x nvmlDevice) Temperature() (int, error) {
	t, ret := x.d.GetTemperature(nvml.TEMPERATURE_GPU)
	return int(t), check(ret)
}

func (x nvmlDevice) Clocks() (sm, mem int, err error) {
	s, ret := x.d.GetClockInfo(nvml.CLOCK_SM)
	if err := check(ret); err != nil {
		return 0, 0, err
	}
	m, ret := x.d.GetClockInfo(nvml.CLOCK_MEM)
	return int(s), int(m), check(ret)
}

func (x nvmlDevice) Utilization() (gpu, mem int, err error) {
	u, ret := x.d.GetUtilizationRates()
	return int(u.Gpu), int(u.Memory), check(ret)
}

// ThrottleReasons reads the current clock event reasons. NVML renamed
// "throttle reasons" to "clock event reasons" in driver 535 and may drop
// the old name one day; calling a symbol the loaded library lacks would
// crash, so both are looked up first.
func (x nvmlDevice) ThrottleReasons() ([]string, error) {
	mask, ret := uint64(0), nvml.ERROR_FUNCTION_NOT_FOUND
	sym := clockReasonSymbols()
	if sym.event {
		mask, ret = x.d.GetCurrentClocksEventReasons()
	}
	if sym.throttle && (ret == nvml.ERROR_FUNCTION_NOT_FOUND || ret == nvml.ERROR_NOT_SUPPORTED) {
		mask, ret = x.d.GetCurrentClocksThrottleReasons()
	}
	if ret == nvml.ERROR_FUNCTION_NOT_FOUND {
		return nil, ErrNotSupported
	}
	if err := check(ret); err != nil {
		return nil, err
	}
	return DecodeThrottleReasons(mask), nil
}

// clockReasonSymbols says which of the two names the loaded NVML exports.
// It is only called on devices, so after a successful Init.
var clockReasonSymbols = sync.OnceValue(func() (s struct{ event, throttle bool }) {
	lib := nvml.Extensions()
	s.event = lib.LookupSymbol("nvmlDeviceGetCurrentClocksEventReasons") == nil
	s.throttle = lib.LookupSymbol("nvmlDeviceGetCurrentClocksThrottleReasons") == nil
	return s
})
