package main

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/model/onnx"
)

// ortForm rewrites a QDQ graph as onnxnet.ExportQDQ writes it into the form
// ONNX Runtime's quantizer writes, which ONNX Runtime fuses into
// QLinearConv and QLinearMatMul-based kernels:
//
//   - each float bias of a Conv or Gemm whose input and weight are
//     dequantized becomes INT32 codes round(b/(sa·sw[o])) with a
//     per-channel DequantizeLinear (scale sa·sw[o], zero point 0, axis 0);
//   - a Conv or Gemm whose output reaches a QuantizeLinear through Relu,
//     MaxPool, Flatten and Reshape nodes gets that QuantizeLinear →
//     DequantizeLinear pair
//     (the same scale and zero point) after itself and after each node of
//     the chain but the last, so that each operator sits between a
//     DequantizeLinear and a QuantizeLinear.
//
// The integer result is the engine's: the ReLU and the maximum commute with
// the monotone requantization, and the bias moves by at most half an
// accumulator step (sa·sw[o]/2).
func ortForm(m *onnx.Model) (*onnx.Model, error) {
	g := m.Graph
	inits := map[string]*onnx.Tensor{}
	for _, t := range g.Initializer {
		inits[t.Name] = t
	}
	producer := map[string]*onnx.Node{}
	consumers := map[string][]*onnx.Node{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			producer[o] = n
		}
		for _, in := range n.Input {
			consumers[in] = append(consumers[in], n)
		}
	}
	scalesOf := func(name string) ([]float32, *onnx.Node, error) {
		dq := producer[name]
		if dq == nil || dq.OpType != "DequantizeLinear" || len(dq.Input) < 2 || inits[dq.Input[1]] == nil {
			return nil, nil, nil
		}
		s, err := inits[dq.Input[1]].Float32()
		return s, dq, err
	}
	after := map[*onnx.Node][]*onnx.Node{} // nodes to insert after a node
	var first []*onnx.Node                 // nodes to insert at the start
	for _, n := range g.Node {
		if (n.OpType != "Conv" && n.OpType != "Gemm") || len(n.Input) < 3 {
			continue
		}
		sa, _, err := scalesOf(n.Input[0])
		if err != nil {
			return nil, err
		}
		sw, _, err2 := scalesOf(n.Input[1])
		b := inits[n.Input[2]]
		if err2 != nil || sa == nil || sw == nil || len(sa) != 1 || b == nil {
			continue
		}
		bias, err := b.Float32()
		if err != nil {
			return nil, err
		}
		if len(sw) != len(bias) {
			return nil, fmt.Errorf("%s: %d weight scales for %d biases", n.Name, len(sw), len(bias))
		}
		codes := make([]byte, 4*len(bias))
		scale := make([]float32, len(bias))
		for o, v := range bias {
			scale[o] = sa[0] * sw[o]
			q := math.RoundToEven(float64(v) / float64(scale[o]))
			binary.LittleEndian.PutUint32(codes[4*o:], uint32(int32(q)))
		}
		dims := []int64{int64(len(bias))}
		base := n.Input[2]
		g.Initializer = append(g.Initializer,
			&onnx.Tensor{Name: base + "_int32", Dims: dims, DataType: onnx.DataInt32, RawData: codes},
			onnx.NewFloat(base+"_int32.scale", dims, scale),
			&onnx.Tensor{Name: base + "_int32.zero_point", Dims: dims, DataType: onnx.DataInt32, RawData: make([]byte, 4*len(bias))})
		dq := &onnx.Node{OpType: "DequantizeLinear", Name: base + "_int32.dequantize", Input: []string{base + "_int32", base + "_int32.scale", base + "_int32.zero_point"},
			Output: []string{base + "_int32.dequantized"}, Attribute: []*onnx.Attribute{onnx.IntAttr("axis", 0)}}
		n.Input[2] = dq.Output[0]
		first = append(first, dq) // before everything: it reads initializers only

		// The chain to the next QuantizeLinear.
		var chain []*onnx.Node
		var q *onnx.Node
		for cur := n; ; {
			cs := consumers[cur.Output[0]]
			if len(cs) != 1 {
				break
			}
			c := cs[0]
			if c.OpType == "QuantizeLinear" {
				q = c
				break
			}
			if c.OpType != "Relu" && c.OpType != "MaxPool" && c.OpType != "Flatten" && c.OpType != "Reshape" {
				break
			}
			chain = append(chain, cur)
			cur = c
		}
		if q == nil {
			continue
		}
		for k, p := range chain {
			out := p.Output[0]
			next := consumers[out][0]
			name := fmt.Sprintf("%s.requant%d", n.Name, k)
			qn := &onnx.Node{OpType: "QuantizeLinear", Name: name + ".quantize", Input: []string{out, q.Input[1], q.Input[2]}, Output: []string{name + ".quantized"}}
			dn := &onnx.Node{OpType: "DequantizeLinear", Name: name + ".dequantize", Input: []string{name + ".quantized", q.Input[1], q.Input[2]}, Output: []string{name + ".dequantized"}}
			for j, in := range next.Input {
				if in == out {
					next.Input[j] = dn.Output[0]
				}
			}
			after[p] = append(after[p], qn, dn)
		}
	}
	nodes := first
	for _, n := range g.Node {
		nodes = append(nodes, n)
		nodes = append(nodes, after[n]...)
	}
	g.Node = nodes
	return m, nil
}
