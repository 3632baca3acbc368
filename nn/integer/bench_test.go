package integer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/internal/nntest"
	"github.com/quantkit/quantkit/nn/mnistcnn"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

// benchMNISTShaped is a net of the MNIST CNN's shape (conv 5×5 8 pad 2,
// pool 2, conv 5×5 16 pad 2, pool 3, dense 256→10) with random weights.
func benchMNISTShaped() *nn.Net {
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c1 := &nn.Conv2D{InC: 1, OutC: 8, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadT: 2, PadL: 2, PadB: 2, PadR: 2, W: rnd(200, 0.01), B: rnd(8, 0.1)}
	c2 := &nn.Conv2D{InC: 8, OutC: 16, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadT: 2, PadL: 2, PadB: 2, PadR: 2, W: rnd(3200, 0.05), B: rnd(16, 0.1)}
	d := &nn.Dense{In: 256, Out: 10, W: rnd(2560, 0.05), B: rnd(10, 0.1)}
	return &nn.Net{Input: []int{1, 28, 28}, InputScale: 1, Layers: []nn.Layer{
		c1, &nn.ReLU{}, &nn.MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2},
		c2, &nn.ReLU{}, &nn.MaxPool{KH: 3, KW: 3, StrideH: 3, StrideW: 3}, &nn.Flatten{}, d}}
}

func benchInt8(b *testing.B, batch int) {
	net := benchMNISTShaped()
	data := nntest.Samples(net, 256, true, 1)
	st, err := calib.CollectActStats(net, data, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	q, _ := calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	e, err := New(cpu.New(), q)
	if err != nil {
		b.Fatal(err)
	}
	x := nntest.Inputs(data, 784)[:batch*784]
	out := make([]float32, batch*10)
	b.ResetTimer()
	for range b.N {
		if err := e.Forward(x, batch, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
}

func BenchmarkInt8MNISTShapedBatch1(b *testing.B)   { benchInt8(b, 1) }
func BenchmarkInt8MNISTShapedBatch256(b *testing.B) { benchInt8(b, 256) }

// benchMNIST is the ONNX model zoo MNIST CNN with int8 PTQ (max
// calibrator on 256 pixel images of uniform noise: the timing does not
// depend on the ranges) and a batch of inputs.
func benchMNIST(b *testing.B) (*nn.Net, *nn.Net, []float32) {
	m, err := onnx.Decode(mnistcnn.ONNX)
	if err != nil {
		b.Fatal(err)
	}
	net, err := onnxnet.Lower(m)
	if err != nil {
		b.Fatal(err)
	}
	data := nntest.Samples(net, 256, true, 1)
	st, err := calib.CollectActStats(net, data, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	if err != nil {
		b.Fatal(err)
	}
	return net, q, nntest.Inputs(data, 784)
}

func benchForward(b *testing.B, e interface {
	Forward(x []float32, batch int, out []float32) error
}, x []float32, batch int) {
	out := make([]float32, batch*10)
	if err := e.Forward(x[:batch*784], batch, out); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := e.Forward(x[:batch*784], batch, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkMNIST compares float32 inference (float.Engine) with integer
// inference (integer.Engine) of the MNIST CNN on the CPU at batch 1 and 256.
func BenchmarkMNIST(b *testing.B) {
	net, q, x := benchMNIST(b)
	for _, batch := range []int{1, 256} {
		b.Run(fmt.Sprintf("FP32/batch=%d", batch), func(b *testing.B) {
			e, err := float.New(cpu.New(), net)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			benchForward(b, e, x, batch)
		})
		b.Run(fmt.Sprintf("INT8/batch=%d", batch), func(b *testing.B) {
			e, err := New(cpu.New(), q)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			benchForward(b, e, x, batch)
		})
	}
}

// BenchmarkMNISTConv compares the integer engine's convolutions as
// im2col and GemmS8 with cpu.ConvS8 on the MNIST CNN.
func BenchmarkMNISTConv(b *testing.B) {
	_, q, x := benchMNIST(b)
	for _, batch := range []int{1, 256} {
		for _, direct := range []bool{false, true} {
			b.Run(fmt.Sprintf("direct=%v/batch=%d", direct, batch), func(b *testing.B) {
				useDirect = direct
				defer func() { useDirect = true }()
				e, err := New(cpu.New(), q)
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				benchForward(b, e, x, batch)
			})
		}
	}
}

// BenchmarkMNISTSplit compares the integer engine's passes spread over
// workers with passes one after the other (each step parallel inside) on
// the MNIST CNN at batch 256.
func BenchmarkMNISTSplit(b *testing.B) {
	_, q, x := benchMNIST(b)
	for _, split := range []bool{false, true} {
		b.Run(fmt.Sprintf("split=%v", split), func(b *testing.B) {
			splitPasses = split
			defer func() { splitPasses = true }()
			e, err := New(cpu.New(), q)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			benchForward(b, e, x, 256)
		})
	}
}
