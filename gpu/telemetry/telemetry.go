// Package telemetry reads NVIDIA GPU state through NVML: names, memory,
// power, energy, clocks, temperature, utilization and clock throttle
// reasons. It needs no CUDA and
// no build tag: NVML is loaded at run time, and a machine without a driver
// gets a clear error instead of a crash.
//
// Code that reads telemetry goes through the small Device/System interfaces
// here, so it is testable with the fake in this package.
package telemetry

import (
	"errors"
	"fmt"
)

// ErrNoGPU wraps every "there is no usable NVIDIA GPU here" condition.
var ErrNoGPU = errors.New("no NVIDIA GPU found")

// System is an initialised NVML session.
type System interface {
	DriverVersion() (string, error)
	CUDAVersion() (string, error)
	Count() (int, error)
	Device(i int) (Device, error)
	Close() error
}

// Device is one GPU. Methods return ErrNotSupported when the device does
// not report a field.
type Device interface {
	Name() (string, error)
	UUID() (string, error)
	Memory() (total, used uint64, err error)
	PowerDraw() (watts float64, err error)
	PowerLimit() (watts float64, err error)
	TotalEnergy() (joules float64, err error)
	Temperature() (celsius int, err error)
	Clocks() (smMHz, memMHz int, err error)
	Utilization() (gpuPct, memPct int, err error)
	// ThrottleReasons names the reasons the clocks are held down now
	// (ThrottleReasonNames: "sw_power_cap", "hw_thermal_slowdown", ...);
	// empty when the clocks run free.
	ThrottleReasons() ([]string, error)
}

// ErrNotSupported says a device does not report a field.
var ErrNotSupported = errors.New("not supported")

// GPU is one device's readings at one moment. Fields a device does not
// report are left zero and named in Missing.
type GPU struct {
	Index         int      `json:"index"`
	Name          string   `json:"name"`
	UUID          string   `json:"uuid"`
	MemoryTotal   uint64   `json:"memory_total_bytes"`
	MemoryUsed    uint64   `json:"memory_used_bytes"`
	PowerW        float64  `json:"power_w"`
	PowerLimitW   float64  `json:"power_limit_w"`
	EnergyJ       float64  `json:"energy_j"`
	TemperatureC  int      `json:"temperature_c"`
	SMClockMHz    int      `json:"sm_clock_mhz"`
	MemClockMHz   int      `json:"mem_clock_mhz"`
	UtilGPUPct    int      `json:"util_gpu_pct"`
	UtilMemoryPct int      `json:"util_mem_pct"`
	Throttle      []string `json:"throttle,omitempty"`
	Missing       []string `json:"missing,omitempty"`
}

// Snapshot is the state of every GPU of a system.
type Snapshot struct {
	Driver string `json:"driver"`
	CUDA   string `json:"cuda"`
	GPUs   []GPU  `json:"gpus"`
}

// Read takes a snapshot of sys. A field that fails is recorded in
// GPU.Missing; only failing to count or open devices is an error.
func Read(sys System) (Snapshot, error) {
	var s Snapshot
	s.Driver, _ = sys.DriverVersion()
	s.CUDA, _ = sys.CUDAVersion()
	n, err := sys.Count()
	if err != nil {
		return s, fmt.Errorf("telemetry: counting GPUs: %w", err)
	}
	for i := 0; i < n; i++ {
		d, err := sys.Device(i)
		if err != nil {
			return s, fmt.Errorf("telemetry: opening GPU %d: %w", i, err)
		}
		s.GPUs = append(s.GPUs, ReadDevice(i, d))
	}
	return s, nil
}

// ReadDevice reads every field of d, recording the ones that fail.
func ReadDevice(index int, d Device) GPU {
	g := GPU{Index: index}
	miss := func(field string, err error) {
		if err != nil {
			g.Missing = append(g.Missing, field)
		}
	}
	var err error
	g.Name, err = d.Name()
	miss("name", err)
	g.UUID, err = d.UUID()
	miss("uuid", err)
	g.MemoryTotal, g.MemoryUsed, err = d.Memory()
	miss("memory", err)
	g.PowerW, err = d.PowerDraw()
	miss("power", err)
	g.PowerLimitW, err = d.PowerLimit()
	miss("power_limit", err)
	g.EnergyJ, err = d.TotalEnergy()
	miss("energy", err)
	g.TemperatureC, err = d.Temperature()
	miss("temperature", err)
	g.SMClockMHz, g.MemClockMHz, err = d.Clocks()
	miss("clocks", err)
	g.UtilGPUPct, g.UtilMemoryPct, err = d.Utilization()
	miss("utilization", err)
	g.Throttle, err = d.ThrottleReasons()
	miss("throttle", err)
	return g
}
