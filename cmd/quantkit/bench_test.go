package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/internal/inputerr"
)

// benchSlow is a bench run that works for about two seconds (three kernels
// timed for at least 700 ms each), so that a check made after the work
// shows in the time an error takes.
var benchSlow = []string{"bench", "quantize", "--device", "cpu", "--elements", "1048576", "--min-time", "700ms"}

// A bad --csv or --plot is refused before any work, and no report is
// printed.
func TestBenchOutputPathsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	isDir := filepath.Join(dir, "r.csv")
	if err := os.Mkdir(isDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--csv", "/nonexistent/q.csv"}, "--csv /nonexistent/q.csv: directory /nonexistent does not exist"},
		{[]string{"--csv", filepath.Join(dir, "q.txt")}, "want a .csv file"},
		{[]string{"--csv", isDir}, "is a directory"},
		{[]string{"--plot", filepath.Join(dir, "p.jpg")}, "want a .png or .svg file"},
		{[]string{"--plot", "/nonexistent/p.png"}, "--plot /nonexistent/p.png: directory /nonexistent does not exist"},
		{[]string{"--json", "--csv", filepath.Join(dir, "ok.csv"), "--plot", filepath.Join(dir, "p")}, "--plot"},
		{[]string{"--json-out", filepath.Join(dir, "r.txt")}, "want a .json file"},
		{[]string{"--json-out", "/nonexistent/r.json"}, "--json-out /nonexistent/r.json: directory /nonexistent does not exist"},
	} {
		start := time.Now()
		out, err := run(t, append(benchSlow, tc.args...)...)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%q: error %v, want bad input saying %q", tc.args, err, tc.want)
		}
		if took > time.Second || out != "" {
			t.Errorf("%q: refused after %v, having printed %q: want at once, before any work", tc.args, took, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files written: %v", ents)
	}
}

// A side output that fails at the end (its directory removed during the
// run) costs neither the table nor the other side output, and the command
// still fails, naming it.
func TestBenchTableKeptWhenSideOutputFails(t *testing.T) {
	for attempt := range 3 {
		dir := t.TempDir()
		gone := filepath.Join(dir, "gone")
		if err := os.Mkdir(gone, 0o755); err != nil {
			t.Fatal(err)
		}
		plot := filepath.Join(dir, "r.svg")
		type result struct {
			out string
			err error
		}
		done := make(chan result)
		go func() {
			out, err := run(t, append(benchSlow, "--csv", filepath.Join(gone, "r.csv"), "--plot", plot)...)
			done <- result{out, err}
		}()
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond) // the checks take microseconds, the work seconds
		if err := os.Remove(gone); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil && errors.Is(r.err, inputerr.ErrInput) {
			t.Logf("attempt %d: the directory went before the check: %v", attempt, r.err)
			continue
		}
		if r.err == nil || !strings.Contains(r.err.Error(), "--csv: ") || !strings.Contains(r.err.Error(), filepath.Join(gone, "r.csv")) {
			t.Errorf("error %v, want one naming --csv", r.err)
		}
		if !strings.Contains(r.out, "quantize-int8") || !strings.Contains(r.out, "GB/s") {
			t.Errorf("the table was lost:\n%s", r.out)
		}
		if st, err := os.Stat(plot); err != nil || st.Size() == 0 {
			t.Errorf("--plot not written after --csv failed: %v", err)
		}
		return
	}
	t.Fatal("the run never got past the checks before the directory was removed")
}

// --json prints the report as JSON instead of the table; --json-out writes
// it to a file while the table goes to stdout.
func TestBenchJSON(t *testing.T) {
	quick := []string{"bench", "histogram", "--device", "cpu", "--elements", "1000,3000", "--min-time", "1ms"}
	out, err := run(t, append(quick, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rep.Results) != 4 || rep.Results[0].Op != "absmax" || rep.Results[3].Elements != 3000 {
		t.Errorf("results %+v, want absmax and histogram at 1000 and 3000 elements", rep.Results)
	}
	path := filepath.Join(t.TempDir(), "r.json")
	out, err = run(t, append(quick, "--json-out", path)...)
	if err != nil || !strings.Contains(out, "GB/s") {
		t.Fatalf("--json-out: %v; stdout:\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	var file bench.Report
	if err != nil || json.Unmarshal(b, &file) != nil || len(file.Results) != 4 {
		t.Errorf("--json-out wrote %q (%v)", b, err)
	}
}

// --min-time holds however fast the kernel: no cap of 1000 calls.
func TestBenchMinTimeHonoured(t *testing.T) {
	start := time.Now()
	out, err := run(t, "bench", "histogram", "--device", "cpu", "--elements", "64", "--min-time", "300ms", "--json")
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("two kernels timed in %v, want at least 300 ms each", took)
	}
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Reps <= 1000 || r.Seconds > 0.3/1000 {
			t.Errorf("%s: %d calls of %.3g s in 300 ms", r.Op, r.Reps, r.Seconds)
		}
	}
}
