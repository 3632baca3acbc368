package main

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/calibrate"
	"github.com/quantkit/quantkit/model/npy"
)

// The pipeline is tested in job/calibrate; here, what the command line
// adds: flags, outputs, errors and where they go.

// writeTestFile writes data to name in dir and returns its path.
func writeTestFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// actNPY writes n Gaussian samples to act.npy in a new directory.
func actNPY(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "act.npy")
	if err := npy.WriteFile(p, gaussian(n, 1), []int{n}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCalibrateJSON(t *testing.T) {
	p := actNPY(t, 1000)
	rep, err := calibrate.Run(context.Background(), calibrate.Options{Paths: []string{p}, Methods: []string{"max", "mse"}, Backend: cpu.New()})
	if err != nil {
		t.Fatal(err)
	}
	// --json prints the package's results, the max one here.
	want := jsonText(t, rep.Results[:1])
	out, err := run(t, "calibrate", "--device", "cpu", "--method", "max", "--json", p)
	if err != nil || out != string(want) {
		t.Errorf("--json: %v, printed:\n%s\nwant:\n%s", err, out, want)
	}
	// --json-out writes them while the table goes to stdout.
	jsonPath := filepath.Join(filepath.Dir(p), "r.json")
	want = jsonText(t, rep.Results[1:2])
	out, err = run(t, "calibrate", "--device", "cpu", "--method", "mse", "--json-out", jsonPath, p)
	if got, rerr := os.ReadFile(jsonPath); err != nil || rerr != nil || string(got) != string(want) || !strings.HasPrefix(out, "tensor  values  method") {
		t.Errorf("--json-out: %v %v, wrote:\n%s\nwant:\n%s\nprinted:\n%s", err, rerr, got, want, out)
	}
	// The old spelling, --json FILE, is refused before any work, saying
	// what to write instead.
	if out, err := run(t, "calibrate", "--device", "cpu", "--json", jsonPath, p); err == nil ||
		!strings.Contains(err.Error(), "use --json-out "+jsonPath) || !errors.Is(err, inputerr.ErrInput) || out != "" {
		t.Errorf("--json FILE: %v\n%s", err, out)
	}
}

// Zero values the package would take for its defaults are errors here:
// the flags' defaults are not zero, so zero was asked for.
func TestCalibrateFlagRanges(t *testing.T) {
	p := actNPY(t, 1000)
	for _, c := range []struct{ flag, value, want string }{
		{"--percentile", "0", "(0, 100]"}, {"--percentile", "-5", "(0, 100]"}, {"--percentile", "100.5", "(0, 100]"},
		{"--percentile", "NaN", "(0, 100]"}, {"--percentile", "-0", "(0, 100]"},
		{"--bins", "0", "must be positive"}, {"--bins", "-3", "must be positive"},
		{"--bits", "6", "8 or 4"}, {"--method", "bogus", "entropy"},
	} {
		out, err := run(t, "calibrate", "--device", "cpu", "--method", "percentile", c.flag, c.value, p)
		if err == nil || !strings.HasPrefix(err.Error(), "calibrate: "+c.flag) || !strings.Contains(err.Error(), c.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s %s: %v (want an error naming the flag and saying %q)\n%s", c.flag, c.value, err, c.want, out)
		}
	}
	for _, pc := range []string{"100", "1e-9", "50"} {
		if out, err := run(t, "calibrate", "--device", "cpu", "--method", "percentile", "--percentile", pc, p); err != nil {
			t.Errorf("--percentile %s: %v\n%s", pc, err, out)
		}
	}
}

func TestCalibrateTRTCacheRejectsBadNames(t *testing.T) {
	dir := t.TempDir()
	colon := filepath.Join(dir, "conv:0.npy")
	if err := npy.WriteFile(colon, gaussian(100, 1), []int{100}); err != nil {
		t.Fatal(err)
	}
	corrupt := writeTestFile(t, dir, "corrupt.npy", []byte("not npy"))
	cache := filepath.Join(dir, "out.cache")
	for _, args := range [][]string{{corrupt, colon}, {"--tensor", "x: y", corrupt}} {
		out, err := run(t, append([]string{"calibrate", "--device", "cpu", "--trt-cache", cache}, args...)...)
		if err == nil || !strings.HasPrefix(err.Error(), "calibrate: --trt-cache: ") || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%q: %v (want an error about --trt-cache)\n%s", args, err, out)
		}
		if _, err := os.Stat(cache); err == nil {
			t.Fatalf("%q: the cache was written", args)
		}
	}
	if out, err := run(t, "calibrate", "--device", "cpu", "--method", "max", colon); err != nil {
		t.Errorf("without --trt-cache: %v\n%s", err, out)
	}
	if out, err := run(t, "calibrate", "--device", "cpu", "--trt-cache", cache, "--trt-version", "86\nx: 1", corrupt); err == nil ||
		!strings.Contains(err.Error(), "--trt-version") || strings.Contains(err.Error(), "corrupt") {
		t.Errorf("--trt-version with a newline: %v\n%s", err, out)
	}
}

func TestCalibrateChecksOutputsFirst(t *testing.T) {
	dir := t.TempDir()
	corrupt := writeTestFile(t, dir, "corrupt.npy", []byte("not npy"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--trt-cache", filepath.Join(dir, "nodir", "x.cache")}, "--trt-cache"},
		{[]string{"--trt-cache", dir}, "directory"},
		{[]string{"--save-histograms", filepath.Join(dir, "nodir", "h.hist.json")}, "--save-histograms"},
		{[]string{"--save-histograms", filepath.Join(dir, "h.json")}, ".hist.json"},
		{[]string{"--save-histograms", ""}, "--save-histograms"},
		{[]string{"--json-out", filepath.Join(dir, "nodir", "r.json")}, "--json-out"},
		{[]string{"--json-out", ""}, "--json-out"},
		{[]string{"--trt-cache", filepath.Join(dir, "x.hist.json"), "--save-histograms", filepath.Join(dir, "x.hist.json")}, "same file"},
		{[]string{"--json-out", filepath.Join(dir, "x.json"), "--trt-cache", filepath.Join(dir, ".", "x.json")}, "same file"},
		{[]string{"--json-out", filepath.Join(dir, "x")}, "want a .json file"},
	} {
		args := append(append([]string{"calibrate", "--device", "cpu"}, c.args...), corrupt)
		out, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%q: %v (want an error about the output, before reading the input)\n%s", c.args, err, out)
		}
	}
}

func TestCalibratePrintsTableWhenSideOutputFails(t *testing.T) {
	p := actNPY(t, 1000)
	dir := filepath.Dir(p)
	boom := errors.New("disk full")
	old := writeSideFile
	writeSideFile = func(path string, data []byte, perm os.FileMode) error {
		if strings.HasSuffix(path, ".cache") {
			return boom
		}
		return old(path, data, perm)
	}
	t.Cleanup(func() { writeSideFile = old })
	hist, jsonPath := filepath.Join(dir, "h.hist.json"), filepath.Join(dir, "r.json")
	for _, json := range []bool{false, true} {
		args := []string{"calibrate", "--device", "cpu", "--method", "max", "--trt-cache", filepath.Join(dir, "x.cache"),
			"--save-histograms", hist, "--json-out", jsonPath, p}
		if json {
			args = append(args[:len(args)-1], "--json", p)
		}
		out, err := run(t, args...)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "--trt-cache") {
			t.Errorf("json %v: error %v, want the cache's", json, err)
		}
		if !strings.Contains(out, `act`) || !strings.Contains(out, "max") {
			t.Errorf("json %v: the results were not printed:\n%s", json, out)
		}
		for _, f := range []string{hist, jsonPath} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("json %v: the other side outputs were not written: %v", json, err)
			}
			os.Remove(f)
		}
	}
}

// Warnings go to stderr, prefixed, one per tensor.
func TestCalibrateWarnsOfFloat64Overflow(t *testing.T) {
	x := []float64{1, -2, 1e300, -1e39, math.Inf(1), 0.5}
	data := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(v))
	}
	var npyFile strings.Builder
	if err := npy.Write(&npyFile, &npy.Array{DType: "<f8", Shape: []int{len(x)}, Data: data}); err != nil {
		t.Fatal(err)
	}
	p := writeTestFile(t, t.TempDir(), "wide.npy", []byte(npyFile.String()))
	app := newApp()
	var stdout, stderr strings.Builder
	app.Writer, app.ErrWriter = &stdout, &stderr
	if err := app.Run([]string{"quantkit", "calibrate", "--device", "cpu", "--method", "max", p}); err != nil {
		t.Fatal(err)
	}
	want := `quantkit: calibrate: warning: tensor "wide" (` + p + `): 2 finite float64 values are beyond float32's range`
	if !strings.HasPrefix(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 || strings.Contains(stdout.String(), "warning") {
		t.Errorf("stderr:\n%s\nstdout:\n%s\nwant the warning %q on stderr", stderr.String(), stdout.String(), want)
	}
}

// Usage strings say what the flags do; none shows a default that misleads.
func TestCalibrateHelp(t *testing.T) {
	out, err := run(t, "calibrate", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"--json-out FILE", "--trt-cache FILE", "--save-histograms FILE", "int8-64, uint8-64 or bool", "(default: 2048)"} {
		if !strings.Contains(out, s) {
			t.Errorf("help lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "(default: 0)") || strings.Contains(out, `(default: "")`) {
		t.Errorf("help shows an empty default:\n%s", out)
	}
}
