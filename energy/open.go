package energy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

// OpenDevice opens the energy counter of the device a backend runs on,
// named as backends name themselves: "cpu" is the RAPL counters of all CPU
// packages combined; "gpu:N" is GPU N's NVML counter. close releases what
// it opened (an NVML session) and is never nil. When the device has no
// counter the error says why, in words fit for a report's note.
//
// This is the one place that maps a device to its source: bench, the
// PTQ/QAT experiment and any other job measuring joules call it.
func OpenDevice(device string) (src Source, close func(), err error) {
	return openDevice(device, telemetry.Open, RAPLRoot)
}

func openDevice(device string, openNVML func() (telemetry.System, error), raplRoot string) (Source, func(), error) {
	nop := func() {}
	if device == "cpu" || strings.HasPrefix(device, "cpu:") {
		srcs, err := RAPLSources(raplRoot)
		if err != nil {
			return nil, nop, err
		}
		return Combine(srcs...), nop, nil
	}
	idx, ok := strings.CutPrefix(device, "gpu:")
	if !ok {
		if device != "gpu" {
			return nil, nop, fmt.Errorf("energy: no energy counter for device %q (want cpu or gpu:N)", device)
		}
		idx = "0"
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return nil, nop, fmt.Errorf("energy: device %q: want gpu:N with N a GPU index", device)
	}
	sys, err := openNVML()
	if err != nil {
		return nil, nop, err
	}
	srcs, err := GPUSources(sys)
	if err != nil || i >= len(srcs) {
		sys.Close()
		if err == nil {
			err = fmt.Errorf("NVML sees %d GPUs", len(srcs))
		}
		return nil, nop, fmt.Errorf("energy: no NVML energy counter for %s: %w", device, err)
	}
	return srcs[i], func() { sys.Close() }, nil
}

// OpenSources opens every source a whole-machine measurement (quantkit
// profile) reads: the GPUs gpu selects ("all", "none", or the index N NVML
// gives one, as nvidia-smi numbers them) and the CPU packages (RAPL, one
// source each). unavailable says, in words fit for a report, why sources
// are missing (no driver, no GPU, RAPL unreadable); only a gpu that is
// malformed or names a GPU NVML does not have is an error. close releases
// what it opened and is never nil.
func OpenSources(gpu string) (srcs []Source, close func(), unavailable []string, err error) {
	return openSources(gpu, telemetry.Open, RAPLRoot)
}

func openSources(gpu string, openNVML func() (telemetry.System, error), raplRoot string) (
	srcs []Source, close func(), unavailable []string, err error) {
	close = func() {}
	index := -1
	switch gpu {
	case "all", "none":
	default:
		n, err := strconv.Atoi(gpu)
		if err != nil || n < 0 {
			return nil, close, nil, fmt.Errorf("energy: GPU %q: want all, none or a GPU index", gpu)
		}
		index = n
	}
	if gpu != "none" {
		sys, err := openNVML()
		if err != nil {
			unavailable = append(unavailable, err.Error())
		} else {
			close = func() { sys.Close() }
			gpus, err := GPUSources(sys)
			switch {
			case err != nil:
				unavailable = append(unavailable, strings.TrimPrefix(err.Error(), "energy: "))
			case len(gpus) == 0:
				unavailable = append(unavailable, "no NVIDIA GPU found (NVML: 0 devices)")
			}
			if index >= 0 && err == nil {
				var picked []Source
				for _, g := range gpus {
					if name := g.Name(); name == "gpu:"+gpu || strings.HasPrefix(name, "gpu:"+gpu+" ") {
						picked = append(picked, g)
					}
				}
				if len(picked) == 0 {
					close()
					return nil, func() {}, nil, fmt.Errorf("energy: GPU %d: NVML sees %d GPUs", index, len(gpus))
				}
				gpus = picked
			}
			srcs = append(srcs, gpus...)
		}
	}
	cpus, err := RAPLSources(raplRoot)
	if err != nil {
		unavailable = append(unavailable, strings.TrimPrefix(err.Error(), "energy: "))
	}
	return append(srcs, cpus...), close, unavailable, nil
}
