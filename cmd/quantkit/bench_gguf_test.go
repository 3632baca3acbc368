package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/job/quantize"
)

// TestBenchGGUF runs bench gguf end to end: quantkit is this test binary
// as quantkit (QUANTKIT_TEST_MAIN), and the llama_model_quantize harness,
// found through $QUANTKIT_LLAMACPP_QUANTIZE, a script that hands the same
// job to it, so the outputs are identical.
func TestBenchGGUF(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	harness := filepath.Join(t.TempDir(), "llama-quantize-harness")
	script := "#!/bin/sh\n# [--nthread N] [--pure] IN OUT TYPE\nwhile [ $# -gt 3 ]; do shift; done\n" +
		"exec \"$QUANTKIT_TEST_EXE\" quantize \"$1\" -o \"$2\" --format gguf --type \"$3\" >/dev/null\n"
	if err := os.WriteFile(harness, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QUANTKIT_TEST_MAIN", "1") // for the children
	t.Setenv("QUANTKIT_TEST_EXE", exe)
	t.Setenv("QUANTKIT_LLAMACPP_QUANTIZE", harness)
	in := filepath.Join("..", "..", "testdata", "llm", "stories260K", "stories260K.gguf")
	work := t.TempDir()
	out := mustRun(t, "bench", "gguf", "--input", in, "--types", "Q8_0,Q4_0", "--rounds", "2", "--workdir", work, "--json")
	var r quantize.BenchGGUFReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Input != in || r.Threads != 2 || r.Rounds != 2 || len(r.Rows) != 2 || r.LlamaQuantize != harness || r.Quantkit != exe {
		t.Fatalf("report %+v", r)
	}
	for _, row := range r.Rows {
		if !row.Identical || len(row.Quantkit.Seconds) != 2 || len(row.LlamaQuantize.PeakRSS) != 2 || row.TimeRatio <= 0 {
			t.Errorf("row %+v", row)
		}
	}
	emptyDir(t, work)

	table := mustRun(t, "bench", "gguf", "--input", in, "--types", "Q8_0", "--rounds", "1", "--workdir", work)
	if !strings.Contains(table, "quantkit ÷ llama") || !strings.Contains(table, "byte-identical") {
		t.Errorf("table:\n%s", table)
	}
}

func TestBenchGGUFRefuses(t *testing.T) {
	t.Setenv("QUANTKIT_LLAMACPP_QUANTIZE", "")
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{nil, []string{"no llama-quantize harness", "--llama-quantize", "QUANTKIT_LLAMACPP_QUANTIZE", "make integration", "setup-llamacpp.sh"}},
		{[]string{"--llama-quantize", "/bin/true", "--threads", "0"}, []string{"--threads"}},
		{[]string{"--llama-quantize", "/bin/true", "--rounds", "0"}, []string{"--rounds"}},
		{[]string{"--llama-quantize", "/bin/true", "--params", "lots"}, []string{"--params"}},
		{[]string{"--llama-quantize", "/bin/true", "--input", "x.gguf", "--params", "1M"}, []string{"--params"}},
		{[]string{"--llama-quantize", "/bin/true", "--types", "Q9"}, []string{"Q9"}},
	} {
		out, err := run(t, append([]string{"bench", "gguf", "--workdir", t.TempDir()}, c.args...)...)
		if err == nil {
			t.Errorf("%v: no error\n%s", c.args, out)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.args, err, w)
			}
		}
	}
}
