package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/gpu/telemetry"
	"github.com/quantkit/quantkit/internal/cpuinfo"
)

var devicesCommand = &cli.Command{
	Name:  "devices",
	Usage: "list the CPU and NVIDIA GPUs quantkit can use",
	Description: "Prints the CPU model, its cores, the SIMD extensions quantkit's CPU kernels use on it,\n" +
		"the compute backends in this build, and every NVIDIA GPU that NVML reports (name,\n" +
		"memory, power, clocks). Without an NVIDIA driver it says so and still exits 0.",
	Flags:  []cli.Flag{jsonFlag, jsonOutFlag},
	Action: runDevices,
}

// DevicesReport is what `quantkit devices --json` prints.
type DevicesReport struct {
	CPU      CPUInfo             `json:"cpu"`
	Backends []string            `json:"backends"`
	GPU      *telemetry.Snapshot `json:"gpu,omitempty"`
	GPUError string              `json:"gpu_error,omitempty"`
}

// CPUInfo describes the host processor.
type CPUInfo struct {
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

func devicesReport() DevicesReport {
	info := cpuinfo.Read()
	r := DevicesReport{
		CPU: CPUInfo{Model: info.Model, Cores: info.Cores, Threads: runtime.NumCPU(), Arch: runtime.GOARCH,
			Features: cpu.KernelFeatures(), ProcessorFeatures: cpu.ProcessorFeatures()},
		Backends: backend.Kinds(),
	}
	sys, err := telemetry.Open()
	if err != nil {
		r.GPUError = err.Error()
		return r
	}
	defer sys.Close()
	return addGPUs(r, sys)
}

// addGPUs adds the telemetry of sys's GPUs to r.
func addGPUs(r DevicesReport, sys telemetry.System) DevicesReport {
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

func runDevices(c *cli.Context) error {
	if err := checkJSONOut(c); err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	r := devicesReport()
	if err := report(c, r, func(w io.Writer) error { writeDevices(w, r); return nil }); err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	return nil
}

func writeDevices(w io.Writer, r DevicesReport) {
	cores := ""
	if r.CPU.Cores > 0 {
		cores = fmt.Sprintf("%d cores, ", r.CPU.Cores)
	}
	fmt.Fprintf(w, "CPU: %s (%s%d threads, %s)\n", r.CPU.Model, cores, r.CPU.Threads, r.CPU.Arch)
	simd := strings.Join(r.CPU.Features, " ")
	if simd == "" {
		simd = "none: the kernels run their pure-Go versions"
	}
	fmt.Fprintf(w, "SIMD kernels: %s\n", simd)
	if !slices.Equal(r.CPU.Features, r.CPU.ProcessorFeatures) {
		fmt.Fprintf(w, "  (the processor has %s; QUANTKIT_NOASM turns the assembly kernels off)\n",
			strings.Join(r.CPU.ProcessorFeatures, " "))
	}
	fmt.Fprintf(w, "backends in this build: %s\n", strings.Join(r.Backends, ", "))
	if r.GPU != nil && len(r.GPU.GPUs) > 0 {
		fmt.Fprintf(w, "NVIDIA driver %s, CUDA %s\n", r.GPU.Driver, r.GPU.CUDA)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
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
				fmt.Fprintf(w, "GPU %d does not report: %s\n", g.Index, strings.Join(g.Missing, ", "))
			}
		}
	}
	if r.GPUError != "" {
		fmt.Fprintln(w, r.GPUError)
	}
}
