package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/job/quantize"
)

func TestBenchCheckpointJSON(t *testing.T) {
	in := synthModel(t)
	work := t.TempDir()
	side := filepath.Join(t.TempDir(), "b.json")
	out := mustRun(t, "bench", "checkpoint", "--input", in, "--rounds", "1", "--workdir", work, "--json", "--json-out", side, "--schemes", "int4")
	var r, f quantize.BenchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(side)
	if err != nil || json.Unmarshal(b, &f) != nil {
		t.Fatalf("--json-out: %v", err)
	}
	if r.Input != in || r.Rounds != 1 || len(r.Rows) != 1 || r.Rows[0].Scheme != "int4-sym-group128" || r.Device != "cpu" || f.Rows[0].BytesOut != r.Rows[0].BytesOut {
		t.Fatalf("report %+v, file %+v", r, f)
	}
	emptyDir(t, work)
}

func TestBenchCheckpointGenerates(t *testing.T) {
	work := t.TempDir()
	out := mustRun(t, "bench", "checkpoint", "--params", "1M", "--schemes", "int8", "--rounds", "1", "--workdir", work)
	if !strings.Contains(out, "int8-sym-channel") || !strings.Contains(out, "speed vs read+write") {
		t.Errorf("table:\n%s", out)
	}
	emptyDir(t, work)
	if _, err := run(t, "bench", "checkpoint", "--schemes", "int3", "--workdir", work); err == nil || !strings.Contains(err.Error(), "int3") {
		t.Errorf("--schemes int3: %v", err)
	}
}
