package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/jsonout"
	"github.com/quantkit/quantkit/job/devices"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// run runs the command line and returns what it printed and its error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = &out
	err := app.Run(resolve(app, append([]string{"quantkit"}, args...), &out).Args)
	return out.String(), err
}

func TestVersionAndHelp(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "quantkit ") {
		t.Fatalf("version: %q, %v", out, err)
	}
	out, err = run(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"devices", "calibrate", "bench", "profile", "gen", "inspect", "version"} {
		if !strings.Contains(out, cmd) {
			t.Errorf("--help does not list %s:\n%s", cmd, out)
		}
	}
}

func TestDevices(t *testing.T) {
	out, err := run(t, "devices")
	if err != nil {
		t.Fatalf("devices failed: %v", err)
	}
	if !strings.Contains(out, "CPU: ") || !strings.Contains(out, "backends in this build: ") {
		t.Errorf("devices output lacks the CPU:\n%s", out)
	}
	// Either a GPU table or a line that says why there is none.
	if !strings.Contains(out, "NVIDIA driver") && !strings.Contains(out, "no NVIDIA GPU found") {
		t.Errorf("devices says nothing about GPUs:\n%s", out)
	}
	out, err = run(t, "devices", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r devices.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.CPU.Threads < 1 {
		t.Fatalf("devices --json: %v\n%s", err, out)
	}
}

func gaussian(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func TestCalibrateNpyAndSafetensors(t *testing.T) {
	dir := t.TempDir()
	x1, x2 := gaussian(30000, 1), gaussian(20000, 2)
	x2[7] = 9 // a larger max in the second batch grows the histogram
	p1, p2 := filepath.Join(dir, "b0", "act.npy"), filepath.Join(dir, "b1", "act.npy")
	os.Mkdir(filepath.Dir(p1), 0o755)
	os.Mkdir(filepath.Dir(p2), 0o755)
	if err := npy.WriteFile(p1, x1, []int{300, 100}); err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(p2, x2, []int{20000}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "calibrate", "--method", "all", "--device", "cpu", "--json", p1, p2)
	if err != nil {
		t.Fatalf("calibrate: %v\n%s", err, out)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want one per calibrator for the one tensor:\n%s", len(rows), out)
	}
	// The two files are batches of one tensor: the same as one histogram
	// of all the values, computed here with quant directly.
	h := quant.NewHistogram(quant.DefaultBins)
	h.Add(x1)
	h.Add(x2)
	for i, name := range quant.CalibratorNames() {
		row := rows[i]
		for _, key := range []string{"tensor", "method", "amax", "scale"} {
			if _, ok := row[key]; !ok {
				t.Errorf("row %d lacks %q", i, key)
			}
		}
		cal, _ := quant.NewCalibrator(name, quant.CalibOptions{Bits: 8, Percentile: 99.99})
		want, err := cal.Amax(h)
		if err != nil {
			t.Fatal(err)
		}
		if row["tensor"] != "act" || row["method"] != name || float32(row["amax"].(float64)) != want {
			t.Errorf("row %d = %v, want tensor act, method %s, amax %g", i, row, name, want)
		}
		if got := float32(row["scale"].(float64)); got != want/127 {
			t.Errorf("%s scale %g, want amax/127 = %g", name, got, want/127)
		}
	}
	if rows[0]["amax"].(float64) != 9 {
		t.Errorf("max amax %v, want 9", rows[0]["amax"])
	}

	// The same samples as safetensors, with --tensor, a TensorRT cache and
	// saved histograms that merge back to the same result.
	st := filepath.Join(dir, "acts.safetensors")
	if err := safetensors.WriteFile(st, []safetensors.Tensor{
		{Name: "act", DType: "F32", Shape: []int{30000}, Data: f32Bytes(x1)},
		{Name: "other", DType: "F32", Shape: []int{20000}, Data: f32Bytes(x2)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	cache, hist := filepath.Join(dir, "calib.cache"), filepath.Join(dir, "h.hist.json")
	out, err = run(t, "calibrate", "--device", "cpu", "--method", "entropy", "--trt-cache", cache, "--save-histograms", hist, st)
	if err != nil {
		t.Fatalf("calibrate safetensors: %v\n%s", err, out)
	}
	if !strings.Contains(out, "act") || !strings.Contains(out, "other") {
		t.Errorf("table lacks tensors:\n%s", out)
	}
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || lines[0] != "TRT-8601-EntropyCalibration2" {
		t.Fatalf("cache:\n%s", data)
	}
	h1 := quant.NewHistogram(quant.DefaultBins)
	h1.Add(x1)
	cal, _ := quant.NewCalibrator("entropy", quant.CalibOptions{Bits: 8})
	amax, _ := cal.Amax(h1)
	if want := "act: " + hex32(amax/127); lines[1] != want {
		t.Errorf("cache line %q, want %q", lines[1], want)
	}
	out2, err := run(t, "calibrate", "--device", "cpu", "--method", "entropy", hist)
	if err != nil || out2 != out {
		t.Errorf("from saved histograms (%v):\n%s\nwant:\n%s", err, out2, out)
	}
	out, err = run(t, "calibrate", "--device", "cpu", "--tensor", "other", "--json", st)
	if err != nil || strings.Count(out, `"tensor"`) != 1 || !strings.Contains(out, `"other"`) {
		t.Errorf("--tensor other: %v\n%s", err, out)
	}
}

func hex32(f float32) string {
	const digits = "0123456789abcdef"
	b := math.Float32bits(f)
	s := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		s[i] = digits[b&15]
		b >>= 4
	}
	return string(s)
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}

func TestCalibrateBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nan := float32(math.NaN())
	nanFile := filepath.Join(dir, "nan.npy")
	if err := npy.WriteFile(nanFile, []float32{nan, nan, nan}, []int{3}); err != nil {
		t.Fatal(err)
	}
	header := func(dict string) []byte {
		h := []byte("\x93NUMPY\x01\x00")
		pad := 64 - (10+len(dict)+1)%64
		dict += strings.Repeat(" ", pad%64) + "\n"
		h = append(h, byte(len(dict)), byte(len(dict)>>8))
		return append(h, dict...)
	}
	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.npy"), "nope.npy"},
		{"bad magic", write("magic.npy", []byte("PK\x03\x04 this is a zip")), "magic"},
		{"truncated header", write("trunc.npy", header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }")[:30]), "trunc.npy"},
		{"short data", write("short.npy", append(header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"), 0, 0, 0, 0)), "short.npy"},
		{"fortran", write("fortran.npy", append(header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }"), 0, 0, 0, 0)), "ortran"},
		{"object", write("object.npy", append(header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"), 0, 0, 0, 0, 0, 0, 0, 0)), "object.npy"},
		{"complex", write("complex.npy", append(header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }"), make([]byte, 8)...)), "c8"},
		{"only NaN", nanFile, "no finite values"},
		{"unknown format", write("acts.txt", []byte("1 2 3")), "unknown format"},
		{"bad safetensors", write("bad.safetensors", []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}), "bad.safetensors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, "calibrate", "--device", "cpu", tc.path)
			if err == nil {
				t.Fatalf("no error; printed:\n%s", out)
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Base(tc.path)) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q should name the file and say %q", msg, tc.want)
			}
		})
	}
	if _, err := run(t, "calibrate", "--method", "bogus", nanFile); err == nil || !strings.Contains(err.Error(), "entropy") {
		t.Errorf("unknown method: %v (want the known ones listed)", err)
	}
}

func TestBenchGemmJSON(t *testing.T) {
	out, err := run(t, "bench", "gemm", "--device", "cpu", "--sizes", "32,48", "--min-time", "1ms", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep struct {
		Results []struct {
			Impl, DType     string
			M               int
			OpsPerSecond    float64 `json:"ops_per_second"`
			SpeedupOverFP32 float64 `json:"speedup_over_fp32"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 6 {
		t.Fatalf("%d results, want gonum + fp32 + int8 at two sizes:\n%s", len(rep.Results), out)
	}
	for _, r := range rep.Results {
		if r.OpsPerSecond <= 0 || (r.DType == "int8" && r.SpeedupOverFP32 <= 0) {
			t.Errorf("bad result %+v", r)
		}
	}
	for _, tc := range []struct{ flag, value, want string }{
		{"--sizes", "0", "GEMM size 0 must be positive"},
		{"--sizes", "64, x", `--sizes: "x" is not an integer`},
		{"--sizes", "", "gemm: no GEMM sizes"},
		{"--dtypes", "fp32,fp8", `unknown GEMM dtype "fp8"`},
	} {
		_, err := run(t, "bench", "gemm", "--device", "cpu", tc.flag, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s %q: %v, want bad input saying %q", tc.flag, tc.value, err, tc.want)
		}
	}
	if _, err := run(t, "bench", "gemm", "--device", "tpu"); err == nil {
		t.Error("--device tpu accepted")
	}
}

func TestBenchAllCSVPlot(t *testing.T) {
	dir := t.TempDir()
	csvPath, plotPath := filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.svg")
	out, err := run(t, "bench", "all", "--device", "cpu", "--sizes", "16", "--elements", "1000", "--min-time", "1ms",
		"--baseline=false", "--csv", csvPath, "--plot", plotPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, op := range []string{"gemm", "quantize-int8", "quantize-int4-g128", "dequantize-int8", "absmax", "histogram", "upload", "download"} {
		if !strings.Contains(out, op) {
			t.Errorf("bench all lacks %s:\n%s", op, out)
		}
	}
	data, err := os.ReadFile(csvPath)
	if err != nil || strings.Count(string(data), "\n") != 1+2+5+2 {
		t.Errorf("CSV (%v):\n%s", err, data)
	}
	if st, err := os.Stat(plotPath); err != nil || st.Size() == 0 {
		t.Errorf("plot: %v", err)
	}
	// Without RAPL or NVML the energy columns are absent and the table says why.
	out, err = run(t, "bench", "histogram", "--device", "cpu", "--elements", "1000", "--min-time", "1ms", "--energy",
		"--min-window", "20ms", "--idle", "0")
	if err != nil {
		t.Fatalf("--energy: %v\n%s", err, out)
	}
	if !strings.Contains(out, "energy") {
		t.Errorf("--energy output says nothing about energy:\n%s", out)
	}
}

// jsonText is v as --json prints it.
func jsonText(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := jsonout.Write(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
