package tape

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/nntest"
)

// ref64Forward is the float64 reference of a float net on one sample:
// naive loops straight from the definitions in net.go.
func ref64Forward(net *nn.Net, x []float64) []float64 {
	c, h, w := 1, 1, len(x)
	if len(net.Input) == 3 {
		c, h, w = net.Input[0], net.Input[1], net.Input[2]
	}
	for _, l := range net.Layers {
		switch l := l.(type) {
		case *nn.Conv2D:
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
		case *nn.Dense:
			y := make([]float64, l.Out)
			for o := range l.Out {
				s := float64(l.B[o])
				for k := range l.In {
					s += float64(l.W[o*l.In+k]) * x[k]
				}
				y[o] = s
			}
			x, c, h, w = y, l.Out, 1, 1
		case *nn.ReLU:
			y := make([]float64, len(x))
			for k, v := range x {
				y[k] = math.Max(v, 0)
			}
			x = y
		case *nn.MaxPool:
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
		case *nn.Flatten:
			c, h, w = c*h*w, 1, 1
		case *nn.Softmax:
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

func ref64Loss(net *nn.Net, xs [][]float64, labels []int) float64 {
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
	for _, net := range []*nn.Net{nntest.Net1(rng), nntest.Net2(rng)} {
		net.Layers = append(net.Layers, &nn.Softmax{})
		data := nntest.Samples(net, 11, false, 5)
		size := nntest.Shapes(t, net)[0].Size()
		x := nntest.Inputs(data, size)
		out := make([]float32, 11*len(ref64Forward(net, make([]float64, size))))
		if err := ForwardBatch(net, x, 11, out); err != nil {
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
	net := nntest.Net1(rng)
	shapes := nntest.Shapes(t, net)
	data := nntest.Samples(net, 6, false, 6)
	size := shapes[0].Size()
	x := nntest.Inputs(data, size)
	xs := make([][]float64, data.N)
	labels := make([]int, data.N)
	for n := range xs {
		xs[n] = make([]float64, size)
		for k := range xs[n] {
			xs[n][k] = float64(x[n*size+k])
		}
		labels[n] = n % 5
	}
	p := ParamsOf(net)
	gw, gb := make([][]float32, len(p.W)), make([][]float32, len(p.W))
	for i, w := range p.W {
		if w != nil {
			gw[i], gb[i] = make([]float32, len(w)), make([]float32, len(p.B[i]))
		}
	}
	tp := New(shapes)
	top := LogitsLayer(net)
	for n := range xs {
		tp.Forward(net, shapes, p, x[n*size:(n+1)*size], nil)
		CrossEntropy(tp.Grad[top], tp.Acts[top], labels[n], 1/float32(len(xs)))
		tp.Backward(net, shapes, p, top, gw, gb)
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
