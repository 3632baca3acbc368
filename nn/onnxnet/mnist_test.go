package onnxnet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/internal/testenv"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/internal/nntest"
)

func TestLowerMNIST(t *testing.T) {
	net, err := Load(nntest.MNISTONNX)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range net.Layers {
		got = append(got, nn.Describe(l))
	}
	want := []string{
		"conv 1→8 5x5 stride 1x1 pads 2,2,2,2", "relu", "maxpool 2x2 stride 2x2",
		"conv 8→16 5x5 stride 1x1 pads 2,2,2,2", "relu", "maxpool 3x3 stride 3x3",
		"flatten", "dense 256→10",
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("layers:\n got %q\nwant %q", got, want)
	}
	if p := nn.Params(net); p != 5994 {
		t.Errorf("%d parameters, want 5994", p)
	}
	if fmt.Sprint(net.Input) != "[1 28 28]" || net.InputName != "Input3" || net.OutputName != "Plus214_Output_0" || net.InputScale != 1 || net.Quant != nil {
		t.Errorf("input %v %q, output %q, scale %g, quant %v", net.Input, net.InputName, net.OutputName, net.InputScale, net.Quant)
	}
}

// The MNIST model on the MNIST test set: 9891 of 10000, as a plain
// forward pass of it scores.
func TestMNISTAccuracy(t *testing.T) {
	s, err := dataset.Load("mnist", "test")
	if err != nil {
		testenv.Missing(t, "MNIST test set unreachable here: %v", err)
	}
	net, err := Load(nntest.MNISTONNX)
	if err != nil {
		t.Fatal(err)
	}
	e, err := float.New(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	correct, total, err := nn.Accuracy(e, nntest.SetSamples(s, nil, net.InputScale), 0, 250)
	if err != nil {
		t.Fatal(err)
	}
	if correct != 9891 || total != 10000 {
		t.Errorf("%d of %d correct, want 9891 of 10000", correct, total)
	}
}
