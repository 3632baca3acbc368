package devices

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/gpu/telemetry"
	"github.com/quantkit/quantkit/internal/cpuinfo"
)

func fakeGPUs() *telemetry.Fake {
	return &telemetry.Fake{Driver: "580.65.06", CUDA: "13.0", Devices: []*telemetry.FakeDevice{{
		NameV: "NVIDIA H100 80GB HBM3", UUIDV: "GPU-1", MemTotal: 80 << 30, MemUsed: 2 << 30,
		PowerFn: func() float64 { return 72 }, PowerLimitV: 700, EnergyFn: func() float64 { return 123456 },
		TempV: 33, SMMHz: 1980, MemMHz: 2619, UtilGPU: 5, ThrottleV: []string{"gpu_idle"},
	}, {NameV: "old card", MemTotal: 4 << 30}}}
}

func opener(sys telemetry.System, err error) Options {
	return Options{OpenGPUs: func() (telemetry.System, error) { return sys, err }}
}

// Read describes the CPU as cpuinfo, runtime and the cpu package do, and
// every GPU the system has, closing it.
func TestRead(t *testing.T) {
	fake := fakeGPUs()
	r := Read(opener(fake, nil))
	info := cpuinfo.Read()
	if r.CPU.Model != info.Model || r.CPU.Cores != info.Cores || r.CPU.Threads != runtime.NumCPU() ||
		r.CPU.Arch != runtime.GOARCH || !slices.Equal(r.CPU.Features, cpu.KernelFeatures()) ||
		!slices.Equal(r.CPU.ProcessorFeatures, cpu.ProcessorFeatures()) {
		t.Errorf("cpu %+v", r.CPU)
	}
	if !slices.Contains(r.Backends, "cpu") {
		t.Errorf("backends %v lack cpu", r.Backends)
	}
	if r.GPU == nil || len(r.GPU.GPUs) != 2 || r.GPU.Driver != "580.65.06" || r.GPU.GPUs[0].PowerW != 72 ||
		r.GPU.GPUs[1].Name != "old card" || r.GPUError != "" {
		t.Errorf("gpu %+v, error %q", r.GPU, r.GPUError)
	}
	if !fake.Closed {
		t.Error("the GPUs' system was not closed")
	}
}

// No driver, or a driver without GPUs, is a reason, not an error.
func TestReadNoGPU(t *testing.T) {
	r := Read(opener(nil, errors.New("NVML: driver not loaded")))
	if r.GPU != nil || r.GPUError != "NVML: driver not loaded" {
		t.Errorf("no driver: gpu %+v, error %q", r.GPU, r.GPUError)
	}
	r = Read(opener(&telemetry.Fake{}, nil))
	if r.GPU == nil || len(r.GPU.GPUs) != 0 || r.GPUError != "no NVIDIA GPU found (NVML: 0 devices)" {
		t.Errorf("no devices: gpu %+v, error %q", r.GPU, r.GPUError)
	}
}

func TestWriteTable(t *testing.T) {
	r := Read(opener(fakeGPUs(), nil))
	r.CPU = CPU{Model: "test cpu", Threads: 4}
	var out bytes.Buffer
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NVIDIA driver 580.65.06, CUDA 13.0", "NVIDIA H100 80GB HBM3", "2.0/80.0 GiB", "72/700 W",
		"123.5 kJ", "33 °C", "1980/2619 MHz", "gpu_idle", "GPU 1 does not report: power, energy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("devices table lacks %q:\n%s", want, out.String())
		}
	}
}

// The SIMD line names what the kernels use, and what the processor has
// beyond it when the two differ.
func TestWriteTableSIMD(t *testing.T) {
	var out bytes.Buffer
	Report{CPU: CPU{Model: "m", Cores: 8, Threads: 16, Arch: "amd64",
		Features: []string{}, ProcessorFeatures: []string{"avx512", "avx2-fma"}}}.WriteTable(&out)
	for _, want := range []string{"CPU: m (8 cores, 16 threads, amd64)", "SIMD kernels: none: the kernels run their pure-Go versions",
		"the processor has avx512 avx2-fma"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	Report{CPU: CPU{Model: "m", Threads: 2, Features: []string{"avx2-fma"},
		ProcessorFeatures: []string{"avx2-fma"}}}.WriteTable(&out)
	if s := out.String(); !strings.Contains(s, "SIMD kernels: avx2-fma\n") || strings.Contains(s, "processor has") {
		t.Errorf("kernels using all there is:\n%s", s)
	}
}

// Without GPUs, the table ends with the reason.
func TestWriteTableNoGPU(t *testing.T) {
	var out bytes.Buffer
	Report{CPU: CPU{Model: "m", Threads: 1, Arch: "arm64"}, Backends: []string{"cpu"}, GPUError: "no driver"}.WriteTable(&out)
	want := "CPU: m (1 threads, arm64)\nSIMD kernels: none: the kernels run their pure-Go versions\n" +
		"backends in this build: cpu\nno driver\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// The CUDA build lists the fatbins' images and the code each device runs;
// a device list that fails still reports what is embedded.
func TestCUDAKernels(t *testing.T) {
	opt := opener(&telemetry.Fake{}, nil)
	if r := Read(opt); r.CUDAKernels != nil {
		t.Errorf("no CUDAKernels option, report %+v", r.CUDAKernels)
	}
	opt.CUDAKernels = func() ([]KernelCode, error) {
		return []KernelCode{{Index: 0, Name: "NVIDIA H100", ComputeCapability: "9.0", Code: "SASS sm_90"}}, nil
	}
	r := Read(opt)
	if r.CUDAKernels == nil || !strings.HasPrefix(r.CUDAKernels.Embedded, "SASS sm_80") ||
		!strings.HasSuffix(r.CUDAKernels.Embedded, ", PTX compute_80") || len(r.CUDAKernels.Devices) != 1 {
		t.Fatalf("kernels %+v", r.CUDAKernels)
	}
	var out bytes.Buffer
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "gpu:0 NVIDIA H100 (compute capability 9.0) runs SASS sm_90\n") {
		t.Errorf("table lacks the device's code:\n%s", out.String())
	}
	opt.CUDAKernels = func() ([]KernelCode, error) { return nil, errors.New("cuda: no device") }
	r = Read(opt)
	out.Reset()
	r.WriteTable(&out)
	if r.CUDAKernels.Error != "cuda: no device" || !strings.Contains(out.String(), "CUDA kernels in this build: SASS") {
		t.Errorf("failed list: %+v\n%s", r.CUDAKernels, out.String())
	}
}
