package main

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/internal/filetest"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/experiment"
	"github.com/quantkit/quantkit/model/onnx"
)

// quickTimings makes the demo's timings short for tests.
func quickTimings(t *testing.T) {
	q := bench.Timing{MinTime: time.Millisecond, MinReps: 1, MaxReps: 3}
	demoTimings = &[2]bench.Timing{q, q}
	t.Cleanup(func() { demoTimings = nil })
}

// demo's flags reach the job, and its report is rendered: --json prints
// the JSON report alone on stdout (progress on stderr), --json-out writes
// the same to a file, --plot draws; without --json the table goes to
// stdout. A tiny data set keeps it quick; the pipeline's results are
// tested in package experiment.
func TestDemoCLI(t *testing.T) {
	quickTimings(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTrainTest(t, data, 40)
	js, png := filepath.Join(dir, "demo.json"), filepath.Join(dir, "demo.png")
	out, log, err := expRun(t, "demo", "--device", "cpu", "--data", data, "--test-images", "30", "--val-images", "8", "--calib", "6",
		"--qat-images", "16", "--epochs", "2", "--lr", "0.001", "--seed", "3", "--qat8", "--energy=false", "--json", "--json-out", js, "--plot", png)
	if err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out, log)
	}
	var rep experiment.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out)
	}
	if rep.TestImages != 30 || rep.ValImages != 8 || rep.CalibImages != 6 || rep.QATImages != 16 || rep.Epochs != 2 || rep.LR != 0.001 ||
		rep.Seed != 3 || rep.Data != data || rep.Device != "cpu" || len(rep.Rows) != 8 || rep.Rows[7].Name != "QAT int8w" || rep.EnergySource != "" {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(log, "calibrating on 6 training images") {
		t.Errorf("no progress on stderr:\n%s", log)
	}
	if b, err := os.ReadFile(js); err != nil || string(b) != out {
		t.Errorf("--json-out holds %q (%v), stdout %q", b, err, out)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
	out, _, err = expRun(t, "demo", "--device", "cpu", "--data", data, "--val-images", "8", "--calib", "6", "--qat-images", "16", "--energy=false")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"(40 test images)", "PTQ: 6 calibration images; QAT: 1 epoch(s) over 16 images, lr 0.0001, seed 1", "PTQ int4w", "QAT int4w", "s in all"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := expRun(t, "demo", "--device", "cpu", "--data", data, "--val-images", "0"); err == nil || !errors.Is(err, inputerr.ErrInput) {
		t.Errorf("--val-images 0: %v", err)
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
			!strings.Contains(err.Error(), "--allow-nonfinite loads the model anyway") ||
			!strings.Contains(err.Error(), `initializer "Parameter88": 1 ±Inf of 16 values`) || strings.Contains(err.Error(), "no-such-data") {
			t.Errorf("%s: %v\n%s", args[0], err, out)
		}
		if !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s: %v is not marked as bad input", args[0], err)
		}
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTrainTest(t, data, 40)
	warning := `quantkit: warning: ` + path + ` has non-finite weights, loaded as they are: initializer "Parameter5": 1 NaN of 200 values; initializer "Parameter88": 1 ±Inf of 16 values`
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
	warning = `quantkit: warning: ` + inf + ` has non-finite weights, loaded as they are: initializer "Parameter194": 1 ±Inf of 10 values`
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
	jdir := filepath.Join(dir, "d.json")
	if err := os.Mkdir(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"qat", "-o", filepath.Join(nodir, "q.onnx")}, "--output " + filepath.Join(nodir, "q.onnx") + ": directory " + nodir + " does not exist"},
		{[]string{"qat", "-o", filepath.Join(dir, "q.txt")}, "--output " + filepath.Join(dir, "q.txt") + ": want a .onnx or .safetensors file"},
		{[]string{"qat", "-o", dir + "/"}, "--output"},
		{[]string{"qat", "-o", filepath.Join(dir, "q.onnx"), "--json-out", filepath.Join(nodir, "r.json")}, "--json-out " + filepath.Join(nodir, "r.json") + ": directory " + nodir + " does not exist"},
		{[]string{"demo", "--json-out", filepath.Join(nodir, "r.json")}, "--json-out " + filepath.Join(nodir, "r.json") + ": directory " + nodir + " does not exist"},
		{[]string{"demo", "--json-out", jdir}, "--json-out " + jdir + ": is a directory"},
		{[]string{"eval", "--model", mnistModel, "--json-out", jdir}, "--json-out " + jdir + ": is a directory"},
		{[]string{"eval", "--model", mnistModel, "--json-out", filepath.Join(dir, "r.txt")}, "want a .json file"},
		{[]string{"demo", "--plot", filepath.Join(dir, "p.jpg")}, "--plot " + filepath.Join(dir, "p.jpg") + ": want a .png or .svg file"},
		{[]string{"demo", "--plot", filepath.Join(nodir, "p.png")}, "--plot " + filepath.Join(nodir, "p.png") + ": directory " + nodir + " does not exist"},
	} {
		out, err := run(t, append(c.args, "--data", missing, "--device", "cpu")...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "no-such-data") {
			t.Errorf("%q: %v, want an error containing %q\n%s", c.args, err, c.want, out)
		}
	}
}
