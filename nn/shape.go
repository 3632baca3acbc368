package nn

import (
	"errors"
	"fmt"
)

// MaxSampleSize is the most values one sample's tensor may have between
// layers (64 Mi); larger networks are refused rather than run out of
// memory.
const MaxSampleSize = 1 << 26

// Shape is one sample's tensor between layers, C×H×W; a feature vector
// is F×1×1.
type Shape struct{ C, H, W int }

// Size is C·H·W.
func (s Shape) Size() int { return s.C * s.H * s.W }

// Shapes checks that the layers of net chain and returns the shape
// entering each layer and, last, the output's (len(Layers)+1 shapes).
func Shapes(net *Net) ([]Shape, error) {
	if net == nil {
		return nil, errors.New("nn: nil net")
	}
	var s Shape
	switch len(net.Input) {
	case 3:
		s = Shape{net.Input[0], net.Input[1], net.Input[2]}
	case 1:
		s = Shape{net.Input[0], 1, 1}
	default:
		return nil, fmt.Errorf("nn: input shape %v: want [C,H,W] or [F]", net.Input)
	}
	if s.C <= 0 || s.H <= 0 || s.W <= 0 {
		return nil, fmt.Errorf("nn: input shape %v", net.Input)
	}
	out := func(in, k, stride, a, b int) int { return (in+a+b-k)/stride + 1 }
	shapes := []Shape{s}
	for i, l := range net.Layers {
		switch l := l.(type) {
		case *Conv2D:
			if l.InC != s.C || l.OutC <= 0 || l.KH <= 0 || l.KW <= 0 || l.StrideH <= 0 || l.StrideW <= 0 ||
				min(l.PadT, l.PadL, l.PadB, l.PadR) < 0 || len(l.W) != l.OutC*l.InC*l.KH*l.KW || len(l.B) != l.OutC ||
				s.H+l.PadT+l.PadB < l.KH || s.W+l.PadL+l.PadR < l.KW {
				return nil, fmt.Errorf("nn: layer %d (conv %s): %d→%d channels, kernel %dx%d, stride %dx%d, %d weights, %d biases on an input of %dx%dx%d",
					i, l.Name, l.InC, l.OutC, l.KH, l.KW, l.StrideH, l.StrideW, len(l.W), len(l.B), s.C, s.H, s.W)
			}
			s = Shape{l.OutC, out(s.H, l.KH, l.StrideH, l.PadT, l.PadB), out(s.W, l.KW, l.StrideW, l.PadL, l.PadR)}
		case *Dense:
			if l.In != s.Size() || l.Out <= 0 || len(l.W) != l.In*l.Out || len(l.B) != l.Out {
				return nil, fmt.Errorf("nn: layer %d (dense %s): %d→%d with %d weights and %d biases on an input of %d values",
					i, l.Name, l.In, l.Out, len(l.W), len(l.B), s.Size())
			}
			s = Shape{l.Out, 1, 1}
		case *MaxPool:
			if l.KH <= 0 || l.KW <= 0 || l.StrideH <= 0 || l.StrideW <= 0 || min(l.PadT, l.PadL, l.PadB, l.PadR) < 0 ||
				l.PadT >= l.KH || l.PadB >= l.KH || l.PadL >= l.KW || l.PadR >= l.KW ||
				s.H+l.PadT+l.PadB < l.KH || s.W+l.PadL+l.PadR < l.KW {
				return nil, fmt.Errorf("nn: layer %d (max pool): kernel %dx%d, stride %dx%d, pads %d,%d,%d,%d on %dx%d",
					i, l.KH, l.KW, l.StrideH, l.StrideW, l.PadT, l.PadL, l.PadB, l.PadR, s.H, s.W)
			}
			s = Shape{s.C, out(s.H, l.KH, l.StrideH, l.PadT, l.PadB), out(s.W, l.KW, l.StrideW, l.PadL, l.PadR)}
		case *Flatten:
			s = Shape{s.Size(), 1, 1}
		case *ReLU, *Softmax:
		default:
			return nil, fmt.Errorf("nn: layer %d: unsupported layer %T", i, l)
		}
		if !sizeWithin(s, MaxSampleSize) {
			return nil, fmt.Errorf("nn: layer %d: output of %dx%dx%d exceeds the limit of %d values per sample", i, s.C, s.H, s.W, MaxSampleSize)
		}
		shapes = append(shapes, s)
	}
	return shapes, nil
}

// sizeWithin reports whether C·H·W ≤ limit, without overflowing.
func sizeWithin(s Shape, limit int64) bool {
	n := int64(1)
	for _, d := range []int{s.C, s.H, s.W} {
		if d <= 0 || int64(d) > limit/n {
			return false
		}
		n *= int64(d)
	}
	return true
}

// OutputShape is the shape of one sample of net's output: [C,H,W], or [F]
// after a Dense or Flatten.
func OutputShape(net *Net) ([]int, error) {
	shapes, err := Shapes(net)
	if err != nil {
		return nil, err
	}
	s := shapes[len(shapes)-1]
	if s.H == 1 && s.W == 1 {
		return []int{s.C}, nil
	}
	return []int{s.C, s.H, s.W}, nil
}

// IOLen is the number of values of one sample of net's input and of its
// output, or an error when the layers do not chain.
func IOLen(net *Net) (in, out int, err error) {
	s, err := Shapes(net)
	if err != nil {
		return 0, 0, err
	}
	return s[0].Size(), s[len(s)-1].Size(), nil
}
