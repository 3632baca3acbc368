package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/experiment"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

// qat's flags reach the job, the model is written where -o says, and the
// report is rendered: the result line and "wrote" on stdout, or with
// --json the JSON report alone on stdout (progress and "wrote" on
// stderr), and with --json-out the same JSON in a file. A tiny data set
// keeps it quick; the pipeline's results are tested in package
// experiment.
func TestQATCommand(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTrainTest(t, data, 40)
	path, js := filepath.Join(dir, "q4.onnx"), filepath.Join(dir, "q.json")
	out, log, err := expRun(t, "qat", "--device", "cpu", "--data", data, "--bits", "4", "--images", "16", "--calib", "8", "--val-images", "10",
		"--test-images", "20", "--method", "max", "--epochs", "2", "--seed", "5", "-o", path, "--json", "--json-out", js)
	if err != nil {
		t.Fatalf("qat: %v\n%s\n%s", err, out, log)
	}
	var rep experiment.QATReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out)
	}
	if rep.Bits != 4 || rep.Method != "max" || rep.QATImages != 16 || rep.CalibImages != 8 || rep.ValImages != 10 || rep.TestImages != 20 ||
		rep.Epochs != 2 || rep.Seed != 5 || rep.Output != path {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(log, "wrote "+path) || !strings.Contains(log, "calibrating on 8 training images") {
		t.Errorf("stderr:\n%s", log)
	}
	if b, err := os.ReadFile(js); err != nil || string(b) != out {
		t.Errorf("--json-out holds %q (%v), stdout %q", b, err, out)
	}
	net, err := onnxnet.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if net.Quant == nil || net.Quant.WeightBits != 4 {
		t.Fatalf("read back %+v", net.Quant)
	}
	st := filepath.Join(dir, "q8.safetensors")
	out, _, err = expRun(t, "qat", "--device", "cpu", "--data", data, "--bits", "8", "--images", "8", "--val-images", "10", "-o", st)
	if err != nil || !strings.Contains(out, "int8 weights, int8 activations: QAT top-1") || !strings.Contains(out, "wrote "+st) {
		t.Errorf("qat --bits 8: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"--bits", "3", "-o", path},
		{"--bits", "4"},
		{"--method", "median", "-o", path},
		{"--method", "best", "--val-images", "0", "-o", path},
	} {
		if _, err := run(t, append([]string{"qat", "--device", "cpu", "--data", data}, args...)...); err == nil || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%q: %v, want a bad-input error", args, err)
		}
	}
}

// The report is printed even when the model cannot be written at the end
// (its directory removed meanwhile), so the accuracies are not lost; the
// write's error is returned and nothing says the model was written.
func TestQATReportWhenWriteFails(t *testing.T) {
	net, err := onnxnet.Load(mnistModel)
	if err != nil {
		t.Fatal(err)
	}
	set := &dataset.Set{Name: "tiny", N: 1, C: 1, H: 28, W: 28, Classes: 10, Pixels: make([]uint8, 784), Labels: []uint8{3}}
	stats, err := calib.CollectActStats(net, &nn.Samples{N: 1, Labels: set.Labels, Fill: func(dst []float32, idx []int) { set.Input(dst, idx, 1) }}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := calib.PTQ(net, stats, calib.PTQOptions{Method: "max", WeightBits: 4})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gone", "q.onnx")
	for _, asJSON := range []bool{false, true} {
		rep := &experiment.QATReport{Bits: 4, QATTop1: 98, Net: q}
		var out, log strings.Builder
		err = qatOutputs(&out, &log, rep, asJSON, path, "")
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v does not name %s", err, path)
		}
		if want := "QAT top-1 98.00 %"; !asJSON && !strings.Contains(out.String(), want) || asJSON && !strings.Contains(out.String(), `"qat_top1_pct": 98`) {
			t.Errorf("report lost: %q", out.String())
		}
		if strings.Contains(out.String()+log.String(), "wrote") || strings.Contains(out.String(), `"output"`) {
			t.Errorf("claims the model was written: %q %q", out.String(), log.String())
		}
	}
}
