package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/filetest"
	"github.com/quantkit/quantkit/model/onnx"
)

func skipWithoutMNIST(t *testing.T) {
	t.Helper()
	if _, err := dataset.Load("mnist", "test"); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
}

// TestDemoSmall runs the demo on a few images and checks the report's
// rows, the table, the JSON and the plot.
func TestDemoSmall(t *testing.T) {
	skipWithoutMNIST(t)
	dir := t.TempDir()
	js, png := filepath.Join(dir, "demo.json"), filepath.Join(dir, "demo.png")
	out, err := run(t, "demo", "--device", "cpu", "--test-images", "300", "--val-images", "300", "--calib", "64",
		"--qat-images", "128", "--energy=false", "--json", js, "--plot", png)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep DemoReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	want := []string{"FP32", "PTQ int8 max", "PTQ int8 percentile", "PTQ int8 entropy", "PTQ int8 mse", "PTQ int4w ", "QAT int4w"}
	if len(rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rep.Rows), len(want), out)
	}
	for i, r := range rep.Rows {
		if !strings.HasPrefix(r.Name, want[i]) {
			t.Errorf("row %d is %q, want %q", i, r.Name, want[i])
		}
		if r.Total != 300 || r.Top1 < 90 || r.ImagesPerS <= 0 || r.LatencyMs <= 0 || r.JPerImage != nil {
			t.Errorf("row %+v", r)
		}
		if !strings.Contains(out, r.Name) {
			t.Errorf("table lacks %q", r.Name)
		}
	}
	// Sizes: 5,994 float32 parameters; int8 and int4 codes with float
	// scales and biases.
	if rep.Rows[0].WeightBytes != 4*5994 || rep.Rows[1].WeightBytes >= rep.Rows[0].WeightBytes/3 || rep.Rows[5].WeightBytes >= rep.Rows[1].WeightBytes {
		t.Errorf("weight bytes %d, %d, %d", rep.Rows[0].WeightBytes, rep.Rows[1].WeightBytes, rep.Rows[5].WeightBytes)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
}

// fakeForward advances a fake clock by a fixed time per call.
type fakeForward struct {
	now *time.Time
	per time.Duration
}

func (f fakeForward) Forward([]float32, int, []float32) error { *f.now = f.now.Add(f.per); return nil }
func (f fakeForward) Close() error                            { return nil }

// TestDemoEnergy measures a forward pass of 2 ms at a constant 10 W on
// a fake counter: 0.02 J per batch of 256.
func TestDemoEnergy(t *testing.T) {
	net, _, err := demoLoadNet("", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	src := energy.NewFakeSource("fake").Constant(10)
	src.Start, src.Now = now, func() time.Time { return now }
	set := &dataset.Set{Name: "tiny", N: 1, C: 1, H: 28, W: 28, Classes: 10, Pixels: make([]uint8, 784), Labels: []uint8{3}}
	j, err := demoEnergy(src, fakeForward{&now, 2 * time.Millisecond}, net, set)
	if err != nil {
		t.Fatal(err)
	}
	if want := 10 * 0.002 / 256; math.Abs(j-want) > 1e-9*want {
		t.Errorf("%g J per image, want %g", j, want)
	}
}

// nonFiniteModel writes a copy of the MNIST model with value 3 of each
// initializer set changes set to what it maps it to.
func nonFiniteModel(t *testing.T, set map[string]float32) string {
	t.Helper()
	m, err := onnx.Read(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range set {
		init := m.Graph.InitializerByName(name)
		vals, err := init.Float32()
		if err != nil {
			t.Fatal(err)
		}
		vals[3] = v
		*init = *onnx.NewFloat(name, init.Dims, vals)
	}
	path := filepath.Join(t.TempDir(), "nonfinite.onnx")
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeTrainTest writes a data set of n 28×28 images into dir, the same
// ones as its train and test splits.
func writeTrainTest(t *testing.T, dir string, n int) {
	t.Helper()
	writeIDX(t, dir, n, 28, 28, 10)
	for _, f := range []string{"images-idx3-ubyte", "labels-idx1-ubyte"} {
		b, err := os.ReadFile(filepath.Join(dir, "t10k-"+f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "train-"+f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A model with NaN or infinite weights is refused by eval, qat and demo
// before any work (the data set is not even looked at), with an error
// naming the file and the initializers; --allow-nonfinite runs it with a
// warning that names them and their counts.
func TestEvalQATDemoNonFiniteModel(t *testing.T) {
	// A NaN weight in the first convolution, an infinite bias in the
	// second.
	path := nonFiniteModel(t, map[string]float32{"Parameter5": float32(math.NaN()), "Parameter88": float32(math.Inf(1))})
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-data")
	for _, args := range [][]string{
		{"eval", "--model", path, "--data", missing},
		{"qat", "--model", path, "--data", missing, "-o", filepath.Join(dir, "q.onnx")},
		{"demo", "--model", path, "--data", missing},
	} {
		out, err := run(t, append(args, "--device", "cpu")...)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `initializer "Parameter5": 1 NaN of 200 values`) ||
			!strings.Contains(err.Error(), `initializer "Parameter88": 1 ±Inf of 16 values`) || strings.Contains(err.Error(), "no-such-data") {
			t.Errorf("%s: %v\n%s", args[0], err, out)
		}
		if !errors.Is(err, errBadInput) {
			t.Errorf("%s: %v is not marked as bad input", args[0], err)
		}
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTrainTest(t, data, 40)
	warning := `--allow-nonfinite: ` + path + ` has non-finite weights: initializer "Parameter5": 1 NaN of 200 values; initializer "Parameter88": 1 ±Inf of 16 values`
	out, err := run(t, "eval", "--model", path, "--data", data, "--device", "cpu", "--allow-nonfinite")
	if err != nil || !strings.Contains(out, warning) || !strings.Contains(out, "accuracy") {
		t.Errorf("eval --allow-nonfinite: %v\n%s", err, out)
	}
	// NaN activations everywhere cannot be calibrated: qat says so. An
	// infinite bias of the last layer (Parameter194) leaves something to
	// calibrate and train.
	out, err = run(t, "qat", "--model", path, "--data", data, "--device", "cpu", "--allow-nonfinite",
		"--images", "16", "--calib", "8", "--val-images", "8", "--method", "max", "-o", filepath.Join(dir, "q.onnx"))
	if err == nil || !strings.Contains(out, warning) {
		t.Errorf("qat --allow-nonfinite of NaN activations: %v\n%s", err, out)
	}
	inf := nonFiniteModel(t, map[string]float32{"Parameter194": float32(math.Inf(-1))})
	q := filepath.Join(dir, "q.onnx")
	out, err = run(t, "qat", "--model", inf, "--data", data, "--device", "cpu", "--allow-nonfinite",
		"--images", "16", "--calib", "8", "--val-images", "8", "--method", "max", "-o", q)
	warning = `--allow-nonfinite: ` + inf + ` has non-finite weights: initializer "Parameter194": 1 ±Inf of 10 values`
	if err != nil || !strings.Contains(out, warning) || !strings.Contains(out, "QAT top-1") || !strings.Contains(out, "wrote "+q) {
		t.Errorf("qat --allow-nonfinite: %v\n%s", err, out)
	}
}

// A named pipe given as --model is refused at once as not a regular file
// (opening it would wait for a writer for ever).
func TestEvalQATDemoModelFIFO(t *testing.T) {
	fifo := filetest.NamedPipe(t, "model.onnx")
	out := filepath.Join(t.TempDir(), "q.onnx")
	for _, args := range [][]string{
		{"eval", "--model", fifo},
		{"qat", "--model", fifo, "-o", out},
		{"demo", "--model", fifo},
	} {
		err := filetest.Within(t, fifo, func() error {
			_, err := run(t, append(args, "--device", "cpu")...)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s --model FIFO: %v", args[0], err)
		}
	}
}

// Output files are checked before any work: a missing directory or a
// wrong extension is an error naming the option, not a run that loses
// its results at the end (the data set, which does not exist, is never
// looked at).
func TestQATDemoOutputPathsFirst(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-data")
	nodir := filepath.Join(dir, "no-such-dir")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"qat", "-o", filepath.Join(nodir, "q.onnx")}, "--output " + filepath.Join(nodir, "q.onnx") + ": directory " + nodir + " does not exist"},
		{[]string{"qat", "-o", filepath.Join(dir, "q.txt")}, "--output " + filepath.Join(dir, "q.txt") + ": want a .onnx or .safetensors file"},
		{[]string{"qat", "-o", dir + "/"}, "--output"},
		{[]string{"demo", "--json", filepath.Join(nodir, "r.json")}, "--json " + filepath.Join(nodir, "r.json") + ": directory " + nodir + " does not exist"},
		{[]string{"demo", "--json", dir}, "--json " + dir + ": is a directory"},
		{[]string{"demo", "--plot", filepath.Join(dir, "p.jpg")}, "--plot " + filepath.Join(dir, "p.jpg") + ": want a .png or .svg file"},
		{[]string{"demo", "--plot", filepath.Join(nodir, "p.png")}, "--plot " + filepath.Join(nodir, "p.png") + ": directory " + nodir + " does not exist"},
	} {
		out, err := run(t, append(c.args, "--data", missing, "--device", "cpu")...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "no-such-data") {
			t.Errorf("%q: %v, want an error containing %q\n%s", c.args, err, c.want, out)
		}
	}
}

// A side output that fails at the end (its directory removed meanwhile)
// loses neither the table, printed first, nor the other side outputs;
// its error is still returned.
func TestDemoSideOutputsAfterTable(t *testing.T) {
	dir := t.TempDir()
	rep := &DemoReport{Model: "m", Data: "d", Device: "cpu", TestImages: 10, Rows: []DemoRow{
		{Name: "FP32", Method: "fp32", Top1: 90, WeightBytes: 400, ImagesPerS: 100},
		{Name: "PTQ int8 max", Method: "ptq", Top1: 89, Delta: -1, WeightBytes: 100, ImagesPerS: 200},
	}}
	js, png := filepath.Join(dir, "gone", "r.json"), filepath.Join(dir, "p.png")
	var out bytes.Buffer
	err := demoOutputs(&out, rep, js, png)
	if err == nil || !strings.Contains(err.Error(), js) {
		t.Errorf("error %v does not name %s", err, js)
	}
	if !strings.Contains(out.String(), "PTQ int8 max") {
		t.Errorf("table lost:\n%s", out.String())
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Errorf("plot not written after the JSON failed: %v", err)
	}
}
