package bench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/energy"
)

// EnergyOptions turn on the energy measurement of every kernel: after its
// timing, each kernel runs again for a window of at least Window.MinWindow
// between two readings of Source's energy counter (see energy.Measure).
type EnergyOptions struct {
	Source energy.Source
	Window energy.Options
	// IdleW is Source's idle power, measured once before the run
	// (energy.IdlePower), for the idle-subtracted figures.
	IdleW float64
}

// EnergyResult is the energy of one kernel at one size.
type EnergyResult struct {
	Source        string        `json:"source"`
	Method        energy.Method `json:"method"`
	WindowSeconds float64       `json:"window_seconds"`
	Calls         int           `json:"calls"`
	AvgPowerW     float64       `json:"avg_power_w"`
	PeakPowerW    float64       `json:"peak_power_w"`
	IdleW         float64       `json:"idle_w"`
	// JoulesPerCall is the gross energy of one call; NetJoulesPerCall
	// subtracts the idle power over the call's time.
	JoulesPerCall    float64 `json:"joules_per_call"`
	NetJoulesPerCall float64 `json:"net_joules_per_call"`
	// OpsPerJoule is arithmetic operations (GEMM) or bytes moved (memory
	// kernels) per gross joule; NetOpsPerJoule per idle-subtracted joule.
	OpsPerJoule    float64 `json:"ops_per_joule"`
	NetOpsPerJoule float64 `json:"net_ops_per_joule"`
	// EnergyRatioVsFP32 is, for an INT8 GEMM, its gross energy per
	// operation over the FP32 GEMM's at the same size.
	EnergyRatioVsFP32 float64 `json:"energy_ratio_vs_fp32,omitempty"`
	// PeakMemoryBytes is the most device memory in use during the window.
	PeakMemoryBytes uint64 `json:"peak_memory_bytes,omitempty"`
	Note            string `json:"note,omitempty"`
}

// measureKernel times run (one call, queued on b) and, when eo is set,
// measures its energy; work is opsPerCall operations (or bytes) per call.
func measureKernel(b backend.Backend, t Timing, eo *EnergyOptions, run func() error, opsPerCall float64) (sec float64, reps int, e *EnergyResult, err error) {
	sec, reps, err = measureOn(b, t, run)
	if err != nil || eo == nil || eo.Source == nil {
		return sec, reps, nil, err
	}
	w, err := energy.Measure(eo.Source, eo.Window, eo.IdleW, func(n int) error {
		for range n {
			if err := run(); err != nil {
				return err
			}
		}
		return b.Synchronize()
	})
	if err != nil {
		return sec, reps, nil, err
	}
	e = &EnergyResult{Source: w.Source, Method: w.Method, WindowSeconds: w.Seconds, Calls: w.Calls,
		AvgPowerW: w.AvgPowerW, PeakPowerW: w.PeakPowerW, IdleW: w.IdleW,
		JoulesPerCall: w.PerCall(), NetJoulesPerCall: w.NetPerCall(), Note: w.Note}
	if e.JoulesPerCall > 0 {
		e.OpsPerJoule = opsPerCall / e.JoulesPerCall
	}
	if e.NetJoulesPerCall > 0 {
		e.NetOpsPerJoule = opsPerCall / e.NetJoulesPerCall
	}
	for _, s := range w.Samples {
		e.PeakMemoryBytes = max(e.PeakMemoryBytes, s.MemoryUsed)
	}
	return sec, reps, e, nil
}

// OpenEnergy prepares the energy measurement of the kernels of device (a
// backend's name: "cpu", "gpu:N"): it opens the device's counter
// (energy.OpenDevice) and measures its idle power for idle (0: not). When
// the device has no counter it returns nil and the reason, for
// Report.EnergyNote. close releases the source and is never nil.
func OpenEnergy(device string, window energy.Options, idle time.Duration, log io.Writer) (eo *EnergyOptions, note string, close func()) {
	src, close, err := energy.OpenDevice(device)
	if err != nil {
		return nil, strings.TrimPrefix(err.Error(), "energy: "), close
	}
	eo, note = NewEnergy(src, window, idle, log)
	return eo, note, close
}

// NewEnergy is the energy measurement with src: its idle power measured
// for idle first (0: not), which log, when set, is told of (it takes that
// long). An idle power that cannot be measured leaves IdleW 0 and says why
// in note.
func NewEnergy(src energy.Source, window energy.Options, idle time.Duration, log io.Writer) (eo *EnergyOptions, note string) {
	eo = &EnergyOptions{Source: src, Window: window}
	if idle > 0 {
		if log != nil {
			fmt.Fprintf(log, "measuring the idle power of %s for %v\n", src.Name(), idle)
		}
		w, err := energy.IdlePower(src, idle, window.Interval)
		if err != nil {
			return eo, fmt.Sprintf("idle power of %s not measured: %v", src.Name(), err)
		}
		eo.IdleW = w
	}
	return eo, ""
}
