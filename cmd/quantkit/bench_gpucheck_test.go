package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/bench/gpucheck"
)

// gpu-summary reads what the check wrote (here a CPU bench report: the
// command needs no GPU) into the summary file and the table; missing
// inputs are notes, and a check that is not OK exits non-zero after
// writing the summary.
func TestBenchGPUSummary(t *testing.T) {
	dir := t.TempDir()
	rep := filepath.Join(dir, "bench.json")
	if _, err := run(t, "bench", "gemm", "--device", "cpu", "--sizes", "8", "--min-time", "1ms", "--json-out", rep); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "gpu-test.log")
	os.WriteFile(log, []byte("--- PASS: TestConformance (1.00s)\n    --- PASS: TestConformance/GemmS8 (0.20s)\n"), 0o666)
	out := filepath.Join(dir, "summary.json")
	table, err := run(t, "bench", "gpu-summary", "--tests", log, "--report", rep, "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, table)
	}
	if !strings.Contains(table, "GPU check OK") || !strings.Contains(table, "2 passed") {
		t.Errorf("table:\n%s", table)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gpucheck.Read(f)
	f.Close()
	if err != nil || !s.OK || len(s.Gemm) != 2 || s.Tests.Passed != 2 {
		t.Fatalf("summary %+v, %v: want OK, quantkit's fp32 and int8 rows (gonum's left out), 2 tests", s, err)
	}

	// A failed test and a missing report: written, and an error.
	os.WriteFile(log, []byte("--- FAIL: TestConformance (1.00s)\n"), 0o666)
	table, err = run(t, "bench", "gpu-summary", "--tests", log, "--tests-exit", "1", "--report", filepath.Join(dir, "none.json"),
		"--peers", log, "--out", out)
	if err == nil || !strings.Contains(err.Error(), "not OK") {
		t.Errorf("failed check: error %v", err)
	}
	for _, want := range []string{"GPU check NOT OK", "failed: TestConformance", "bench report: open", "is not JSON"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if data, _ := os.ReadFile(out); !strings.Contains(string(data), `"ok": false`) {
		t.Errorf("summary after a failed check:\n%s", data)
	}
	if _, err := run(t, "bench", "gpu-summary", "--out", filepath.Join(dir, "s.txt")); err == nil || !strings.Contains(err.Error(), "want a .json file") {
		t.Errorf("--out s.txt: %v", err)
	}
}
