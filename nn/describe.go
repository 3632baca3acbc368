package nn

import (
	"fmt"
	"strings"
)

// Describe is a one-line summary of each layer, for reports:
// "conv 1→8 5x5 stride 1x1 pads 2,2,2,2", "dense 256→10".
func Describe(l Layer) string {
	switch l := l.(type) {
	case *Conv2D:
		return fmt.Sprintf("conv %d→%d %dx%d stride %dx%d pads %d,%d,%d,%d", l.InC, l.OutC, l.KH, l.KW, l.StrideH, l.StrideW, l.PadT, l.PadL, l.PadB, l.PadR)
	case *Dense:
		return fmt.Sprintf("dense %d→%d", l.In, l.Out)
	case *ReLU:
		return "relu"
	case *MaxPool:
		return fmt.Sprintf("maxpool %dx%d stride %dx%d", l.KH, l.KW, l.StrideH, l.StrideW)
	case *Flatten:
		return "flatten"
	case *Softmax:
		return "softmax"
	}
	return strings.ToLower(fmt.Sprintf("%T", l))
}

// Params is the number of weights and biases of net.
func Params(net *Net) int {
	n := 0
	for _, l := range net.Layers {
		switch l := l.(type) {
		case *Conv2D:
			n += len(l.W) + len(l.B)
		case *Dense:
			n += len(l.W) + len(l.B)
		}
	}
	return n
}

// Clone copies net, its layers and their weights; Quant is copied too
// when set.
func (net *Net) Clone() *Net {
	c := *net
	c.Input = append([]int(nil), net.Input...)
	c.Layers = make([]Layer, len(net.Layers))
	for i, l := range net.Layers {
		switch l := l.(type) {
		case *Conv2D:
			v := *l
			v.W, v.B = append([]float32(nil), l.W...), append([]float32(nil), l.B...)
			c.Layers[i] = &v
		case *Dense:
			v := *l
			v.W, v.B = append([]float32(nil), l.W...), append([]float32(nil), l.B...)
			c.Layers[i] = &v
		case *MaxPool:
			v := *l
			c.Layers[i] = &v
		case *ReLU:
			c.Layers[i] = &ReLU{}
		case *Flatten:
			c.Layers[i] = &Flatten{}
		case *Softmax:
			c.Layers[i] = &Softmax{}
		default:
			c.Layers[i] = l
		}
	}
	if q := net.Quant; q != nil {
		cq := *q
		cq.WeightScale = make([][]float32, len(q.WeightScale))
		for i, s := range q.WeightScale {
			cq.WeightScale[i] = append([]float32(nil), s...)
		}
		cq.Act = append([]ActQuant(nil), q.Act...)
		c.Quant = &cq
	}
	return &c
}
