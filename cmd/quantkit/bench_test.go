package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	} {
		start := time.Now()
		out, err := run(t, append(benchSlow, tc.args...)...)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errBadInput) {
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
		if r.err != nil && errors.Is(r.err, errBadInput) {
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
