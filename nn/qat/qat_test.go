package qat

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/internal/nntest"
	"github.com/quantkit/quantkit/nn/internal/tape"
	"github.com/quantkit/quantkit/quant"
)

// TestQATDeterministicAndLearns trains a quantized net on a task it can
// learn (the label is the input channel with the larger mean) and checks
// that the loss falls, that the integer engine runs the result, and that
// runs with the same seed on one and on several goroutines give the same
// weights to the bit.
func TestQATDeterministicAndLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	net := nntest.Net1(rng)
	const n = 512
	size := nntest.Shapes(t, net)[0].Size()
	x := make([]float32, n*size)
	labels := make([]uint8, n)
	for s := range n {
		lab := rng.IntN(2)
		labels[s] = uint8(lab)
		for k := range size {
			v := rng.NormFloat64()
			if k/(size/2) == lab {
				v += 0.8
			}
			x[s*size+k] = float32(v)
		}
	}
	data := &nn.Samples{N: n, Labels: labels, Fill: func(dst []float32, idx []int) {
		for k, i := range idx {
			copy(dst[k*size:(k+1)*size], x[i*size:(i+1)*size])
		}
	}}
	st, err := calib.CollectActStats(net, data, 128, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "max", WeightBits: 4})
	if err != nil {
		t.Fatal(err)
	}
	var losses []float64
	opt := Options{Epochs: 4, BatchSize: 32, LR: 1e-2, Seed: 11, Progress: func(_, _ int, l float64) { losses = append(losses, l) }}
	a, err := Train(q, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	first, last := 0.0, 0.0
	for k := range 8 {
		first += losses[k]
		last += losses[len(losses)-1-k]
	}
	if !(last < 0.7*first) {
		t.Errorf("loss went from %g to %g", first/8, last/8)
	}
	if a.Quant.Method != "qat" || a.Quant.WeightBits != 4 {
		t.Errorf("quant %+v", a.Quant)
	}
	prev := runtime.GOMAXPROCS(1)
	opt.Progress = nil
	b, err := Train(q, data, opt)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range a.Layers {
		wa, _ := nn.Weights(l)
		wb, _ := nn.Weights(b.Layers[i])
		for k := range wa {
			if wa[k] != wb[k] {
				t.Fatalf("layer %d weight %d: %g on %d goroutines, %g on one", i, k, wa[k], prev, wb[k])
			}
		}
	}
	// q is untouched and the integer engine runs the result: accuracy of
	// the trained net above chance, and above the untrained one's.
	acc := func(m *nn.Net) float64 {
		e, err := integer.New(cpu.New(), m)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		out := make([]float32, n*e.OutLen())
		if err := e.Forward(x, n, out); err != nil {
			t.Fatal(err)
		}
		ok := 0
		for s := range n {
			if argmax(out[s*e.OutLen():(s+1)*e.OutLen()]) == int(labels[s]) {
				ok++
			}
		}
		return float64(ok) / n
	}
	if got, base := acc(a), acc(q); !(got > 0.8 && got > base) {
		t.Errorf("QAT int4 accuracy %.3f, PTQ %.3f", got, base)
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

// TestSTEMasksClippedActivations checks the straight-through estimator in
// the backward pass: the gradient reaching a fake-quantized input is the
// unmasked gradient where the value was inside the clip range and zero
// where it was clipped.
func TestSTEMasksClippedActivations(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	net := nntest.Net1(rng)
	shapes := nntest.Shapes(t, net)
	data := nntest.Samples(net, 1, false, 8)
	x := nntest.Inputs(data, shapes[0].Size())
	st, err := calib.CollectActStats(net, data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	if err != nil {
		t.Fatal(err)
	}
	q.Quant.Act[3].Scale /= 4 // clip three quarters of conv2's input range
	act, err := actParams(q, shapes)
	if err != nil {
		t.Fatal(err)
	}
	fq := func(layer int, v []float32, mask []bool) { quant.FakeQuant(v, mask, v, act[layer]) }
	p := tape.ParamsOf(q)
	grads := func() [][]float32 {
		gw, gb := make([][]float32, len(p.W)), make([][]float32, len(p.W))
		for i, w := range p.W {
			if w != nil {
				gw[i], gb[i] = make([]float32, len(w)), make([]float32, len(p.B[i]))
			}
		}
		return append(gw, gb...)
	}
	// The gradient reaching conv2's input, with and without the estimator.
	run := func(mask bool) []float32 {
		tp := tape.New(shapes)
		tp.Forward(q, shapes, p, x, fq)
		tp.FQ = mask
		top := tape.LogitsLayer(q)
		tape.CrossEntropy(tp.Grad[top], tp.Acts[top], 1, 1)
		g := grads()
		tp.Backward(q, shapes, p, top, g[:len(p.W)], g[len(p.W):])
		return append([]float32(nil), tp.Grad[3]...)
	}
	masked, plain := run(true), run(false)
	tp := tape.New(shapes)
	tp.Forward(q, shapes, p, x, fq)
	clipped, passed := 0, 0
	for k, in := range tp.Mask[3] {
		switch {
		case !in && masked[k] != 0:
			t.Fatalf("clipped input %d got gradient %g", k, masked[k])
		case in && masked[k] != plain[k]:
			t.Fatalf("input %d in range: gradient %g, want %g", k, masked[k], plain[k])
		case !in && plain[k] != 0:
			clipped++
		case in && plain[k] != 0:
			passed++
		}
	}
	if clipped == 0 || passed == 0 {
		t.Fatalf("%d gradients stopped, %d passed: the test does not exercise the estimator", clipped, passed)
	}
}
