package onnxnet

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
)

// ErrNonFinite is the error of lowering a model whose constants hold NaN
// or infinite values when Options.AllowNonFinite is not set.
var ErrNonFinite = errors.New("non-finite weights")

// Options are the options of LowerWith and LoadWith.
type Options struct {
	// AllowNonFinite lowers a model whose constants (weights, biases,
	// BatchNormalization parameters, scales: every floating-point
	// initializer or Constant a node reads) or lowered weights hold NaN
	// or ±Inf values, instead of refusing it with ErrNonFinite; the
	// values are kept as they are.
	AllowNonFinite bool
}

// NonFinite is a tensor of a model with NaN or infinite values.
type NonFinite struct {
	// What names it: `initializer "W"`, `Constant node "c" output "k"`,
	// or `layer "conv1" weights` (or biases) for values that lowering
	// made, such as a BatchNormalization with a negative variance folded
	// into a convolution.
	What     string
	NaN, Inf int // how many values are NaN and ±Inf
	Len      int // of how many values
}

func (n NonFinite) String() string {
	var counts []string
	if n.NaN > 0 {
		counts = append(counts, fmt.Sprintf("%d NaN", n.NaN))
	}
	if n.Inf > 0 {
		counts = append(counts, fmt.Sprintf("%d ±Inf", n.Inf))
	}
	return fmt.Sprintf("%s: %s of %d values", n.What, strings.Join(counts, " and "), n.Len)
}

// nonFiniteError is ErrNonFinite listing the first few of list.
func nonFiniteError(list []NonFinite) error {
	const show = 8
	var parts []string
	for i, n := range list {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(list)-show))
			break
		}
		parts = append(parts, n.String())
	}
	return fmt.Errorf("%w: %s", ErrNonFinite, strings.Join(parts, "; "))
}

// countNonFinite counts the NaN and infinite values of v.
func countNonFinite(v []float32) (nan, inf int) {
	for _, x := range v {
		switch {
		case x != x:
			nan++
		case math.IsInf(float64(x), 0):
			inf++
		}
	}
	return nan, inf
}

// constantsNonFinite lists the floating-point constants of g that some
// node reads (initializers, then Constant nodes' values) and that hold
// NaN or infinite values. Those no node reads cannot become weights.
func constantsNonFinite(g *onnx.Graph) ([]NonFinite, error) {
	read := map[string]bool{}
	for _, n := range g.Node {
		for _, in := range n.Input {
			read[in] = true
		}
	}
	var list []NonFinite
	check := func(t *onnx.Tensor, what string) error {
		switch t.DataType {
		case onnx.DataFloat, onnx.DataDouble, onnx.DataFloat16, onnx.DataBFloat16:
		default:
			return nil // integers are finite; other types the lowering refuses
		}
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if nan, inf := countNonFinite(v); nan+inf > 0 {
			list = append(list, NonFinite{What: what, NaN: nan, Inf: inf, Len: len(v)})
		}
		return nil
	}
	for _, t := range g.Initializer {
		if read[t.Name] {
			if err := check(t, fmt.Sprintf("initializer %q", t.Name)); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range g.Node {
		if n.OpType != "Constant" || len(n.Output) == 0 || !read[n.Output[0]] {
			continue
		}
		if a := n.Attr("value"); a != nil && a.Type == onnx.AttrTensor && a.T != nil {
			if err := check(a.T, fmt.Sprintf("%s output %q", n.Describe(), n.Output[0])); err != nil {
				return nil, err
			}
		}
	}
	return list, nil
}

// layersNonFinite lists the weights and biases of net's layers that hold
// NaN or infinite values.
func layersNonFinite(net *nn.Net) []NonFinite {
	var list []NonFinite
	add := func(name, what string, v []float32) {
		if nan, inf := countNonFinite(v); nan+inf > 0 {
			list = append(list, NonFinite{What: fmt.Sprintf("layer %q %s", name, what), NaN: nan, Inf: inf, Len: len(v)})
		}
	}
	for _, l := range net.Layers {
		switch l := l.(type) {
		case *nn.Conv2D:
			add(l.Name, "weights", l.W)
			add(l.Name, "biases", l.B)
		case *nn.Dense:
			add(l.Name, "weights", l.W)
			add(l.Name, "biases", l.B)
		}
	}
	return list
}
