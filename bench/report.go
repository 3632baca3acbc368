package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/cpuinfo"
)

// Result is one measured kernel at one size.
type Result struct {
	Op     string `json:"op"`          // "gemm"
	Impl   string `json:"impl"`        // "quantkit" or the baseline's name, e.g. "gonum"
	Device string `json:"device"`      // "cpu", "gpu:0"
	DType  string `json:"dtype"`       // "fp32", "int8"
	M      int    `json:"m,omitempty"` // GEMM sizes
	N      int    `json:"n,omitempty"`
	K      int    `json:"k,omitempty"`
	// Elements is the size of a memory-bound kernel's input.
	Elements int `json:"elements,omitempty"`
	// Seconds is the median time of one call.
	Seconds float64 `json:"seconds"`
	Reps    int     `json:"reps"`
	// OpsPerSecond counts a multiply and an add as two operations.
	OpsPerSecond float64 `json:"ops_per_second,omitempty"`
	// BytesPerSecond is bytes read plus bytes written per second, for
	// memory-bound kernels.
	BytesPerSecond float64 `json:"bytes_per_second,omitempty"`
	// SpeedupOverFP32 is this INT8 result's rate over quantkit's FP32 rate
	// at the same size (0 for FP32 rows).
	SpeedupOverFP32 float64 `json:"speedup_over_fp32,omitempty"`
	// VsBaseline is this rate over the baseline's FP32 rate at the same
	// size (0 for the baseline's own rows).
	VsBaseline float64 `json:"vs_baseline,omitempty"`
	// VsVendor is, for a GEMM, this rate over the best vendor library's
	// (cuBLAS, cuBLASLt) of the same precision (DType) at the same size;
	// 0 when no vendor GEMM of that precision ran.
	VsVendor float64 `json:"vs_vendor,omitempty"`
	// VsCopy is, for a memory-bound kernel, its rate over a
	// device-to-device copy's at the same size (op "copy"); 0 when none
	// ran.
	VsCopy float64 `json:"vs_copy,omitempty"`
	// Describe says how a vendor GEMM was called ("cublasLtMatmul,
	// CUDA_R_8I inputs, …, libcublasLt.so.12").
	Describe string `json:"describe,omitempty"`
	// Agreement is a vendor GEMM's result compared with quantkit's.
	Agreement *Agreement `json:"agreement,omitempty"`
	// Error says why a vendor GEMM did not run (its library refused the
	// size, or failed); the row has no timing then.
	Error string `json:"error,omitempty"`
	// Energy is set when the run measured energy.
	Energy *EnergyResult `json:"energy,omitempty"`
}

// Machine describes where a report was measured.
type Machine struct {
	CPU string `json:"cpu"`
	// CPUFeatures are the SIMD extensions quantkit's CPU kernels used
	// (cpu.KernelFeatures); empty: their pure-Go versions.
	CPUFeatures []string `json:"cpu_features"`
	Threads     int      `json:"threads"`
	GOOS        string   `json:"goos"`
	GOARCH      string   `json:"goarch"`
	Go          string   `json:"go"`
}

// Report is the value every benchmark returns.
type Report struct {
	Date    time.Time `json:"date"`
	Machine Machine   `json:"machine"`
	Device  string    `json:"device"`
	Results []Result  `json:"results"`
	// EnergyNote says why energy was not measured when it was asked for.
	EnergyNote string `json:"energy_note,omitempty"`
	// VendorNote says which vendor libraries were not found, when vendor
	// GEMMs were asked for ("cuBLAS not found (tried libcublas.so.13, …)").
	VendorNote string `json:"vendor_note,omitempty"`
}

// ThisMachine describes the machine the process runs on.
func ThisMachine() Machine {
	return Machine{CPU: cpuinfo.Read().Model, CPUFeatures: cpu.KernelFeatures(), Threads: runtime.GOMAXPROCS(0),
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version()}
}

// String is the machine line of the reports: "AMD EPYC, 2 threads,
// linux/amd64, go1.26.8, CPU kernels: avx2-fma" (generic for the pure-Go
// kernels).
func (m Machine) String() string {
	kernels := strings.Join(m.CPUFeatures, " ")
	if kernels == "" {
		kernels = "generic"
	}
	return fmt.Sprintf("%s, %d threads, %s/%s, %s, CPU kernels: %s", m.CPU, m.Threads, m.GOOS, m.GOARCH, m.Go, kernels)
}

// WriteJSON writes r indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r for people, with energy columns when it has any.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintln(w, r.Machine)
	if r.Device != "" {
		fmt.Fprintf(w, "device: %s\n", r.Device)
	}
	withEnergy, withVendor, withCopy := false, false, false
	for _, x := range r.Results {
		withEnergy = withEnergy || x.Energy != nil
		withVendor = withVendor || x.VsVendor != 0 || x.Error != ""
		withCopy = withCopy || x.VsCopy != 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "op\timpl\tdevice\tdtype\tsize\ttime\trate\tINT8/FP32\tvs baseline\t")
	if withVendor {
		fmt.Fprint(tw, "vs vendor\t")
	}
	if withCopy {
		fmt.Fprint(tw, "vs copy\t")
	}
	if withEnergy {
		fmt.Fprint(tw, "power\tJ/call\tnet J/call\tper joule\tINT8/FP32 J\t")
	}
	fmt.Fprintln(tw)
	for _, x := range r.Results {
		size, rate := fmt.Sprintf("%d×%d×%d", x.M, x.N, x.K), formatRate(x.OpsPerSecond, x.DType)
		if x.Elements > 0 {
			size, rate = fmt.Sprint(x.Elements), fmt.Sprintf("%.1f GB/s", x.BytesPerSecond/1e9)
		}
		tm := formatSeconds(x.Seconds)
		if x.Error != "" {
			tm, rate = "failed", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", x.Op, x.Impl, x.Device, x.DType, size,
			tm, rate, ratio(x.SpeedupOverFP32), ratio(x.VsBaseline))
		if withVendor {
			fmt.Fprintf(tw, "%s\t", ratio(x.VsVendor))
		}
		if withCopy {
			fmt.Fprintf(tw, "%s\t", ratio(x.VsCopy))
		}
		if e := x.Energy; e != nil {
			unit := "GOP/J"
			if x.Elements > 0 {
				unit = "GB/J"
			}
			fmt.Fprintf(tw, "%.1f W\t%.3g\t%.3g\t%.3g %s\t%s\t", e.AvgPowerW, e.JoulesPerCall, e.NetJoulesPerCall,
				e.OpsPerJoule/1e9, unit, ratio(e.EnergyRatioVsFP32))
		} else if withEnergy {
			fmt.Fprint(tw, "-\t-\t-\t-\t-\t")
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	notes := map[string]bool{}
	for _, x := range r.Results {
		if e := x.Energy; e != nil {
			note := fmt.Sprintf("energy: %s, %s, idle %.1f W", e.Source, e.Method, e.IdleW)
			if e.Note != "" {
				note += " (" + e.Note + ")"
			}
			if !notes[note] {
				notes[note] = true
				fmt.Fprintln(w, note)
			}
		}
	}
	r.writeVendorNotes(w)
	if r.EnergyNote != "" {
		fmt.Fprintln(w, "energy not measured:", strings.TrimPrefix(r.EnergyNote, "energy: "))
	}
	return nil
}

// writeVendorNotes says how each vendor GEMM was called, how its result
// compares with quantkit's, why one failed, and which library is missing.
func (r *Report) writeVendorNotes(w io.Writer) {
	seen := map[string]bool{}
	for _, x := range r.Results {
		if x.Describe != "" && !seen[x.Impl+x.DType] {
			seen[x.Impl+x.DType] = true
			fmt.Fprintf(w, "%s %s: %s\n", x.Impl, x.DType, x.Describe)
		}
	}
	for _, x := range r.Results {
		size := fmt.Sprintf("%d×%d×%d", x.M, x.N, x.K)
		switch a := x.Agreement; {
		case x.Error != "":
			fmt.Fprintf(w, "%s %s %s failed: %s\n", x.Impl, x.DType, size, x.Error)
		case a == nil:
		case a.Exact:
			verdict := "equal"
			if !a.OK {
				verdict = fmt.Sprintf("MISMATCH: %d values differ, largest by %.0f", a.Mismatches, a.MaxAbsError)
			}
			fmt.Fprintf(w, "%s %s %s against %s: %s\n", x.Impl, x.DType, size, a.Against, verdict)
		default:
			verdict := "ok"
			if !a.OK {
				verdict = "OUT OF TOLERANCE"
			}
			fmt.Fprintf(w, "%s %s %s against %s: relative error %.2g (tolerance %.2g) %s\n", x.Impl, x.DType, size,
				a.Against, a.RelError, a.Tolerance, verdict)
		}
	}
	if r.VendorNote != "" {
		fmt.Fprintln(w, "vendor libraries:", r.VendorNote)
	}
}

// CSVHeader is the header row of WriteCSV: one row per result, energy
// columns empty when not measured.
var CSVHeader = []string{"op", "impl", "device", "dtype", "m", "n", "k", "elements", "seconds", "reps",
	"ops_per_second", "bytes_per_second", "speedup_over_fp32", "vs_baseline",
	"energy_source", "energy_method", "avg_power_w", "peak_power_w", "idle_w", "joules_per_call",
	"net_joules_per_call", "ops_per_joule", "net_ops_per_joule", "energy_ratio_vs_fp32", "peak_memory_bytes",
	"vs_vendor", "vs_copy", "agreement_against", "agreement_rel_error", "agreement_mismatches", "agreement_ok", "error"}

// WriteCSV writes r as CSV for spreadsheets, with the CSVHeader columns.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	g := func(v float64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	i := func(v int) string {
		if v == 0 {
			return ""
		}
		return strconv.Itoa(v)
	}
	for _, x := range r.Results {
		row := []string{x.Op, x.Impl, x.Device, x.DType, i(x.M), i(x.N), i(x.K), i(x.Elements), g(x.Seconds), i(x.Reps),
			g(x.OpsPerSecond), g(x.BytesPerSecond), g(x.SpeedupOverFP32), g(x.VsBaseline)}
		if e := x.Energy; e != nil {
			row = append(row, e.Source, string(e.Method), g(e.AvgPowerW), g(e.PeakPowerW), g(e.IdleW), g(e.JoulesPerCall),
				g(e.NetJoulesPerCall), g(e.OpsPerJoule), g(e.NetOpsPerJoule), g(e.EnergyRatioVsFP32),
				strconv.FormatUint(e.PeakMemoryBytes, 10))
		} else {
			row = append(row, make([]string, 11)...)
		}
		row = append(row, g(x.VsVendor), g(x.VsCopy))
		if a := x.Agreement; a != nil {
			row = append(row, a.Against, strconv.FormatFloat(a.RelError, 'g', 6, 64), strconv.Itoa(a.Mismatches), strconv.FormatBool(a.OK))
		} else {
			row = append(row, "", "", "", "")
		}
		cw.Write(append(row, x.Error))
	}
	cw.Flush()
	return cw.Error()
}

// Merge appends o's results to r (reports of one run: gemm, quantize,
// histogram).
func (r *Report) Merge(o *Report) {
	r.Results = append(r.Results, o.Results...)
	if r.VendorNote == "" {
		r.VendorNote = o.VendorNote
	}
}

func ratio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

func formatSeconds(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.2f ms", s*1e3)
	default:
		return fmt.Sprintf("%.1f µs", s*1e6)
	}
}

// formatRate is GFLOP/s (GOP/s for integer dtypes), or TFLOP/s (TOP/s)
// from 10¹² on, as GPU GEMMs run.
func formatRate(opsPerSec float64, dtype string) string {
	unit, scale := "GFLOP/s", 1e9
	if opsPerSec >= 1e12 {
		unit, scale = "TFLOP/s", 1e12
	}
	if strings.HasPrefix(dtype, "int") {
		unit = strings.Replace(unit, "FLOP", "OP", 1)
	}
	return fmt.Sprintf("%.1f %s", opsPerSec/scale, unit)
}
