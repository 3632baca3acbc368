package qat_test

import (
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/internal/mnisttest"
	"github.com/quantkit/quantkit/nn/qat"
)

// TestMNISTQATInt4 asserts that QAT with int4 weights (int8
// activations) comes within 1.5 points of float32 and beats INT4 PTQ with
// the same calibration.
func TestMNISTQATInt4(t *testing.T) {
	if testing.Short() {
		t.Skip("QAT on MNIST takes tens of seconds")
	}
	d := mnisttest.Load(t)
	st := d.Calibration(t, 512, 1)
	q4, err := calib.PTQ(d.Net, st, calib.PTQOptions{Method: "max", WeightBits: 4})
	if err != nil {
		t.Fatal(err)
	}
	ptq := d.Correct(t, q4)
	perm := rand.New(rand.NewPCG(1, 0xca1)).Perm(d.Train.N)
	q, err := qat.Train(q4, d.Samples(perm), qat.Options{WeightBits: 4, Images: 12000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := d.Correct(t, q)
	t.Logf("INT4 weights: PTQ %.2f %%, QAT %.2f %%", float64(ptq)/100, float64(got)/100)
	if fp := d.FP32Correct(t); got < fp-150 {
		t.Errorf("QAT int4: %d correct, more than 1.5 points below float32's %d", got, fp)
	}
	if got <= ptq {
		t.Errorf("QAT int4: %d correct, not above PTQ int4's %d", got, ptq)
	}
}
