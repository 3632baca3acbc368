package gpucheck

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/bench"
)

const testLog = `=== RUN   TestConformance
    gpu_test.go:40: gpu:0: NVIDIA H100 80GB HBM3
=== RUN   TestConformance/GemmF32
--- PASS: TestConformance (1.25s)
    --- PASS: TestConformance/GemmF32 (0.50s)
    --- FAIL: TestConformance/GemmS8/k=17 (0.01s)
--- FAIL: TestVendorGemms (2.00s)
--- SKIP: TestLarge (0.00s)
not a verdict: --- PASS: inside a message
ok  	github.com/quantkit/quantkit/gpu	3.3s
`

func TestParseTestLog(t *testing.T) {
	got, err := ParseTestLog(strings.NewReader(testLog))
	if err != nil {
		t.Fatal(err)
	}
	want := []TestResult{{"TestConformance", "pass", 1.25}, {"TestConformance/GemmF32", "pass", 0.5},
		{"TestConformance/GemmS8/k=17", "fail", 0.01}, {"TestVendorGemms", "fail", 2}, {"TestLarge", "skip", 0}}
	if len(got) != len(want) {
		t.Fatalf("%d results %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func report() *bench.Report {
	e := func(opsPerJ float64) *bench.EnergyResult {
		return &bench.EnergyResult{AvgPowerW: 500, OpsPerJoule: opsPerJ}
	}
	return &bench.Report{Device: "NVIDIA H100 80GB HBM3", VendorNote: "cuBLASLt not found (tried libcublasLt.so.13)",
		Results: []bench.Result{
			{Op: "gemm", Impl: "gonum", Device: "cpu", DType: "fp32", M: 1024, N: 1024, K: 1024, OpsPerSecond: 1e11},
			{Op: "gemm", Impl: "quantkit", Device: "gpu:0", DType: "fp32", M: 1024, N: 1024, K: 1024, OpsPerSecond: 20e12, VsVendor: 0.4, Energy: e(40e9)},
			{Op: "gemm", Impl: "cublas", Device: "gpu:0", DType: "fp32", M: 1024, N: 1024, K: 1024, OpsPerSecond: 50e12, VsVendor: 1,
				Agreement: &bench.Agreement{Against: "quantkit fp32", RelError: 1e-6, Tolerance: 2e-5, OK: true}},
			{Op: "gemm", Impl: "quantkit", Device: "gpu:0", DType: "int8", M: 1024, N: 1024, K: 1024, OpsPerSecond: 400e12, VsVendor: 0.8, SpeedupOverFP32: 20},
			{Op: "gemm", Impl: "cublas", Device: "gpu:0", DType: "int8", M: 1024, N: 1024, K: 1024, OpsPerSecond: 500e12, VsVendor: 1,
				Agreement: &bench.Agreement{Against: "quantkit int8", Exact: true, OK: true}},
			{Op: "gemm", Impl: "cublas", Device: "gpu:0", DType: "fp16", M: 1024, N: 1024, K: 1024, Error: "CUBLAS_STATUS_NOT_SUPPORTED"},
			{Op: "copy", Impl: "device", Device: "gpu:0", DType: "fp32", Elements: 1 << 24, BytesPerSecond: 3e12, Energy: e(5e9)},
			{Op: "histogram", Impl: "quantkit", Device: "gpu:0", DType: "fp32", Elements: 1 << 24, BytesPerSecond: 1.5e12, VsCopy: 0.5},
		}}
}

func TestBuild(t *testing.T) {
	tests, _ := ParseTestLog(strings.NewReader("--- PASS: TestA (0.10s)\n--- SKIP: TestB (0.00s)\n"))
	s := Build(tests, 0, report(), json.RawMessage(`{"device":"x"}`))
	if !s.OK || s.Schema != Schema || s.Tests.Passed != 1 || s.Tests.Skipped != 1 || s.Device != "NVIDIA H100 80GB HBM3" {
		t.Fatalf("summary %+v", s)
	}
	if len(s.Gemm) != 5 || len(s.Memory) != 2 {
		t.Fatalf("%d GEMM rows (gonum's left out: want 5), %d memory rows (want 2)", len(s.Gemm), len(s.Memory))
	}
	if g := s.Gemm[0]; g.TOPS != 20 || g.VsVendor != 0.4 || g.PJPerOp != 25 || g.AvgPowerW != 500 {
		t.Errorf("quantkit fp32 row %+v: want 20 TOP/s, 0.4×, 25 pJ/op", g)
	}
	if g := s.Gemm[2]; g.Int8OverFP32 != 20 || g.TOPS != 400 {
		t.Errorf("quantkit int8 row %+v", g)
	}
	if m := s.Memory[0]; m.Op != "copy" || m.GBPerS != 3000 || m.PJPerByte != 200 {
		t.Errorf("copy row %+v: want 3000 GB/s, 200 pJ/byte", m)
	}
	if m := s.Memory[1]; m.VsCopy != 0.5 || m.PJPerByte != 0 {
		t.Errorf("histogram row %+v", m)
	}
	if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "cuBLASLt not found") {
		t.Errorf("notes %v", s.Notes)
	}

	// A failed test, a non-zero exit, a vendor result that disagrees, no
	// tests at all: not OK.
	bad := report()
	bad.Results[4].Agreement = &bench.Agreement{Exact: true, Mismatches: 2}
	for name, s := range map[string]*Summary{
		"failed test":  Build([]TestResult{{"TestA", "fail", 1}}, 1, report(), nil),
		"exit code":    Build(tests, 2, report(), nil),
		"disagreement": Build(tests, 0, bad, nil),
		"no tests":     Build(nil, 0, report(), nil),
		"no report":    Build(tests, 0, nil, nil),
	} {
		if s.OK {
			t.Errorf("%s: OK", name)
		}
	}
	if s := Build(nil, 0, nil, nil); len(s.Notes) != 2 || s.Gemm == nil || s.Tests.Results == nil {
		t.Errorf("empty summary: notes %v, gemm %v, results %v (want empty lists, not null)", s.Notes, s.Gemm, s.Tests.Results)
	}
}

// The JSON has the documented names, reads back, and a summary of another
// schema is refused.
func TestJSON(t *testing.T) {
	tests := []TestResult{{"TestA", "fail", 1}}
	s := Build(tests, 1, report(), json.RawMessage(`{"device":"x"}`))
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"schema": "quantkit-gpu-check/1"`, `"ok": false`, `"exit_code": 1`, `"failures": [`,
		`"tops": 20`, `"vs_vendor": 0.4`, `"pj_per_op": 25`, `"int8_over_fp32": 20`, `"gb_per_s": 3000`, `"vs_copy": 0.5`,
		`"pj_per_byte": 200`, `"rel_error": 0.000001`, `"error": "CUBLAS_STATUS_NOT_SUPPORTED"`, `"peers": {`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, buf.String())
		}
	}
	back, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if back.Tests.Failures[0] != "TestA" || len(back.Gemm) != 5 || math.Abs(back.Gemm[1].Agreement.RelError-1e-6) > 0 {
		t.Errorf("read back %+v", back)
	}
	if _, err := Read(strings.NewReader(`{"schema":"quantkit-gpu-check/0"}`)); err == nil {
		t.Error("another schema read without error")
	}
}

func TestWriteTable(t *testing.T) {
	tests := []TestResult{{"TestA", "pass", 1}, {"TestB", "fail", 1}}
	var buf bytes.Buffer
	if err := Build(tests, 1, report(), nil).WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"GPU check NOT OK: NVIDIA H100", "1 passed, 1 failed, 0 skipped (exit 1); failed: TestB",
		"1024³", "400.0", "0.80×", "25.00", "err 1.0e-06", "equal", "failed: CUBLAS_STATUS_NOT_SUPPORTED",
		"histogram", "0.50×", "vendor libraries: cuBLASLt not found"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
