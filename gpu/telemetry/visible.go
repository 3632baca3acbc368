package telemetry

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// VisibleEnv is the variable through which CUDA hides and reorders GPUs.
const VisibleEnv = "CUDA_VISIBLE_DEVICES"

// CUDADevices maps CUDA's device ordinals to NVML's device indices:
// CUDA's device i is NVML's device CUDADevices(...)[i]. With
// CUDA_VISIBLE_DEVICES=2,0 CUDA's device 0 is NVML's device 2, and energy
// read from NVML's device 0 would be another card's.
//
// visible is CUDA_VISIBLE_DEVICES and set whether it is set at all (unset:
// every GPU, in NVML's order; set and empty: none). Its entries are read
// as CUDA reads them: comma-separated, each a device index or a GPU UUID
// ("GPU-8e6a…", or a prefix of one that names a single GPU); the list
// ends at the first entry that names no device or one already named. GPUs
// are matched by the UUID NVML reports; index entries are taken in NVML's
// order, which is CUDA's with CUDA_DEVICE_ORDER=PCI_BUS_ID and, on a
// machine of identical GPUs, its default order too (give UUIDs where it
// is not). A MIG instance ("MIG-…") is an error: NVML's counters are the
// whole card's.
func CUDADevices(sys System, visible string, set bool) ([]int, error) {
	uuids, err := deviceUUIDs(sys)
	if err != nil {
		return nil, err
	}
	if !set {
		all := make([]int, len(uuids))
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	var out []int
	seen := map[int]bool{}
	for _, e := range strings.Split(visible, ",") {
		e = strings.TrimSpace(e)
		if strings.HasPrefix(e, "MIG-") {
			return nil, fmt.Errorf("telemetry: %s=%s: MIG instance %s: energy is measured per card, not per instance",
				VisibleEnv, visible, e)
		}
		i := lookupVisible(e, uuids)
		if i < 0 || seen[i] {
			break
		}
		seen[i] = true
		out = append(out, i)
	}
	return out, nil
}

// lookupVisible is the NVML index one CUDA_VISIBLE_DEVICES entry names,
// or -1.
func lookupVisible(e string, uuids []string) int {
	if e == "" {
		return -1
	}
	if n, err := strconv.Atoi(e); err == nil {
		if n < 0 || n >= len(uuids) {
			return -1
		}
		return n
	}
	found := -1
	for i, u := range uuids {
		if u != "" && strings.HasPrefix(u, e) {
			if found >= 0 {
				return -1 // a prefix of two UUIDs names neither
			}
			found = i
		}
	}
	return found
}

// deviceUUIDs are the UUIDs of sys's devices in NVML's order; "" for a
// device that does not report one.
func deviceUUIDs(sys System) ([]string, error) {
	n, err := sys.Count()
	if err != nil {
		return nil, fmt.Errorf("telemetry: counting GPUs: %w", err)
	}
	uuids := make([]string, n)
	for i := range n {
		d, err := sys.Device(i)
		if err != nil {
			return nil, fmt.Errorf("telemetry: opening GPU %d: %w", i, err)
		}
		uuids[i], _ = d.UUID()
	}
	return uuids, nil
}

// NVMLIndex is the NVML index of CUDA's device ordinal in this process
// (CUDADevices with this process's CUDA_VISIBLE_DEVICES). The error says
// how many devices CUDA sees when ordinal is not one of them.
func NVMLIndex(sys System, ordinal int) (int, error) {
	visible, set := os.LookupEnv(VisibleEnv)
	devs, err := CUDADevices(sys, visible, set)
	if err != nil {
		return 0, err
	}
	if ordinal < 0 || ordinal >= len(devs) {
		where := fmt.Sprintf("NVML sees %d GPUs", len(devs))
		if set {
			where = fmt.Sprintf("%s=%s leaves CUDA %d GPUs", VisibleEnv, visible, len(devs))
		}
		return 0, fmt.Errorf("telemetry: CUDA device %d: %s", ordinal, where)
	}
	return devs[ordinal], nil
}

// VisibleNVML are the NVML indices of the GPUs this process's
// CUDA_VISIBLE_DEVICES lets CUDA see (every GPU when it is unset).
func VisibleNVML(sys System) ([]int, error) {
	visible, set := os.LookupEnv(VisibleEnv)
	return CUDADevices(sys, visible, set)
}
