// Package devices describes the machine quantkit computes on, the report
// behind `quantkit devices`: the CPU (model, cores, the SIMD extensions
// the cpu package's kernels use on it), the compute backends registered
// in this build, and every NVIDIA GPU that NVML reports (gpu/telemetry).
// A machine without an NVIDIA driver is no error: the report says why it
// has no GPU.
package devices

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/cuda"
	"github.com/quantkit/quantkit/gpu/telemetry"
	"github.com/quantkit/quantkit/internal/cpuinfo"
)

// Report is what `quantkit devices --json` prints.
type Report struct {
	CPU      CPU                 `json:"cpu"`
	Backends []string            `json:"backends"`
	GPU      *telemetry.Snapshot `json:"gpu,omitempty"`
	GPUError string              `json:"gpu_error,omitempty"`
	// CUDAKernels is, in the CUDA build, what the embedded kernels hold
	// and which of their code each CUDA device runs.
	CUDAKernels *CUDAKernels `json:"cuda_kernels,omitempty"`
}

// CUDAKernels describes the CUDA build's kernels: the images of its
// fatbins and, per CUDA device (CUDA's numbering, which --device gpu:N
// uses), the code the driver runs there.
type CUDAKernels struct {
	Embedded string       `json:"embedded"` // "SASS sm_80 sm_86 sm_89 sm_90, PTX compute_80"
	Devices  []KernelCode `json:"devices,omitempty"`
	Error    string       `json:"error,omitempty"` // why the devices could not be listed
}

// KernelCode is the code one CUDA device runs.
type KernelCode struct {
	Index             int    `json:"index"`
	Name              string `json:"name"`
	ComputeCapability string `json:"compute_capability"` // "9.0"
	Code              string `json:"code"`               // "SASS sm_90", "PTX JIT from compute_80"
}

// CPU describes the host processor.
type CPU struct {
	Model   string `json:"model"`
	Cores   int    `json:"cores,omitempty"` // physical; 0: not known
	Threads int    `json:"threads"`
	Arch    string `json:"arch"`
	// Features are the SIMD extensions the CPU kernels use on this
	// machine (cpu.KernelFeatures); empty: their pure-Go versions.
	Features []string `json:"features"`
	// ProcessorFeatures are those of the extensions the kernels know that
	// the processor has: more than Features under QUANTKIT_NOASM.
	ProcessorFeatures []string `json:"processor_features"`
}

// Options say where the GPUs are read from.
type Options struct {
	// OpenGPUs opens the GPUs' telemetry; nil: telemetry.Open (NVML).
	// Read closes what it returns.
	OpenGPUs func() (telemetry.System, error)
	// CUDAKernels lists the CUDA devices and the code each runs (the CUDA
	// build sets it); nil: no CUDA kernels in this build.
	CUDAKernels func() ([]KernelCode, error)
}

// Read describes this machine. It does not fail: a GPU that cannot be
// read leaves the reason in Report.GPUError.
func Read(opt Options) Report {
	info := cpuinfo.Read()
	r := Report{
		CPU: CPU{Model: info.Model, Cores: info.Cores, Threads: runtime.NumCPU(), Arch: runtime.GOARCH,
			Features: cpu.KernelFeatures(), ProcessorFeatures: cpu.ProcessorFeatures()},
		Backends: backend.Kinds(),
	}
	if opt.CUDAKernels != nil {
		r.CUDAKernels = readKernels(opt.CUDAKernels)
	}
	open := opt.OpenGPUs
	if open == nil {
		open = telemetry.Open
	}
	sys, err := open()
	if err != nil {
		r.GPUError = err.Error()
		return r
	}
	defer sys.Close()
	snap, err := telemetry.Read(sys)
	if err != nil {
		r.GPUError = err.Error()
	}
	if len(snap.GPUs) == 0 && err == nil {
		r.GPUError = "no NVIDIA GPU found (NVML: 0 devices)"
	}
	r.GPU = &snap
	return r
}

// readKernels describes the embedded kernels and the devices list finds.
func readKernels(list func() ([]KernelCode, error)) *CUDAKernels {
	var sass []string
	for _, a := range cuda.SASSArchs() {
		sass = append(sass, fmt.Sprintf("sm_%d", a))
	}
	k := &CUDAKernels{Embedded: fmt.Sprintf("SASS %s, PTX compute_%d", strings.Join(sass, " "), cuda.PTXArch())}
	devs, err := list()
	k.Devices = devs
	if err != nil {
		k.Error = err.Error()
	}
	return k
}

// WriteTable writes r for people: the CPU and its SIMD kernels, the
// backends, a table of the GPUs and what each does not report, or why
// there is none.
func (r Report) WriteTable(w io.Writer) error {
	var b bytes.Buffer // written in one call, whose error is the table's
	cores := ""
	if r.CPU.Cores > 0 {
		cores = fmt.Sprintf("%d cores, ", r.CPU.Cores)
	}
	fmt.Fprintf(&b, "CPU: %s (%s%d threads, %s)\n", r.CPU.Model, cores, r.CPU.Threads, r.CPU.Arch)
	simd := strings.Join(r.CPU.Features, " ")
	if simd == "" {
		simd = "none: the kernels run their pure-Go versions"
	}
	fmt.Fprintf(&b, "SIMD kernels: %s\n", simd)
	if !slices.Equal(r.CPU.Features, r.CPU.ProcessorFeatures) {
		fmt.Fprintf(&b, "  (the processor has %s; QUANTKIT_NOASM turns the assembly kernels off)\n",
			strings.Join(r.CPU.ProcessorFeatures, " "))
	}
	fmt.Fprintf(&b, "backends in this build: %s\n", strings.Join(r.Backends, ", "))
	if r.GPU != nil && len(r.GPU.GPUs) > 0 {
		fmt.Fprintf(&b, "NVIDIA driver %s, CUDA %s\n", r.GPU.Driver, r.GPU.CUDA)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "GPU\tname\tmemory used/total\tpower/limit\tenergy counter\ttemp\tSM/mem clock\tutil\tthrottle")
		for _, g := range r.GPU.GPUs {
			energy := fmt.Sprintf("%.1f kJ", g.EnergyJ/1e3)
			if slices.Contains(g.Missing, "energy") {
				energy = "none"
			}
			throttle := strings.Join(g.Throttle, ",")
			if throttle == "" {
				throttle = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%.1f/%.1f GiB\t%.0f/%.0f W\t%s\t%d °C\t%d/%d MHz\t%d %%\t%s\n", g.Index, g.Name,
				float64(g.MemoryUsed)/(1<<30), float64(g.MemoryTotal)/(1<<30), g.PowerW, g.PowerLimitW, energy,
				g.TemperatureC, g.SMClockMHz, g.MemClockMHz, g.UtilGPUPct, throttle)
		}
		tw.Flush()
		for _, g := range r.GPU.GPUs {
			if len(g.Missing) > 0 {
				fmt.Fprintf(&b, "GPU %d does not report: %s\n", g.Index, strings.Join(g.Missing, ", "))
			}
		}
	}
	if r.GPUError != "" {
		fmt.Fprintln(&b, r.GPUError)
	}
	if k := r.CUDAKernels; k != nil {
		fmt.Fprintf(&b, "CUDA kernels in this build: %s\n", k.Embedded)
		for _, d := range k.Devices {
			fmt.Fprintf(&b, "  gpu:%d %s (compute capability %s) runs %s\n", d.Index, d.Name, d.ComputeCapability, d.Code)
		}
		if k.Error != "" {
			fmt.Fprintf(&b, "  %s\n", k.Error)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
