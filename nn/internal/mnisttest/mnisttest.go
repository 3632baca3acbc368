// Package mnisttest holds what the MNIST tests of nn's packages share:
// the ONNX model zoo MNIST CNN (98.91 % in float32) with the MNIST
// training and test sets, and how the engines score on them. The tests
// need the data (see package dataset) and report its absence with
// testenv.Missing.
package mnisttest

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/internal/testenv"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/internal/nntest"
	"github.com/quantkit/quantkit/nn/mnistcnn"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

var mnist = sync.OnceValues(func() (*Data, error) {
	m, err := onnx.Decode(mnistcnn.ONNX)
	if err != nil {
		return nil, err
	}
	net, err := onnxnet.Lower(m)
	if err != nil {
		return nil, err
	}
	train, err := dataset.Load("mnist", "train")
	if err != nil {
		return nil, err
	}
	test, err := dataset.Load("mnist", "test")
	if err != nil {
		return nil, err
	}
	return &Data{Net: net, Train: train, Test: test}, nil
})

// Data is the MNIST CNN and the MNIST sets.
type Data struct {
	Net         *nn.Net
	Train, Test *dataset.Set
}

// Load loads the model and the data once per test binary.
func Load(t *testing.T) *Data {
	t.Helper()
	d, err := mnist()
	if err != nil {
		testenv.Missing(t, "MNIST model or data not available: %v", err)
	}
	return d
}

// Samples views the training images idx, scaled as the net expects.
func (d *Data) Samples(idx []int) *nn.Samples {
	return nntest.SetSamples(d.Train, idx, d.Net.InputScale)
}

// Correct counts the test images the integer engine classifies right.
func (d *Data) Correct(t *testing.T, q *nn.Net) int {
	t.Helper()
	e, err := integer.New(cpu.New(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	n, _, err := nn.Accuracy(e, nntest.SetSamples(d.Test, nil, q.InputScale), 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// FP32Correct is the float32 model's score on the MNIST test set, by the
// float engine; 9891 (98.91 %) as published for a plain float forward.
func (d *Data) FP32Correct(t *testing.T) int {
	t.Helper()
	e, err := float.New(cpu.New(), d.Net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	n, _, err := nn.Accuracy(e, nntest.SetSamples(d.Test, nil, d.Net.InputScale), 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	if n != 9891 {
		t.Errorf("float32: %d correct, want 9891", n)
	}
	return n
}

// Calibration collects the statistics of the first n images of a seeded
// permutation of the training set.
func (d *Data) Calibration(t *testing.T, n int, seed uint64) *calib.ActStats {
	t.Helper()
	perm := rand.New(rand.NewPCG(seed, 0xca1)).Perm(d.Train.N)
	st, err := calib.CollectActStats(d.Net, d.Samples(perm[:n]), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
