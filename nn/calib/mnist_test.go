package calib_test

import (
	"math"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/internal/mnisttest"
	"github.com/quantkit/quantkit/quant"
)

// The MNIST tests run the ONNX model zoo MNIST CNN (98.91 % in float32)
// on the MNIST test set (see package mnisttest).

// TestMNISTPTQInt8 asserts that integer inference with int8 weights and
// activations is within 0.5 points of float32 with the best calibrator.
func TestMNISTPTQInt8(t *testing.T) {
	d := mnisttest.Load(t)
	st := d.Calibration(t, 512, 1)
	best := 0
	for _, m := range quant.CalibratorNames() {
		q, err := calib.PTQ(d.Net, st, calib.PTQOptions{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		n := d.Correct(t, q)
		t.Logf("PTQ int8 %-10s %.2f %%", m, float64(n)/100)
		best = max(best, n)
	}
	if fp := d.FP32Correct(t); best < fp-50 {
		t.Errorf("best INT8 PTQ: %d correct, float32 %d: more than 0.5 points lost", best, fp)
	}
}

// TestMNISTInt8MatchesFakeQuant runs the same quantized nets in integer
// arithmetic and in the float engine's emulation of their QDQ graph (a
// separate implementation: float32 im2col and GEMM over fake-quantized
// weights and activations): the predictions agree on all but a few
// images and the logits within 0.1 % of their range (a code that rounds
// the other way at a tie of float32 rounding moves a logit a little).
func TestMNISTInt8MatchesFakeQuant(t *testing.T) {
	d := mnisttest.Load(t)
	st := d.Calibration(t, 512, 1)
	const n = 2000
	x := make([]float32, n*784)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	d.Test.Input(x, idx, d.Net.InputScale)
	for _, bits := range []int{8, 4} {
		q, err := calib.PTQ(d.Net, st, calib.PTQOptions{Method: "entropy", WeightBits: bits})
		if err != nil {
			t.Fatal(err)
		}
		ie, err := integer.New(cpu.New(), q)
		if err != nil {
			t.Fatal(err)
		}
		fe, err := float.New(cpu.New(), q)
		if err != nil {
			t.Fatal(err)
		}
		a, b := make([]float32, n*10), make([]float32, n*10)
		if err := ie.Forward(x, n, a); err != nil {
			t.Fatal(err)
		}
		if err := fe.Forward(x, n, b); err != nil {
			t.Fatal(err)
		}
		differ, maxd, maxv := 0, 0.0, 0.0
		for i := range n {
			if argmax(a[i*10:(i+1)*10]) != argmax(b[i*10:(i+1)*10]) {
				differ++
			}
		}
		for k := range a {
			maxd = max(maxd, math.Abs(float64(a[k]-b[k])))
			maxv = max(maxv, math.Abs(float64(b[k])))
		}
		t.Logf("int%d weights: %d of %d predictions differ, largest logit difference %g (largest logit %g)", bits, differ, n, maxd, maxv)
		if differ > n/200 || maxd > 1e-3*maxv {
			t.Errorf("int%d weights: %d of %d predictions differ, largest logit difference %g of %g", bits, differ, n, maxd, maxv)
		}
	}
}

func argmax(v []float32) int {
	best := 0
	for k, x := range v {
		if x > v[best] {
			best = k
		}
	}
	return best
}
