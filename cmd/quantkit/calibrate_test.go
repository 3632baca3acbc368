package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
)

// writeTestFile writes data to name in dir and returns its path.
func writeTestFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// npyF64 is a little-endian float64 .npy file of x.
func npyF64(t *testing.T, x []float64) []byte {
	t.Helper()
	data := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(v))
	}
	dict := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }", len(x))
	h := []byte("\x93NUMPY\x01\x00")
	dict += strings.Repeat(" ", (64-(10+len(dict)+1)%64)%64) + "\n"
	h = append(h, byte(len(dict)), byte(len(dict)>>8))
	return append(append(h, dict...), data...)
}

func f64Bytes(x []float64) []byte {
	b := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return b
}

const calibHist = `{"bins":8,"width":1,"max":1.5,"counts":[2,3],"non_finite":0}`

func TestCalibrateRejectsBadHistogramFiles(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, data, want string }{
		{"dup.hist.json", `{"act": ` + calibHist + `, "act": ` + calibHist + `}`, `tensor "act" appears twice`},
		{"empty.hist.json", `{}`, "no histograms"},
		{"array.hist.json", `[]`, "not a JSON object"},
		{"negative.hist.json", `{"act": {"bins":8,"width":1,"max":1.5,"counts":[2,-3],"non_finite":0}}`, `tensor "act": count -3`},
		{"type.hist.json", `{"act": {"bins":8,"width":"1","max":1.5,"counts":[2,3],"non_finite":0}}`, `tensor "act": "width"`},
		{"null.hist.json", `{"act": null}`, `tensor "act"`},
		{"missing.hist.json", `{"act": {"bins":8,"width":1,"max":1.5,"non_finite":0}}`, `tensor "act": missing "counts"`},
		{"trailing.hist.json", `{"act": ` + calibHist + `} {}`, "data after"},
		{"phantom.hist.json", `{"act": {"bins":8,"width":1,"max":5,"counts":[2,3,0,0,0,0],"non_finite":0}}`, `tensor "act": max 5`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeTestFile(t, dir, c.name, []byte(c.data))
			out, err := run(t, "calibrate", "--device", "cpu", p)
			if err == nil {
				t.Fatalf("no error; printed:\n%s", out)
			}
			if !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q should name the file and say %q", err, c.want)
			}
			if !errors.Is(err, errBadInput) {
				t.Errorf("error %q is not marked bad input", err)
			}
		})
	}
	// --tensor naming no tensor of a histogram file is an error, as for
	// safetensors, not an empty run.
	good := writeTestFile(t, dir, "good.hist.json", []byte(`{"act": `+calibHist+`}`))
	if out, err := run(t, "calibrate", "--device", "cpu", "--tensor", "other", good); err == nil || !strings.Contains(err.Error(), `no tensor named "other"`) {
		t.Errorf("--tensor other of a file without it: %v\n%s", err, out)
	}
	if out, err := run(t, "calibrate", "--device", "cpu", "--method", "max", good); err != nil || !strings.Contains(out, "act") {
		t.Errorf("good file: %v\n%s", err, out)
	}
}

func TestCalibratePercentileRange(t *testing.T) {
	p := filepath.Join(t.TempDir(), "act.npy")
	if err := npy.WriteFile(p, gaussian(1000, 1), []int{1000}); err != nil {
		t.Fatal(err)
	}
	for _, pc := range []string{"0", "-5", "100.5", "NaN", "-0"} {
		out, err := run(t, "calibrate", "--device", "cpu", "--method", "percentile", "--percentile", pc, p)
		if err == nil || !strings.Contains(err.Error(), "--percentile") || !strings.Contains(err.Error(), "(0, 100]") {
			t.Errorf("--percentile %s: %v\n%s", pc, err, out)
		}
	}
	for _, pc := range []string{"100", "1e-9", "50"} {
		if out, err := run(t, "calibrate", "--device", "cpu", "--method", "percentile", "--percentile", pc, p); err != nil {
			t.Errorf("--percentile %s: %v\n%s", pc, err, out)
		}
	}
}

func TestCalibrateReportsNonFinite(t *testing.T) {
	dir := t.TempDir()
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	x := gaussian(1000, 1)
	x[3], x[10], x[20] = nan, inf, -inf
	p := filepath.Join(dir, "act.npy")
	if err := npy.WriteFile(p, x, []int{1000}); err != nil {
		t.Fatal(err)
	}
	clean := filepath.Join(dir, "clean.npy")
	if err := npy.WriteFile(clean, gaussian(100, 2), []int{100}); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"max", "all"} {
		out, err := run(t, "calibrate", "--device", "cpu", "--method", method, p, clean)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "non-finite") {
			t.Fatalf("--method %s: table without a non-finite column:\n%s", method, out)
		}
		if f := strings.Fields(lines[1]); f[0] != "act" || f[1] != "997" || f[2] != "3" {
			t.Errorf("--method %s: act row %q, want 997 values and 3 non-finite", method, lines[1])
		}
		if f := strings.Fields(lines[2]); f[0] != "clean" || f[2] != "0" {
			t.Errorf("--method %s: clean row %q, want 0 non-finite", method, lines[2])
		}
	}
	// Without non-finite values the table is as it was.
	out, err := run(t, "calibrate", "--device", "cpu", "--method", "max", clean)
	if err != nil || strings.Contains(out, "non-finite") {
		t.Errorf("clean input: %v\n%s", err, out)
	}
}

func TestCalibrateWarnsOfFloat64Overflow(t *testing.T) {
	dir := t.TempDir()
	x := []float64{1, -2, 1e300, -1e39, math.Inf(1), math.NaN(), 3e38, 0.5}
	p := writeTestFile(t, dir, "wide.npy", npyF64(t, x))
	st := filepath.Join(dir, "acts.safetensors")
	if err := safetensors.WriteFile(st, []safetensors.Tensor{
		{Name: "f64", DType: "F64", Shape: []int{len(x)}, Data: f64Bytes(x)},
		{Name: "fine", DType: "F64", Shape: []int{3}, Data: f64Bytes([]float64{1, 2, math.Inf(-1)})},
	}, nil); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "calibrate", "--device", "cpu", "--method", "max", p, st)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var warnings []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "warning") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 2 {
		t.Fatalf("%d warnings, want one per tensor with overflows (wide, f64):\n%s", len(warnings), out)
	}
	for i, want := range []string{`tensor "f64"`, `tensor "wide"`} {
		if w := warnings[i]; !strings.Contains(w, want) || !strings.Contains(w, "2 finite float64 values") {
			t.Errorf("warning %q should name %s and count 2 values", w, want)
		}
	}
	// 1, -2, 3e38 and 0.5 are finite; 1e300, -1e39, +Inf and NaN are not.
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && (f[0] == "wide" || f[0] == "f64") && (f[1] != "4" || f[2] != "4") {
			t.Errorf("row %q, want 4 values and 4 non-finite", l)
		}
	}
}

func TestCalibrateTRTCacheRejectsBadNames(t *testing.T) {
	dir := t.TempDir()
	x := gaussian(100, 1)
	st := filepath.Join(dir, "acts.safetensors")
	if err := safetensors.WriteFile(st, []safetensors.Tensor{
		{Name: "ok", DType: "F32", Shape: []int{100}, Data: f32Bytes(x)},
		{Name: "evil\nother: 3f800000", DType: "F32", Shape: []int{100}, Data: f32Bytes(x)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	colon := filepath.Join(dir, "conv:0.npy")
	if err := npy.WriteFile(colon, x, []int{100}); err != nil {
		t.Fatal(err)
	}
	// A corrupt file first: the names are checked before any file is read.
	corrupt := writeTestFile(t, dir, "corrupt.npy", []byte("not npy"))
	hist := writeTestFile(t, dir, "h.hist.json", []byte(`{"a\rb": `+calibHist+`}`))
	cache := filepath.Join(dir, "out.cache")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{corrupt, st}, `"evil\nother: 3f800000"`},
		{[]string{corrupt, colon}, `"conv:0"`},
		{[]string{hist}, `"a\rb"`},
		{[]string{"--tensor", "x: y", corrupt}, `"x: y"`},
	} {
		args := append([]string{"calibrate", "--device", "cpu", "--trt-cache", cache}, c.args...)
		out, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--trt-cache") {
			t.Errorf("%q: %v (want an error naming tensor %s)\n%s", c.args, err, c.want, out)
		}
		if _, err := os.Stat(cache); err == nil {
			t.Fatalf("%q: the cache was written", c.args)
		}
	}
	// Without --trt-cache such names are fine.
	if out, err := run(t, "calibrate", "--device", "cpu", "--method", "max", st, colon); err != nil {
		t.Errorf("without --trt-cache: %v\n%s", err, out)
	}
	// --trt-version goes into the first line too.
	good := filepath.Join(dir, "good.npy")
	if err := npy.WriteFile(good, x, []int{100}); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "calibrate", "--device", "cpu", "--trt-cache", cache, "--trt-version", "86\nx: 1", good); err == nil || !strings.Contains(err.Error(), "--trt-version") {
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
		{[]string{"--trt-cache", filepath.Join(dir, "x.hist.json"), "--save-histograms", filepath.Join(dir, "x.hist.json")}, "same file"},
	} {
		args := append(append([]string{"calibrate", "--device", "cpu"}, c.args...), corrupt)
		out, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%q: %v (want an error about the output, before reading the input)\n%s", c.args, err, out)
		}
	}
}

func TestCalibratePrintsTableWhenSideOutputFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "act.npy")
	if err := npy.WriteFile(p, gaussian(1000, 1), []int{1000}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	old := writeCalibFile
	writeCalibFile = func(path string, data []byte, perm os.FileMode) error {
		if strings.HasSuffix(path, ".cache") {
			return boom
		}
		return old(path, data, perm)
	}
	t.Cleanup(func() { writeCalibFile = old })
	hist := filepath.Join(dir, "h.hist.json")
	for _, json := range []bool{false, true} {
		args := []string{"calibrate", "--device", "cpu", "--method", "max", "--trt-cache", filepath.Join(dir, "x.cache"), "--save-histograms", hist, p}
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
		if _, err := os.Stat(hist); err != nil {
			t.Errorf("json %v: the other side output was not written: %v", json, err)
		}
		os.Remove(hist)
	}
}
