package telemetry

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func fourGPUs() *Fake {
	f := &Fake{}
	for i, u := range []string{"GPU-aa11", "GPU-bb22", "GPU-ab33", "GPU-cc44"} {
		f.Devices = append(f.Devices, &FakeDevice{NameV: fmt.Sprint("card ", i), UUIDV: u})
	}
	return f
}

// permutations of xs, every order.
func permutations(xs []int) [][]int {
	if len(xs) <= 1 {
		return [][]int{slices.Clone(xs)}
	}
	var out [][]int
	for i := range xs {
		rest := append(slices.Clone(xs[:i]), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]int{xs[i]}, p...))
		}
	}
	return out
}

// Every order of every subset, written as indices, as UUIDs and as a mix:
// CUDA's device i must be the card the i-th entry names.
func TestCUDADevicesPermutations(t *testing.T) {
	f := fourGPUs()
	for _, subset := range [][]int{{0}, {3}, {1, 2}, {0, 2, 3}, {0, 1, 2, 3}} {
		for _, p := range permutations(subset) {
			for style := range 3 {
				entries := make([]string, len(p))
				for k, i := range p {
					switch {
					case style == 0, style == 2 && k%2 == 0:
						entries[k] = fmt.Sprint(i)
					default:
						entries[k] = f.Devices[i].UUIDV
					}
				}
				env := strings.Join(entries, ",")
				got, err := CUDADevices(f, env, true)
				if err != nil || !slices.Equal(got, p) {
					t.Errorf("CUDA_VISIBLE_DEVICES=%s: got %v, %v; want %v", env, got, err, p)
				}
			}
		}
	}
}

func TestCUDADevicesRules(t *testing.T) {
	f := fourGPUs()
	for _, c := range []struct {
		env  string
		set  bool
		want []int
	}{
		{"", false, []int{0, 1, 2, 3}}, // unset: all, NVML's order
		{"", true, nil},                // set and empty: none
		{"GPU-cc", true, []int{3}},     // a unique prefix
		{"GPU-a,1", true, nil},         // a prefix of two UUIDs names neither; the list ends there
		{"2, GPU-bb22", true, []int{2, 1}},
		{"1,7,0", true, []int{1}},        // an index past the last device ends the list
		{"1,-1,0", true, []int{1}},       // as does a negative one
		{"3,GPU-cc44,0", true, []int{3}}, // and a repeat
		{"GPU-ffff", true, nil},
	} {
		got, err := CUDADevices(f, c.env, c.set)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("CUDA_VISIBLE_DEVICES=%q (set %v): got %v, %v; want %v", c.env, c.set, got, err, c.want)
		}
	}
	if _, err := CUDADevices(f, "MIG-1234", true); err == nil || !strings.Contains(err.Error(), "MIG") {
		t.Errorf("a MIG instance: %v, want an error naming it", err)
	}
}

func TestNVMLIndex(t *testing.T) {
	f := fourGPUs()
	t.Setenv(VisibleEnv, "GPU-cc44,GPU-aa11")
	for ordinal, want := range []int{3, 0} {
		if got, err := NVMLIndex(f, ordinal); err != nil || got != want {
			t.Errorf("CUDA device %d: NVML %d, %v; want %d", ordinal, got, err, want)
		}
	}
	if _, err := NVMLIndex(f, 2); err == nil || !strings.Contains(err.Error(), "leaves CUDA 2 GPUs") {
		t.Errorf("CUDA device 2 of 2: %v", err)
	}
	if got, err := VisibleNVML(f); err != nil || !slices.Equal(got, []int{3, 0}) {
		t.Errorf("VisibleNVML: %v, %v", got, err)
	}
}

func TestMillijoulesToJoules(t *testing.T) {
	for _, c := range []struct {
		mj   uint64
		want float64
	}{{0, 0}, {1, 0.001}, {1500, 1.5}, {123456789012, 123456789.012}, {1 << 53, 9007199254740.992}} {
		if got := MillijoulesToJoules(c.mj); got != c.want {
			t.Errorf("%d mJ: %v J, want %v", c.mj, got, c.want)
		}
	}
}
