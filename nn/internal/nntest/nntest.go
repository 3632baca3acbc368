// Package nntest holds what the tests of nn's packages share: small nets
// with odd shapes, random samples, the float64 reference of a forward
// pass, and a backend whose memory the host cannot reach.
package nntest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/quant"
)

// MNISTONNX is the ONNX model zoo's MNIST CNN, as a path from the
// directory of a package nn/X.
const MNISTONNX = "../../model/onnx/testdata/mnist-cnn.onnx"

// NaiveForward is the float64 reference of one sample through net, layer
// by layer as nn's net.go defines them, with the fake quantization of a
// quantized net (weights codes·scale, activations quantize→dequantize).
func NaiveForward(net *nn.Net, x []float32) []float64 {
	shape := append([]int{}, net.Input...)
	if len(shape) == 1 {
		shape = []int{shape[0], 1, 1}
	}
	cur := make([]float64, len(x))
	for i, v := range x {
		cur[i] = float64(v)
	}
	fq := func(i int) {
		if net.Quant == nil || net.Quant.Act[i].Scale == 0 {
			return
		}
		a := net.Quant.Act[i]
		for j, v := range cur {
			cur[j] = float64(quant.DequantizeValue(quant.QuantizeValue(float32(v), a.Scale, a.ZeroPoint, -128, 127), a.Scale, a.ZeroPoint))
		}
	}
	weights := func(i int, w []float32) []float32 {
		if net.Quant == nil || net.Quant.WeightScale[i] == nil {
			return w
		}
		s := net.Quant.WeightScale[i]
		qmax := int32(1)<<(net.Quant.WeightBits-1) - 1
		out := make([]float32, len(w))
		k := len(w) / len(s)
		for j, v := range w {
			out[j] = float32(quant.QuantizeValue(v, s[j/k], 0, -qmax, qmax)) * s[j/k]
		}
		return out
	}
	for i, l := range net.Layers {
		fq(i)
		C, H, W := shape[0], shape[1], shape[2]
		switch l := l.(type) {
		case *nn.Conv2D:
			w := weights(i, l.W)
			OH := (H+l.PadT+l.PadB-l.KH)/l.StrideH + 1
			OW := (W+l.PadL+l.PadR-l.KW)/l.StrideW + 1
			y := make([]float64, l.OutC*OH*OW)
			for o := range l.OutC {
				for a := range OH {
					for b := range OW {
						s := float64(l.B[o])
						for c := range C {
							for u := range l.KH {
								for v := range l.KW {
									h, ww := a*l.StrideH+u-l.PadT, b*l.StrideW+v-l.PadL
									if h >= 0 && h < H && ww >= 0 && ww < W {
										s += float64(w[((o*C+c)*l.KH+u)*l.KW+v]) * cur[(c*H+h)*W+ww]
									}
								}
							}
						}
						y[(o*OH+a)*OW+b] = s
					}
				}
			}
			cur, shape = y, []int{l.OutC, OH, OW}
		case *nn.Dense:
			w := weights(i, l.W)
			y := make([]float64, l.Out)
			for o := range l.Out {
				s := float64(l.B[o])
				for j := range l.In {
					s += float64(w[o*l.In+j]) * cur[j]
				}
				y[o] = s
			}
			cur, shape = y, []int{l.Out, 1, 1}
		case *nn.ReLU:
			for j, v := range cur {
				cur[j] = math.Max(v, 0)
			}
		case *nn.MaxPool:
			OH := (H+l.PadT+l.PadB-l.KH)/l.StrideH + 1
			OW := (W+l.PadL+l.PadR-l.KW)/l.StrideW + 1
			y := make([]float64, C*OH*OW)
			for c := range C {
				for a := range OH {
					for b := range OW {
						m := math.Inf(-1)
						for u := range l.KH {
							for v := range l.KW {
								h, ww := a*l.StrideH+u-l.PadT, b*l.StrideW+v-l.PadL
								if h >= 0 && h < H && ww >= 0 && ww < W {
									m = math.Max(m, cur[(c*H+h)*W+ww])
								}
							}
						}
						y[(c*OH+a)*OW+b] = m
					}
				}
			}
			cur, shape = y, []int{C, OH, OW}
		case *nn.Flatten:
			shape = []int{C * H * W, 1, 1}
		case *nn.Softmax:
			m := math.Inf(-1)
			for _, v := range cur {
				m = math.Max(m, v)
			}
			var s float64
			for _, v := range cur {
				s += math.Exp(v - m)
			}
			for j, v := range cur {
				cur[j] = math.Exp(v-m) / s
			}
		}
	}
	fq(len(net.Layers))
	return cur
}

// RandSlice is n normal values times scale.
func RandSlice(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// OddNet has odd sizes, strides, asymmetric pads and every layer kind.
func OddNet(rng *rand.Rand, softmax bool) *nn.Net {
	c1 := &nn.Conv2D{Name: "c1", InC: 3, OutC: 4, KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadT: 1, PadL: 0, PadB: 2, PadR: 1}
	c1.W, c1.B = RandSlice(rng, 4*3*3*2, 0.5), RandSlice(rng, 4, 0.1)
	c2 := &nn.Conv2D{Name: "c2", InC: 4, OutC: 5, KH: 1, KW: 1, StrideH: 1, StrideW: 1}
	c2.W, c2.B = RandSlice(rng, 5*4, 0.5), RandSlice(rng, 5, 0.1)
	net := &nn.Net{Input: []int{3, 9, 8}, InputScale: 1, Layers: []nn.Layer{
		c1, &nn.ReLU{}, &nn.MaxPool{KH: 2, KW: 3, StrideH: 1, StrideW: 2, PadT: 1, PadL: 1}, c2, &nn.ReLU{}, &nn.Flatten{},
	}}
	shapes, err := nn.Shapes(net)
	if err != nil {
		panic(err)
	}
	in := shapes[len(shapes)-1].Size()
	d := &nn.Dense{Name: "d", In: in, Out: 7, W: RandSlice(rng, 7*in, 0.3), B: RandSlice(rng, 7, 0.1)}
	net.Layers = append(net.Layers, d)
	if softmax {
		net.Layers = append(net.Layers, &nn.Softmax{})
	}
	return net
}

// CopyingBackend is the cpu backend with buffers whose memory the host
// cannot reach, as a GPU's: the engine must Upload and Download.
type CopyingBackend struct {
	backend.Backend
	Uploads, Downloads int
}

// HiddenBuffer is a buffer of CopyingBackend: B, without its Data
// method.
type HiddenBuffer struct{ B backend.Buffer }

func (h HiddenBuffer) DType() backend.DType { return h.B.DType() }
func (h HiddenBuffer) Len() int             { return h.B.Len() }
func (h HiddenBuffer) Slice(off, n int) backend.Buffer {
	return HiddenBuffer{h.B.Slice(off, n)}
}

func (c *CopyingBackend) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	b, err := c.Backend.Alloc(dt, n)
	return HiddenBuffer{b}, err
}
func (c *CopyingBackend) Free(b backend.Buffer) error { return c.Backend.Free(b.(HiddenBuffer).B) }
func (c *CopyingBackend) Upload(dst backend.Buffer, src any) error {
	c.Uploads++
	return c.Backend.Upload(dst.(HiddenBuffer).B, src)
}
func (c *CopyingBackend) Download(dst any, src backend.Buffer) error {
	c.Downloads++
	return c.Backend.Download(dst, src.(HiddenBuffer).B)
}
func (c *CopyingBackend) GemmF32(m, n, k int, a, b, cc backend.Buffer) error {
	return c.Backend.GemmF32(m, n, k, a.(HiddenBuffer).B, b.(HiddenBuffer).B, cc.(HiddenBuffer).B)
}
func (c *CopyingBackend) GemmS8(m, n, k int, a, b, cc backend.Buffer, ep *backend.Epilogue) error {
	return c.Backend.GemmS8(m, n, k, a.(HiddenBuffer).B, b.(HiddenBuffer).B, cc.(HiddenBuffer).B, ep)
}

// Net1 is a small CNN exercising padding (asymmetric too), strides,
// a ReLU after a pool (on codes, not fused), Flatten order and a Dense
// head: [2,9,8] → conv 3×3 (3) → ReLU → pool 2 → conv 3×3/2 (4) → pool
// 2/1 → ReLU → flatten → dense 5.
func Net1(rng *rand.Rand) *nn.Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c1 := &nn.Conv2D{Name: "c1", InC: 2, OutC: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1,
		W: rnd(3*2*9, 0.4), B: rnd(3, 0.1)}
	c2 := &nn.Conv2D{Name: "c2", InC: 3, OutC: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadT: 1, PadL: 0, PadB: 1, PadR: 2,
		W: rnd(4*3*9, 0.4), B: rnd(4, 0.1)}
	// c2's input 3×4×4 → out H (4+2−3)/2+1 = 2, W (4+2−3)/2+1 = 2.
	d := &nn.Dense{Name: "d", In: 4, Out: 5, W: rnd(5*4, 0.5), B: rnd(5, 0.1)}
	return &nn.Net{
		Input:      []int{2, 9, 8},
		Layers:     []nn.Layer{c1, &nn.ReLU{}, &nn.MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, c2, &nn.MaxPool{KH: 2, KW: 2, StrideH: 1, StrideW: 1}, &nn.ReLU{}, &nn.Flatten{}, d},
		InputScale: 1,
	}
}

// Net2 has a wider spatial Dense input (so Flatten order matters)
// and a non-negative input: [1,6,6] → conv 3×3 (3, pad 1) → ReLU →
// flatten → dense 4 → ReLU → dense 3.
func Net2(rng *rand.Rand) *nn.Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c := &nn.Conv2D{InC: 1, OutC: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1, W: rnd(27, 0.05), B: rnd(3, 0.1)}
	d1 := &nn.Dense{In: 108, Out: 4, W: rnd(432, 0.1), B: rnd(4, 0.1)}
	d2 := &nn.Dense{In: 4, Out: 3, W: rnd(12, 0.5), B: rnd(3, 0.1)}
	return &nn.Net{Input: []int{1, 6, 6}, Layers: []nn.Layer{c, &nn.ReLU{}, &nn.Flatten{}, d1, &nn.ReLU{}, d2}, InputScale: 1}
}

// Net3 has kernel rows of whole 8-code words, moved word by word:
// [4,5,6] → conv 2×4 (4, pads 1,1,0,1: rows of 16 codes) → ReLU → pool 2
// → conv 2×2 (3: rows of 8 codes) → flatten → dense 2.
func Net3(rng *rand.Rand) *nn.Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c1 := &nn.Conv2D{InC: 4, OutC: 4, KH: 2, KW: 4, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadR: 1, W: rnd(128, 0.3), B: rnd(4, 0.1)}
	// c1: 5+1−2+1 = 5 rows, 6+2−4+1 = 5 columns; pool → 2×2.
	c2 := &nn.Conv2D{InC: 4, OutC: 3, KH: 2, KW: 2, StrideH: 1, StrideW: 1, W: rnd(48, 0.3), B: rnd(3, 0.1)}
	d := &nn.Dense{In: 3, Out: 2, W: rnd(6, 0.5), B: rnd(2, 0.1)}
	return &nn.Net{Input: []int{4, 5, 6}, InputScale: 1, Layers: []nn.Layer{c1, &nn.ReLU{}, &nn.MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, c2, &nn.Flatten{}, d}}
}

// Net4 has more channels (70) before a pool than the pooled
// requantization keeps on its stack: [3,4,4] → conv 1×1 (70) → ReLU →
// pool 2 → flatten → dense 3.
func Net4(rng *rand.Rand) *nn.Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c := &nn.Conv2D{InC: 3, OutC: 70, KH: 1, KW: 1, StrideH: 1, StrideW: 1, W: rnd(210, 0.5), B: rnd(70, 0.1)}
	d := &nn.Dense{In: 280, Out: 3, W: rnd(840, 0.1), B: rnd(3, 0.1)}
	return &nn.Net{Input: []int{3, 4, 4}, InputScale: 1, Layers: []nn.Layer{c, &nn.ReLU{}, &nn.MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, &nn.Flatten{}, d}}
}

// Samples are n random inputs for net: normal (signed) or pixels
// 0..255, labelled 0, 1 or 2 at random.
func Samples(net *nn.Net, n int, pixels bool, seed uint64) *nn.Samples {
	size := 1
	for _, d := range net.Input {
		size *= d
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n*size)
	labels := make([]uint8, n)
	for i := range x {
		if pixels {
			x[i] = float32(rng.IntN(256))
		} else {
			x[i] = float32(rng.NormFloat64())
		}
	}
	for i := range labels {
		labels[i] = uint8(rng.IntN(3))
	}
	return &nn.Samples{N: n, Labels: labels, Fill: func(dst []float32, idx []int) {
		for k, i := range idx {
			copy(dst[k*size:(k+1)*size], x[i*size:(i+1)*size])
		}
	}}
}

// Inputs are all the samples of s, filled one after the other.
func Inputs(s *nn.Samples, size int) []float32 {
	x := make([]float32, s.N*size)
	idx := make([]int, s.N)
	for i := range idx {
		idx[i] = i
	}
	s.Fill(x, idx)
	return x
}

// Shapes is nn.Shapes(net), failing t on an error.
func Shapes(t testing.TB, net *nn.Net) []nn.Shape {
	t.Helper()
	s, err := nn.Shapes(net)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SetSamples views the samples idx of s (all of them when idx is nil)
// as nn.Samples, pixels times scale.
func SetSamples(s *dataset.Set, idx []int, scale float32) *nn.Samples {
	if idx == nil {
		idx = make([]int, s.N)
		for i := range idx {
			idx[i] = i
		}
	}
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
