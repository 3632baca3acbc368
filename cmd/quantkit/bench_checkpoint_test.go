package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/job/quantize"
)

func TestBenchCheckpoint(t *testing.T) {
	in := synthModel(t)
	work := t.TempDir()
	out := mustRun(t, "bench", "checkpoint", "--input", in, "--rounds", "2", "--workdir", work, "--json")
	var r quantize.BenchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Generated || r.Input != in || r.Rounds != 2 || len(r.Rows) != 2 || r.Tensors == 0 || r.LargestTensor <= 0 {
		t.Fatalf("report %+v", r)
	}
	// The output sizes are quantize's own.
	for i, scheme := range []string{"int8", "int4"} {
		row := r.Rows[i]
		dir := filepath.Join(t.TempDir(), "q")
		var q quantize.Report
		if err := json.Unmarshal([]byte(mustRun(t, "quantize", in, "-o", dir, "--scheme", scheme, "--json")), &q); err != nil {
			t.Fatal(err)
		}
		if row.BytesOut != q.Totals.BytesOut || row.Scheme != q.Scheme {
			t.Errorf("%s: row %+v, quantize wrote %d bytes as %s", scheme, row, q.Totals.BytesOut, q.Scheme)
		}
		if len(row.BaselineSeconds) != 2 || len(row.QuantizeSeconds) != 2 || row.SpeedVsBaseline <= 0 || row.QuantizePeakRSS <= 0 {
			t.Errorf("%s: row %+v", scheme, row)
		}
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
