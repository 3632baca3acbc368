package nn

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// ref64Forward is the float64 reference of a float net on one sample:
// naive loops straight from the definitions in net.go.
func ref64Forward(net *Net, x []float64) []float64 {
	c, h, w := 1, 1, len(x)
	if len(net.Input) == 3 {
		c, h, w = net.Input[0], net.Input[1], net.Input[2]
	}
	for _, l := range net.Layers {
		switch l := l.(type) {
		case *Conv2D:
			oh := (h+l.PadT+l.PadB-l.KH)/l.StrideH + 1
			ow := (w+l.PadL+l.PadR-l.KW)/l.StrideW + 1
			y := make([]float64, l.OutC*oh*ow)
			for o := range l.OutC {
				for i := range oh {
					for j := range ow {
						s := float64(l.B[o])
						for ci := range l.InC {
							for u := range l.KH {
								for v := range l.KW {
									ih, iw := i*l.StrideH+u-l.PadT, j*l.StrideW+v-l.PadL
									if ih >= 0 && ih < h && iw >= 0 && iw < w {
										s += float64(l.W[((o*l.InC+ci)*l.KH+u)*l.KW+v]) * x[(ci*h+ih)*w+iw]
									}
								}
							}
						}
						y[(o*oh+i)*ow+j] = s
					}
				}
			}
			x, c, h, w = y, l.OutC, oh, ow
		case *Dense:
			y := make([]float64, l.Out)
			for o := range l.Out {
				s := float64(l.B[o])
				for k := range l.In {
					s += float64(l.W[o*l.In+k]) * x[k]
				}
				y[o] = s
			}
			x, c, h, w = y, l.Out, 1, 1
		case *ReLU:
			y := make([]float64, len(x))
			for k, v := range x {
				y[k] = math.Max(v, 0)
			}
			x = y
		case *MaxPool:
			oh := (h+l.PadT+l.PadB-l.KH)/l.StrideH + 1
			ow := (w+l.PadL+l.PadR-l.KW)/l.StrideW + 1
			y := make([]float64, c*oh*ow)
			for ci := range c {
				for i := range oh {
					for j := range ow {
						m := math.Inf(-1)
						for u := range l.KH {
							for v := range l.KW {
								ih, iw := i*l.StrideH+u-l.PadT, j*l.StrideW+v-l.PadL
								if ih >= 0 && ih < h && iw >= 0 && iw < w {
									m = math.Max(m, x[(ci*h+ih)*w+iw])
								}
							}
						}
						y[(ci*oh+i)*ow+j] = m
					}
				}
			}
			x, h, w = y, oh, ow
		case *Flatten:
			c, h, w = c*h*w, 1, 1
		case *Softmax:
			m := math.Inf(-1)
			for _, v := range x {
				m = math.Max(m, v)
			}
			y := make([]float64, len(x))
			s := 0.0
			for k, v := range x {
				y[k] = math.Exp(v - m)
				s += y[k]
			}
			for k := range y {
				y[k] /= s
			}
			x = y
		}
	}
	return x
}

func ref64Loss(net *Net, xs [][]float64, labels []int) float64 {
	total := 0.0
	for n, x := range xs {
		z := ref64Forward(net, x)
		m := math.Inf(-1)
		for _, v := range z {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range z {
			s += math.Exp(v - m)
		}
		total += -(z[labels[n]] - m - math.Log(s))
	}
	return total / float64(len(xs))
}

func TestFloatForwardMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, net := range []*Net{testNet(rng), testNet2(rng)} {
		net.Layers = append(net.Layers, &Softmax{})
		data := testSamples(net, 11, false, 5)
		size := trainShapesMust(t, net)[0].size()
		x := testInputs(data, size)
		out := make([]float32, 11*len(ref64Forward(net, make([]float64, size))))
		if err := trainForwardBatch(net, x, 11, out); err != nil {
			t.Fatal(err)
		}
		on := len(out) / 11
		for n := range 11 {
			x64 := make([]float64, size)
			for k := range x64 {
				x64[k] = float64(x[n*size+k])
			}
			for k, v := range ref64Forward(net, x64) {
				if d := math.Abs(float64(out[n*on+k]) - v); d > 1e-5 {
					t.Fatalf("sample %d output %d = %g, float64 %g", n, k, out[n*on+k], v)
				}
			}
		}
	}
}

// TestGradientCheck compares the backward pass with central differences
// of the float64 reference loss.
func TestGradientCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	net := testNet(rng)
	shapes := trainShapesMust(t, net)
	data := testSamples(net, 6, false, 6)
	size := shapes[0].size()
	x := testInputs(data, size)
	xs := make([][]float64, data.N)
	labels := make([]int, data.N)
	for n := range xs {
		xs[n] = make([]float64, size)
		for k := range xs[n] {
			xs[n][k] = float64(x[n*size+k])
		}
		labels[n] = n % 5
	}
	p := trainParamsOf(net)
	gw, gb := make([][]float32, len(p.W)), make([][]float32, len(p.W))
	for i, w := range p.W {
		if w != nil {
			gw[i], gb[i] = make([]float32, len(w)), make([]float32, len(p.B[i]))
		}
	}
	tape := newTrainTape(shapes)
	top := trainLogitsLayer(net)
	for n := range xs {
		tape.forward(net, shapes, p, x[n*size:(n+1)*size], nil)
		trainCrossEntropy(tape.grad[top], tape.acts[top], labels[n], 1/float32(len(xs)))
		tape.backward(net, shapes, p, top, gw, gb)
	}
	checked := 0
	for i, w := range p.W {
		if w == nil {
			continue
		}
		for _, pair := range []struct{ v, g []float32 }{{w, gw[i]}, {p.B[i], gb[i]}} {
			for k := range pair.v {
				old := pair.v[k]
				const h = 1e-5
				pair.v[k] = old + h
				lp := ref64Loss(net, xs, labels)
				pair.v[k] = old - h
				lm := ref64Loss(net, xs, labels)
				pair.v[k] = old
				num := (lp - lm) / float64(float32(old+h)-float32(old-h))
				got := float64(pair.g[k])
				if math.Abs(got-num) > 2e-3*math.Max(1, math.Abs(num)) {
					t.Errorf("layer %d parameter %d: gradient %g, finite difference %g", i, k, got, num)
				}
				checked++
			}
		}
	}
	if checked < 150 {
		t.Fatalf("checked %d parameters", checked)
	}
}

// TestQATDeterministicAndLearns trains a quantized net on a task it can
// learn (the label is the input channel with the larger mean) and checks
// that the loss falls, that the integer engine runs the result, and that
// runs with the same seed on one and on several goroutines give the same
// weights to the bit.
func TestQATDeterministicAndLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	net := testNet(rng)
	const n = 512
	size := trainShapesMust(t, net)[0].size()
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
	data := &Samples{N: n, Labels: labels, Fill: func(dst []float32, idx []int) {
		for k, i := range idx {
			copy(dst[k*size:(k+1)*size], x[i*size:(i+1)*size])
		}
	}}
	st, err := CollectActStats(net, data, 128, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := PTQ(net, st, PTQOptions{Method: "max", WeightBits: 4})
	if err != nil {
		t.Fatal(err)
	}
	var losses []float64
	opt := QATOptions{Epochs: 4, BatchSize: 32, LR: 1e-2, Seed: 11, Progress: func(_, _ int, l float64) { losses = append(losses, l) }}
	a, err := QAT(q, data, opt)
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
	b, err := QAT(q, data, opt)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range a.Layers {
		wa, _ := weightsOf(l)
		wb, _ := weightsOf(b.Layers[i])
		for k := range wa {
			if wa[k] != wb[k] {
				t.Fatalf("layer %d weight %d: %g on %d goroutines, %g on one", i, k, wa[k], prev, wb[k])
			}
		}
	}
	// q is untouched and the integer engine runs the result: accuracy of
	// the trained net above chance, and above the untrained one's.
	acc := func(m *Net) float64 {
		e, err := NewInt8Engine(cpu.New(), m)
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
	net := testNet(rng)
	shapes := trainShapesMust(t, net)
	data := testSamples(net, 1, false, 8)
	x := testInputs(data, shapes[0].size())
	st, err := CollectActStats(net, data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := PTQ(net, st, PTQOptions{Method: "max"})
	if err != nil {
		t.Fatal(err)
	}
	q.Quant.Act[3].Scale /= 4 // clip three quarters of conv2's input range
	act, err := qatActParams(q, shapes)
	if err != nil {
		t.Fatal(err)
	}
	fq := func(layer int, v []float32, mask []bool) { quant.FakeQuant(v, mask, v, act[layer]) }
	p := trainParamsOf(q)
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
		tape := newTrainTape(shapes)
		tape.forward(q, shapes, p, x, fq)
		tape.fq = mask
		top := trainLogitsLayer(q)
		trainCrossEntropy(tape.grad[top], tape.acts[top], 1, 1)
		g := grads()
		tape.backward(q, shapes, p, top, g[:len(p.W)], g[len(p.W):])
		return append([]float32(nil), tape.grad[3]...)
	}
	masked, plain := run(true), run(false)
	tape := newTrainTape(shapes)
	tape.forward(q, shapes, p, x, fq)
	clipped, passed := 0, 0
	for k, in := range tape.mask[3] {
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
