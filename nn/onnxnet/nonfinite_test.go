package onnxnet

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/nntest"
)

// mnistWith writes a copy of the MNIST model to a temporary file after
// edit has changed it.
func mnistWith(t *testing.T, edit func(g *onnx.Graph)) string {
	t.Helper()
	m, err := onnx.Read(nntest.MNISTONNX)
	if err != nil {
		t.Fatal(err)
	}
	edit(m.Graph)
	path := filepath.Join(t.TempDir(), "edited.onnx")
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// setFloat sets value i of the FLOAT initializer name to v.
func setFloat(t *testing.T, g *onnx.Graph, name string, i int, v float32) {
	t.Helper()
	init := g.InitializerByName(name)
	vals, err := init.Float32()
	if err != nil {
		t.Fatal(err)
	}
	vals[i] = v
	*init = *onnx.NewFloat(init.Name, init.Dims, vals)
}

// NaN and infinite weights, biases and other constants are refused with
// an error naming the file and the initializer, unless AllowNonFinite,
// which lowers the model and lists them.
func TestLoadNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	path := mnistWith(t, func(g *onnx.Graph) {
		setFloat(t, g, "Parameter5", 7, nan) // the first convolution's weights
		setFloat(t, g, "Parameter88", 3, -inf)
		setFloat(t, g, "Parameter88", 4, nan) // the second convolution's bias
	})
	_, err := Load(path)
	if err == nil || !errors.Is(err, ErrNonFinite) {
		t.Fatalf("NaN weights: %v", err)
	}
	for _, want := range []string{path, `initializer "Parameter5": 1 NaN of 200 values`, `initializer "Parameter88": 1 NaN and 1 ±Inf of 16 values`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	net, bad, err := LoadWith(path, Options{AllowNonFinite: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []NonFinite{{What: `initializer "Parameter5"`, NaN: 1, Len: 200},
		{What: `initializer "Parameter88"`, NaN: 1, Inf: 1, Len: 16}}
	if len(bad) != len(want) || bad[0] != want[0] || bad[1] != want[1] {
		t.Errorf("non-finite constants %+v, want %+v", bad, want)
	}
	if w := net.Layers[0].(*nn.Conv2D).W[7]; !math.IsNaN(float64(w)) {
		t.Errorf("the NaN weight lowered to %g", w)
	}
	// The untouched model has none.
	if _, bad, err := LoadWith(nntest.MNISTONNX, Options{}); err != nil || len(bad) != 0 {
		t.Errorf("MNIST model: %v, %v", bad, err)
	}
}

// Non-finite values that only lowering makes (a BatchNormalization
// variance that is negative, a Gemm alpha that overflows) are refused
// too, naming the layer; so are those of Constant nodes. An initializer
// that no node reads does not matter.
func TestLowerNonFiniteDerived(t *testing.T) {
	W := onnx.NewFloat("W", []int64{2, 1, 1, 1}, []float32{1, 2})
	bn := func(variance float32) *onnx.Model {
		one := []float32{1, 1}
		return graph(13, []int64{1, 3, 3}, []*onnx.Tensor{W,
			onnx.NewFloat("g", []int64{2}, one), onnx.NewFloat("b", []int64{2}, one),
			onnx.NewFloat("m", []int64{2}, one), onnx.NewFloat("v", []int64{2}, []float32{1, variance})},
			node("Conv", "conv", []string{"x", "W"}, "c"),
			node("BatchNormalization", "bn", []string{"c", "g", "b", "m", "v"}, "y", onnx.FloatAttr("epsilon", 0)))
	}
	if _, err := Lower(bn(1)); err != nil {
		t.Fatal(err)
	}
	_, err := Lower(bn(-1))
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), `layer "conv"`) {
		t.Errorf("negative variance: %v", err)
	}
	_, bad, err := LowerWith(bn(-1), Options{AllowNonFinite: true})
	if err != nil || len(bad) != 2 || bad[0].String() != `layer "conv" weights: 1 NaN of 2 values` || bad[1].String() != `layer "conv" biases: 1 NaN of 2 values` {
		t.Errorf("negative variance allowed: %+v, %v", bad, err)
	}

	gemm := graph(13, []int64{2}, []*onnx.Tensor{onnx.NewFloat("M", []int64{1, 2}, []float32{3e38, 1})},
		node("Gemm", "fc", []string{"x", "M"}, "y", onnx.IntAttr("transB", 1), onnx.FloatAttr("alpha", 10)))
	if _, err := Lower(gemm); !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), `layer "fc" weights: 1 ±Inf of 2 values`) {
		t.Errorf("alpha overflow: %v", err)
	}

	k := onnx.NewFloat("", []int64{2}, []float32{0, float32(math.Inf(-1))})
	constant := graph(13, []int64{1, 3, 3}, []*onnx.Tensor{W},
		&onnx.Node{OpType: "Constant", Name: "bias", Output: []string{"k"}, Attribute: []*onnx.Attribute{onnx.TensorAttr("value", k)}},
		node("Conv", "conv", []string{"x", "W", "k"}, "y"))
	if _, err := Lower(constant); !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), `Constant node "bias" output "k": 1 ±Inf of 2 values`) {
		t.Errorf("Constant: %v", err)
	}

	unused := graph(13, []int64{1, 3, 3}, []*onnx.Tensor{W, onnx.NewFloat("spare", []int64{1}, []float32{float32(math.NaN())})},
		node("Conv", "conv", []string{"x", "W"}, "y"))
	if _, err := Lower(unused); err != nil {
		t.Errorf("an unused NaN initializer: %v", err)
	}
}

// A model built in memory, which no reader checked, with an initializer
// name used twice is refused: which one would be the weight?
func TestLowerDuplicateNames(t *testing.T) {
	W := onnx.NewFloat("W", []int64{2, 1, 1, 1}, []float32{1, 2})
	W2 := onnx.NewFloat("W", []int64{2, 1, 1, 1}, []float32{3, 4})
	m := graph(13, []int64{1, 3, 3}, []*onnx.Tensor{W, W2}, node("Conv", "conv", []string{"x", "W"}, "y"))
	if _, err := Lower(m); err == nil || !strings.Contains(err.Error(), `"W" used twice`) {
		t.Errorf("two initializers W: %v", err)
	}
	// value_info and the output may both declare a tensor, but not two
	// shapes for it.
	m = graph(13, []int64{4}, nil, node("Relu", "r", []string{"x"}, "y"))
	decl := func(d int64) *onnx.ValueInfo {
		return &onnx.ValueInfo{Name: "y", ElemType: onnx.DataFloat, HasShape: true, Shape: []onnx.Dim{{Param: "N"}, {Value: d}}}
	}
	m.Graph.ValueInfo = []*onnx.ValueInfo{decl(4)}
	m.Graph.Output[0] = decl(4)
	if _, err := Lower(m); err != nil {
		t.Errorf("one shape declared twice: %v", err)
	}
	m.Graph.ValueInfo = []*onnx.ValueInfo{decl(5), decl(4)}
	if _, err := Lower(m); err == nil || !strings.Contains(err.Error(), `"y"`) {
		t.Errorf("two shapes for y: %v", err)
	}
	// Through a file, the reader refuses the duplicate and names the file:
	// the MNIST model with its second convolution's bias renamed to a
	// name of the same length, then in the bytes to its weight's name.
	path := mnistWith(t, func(g *onnx.Graph) {
		for _, n := range g.Node {
			for i, in := range n.Input {
				if in == "Parameter88" {
					n.Input[i] = "Parameter8X"
				}
			}
		}
		for _, v := range g.Input {
			if v.Name == "Parameter88" {
				v.Name = "Parameter8X"
			}
		}
		g.InitializerByName("Parameter88").Name = "Parameter8X"
	})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.ReplaceAll(data, []byte("Parameter8X"), []byte("Parameter87")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"Parameter87" used twice`) {
		t.Errorf("duplicate initializer in a file: %v", err)
	}
}
