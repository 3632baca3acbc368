package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/nn"
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
	net, err := nn.LoadONNX(path)
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
	e, err := nn.NewInt8Engine(cpu.New(), net)
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
