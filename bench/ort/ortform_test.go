package main

import (
	"math"
	"testing"

	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/mnistcnn"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

// ortForm gives every Conv and Gemm an int32 bias within half a step of
// the float one, and a QuantizeLinear right after each Conv whose output
// reached one through Relu and MaxPool, with the scale and zero point of
// the one it reached; the graph stays in topological order.
func TestORTForm(t *testing.T) {
	m, err := onnx.Decode(mnistcnn.ONNX)
	if err != nil {
		t.Fatal(err)
	}
	net, err := onnxnet.Lower(m)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 16*784)
	for i := range x {
		x[i] = float32(i * 37 % 256)
	}
	s := &nn.Samples{N: 16, Fill: func(dst []float32, idx []int) {
		for k, i := range idx {
			copy(dst[k*784:(k+1)*784], x[i*784:(i+1)*784])
		}
	}}
	st, err := calib.CollectActStats(net, s, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	if err != nil {
		t.Fatal(err)
	}
	qm, err := onnxnet.ExportQDQ(q)
	if err != nil {
		t.Fatal(err)
	}
	floatBias := map[string][]float32{}
	for _, n := range qm.Graph.Node {
		if n.OpType == "Conv" || n.OpType == "Gemm" {
			for _, init := range qm.Graph.Initializer {
				if init.Name == n.Input[2] {
					floatBias[n.Name], _ = init.Float32()
				}
			}
		}
	}
	om, err := ortForm(qm)
	if err != nil {
		t.Fatal(err)
	}
	g := om.Graph
	inits := map[string]*onnx.Tensor{}
	for _, i := range g.Initializer {
		inits[i.Name] = i
	}
	seen := map[string]bool{}
	for _, in := range g.Input {
		seen[in.Name] = true
	}
	for name := range inits {
		seen[name] = true
	}
	producer := map[string]*onnx.Node{}
	for _, n := range g.Node {
		for _, in := range n.Input {
			if !seen[in] {
				t.Fatalf("node %s reads %s before it is written", n.Name, in)
			}
		}
		for _, o := range n.Output {
			seen[o], producer[o] = true, n
		}
	}
	convs := 0
	for _, n := range g.Node {
		if n.OpType != "Conv" && n.OpType != "Gemm" {
			continue
		}
		dq := producer[n.Input[2]]
		if dq == nil || dq.OpType != "DequantizeLinear" || inits[dq.Input[0]].DataType != onnx.DataInt32 {
			t.Fatalf("%s: bias not an int32 DequantizeLinear", n.Name)
		}
		codes, _ := inits[dq.Input[0]].Int64()
		scales, _ := inits[dq.Input[1]].Float32()
		for o, b := range floatBias[n.Name] {
			if d := math.Abs(float64(codes[o])*float64(scales[o]) - float64(b)); d > float64(scales[o])/2*1.0001 {
				t.Fatalf("%s: bias %d: %d·%g is %g from %g", n.Name, o, codes[o], scales[o], d, b)
			}
		}
		if n.OpType == "Conv" {
			convs++
			var next *onnx.Node
			for _, c := range g.Node {
				for _, in := range c.Input {
					if in == n.Output[0] {
						next = c
					}
				}
			}
			if next == nil || next.OpType != "QuantizeLinear" {
				t.Fatalf("%s: not followed by a QuantizeLinear", n.Name)
			}
		}
	}
	if convs != 2 {
		t.Fatalf("%d convolutions, want 2", convs)
	}
}
