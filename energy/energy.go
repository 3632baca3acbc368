// Package energy measures the energy of work honestly: a device's
// cumulative energy counter read before and after a synchronized window
// of repeated work (or, where there is no counter, sampled power
// integrated over the window, and said so), with the idle power measured
// separately so that gross and idle-subtracted energy can both be
// reported, and power, clocks, temperature and throttle reasons sampled in
// the background for the curve.
//
// Sources: NVIDIA GPUs through gpu/telemetry (NVML's total-energy counter,
// millijoules since the driver loaded), and the CPU package through Linux
// RAPL (/sys/class/powercap/intel-rapl*, microjoules, wrapping at
// max_energy_range_uj). Tests use FakeSource.
package energy

import (
	"errors"
	"time"
)

// ErrNotSupported says a source cannot read a quantity (a GPU without an
// energy counter, RAPL without power).
var ErrNotSupported = errors.New("energy: not supported")

// Source is one device whose energy can be measured. Its methods may be
// called from several goroutines at once (Measure reads the counter while
// a Sampler reads power and state).
type Source interface {
	// Name says what is measured: "gpu:0 NVIDIA H100 80GB HBM3",
	// "cpu package-0 (RAPL)".
	Name() string
	// Energy reads the cumulative energy counter in joules. It may wrap
	// (WrapJ) or reset (driver reload); ErrNotSupported when there is none.
	Energy() (joules float64, err error)
	// WrapJ is the value at which Energy wraps to 0, or 0 when it does not.
	WrapJ() float64
	// Power reads the instantaneous (or driver-averaged) power in watts;
	// ErrNotSupported when there is none.
	Power() (watts float64, err error)
	// State reads what else is worth recording beside power; fields a
	// source does not have are left zero.
	State() State
}

// State is a device's condition at one moment.
type State struct {
	SMClockMHz   int    `json:"sm_clock_mhz,omitempty"`
	MemClockMHz  int    `json:"mem_clock_mhz,omitempty"`
	TemperatureC int    `json:"temperature_c,omitempty"`
	MemoryUsed   uint64 `json:"memory_used_bytes,omitempty"`
	UtilPct      int    `json:"util_pct,omitempty"`
	// Throttle names the active clock throttle reasons ("sw_power_cap",
	// "hw_thermal_slowdown", ...); empty when none or unknown.
	Throttle []string `json:"throttle,omitempty"`
}

// Sample is one reading of the background sampler.
type Sample struct {
	T      time.Duration `json:"t"` // since the sampler started
	PowerW float64       `json:"power_w"`
	// NoPower marks a sample whose power could not be read (or derived):
	// PowerW is 0 and means nothing. Integrate and the peak skip it.
	NoPower bool `json:"no_power,omitempty"`
	State
}

// Method says how a window's energy was obtained.
type Method string

const (
	// Counter: the device's energy counter before and after the window.
	Counter Method = "counter"
	// Sampled: no usable counter; sampled power integrated over the
	// window (trapezoids), less precise.
	Sampled Method = "sampled-power"
)

// Window is the energy of one synchronized window of work.
type Window struct {
	Source  string  `json:"source"`
	Method  Method  `json:"method"`
	Seconds float64 `json:"seconds"`
	Calls   int     `json:"calls"` // calls of the measured work in the window
	EnergyJ float64 `json:"energy_j"`
	// IdleW is the idle power measured before the window (0 when not
	// measured); NetEnergyJ = EnergyJ − IdleW·Seconds.
	IdleW      float64  `json:"idle_w"`
	NetEnergyJ float64  `json:"net_energy_j"`
	AvgPowerW  float64  `json:"avg_power_w"`
	PeakPowerW float64  `json:"peak_power_w"`
	Samples    []Sample `json:"samples,omitempty"`
	// Note says what was unusual: a counter reset, too few samples.
	Note string `json:"note,omitempty"`
}

// PerCall is the gross energy of one call in joules.
func (w Window) PerCall() float64 {
	if w.Calls == 0 {
		return 0
	}
	return w.EnergyJ / float64(w.Calls)
}

// NetPerCall is the idle-subtracted energy of one call in joules.
func (w Window) NetPerCall() float64 {
	if w.Calls == 0 {
		return 0
	}
	return w.NetEnergyJ / float64(w.Calls)
}

// Options control a measurement.
type Options struct {
	// MinWindow is the shortest window: work is repeated until it is
	// filled (default 2 s).
	MinWindow time.Duration
	// Interval is the background sampling period (default 100 ms).
	Interval time.Duration
	// KeepSamples keeps the power curve in Window.Samples.
	KeepSamples bool
}
