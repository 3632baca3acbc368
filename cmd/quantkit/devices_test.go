package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/gpu/telemetry"
	"github.com/quantkit/quantkit/internal/cpuinfo"
	"github.com/quantkit/quantkit/internal/inputerr"
)

func TestDevicesTable(t *testing.T) {
	fake := &telemetry.Fake{Driver: "580.65.06", CUDA: "13.0", Devices: []*telemetry.FakeDevice{{
		NameV: "NVIDIA H100 80GB HBM3", UUIDV: "GPU-1", MemTotal: 80 << 30, MemUsed: 2 << 30,
		PowerFn: func() float64 { return 72 }, PowerLimitV: 700, EnergyFn: func() float64 { return 123456 },
		TempV: 33, SMMHz: 1980, MemMHz: 2619, UtilGPU: 5, ThrottleV: []string{"gpu_idle"},
	}, {NameV: "old card", MemTotal: 4 << 30}}}
	r := addGPUs(DevicesReport{CPU: CPUInfo{Model: "test cpu", Threads: 4}}, fake)
	var out bytes.Buffer
	writeDevices(&out, r)
	for _, want := range []string{"NVIDIA driver 580.65.06, CUDA 13.0", "NVIDIA H100 80GB HBM3", "2.0/80.0 GiB", "72/700 W",
		"123.5 kJ", "33 °C", "1980/2619 MHz", "gpu_idle", "GPU 1 does not report: power, energy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("devices table lacks %q:\n%s", want, out.String())
		}
	}
}

// The SIMD line names what the kernels use, and what the processor has
// beyond it when the two differ.
func TestDevicesSIMD(t *testing.T) {
	var out bytes.Buffer
	writeDevices(&out, DevicesReport{CPU: CPUInfo{Model: "m", Cores: 8, Threads: 16, Arch: "amd64",
		Features: []string{}, ProcessorFeatures: []string{"avx512", "avx2-fma"}}})
	for _, want := range []string{"CPU: m (8 cores, 16 threads, amd64)", "SIMD kernels: none: the kernels run their pure-Go versions",
		"the processor has avx512 avx2-fma"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	writeDevices(&out, DevicesReport{CPU: CPUInfo{Model: "m", Threads: 2, Features: []string{"avx2-fma"},
		ProcessorFeatures: []string{"avx2-fma"}}})
	if s := out.String(); !strings.Contains(s, "SIMD kernels: avx2-fma\n") || strings.Contains(s, "processor has") {
		t.Errorf("kernels using all there is:\n%s", s)
	}
}

// --json prints JSON instead of the table; --json-out writes it to a file
// beside the table; the CPU's features are those the kernels dispatch to.
func TestDevicesJSON(t *testing.T) {
	out, err := run(t, "devices", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r DevicesReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !slices.Equal(r.CPU.Features, cpu.KernelFeatures()) || r.CPU.Model != cpuinfo.Read().Model || r.CPU.Threads < 1 {
		t.Errorf("cpu %+v; kernels use %v", r.CPU, cpu.KernelFeatures())
	}
	path := filepath.Join(t.TempDir(), "d.json")
	out, err = run(t, "devices", "--json-out", path)
	if err != nil || !strings.HasPrefix(out, "CPU: ") {
		t.Fatalf("--json-out: %v, stdout:\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	var f DevicesReport
	if err != nil || json.Unmarshal(b, &f) != nil || f.CPU.Model != r.CPU.Model {
		t.Errorf("--json-out wrote %q (%v)", b, err)
	}
	if _, err := run(t, "devices", "--json-out", filepath.Join(t.TempDir(), "d.txt")); !errors.Is(err, inputerr.ErrInput) {
		t.Errorf("--json-out d.txt: %v, want bad input", err)
	}
}
