package energy

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

// RAPLRootEnv names a directory read instead of RAPLRoot (a host's
// powercap tree mounted into a container, or a test's fake tree).
const RAPLRootEnv = "QUANTKIT_RAPL_ROOT"

// RAPLRootDir is $QUANTKIT_RAPL_ROOT when set, else RAPLRoot.
func RAPLRootDir() string {
	if d := os.Getenv(RAPLRootEnv); d != "" {
		return d
	}
	return RAPLRoot
}

// OpenNVML starts NVML, or, when $QUANTKIT_FAKE_NVML names a JSON file,
// reads that instead (telemetry.OpenFile): the one switch that lets whole
// commands run on fake GPUs in tests.
func OpenNVML() (telemetry.System, error) {
	if path := os.Getenv(telemetry.FakeFileEnv); path != "" {
		return telemetry.OpenFile(path)
	}
	return telemetry.Open()
}

// OpenDevice opens the energy counter of the device a backend runs on,
// named as backends name themselves: "cpu" is the RAPL counters of all CPU
// packages combined; "gpu:N" is the NVML counter of CUDA's device N, found
// by UUID through CUDA_VISIBLE_DEVICES (telemetry.NVMLIndex: CUDA's device
// 0 is not NVML's device 0 when CUDA_VISIBLE_DEVICES reorders them), and
// named "gpu:M <name>" with M NVML's index, as nvidia-smi numbers it.
// close releases what it opened (an NVML session) and is never nil. When
// the device has no counter the error says why, in words fit for a
// report's note.
//
// This is the one place that maps a device to its source: bench, the
// PTQ/QAT experiment and any other job measuring joules call it.
func OpenDevice(device string) (src Source, close func(), err error) {
	return openDevice(device, OpenNVML, RAPLRootDir())
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
	ordinal, err := strconv.Atoi(idx)
	if err != nil || ordinal < 0 {
		return nil, nop, fmt.Errorf("energy: device %q: want gpu:N with N a GPU index", device)
	}
	sys, err := openNVML()
	if err != nil {
		return nil, nop, err
	}
	src, err := cudaSource(sys, ordinal)
	if err != nil {
		sys.Close()
		return nil, nop, fmt.Errorf("energy: no NVML energy counter for %s: %w", device, err)
	}
	return src, func() { sys.Close() }, nil
}

// cudaSource is the source of CUDA's device ordinal.
func cudaSource(sys telemetry.System, ordinal int) (Source, error) {
	i, err := telemetry.NVMLIndex(sys, ordinal)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "telemetry: "))
	}
	d, err := sys.Device(i)
	if err != nil {
		return nil, fmt.Errorf("opening GPU %d: %w", i, err)
	}
	name, _ := d.Name()
	return GPUSource(i, d, name), nil
}

// OpenSources opens every source a whole-machine measurement (quantkit
// profile) reads: the GPUs gpu selects and the CPU packages (RAPL, one
// source each). gpu is "all" (every GPU NVML sees), "visible" (those
// CUDA_VISIBLE_DEVICES lets a command started from here see, matched by
// UUID: every GPU when it is unset), "none", an index N as NVML and
// nvidia-smi number the GPUs, or a GPU's UUID (or a prefix that names one).
// unavailable says, in words fit for a report, why sources are missing (no
// driver, no GPU, RAPL unreadable) or, for "visible", why every GPU is
// measured instead (CUDA_VISIBLE_DEVICES names a MIG instance); only a gpu
// that is malformed or names a GPU NVML does not have is an error. close releases what it opened and
// is never nil.
func OpenSources(gpu string) (srcs []Source, close func(), unavailable []string, err error) {
	return openSources(gpu, OpenNVML, RAPLRootDir())
}

func openSources(gpu string, openNVML func() (telemetry.System, error), raplRoot string) (
	srcs []Source, close func(), unavailable []string, err error) {
	close = func() {}
	switch n, err := strconv.Atoi(gpu); {
	case gpu == "all", gpu == "none", gpu == "visible", strings.HasPrefix(gpu, "GPU-"):
	case err != nil || n < 0:
		return nil, close, nil, fmt.Errorf("energy: GPU %q: want all, visible, none, a GPU index or a GPU UUID", gpu)
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
			if gpu != "all" && err == nil {
				picked, err := pickGPUs(sys, gpus, gpu)
				switch {
				case err != nil && gpu == "visible":
					// The default must not stop the command: every GPU
					// is measured, the one that works among them.
					unavailable = append(unavailable, strings.TrimPrefix(err.Error(), "telemetry: ")+"; measuring every GPU")
				case err != nil:
					close()
					return nil, func() {}, nil, err
				default:
					gpus = picked
				}
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

// pickGPUs are the sources of gpus (NVML's, in its order) that gpu
// ("visible", an NVML index or a UUID) selects.
func pickGPUs(sys telemetry.System, gpus []Source, gpu string) ([]Source, error) {
	var idx []int
	var err error
	switch {
	case gpu == "visible":
		if idx, err = telemetry.VisibleNVML(sys); err != nil {
			return nil, err
		}
	case strings.HasPrefix(gpu, "GPU-"):
		// A UUID or a prefix of one, read as CUDA reads one entry.
		if idx, err = telemetry.CUDADevices(sys, gpu, true); err == nil && len(idx) == 0 {
			err = fmt.Errorf("energy: GPU %s: NVML has no GPU of that UUID (or more than one begin with it)", gpu)
		}
		if err != nil {
			return nil, err
		}
	default:
		n, _ := strconv.Atoi(gpu)
		if n >= len(gpus) {
			return nil, fmt.Errorf("energy: GPU %d: NVML sees %d GPUs", n, len(gpus))
		}
		idx = []int{n}
	}
	picked := make([]Source, len(idx))
	for k, i := range idx {
		picked[k] = gpus[i]
	}
	return picked, nil
}
