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
