// Package gpucheck is the summary of the GPU check (make gpu-check, then
// build/gpu-check/run.sh on a machine with an NVIDIA GPU): one JSON
// document with the gpu tests' verdicts (every kernel against the CPU
// backend and host loops), every GEMM's rate and its ratio to the best
// cuBLAS/cuBLASLt rate of its precision, the memory-bound kernels'
// bandwidth against a device-to-device copy, and energy per operation,
// built from the test log and the bench report, and a short table of it.
//
// The format, schema "quantkit-gpu-check/1":
//
//	{
//	  "schema": "quantkit-gpu-check/1", "date": RFC 3339, "device": "NVIDIA H100 …",
//	  "ok": tests passed and every vendor result agreed with quantkit's,
//	  "tests": {"exit_code": N, "passed": N, "failed": N, "skipped": N,
//	            "failures": [names], "results": [{"name", "status": "pass|fail|skip", "seconds"}]},
//	  "gemm": [{"impl": "quantkit|cublas|cublaslt", "precision": "fp32|tf32|bf16|fp16|int8",
//	            "m", "n", "k", "seconds", "tops" (10¹² operations a second, a multiply-add two),
//	            "vs_vendor" (over the best vendor rate of the precision), "int8_over_fp32",
//	            "agreement": {"against", "exact", "mismatches", "rel_error", "max_abs_error", "tolerance", "ok"},
//	            "avg_power_w", "pj_per_op" (gross energy over operations), "error", "describe"}],
//	  "memory": [{"op": "copy|absmax|histogram|quantize-int8|…", "elements", "seconds",
//	              "gb_per_s" (bytes read + written), "vs_copy", "avg_power_w", "pj_per_byte"}],
//	  "notes": ["vendor libraries: …", "energy not measured: …", …],
//	  "peers": what scripts/gpu/gpu_check.py wrote (PyTorch's figures), when it ran
//	}
//
// Fields that were not measured are left out (0 and "" are omitted).
package gpucheck

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quantkit/quantkit/bench"
)

// Schema names this format; a change that breaks readers changes it.
const Schema = "quantkit-gpu-check/1"

// Summary is the GPU check's result.
type Summary struct {
	Schema string    `json:"schema"`
	Date   time.Time `json:"date"`
	Device string    `json:"device"`
	// OK says that the tests passed (exit code 0, no failure) and that
	// every vendor GEMM's result agreed with quantkit's.
	OK     bool        `json:"ok"`
	Tests  Tests       `json:"tests"`
	Gemm   []GemmRow   `json:"gemm"`
	Memory []MemoryRow `json:"memory"`
	Notes  []string    `json:"notes,omitempty"`
	// Peers is the JSON scripts/gpu/gpu_check.py wrote (PyTorch's
	// figures), as it is.
	Peers json.RawMessage `json:"peers,omitempty"`
}

// Tests is the gpu test binary's verdict.
type Tests struct {
	ExitCode int          `json:"exit_code"`
	Passed   int          `json:"passed"`
	Failed   int          `json:"failed"`
	Skipped  int          `json:"skipped"`
	Failures []string     `json:"failures,omitempty"`
	Results  []TestResult `json:"results"`
}

// TestResult is one test or subtest.
type TestResult struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"` // "pass", "fail", "skip"
	Seconds float64 `json:"seconds"`
}

// GemmRow is one GEMM at one size.
type GemmRow struct {
	Impl         string           `json:"impl"`
	Precision    string           `json:"precision"`
	M            int              `json:"m"`
	N            int              `json:"n"`
	K            int              `json:"k"`
	Seconds      float64          `json:"seconds,omitempty"`
	TOPS         float64          `json:"tops,omitempty"`
	VsVendor     float64          `json:"vs_vendor,omitempty"`
	Int8OverFP32 float64          `json:"int8_over_fp32,omitempty"`
	Agreement    *bench.Agreement `json:"agreement,omitempty"`
	AvgPowerW    float64          `json:"avg_power_w,omitempty"`
	PJPerOp      float64          `json:"pj_per_op,omitempty"`
	Error        string           `json:"error,omitempty"`
	Describe     string           `json:"describe,omitempty"`
}

// MemoryRow is one memory-bound kernel (or the device copy) at one size.
type MemoryRow struct {
	Op        string  `json:"op"`
	Elements  int     `json:"elements"`
	Seconds   float64 `json:"seconds"`
	GBPerS    float64 `json:"gb_per_s"`
	VsCopy    float64 `json:"vs_copy,omitempty"`
	AvgPowerW float64 `json:"avg_power_w,omitempty"`
	PJPerByte float64 `json:"pj_per_byte,omitempty"`
}

var testLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

// ParseTestLog reads the verbose output of a Go test binary (-test.v)
// and returns every test's and subtest's verdict, in order.
func ParseTestLog(r io.Reader) ([]TestResult, error) {
	var out []TestResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		m := testLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseFloat(m[3], 64)
		out = append(out, TestResult{Name: m[2], Status: strings.ToLower(m[1]), Seconds: sec})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gpucheck: reading the test log: %w", err)
	}
	return out, nil
}

// Files names what BuildFiles reads, each optional (empty: not read).
type Files struct {
	TestLog  string // `go test -v` output of the gpu tests
	ExitCode int    // the gpu tests' exit status
	Report   string // the bench report's JSON (bench all --json-out)
	Peers    string // gpu_check.py's JSON
}

// BuildFiles is Build on the files f names: a file that cannot be read
// or parsed is a note of the summary, naming it, rather than an error,
// so that a partial run still gives a summary (which is then not OK
// where its tests or GEMMs are missing).
func BuildFiles(f Files) *Summary {
	var notes []string
	var tests []TestResult
	if f.TestLog != "" {
		r, err := os.Open(f.TestLog)
		if err == nil {
			tests, err = ParseTestLog(r)
			r.Close()
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("test log %s: %v", f.TestLog, err))
		}
	}
	var rep *bench.Report
	if f.Report != "" {
		data, err := os.ReadFile(f.Report)
		if err == nil {
			rep = &bench.Report{}
			if err = json.Unmarshal(data, rep); err != nil {
				rep, err = nil, fmt.Errorf("%s: %w", f.Report, err)
			}
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("bench report: %v", err))
		}
	}
	var peers json.RawMessage
	if f.Peers != "" {
		data, err := os.ReadFile(f.Peers)
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("peers: %v", err))
		case !json.Valid(data):
			notes = append(notes, fmt.Sprintf("peers: %s is not JSON", f.Peers))
		default:
			peers = data
		}
	}
	s := Build(tests, f.ExitCode, rep, peers)
	s.Notes = append(s.Notes, notes...)
	return s
}

// Build is the summary of the test results (and the binary's exit code),
// the bench report and, when not nil, PyTorch's figures.
func Build(tests []TestResult, exitCode int, rep *bench.Report, peers json.RawMessage) *Summary {
	s := &Summary{Schema: Schema, Date: time.Now().UTC(), Tests: Tests{ExitCode: exitCode, Results: tests}, Peers: peers,
		Gemm: []GemmRow{}, Memory: []MemoryRow{}}
	if s.Tests.Results == nil {
		s.Tests.Results = []TestResult{}
	}
	for _, t := range tests {
		switch t.Status {
		case "pass":
			s.Tests.Passed++
		case "fail":
			s.Tests.Failed++
			s.Tests.Failures = append(s.Tests.Failures, t.Name)
		case "skip":
			s.Tests.Skipped++
		}
	}
	agreed := true
	if rep != nil {
		s.Device = rep.Device
		for _, r := range rep.Results {
			if r.Op == "gemm" {
				if r.Impl == "gonum" {
					continue // the host's baseline: no GPU figure
				}
				s.Gemm = append(s.Gemm, gemmRow(r))
				if r.Agreement != nil && !r.Agreement.OK {
					agreed = false
				}
			} else if r.Elements > 0 {
				s.Memory = append(s.Memory, memoryRow(r))
			}
		}
		if rep.VendorNote != "" {
			s.Notes = append(s.Notes, "vendor libraries: "+rep.VendorNote)
		}
		if rep.EnergyNote != "" {
			s.Notes = append(s.Notes, "energy not measured: "+rep.EnergyNote)
		}
	} else {
		s.Notes = append(s.Notes, "no bench report")
	}
	if len(tests) == 0 {
		s.Notes = append(s.Notes, "no test results in the log")
	}
	s.OK = exitCode == 0 && s.Tests.Failed == 0 && len(tests) > 0 && agreed && rep != nil
	return s
}

func gemmRow(r bench.Result) GemmRow {
	g := GemmRow{Impl: r.Impl, Precision: r.DType, M: r.M, N: r.N, K: r.K, Seconds: r.Seconds, TOPS: r.OpsPerSecond / 1e12,
		VsVendor: r.VsVendor, Int8OverFP32: r.SpeedupOverFP32, Agreement: r.Agreement, Error: r.Error, Describe: r.Describe}
	if e := r.Energy; e != nil && e.OpsPerJoule > 0 {
		g.AvgPowerW, g.PJPerOp = e.AvgPowerW, 1e12/e.OpsPerJoule
	}
	return g
}

func memoryRow(r bench.Result) MemoryRow {
	m := MemoryRow{Op: r.Op, Elements: r.Elements, Seconds: r.Seconds, GBPerS: r.BytesPerSecond / 1e9, VsCopy: r.VsCopy}
	if e := r.Energy; e != nil && e.OpsPerJoule > 0 {
		m.AvgPowerW, m.PJPerByte = e.AvgPowerW, 1e12/e.OpsPerJoule
	}
	return m
}

// Read decodes a summary and checks its schema.
func Read(r io.Reader) (*Summary, error) {
	var s Summary
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return nil, fmt.Errorf("gpucheck: %w", err)
	}
	if s.Schema != Schema {
		return nil, fmt.Errorf("gpucheck: schema %q, want %q", s.Schema, Schema)
	}
	return &s, nil
}

// WriteJSON writes s indented.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(s)
}

// WriteTable writes the short table: the verdict, the tests, each GEMM
// size's rates by precision with the ratio to the vendor, and the
// memory-bound kernels against the copy.
func (s *Summary) WriteTable(w io.Writer) error {
	verdict := "OK"
	if !s.OK {
		verdict = "NOT OK"
	}
	fmt.Fprintf(w, "GPU check %s: %s\n", verdict, s.Device)
	t := s.Tests
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped (exit %d)", t.Passed, t.Failed, t.Skipped, t.ExitCode)
	if len(t.Failures) > 0 {
		fmt.Fprintf(w, "; failed: %s", strings.Join(t.Failures, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(s.Gemm) > 0 {
		fmt.Fprintln(tw, "GEMM\timpl\tprecision\tTOP/s\tvs vendor\tpJ/op\tcheck\t")
		for _, g := range s.Gemm {
			size := fmt.Sprintf("%d³", g.M)
			if g.M != g.N || g.N != g.K {
				size = fmt.Sprintf("%d×%d×%d", g.M, g.N, g.K)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", size, g.Impl, g.Precision, num(g.TOPS, "%.1f"),
				num(g.VsVendor, "%.2f×"), num(g.PJPerOp, "%.2f"), check(g))
		}
	}
	if len(s.Memory) > 0 {
		fmt.Fprintln(tw, "kernel\telements\t\tGB/s\tvs copy\tpJ/byte\t\t")
		for _, m := range s.Memory {
			fmt.Fprintf(tw, "%s\t%d\t\t%.0f\t%s\t%s\t\t\n", m.Op, m.Elements, m.GBPerS, num(m.VsCopy, "%.2f×"), num(m.PJPerByte, "%.1f"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range s.Notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

func num(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func check(g GemmRow) string {
	switch a := g.Agreement; {
	case g.Error != "":
		return "failed: " + g.Error
	case a == nil:
		return "-"
	case a.Exact && a.OK:
		return "equal"
	case a.Exact:
		return fmt.Sprintf("%d differ", a.Mismatches)
	case a.OK:
		return fmt.Sprintf("err %.1e", a.RelError)
	default:
		return fmt.Sprintf("err %.1e > %.0e", a.RelError, a.Tolerance)
	}
}
