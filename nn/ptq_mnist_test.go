package nn_test

import (
	"github.com/quantkit/quantkit/internal/testenv"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/mnistcnn"
	"github.com/quantkit/quantkit/quant"
)

// The MNIST tests run the ONNX model zoo MNIST CNN (98.91 % in float32)
// on the MNIST test set. They need the data (see package dataset) and
// skip with the reason when it cannot be had.

var mnist = sync.OnceValues(func() (*mnistData, error) {
	m, err := onnx.Decode(mnistcnn.ONNX)
	if err != nil {
		return nil, err
	}
	net, err := nn.FromONNX(m)
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
	return &mnistData{net: net, train: train, test: test}, nil
})

type mnistData struct {
	net         *nn.Net
	train, test *dataset.Set
}

func loadMNIST(t *testing.T) *mnistData {
	t.Helper()
	d, err := mnist()
	if err != nil {
		testenv.Missing(t, "MNIST model or data not available: %v", err)
	}
	return d
}

// samples views s through idx.
func samples(s *dataset.Set, idx []int, scale float32) *nn.Samples {
	labels := make([]uint8, len(idx))
	for k, i := range idx {
		labels[k] = s.Labels[i]
	}
	return &nn.Samples{N: len(idx), Labels: labels, Fill: func(dst []float32, which []int) {
		m := make([]int, len(which))
		for k, w := range which {
			m[k] = idx[w]
		}
		s.Input(dst, m, scale)
	}}
}

// correct counts the test images the integer engine classifies right.
func correct(t *testing.T, q *nn.Net, test *dataset.Set) int {
	t.Helper()
	e, err := nn.NewInt8Engine(cpu.New(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	n, _, err := nn.Accuracy(e, test, q.InputScale, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fp32Correct is the float32 model's score on the MNIST test set, by the
// float engine; 9891 (98.91 %) as published for a plain float forward.
func fp32Correct(t *testing.T, d *mnistData) int {
	t.Helper()
	e, err := nn.NewFloatEngine(cpu.New(), d.net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	n, _, err := nn.Accuracy(e, d.test, d.net.InputScale, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	if n != 9891 {
		t.Errorf("float32: %d correct, want 9891", n)
	}
	return n
}

// calibration draws the first n images of a seeded permutation of the
// training set.
func calibration(d *mnistData, n int, seed uint64) *nn.ActStats {
	perm := rand.New(rand.NewPCG(seed, 0xca1)).Perm(d.train.N)
	st, err := nn.CollectActStats(d.net, samples(d.train, perm[:n], d.net.InputScale), 0, 0)
	if err != nil {
		panic(err)
	}
	return st
}

// TestMNISTPTQInt8 asserts that integer inference with int8 weights and
// activations is within 0.5 points of float32 with the best calibrator.
func TestMNISTPTQInt8(t *testing.T) {
	d := loadMNIST(t)
	st := calibration(d, 512, 1)
	best := 0
	for _, m := range quant.CalibratorNames() {
		q, err := nn.PTQ(d.net, st, nn.PTQOptions{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		n := correct(t, q, d.test)
		t.Logf("PTQ int8 %-10s %.2f %%", m, float64(n)/100)
		best = max(best, n)
	}
	if fp := fp32Correct(t, d); best < fp-50 {
		t.Errorf("best INT8 PTQ: %d correct, float32 %d: more than 0.5 points lost", best, fp)
	}
}

// TestMNISTQATInt4 asserts that QAT with int4 weights (int8
// activations) comes within 1.5 points of float32 and beats INT4 PTQ with
// the same calibration.
func TestMNISTQATInt4(t *testing.T) {
	if testing.Short() {
		t.Skip("QAT on MNIST takes tens of seconds")
	}
	d := loadMNIST(t)
	st := calibration(d, 512, 1)
	q4, err := nn.PTQ(d.net, st, nn.PTQOptions{Method: "max", WeightBits: 4})
	if err != nil {
		t.Fatal(err)
	}
	ptq := correct(t, q4, d.test)
	perm := rand.New(rand.NewPCG(1, 0xca1)).Perm(d.train.N)
	qat, err := nn.QAT(q4, samples(d.train, perm, d.net.InputScale), nn.QATOptions{WeightBits: 4, Images: 12000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := correct(t, qat, d.test)
	t.Logf("INT4 weights: PTQ %.2f %%, QAT %.2f %%", float64(ptq)/100, float64(got)/100)
	if fp := fp32Correct(t, d); got < fp-150 {
		t.Errorf("QAT int4: %d correct, more than 1.5 points below float32's %d", got, fp)
	}
	if got <= ptq {
		t.Errorf("QAT int4: %d correct, not above PTQ int4's %d", got, ptq)
	}
}

// TestMNISTInt8MatchesFakeQuant runs the same quantized nets in integer
// arithmetic and in the float engine's emulation of their QDQ graph (a
// separate implementation: float32 im2col and GEMM over fake-quantized
// weights and activations): the predictions agree on all but a few
// images and the logits within 0.1 % of their range (a code that rounds
// the other way at a tie of float32 rounding moves a logit a little).
func TestMNISTInt8MatchesFakeQuant(t *testing.T) {
	d := loadMNIST(t)
	st := calibration(d, 512, 1)
	const n = 2000
	x := make([]float32, n*784)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	d.test.Input(x, idx, d.net.InputScale)
	for _, bits := range []int{8, 4} {
		q, err := nn.PTQ(d.net, st, nn.PTQOptions{Method: "entropy", WeightBits: bits})
		if err != nil {
			t.Fatal(err)
		}
		ie, err := nn.NewInt8Engine(cpu.New(), q)
		if err != nil {
			t.Fatal(err)
		}
		fe, err := nn.NewFloatEngine(cpu.New(), q)
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
