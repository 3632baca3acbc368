package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

// TestQATCommand trains briefly, exports QDQ ONNX, and checks that the
// file reads back into the same quantization.
func TestQATCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates the MNIST test set three times")
	}
	skipWithoutMNIST(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "q4.onnx")
	out, err := run(t, "qat", "--device", "cpu", "--bits", "4", "--images", "256", "--calib", "64", "--method", "max", "-o", path)
	if err != nil {
		t.Fatalf("qat: %v\n%s", err, out)
	}
	if !strings.Contains(out, "QAT top-1") {
		t.Errorf("output: %s", out)
	}
	net, err := onnxnet.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if net.Quant == nil || net.Quant.WeightBits != 4 {
		t.Fatalf("read back %+v", net.Quant)
	}
	// The file runs in integer arithmetic to the accuracy qat printed.
	test, err := dataset.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	e, err := integer.New(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, test.N)
	for i := range idx {
		idx[i] = i
	}
	n, err := demoAccuracy(e, demoSamples(test, idx, net.InputScale), 784, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("QAT top-1 %.2f %%", 100*float64(n)/float64(test.N)); !strings.Contains(out, want) {
		t.Errorf("the exported model scores %d/%d; qat said:\n%s", n, test.N, out)
	}
	if _, err := run(t, "qat", "--bits", "3", "-o", path); err == nil {
		t.Error("--bits 3 accepted")
	}
	if _, err := run(t, "qat", "--bits", "4"); err == nil {
		t.Error("no output accepted")
	}
}

// The result line is printed before the model is written, so that a
// write that fails at the end (its directory removed meanwhile) loses
// the accuracies to nothing; its error is still returned.
func TestQATResultBeforeWrite(t *testing.T) {
	net, _, err := demoLoadNet("", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := &dataset.Set{Name: "tiny", N: 1, C: 1, H: 28, W: 28, Classes: 10, Pixels: make([]uint8, 784), Labels: []uint8{3}}
	stats, err := calib.CollectActStats(net, demoSamples(set, []int{0}, 1), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := calib.PTQ(net, stats, calib.PTQOptions{Method: "max", WeightBits: 4})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gone", "q.onnx")
	var out strings.Builder
	err = qatFinish(&out, path, q, "int4 weights, int8 activations: QAT top-1 98.00 %\n")
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v does not name %s", err, path)
	}
	if !strings.Contains(out.String(), "QAT top-1 98.00 %") {
		t.Errorf("result line lost: %q", out.String())
	}
}
