package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/cpu"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/gpu/telemetry"
)

var devicesJSONFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"}

var devicesCommand = &cli.Command{
	Name:  "devices",
	Usage: "list the CPU and NVIDIA GPUs quantkit can use",
	Description: "Prints the CPU model, its cores and SIMD features, the compute backends in this\n" +
		"build, and every NVIDIA GPU that NVML reports (name, memory, power, clocks). Without\n" +
		"an NVIDIA driver it says so and still exits 0.",
	Flags:  []cli.Flag{devicesJSONFlag},
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
	Model    string   `json:"model"`
	Threads  int      `json:"threads"`
	Arch     string   `json:"arch"`
	Features []string `json:"features"`
}

func simdFeatures() []string {
	var fs []string
	add := func(ok bool, name string) {
		if ok {
			fs = append(fs, name)
		}
	}
	switch runtime.GOARCH {
	case "amd64", "386":
		x := cpu.X86
		add(x.HasSSE41, "sse4.1")
		add(x.HasSSE42, "sse4.2")
		add(x.HasAVX, "avx")
		add(x.HasAVX2, "avx2")
		add(x.HasFMA, "fma")
		add(x.HasAVX512F, "avx512f")
		add(x.HasAVX512BW, "avx512bw")
		add(x.HasAVX512VL, "avx512vl")
		add(x.HasAVX512VNNI, "avx512vnni")
		add(x.HasAVX512BF16, "avx512bf16")
		add(x.HasAVXVNNI, "avxvnni")
	case "arm64":
		a := cpu.ARM64
		add(a.HasASIMD, "neon")
		add(a.HasASIMDDP, "dotprod")
		add(a.HasSVE, "sve")
		add(a.HasSVE2, "sve2")
		add(a.HasI8MM, "i8mm")
	}
	return fs
}

func devicesReport() DevicesReport {
	r := DevicesReport{
		CPU:      CPUInfo{Model: bench.CPUModel(), Threads: runtime.NumCPU(), Arch: runtime.GOARCH, Features: simdFeatures()},
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
	r := devicesReport()
	if c.Bool(devicesJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	writeDevices(c.App.Writer, r)
	return nil
}

func writeDevices(w io.Writer, r DevicesReport) {
	fmt.Fprintf(w, "CPU: %s (%d threads, %s)\n", r.CPU.Model, r.CPU.Threads, r.CPU.Arch)
	fmt.Fprintf(w, "SIMD: %s\n", orNone(strings.Join(r.CPU.Features, " ")))
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

func orNone(s string) string {
	if s == "" {
		return "none detected"
	}
	return s
}
