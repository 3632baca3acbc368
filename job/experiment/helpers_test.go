package experiment

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/internal/testenv"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
)

const mnistModel = "../../model/onnx/testdata/mnist-cnn.onnx"

func cpuBackend() backend.Backend { return cpu.New() }

// writeIDX writes the split with file prefix ("t10k" or "train") of n
// images of h×w (pixel i of image k is (k+i+off)%256) with labels
// (k+off)%classes into dir.
func writeIDX(t *testing.T, dir, prefix string, n, h, w, classes, off int) {
	t.Helper()
	img := binary.BigEndian.AppendUint32(nil, 0x803)
	for _, d := range []int{n, h, w} {
		img = binary.BigEndian.AppendUint32(img, uint32(d))
	}
	for k := range n {
		for i := range h * w {
			img = append(img, byte(k+i+off))
		}
	}
	lab := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x801), uint32(n))
	for k := range n {
		lab = append(lab, byte((k+off)%classes))
	}
	if err := os.WriteFile(filepath.Join(dir, prefix+"-images-idx3-ubyte"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, prefix+"-labels-idx1-ubyte"), lab, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tinyData is a directory of nTrain training and nTest test images of
// 28×28 in 10 classes, different ones.
func tinyData(t *testing.T, nTrain, nTest int) string {
	t.Helper()
	dir := t.TempDir()
	writeIDX(t, dir, "train", nTrain, 28, 28, 10, 7)
	writeIDX(t, dir, "t10k", nTest, 28, 28, 10, 0)
	return dir
}

// needMNIST returns the MNIST test set, or ends the test when it cannot
// be had.
func needMNIST(t *testing.T) *dataset.Set {
	t.Helper()
	s, err := dataset.Load("mnist", "test")
	if err != nil {
		testenv.Missing(t, "MNIST unreachable here: %v", err)
	}
	return s
}

// refCorrect counts, independently of the package's accuracy, the first
// n images of s that net (float, or quantized in integer arithmetic when
// int8) classifies as labelled: all images in one batch, the largest
// output compared in float64, the first of equals, NaN never correct.
func refCorrect(t *testing.T, net *nn.Net, s *dataset.Set, n int, int8 bool) int {
	t.Helper()
	size := s.C * s.H * s.W
	x := make([]float32, n*size)
	for i := range n {
		for j, p := range s.Pixels[i*size : (i+1)*size] {
			x[i*size+j] = float32(p) * net.InputScale
		}
	}
	var out []float32
	if int8 {
		e, err := integer.New(cpuBackend(), net)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		out = make([]float32, n*e.OutLen())
		if err := e.Forward(x, n, out); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if out, err = float.Forward(cpuBackend(), net, x, n); err != nil {
			t.Fatal(err)
		}
	}
	k := len(out) / n
	correct := 0
	for i := range n {
		if refIsCorrect(out[i*k:(i+1)*k], int(s.Labels[i])) {
			correct++
		}
	}
	return correct
}

// refIsCorrect says whether y's label-th value is a number above every
// other number of y before it and not below any after it.
func refIsCorrect(y []float32, label int) bool {
	v := float64(y[label])
	if math.IsNaN(v) {
		return false
	}
	for j, w := range y {
		w := float64(w)
		if math.IsNaN(w) || j == label {
			continue
		}
		if w > v || (w == v && j < label) {
			return false
		}
	}
	return true
}
