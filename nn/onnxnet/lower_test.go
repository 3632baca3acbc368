package onnxnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/internal/nntest"
	"github.com/quantkit/quantkit/quant"
)

// graph builds a model whose input x is [N, dims...] and whose output is
// the output of the last node.
func graph(opset int64, dims []int64, inits []*onnx.Tensor, nodes ...*onnx.Node) *onnx.Model {
	shape := []onnx.Dim{{Param: "N"}}
	for _, d := range dims {
		shape = append(shape, onnx.Dim{Value: d})
	}
	out := nodes[len(nodes)-1].Output[0]
	return &onnx.Model{IRVersion: 7, OpsetImport: []onnx.OperatorSet{{Version: opset}}, Graph: &onnx.Graph{
		Node: nodes, Initializer: inits,
		Input:  []*onnx.ValueInfo{{Name: "x", ElemType: onnx.DataFloat, HasShape: true, Shape: shape}},
		Output: []*onnx.ValueInfo{{Name: out, ElemType: onnx.DataFloat}},
	}}
}

func node(op, name string, in []string, out string, attrs ...*onnx.Attribute) *onnx.Node {
	return &onnx.Node{OpType: op, Name: name, Input: in, Output: []string{out}, Attribute: attrs}
}

func lower(t *testing.T, m *onnx.Model) *nn.Net {
	t.Helper()
	// Through the bytes, as a file would be.
	b, err := onnx.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = onnx.Decode(b); err != nil {
		t.Fatal(err)
	}
	net, err := Lower(m)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func forward1(t *testing.T, net *nn.Net, x []float32) []float32 {
	t.Helper()
	out, err := float.Forward(cpu.New(), net, x, 1)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func close32(a, b float64) bool { return math.Abs(a-b) <= 1e-4*(1+math.Abs(b)) }

// Gemm: y = alpha·x·Bᵀ + beta·C with transB, and MatMul + Add.
func TestLowerDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := nntest.RandSlice(rng, 4*3, 1) // [out 4][in 3]
	c := nntest.RandSlice(rng, 4, 1)
	x := nntest.RandSlice(rng, 3, 1)
	want := make([]float64, 4)
	for o := range 4 {
		want[o] = 0.5 * float64(c[o])
		for i := range 3 {
			want[o] += 2 * float64(w[o*3+i]) * float64(x[i])
		}
	}
	gemm := lower(t, graph(13, []int64{3}, []*onnx.Tensor{onnx.NewFloat("W", []int64{4, 3}, w), onnx.NewFloat("C", []int64{1, 4}, c)},
		node("Gemm", "fc", []string{"x", "W", "C"}, "y", onnx.IntAttr("transB", 1), onnx.FloatAttr("alpha", 2), onnx.FloatAttr("beta", 0.5))))
	// MatMul by the transpose, scaled, then Add of the bias, then Softmax.
	wt := make([]float32, 12)
	cb := make([]float32, 4)
	for o := range 4 {
		for i := range 3 {
			wt[i*4+o] = 2 * w[o*3+i]
		}
		cb[o] = 0.5 * c[o]
	}
	mm := lower(t, graph(13, []int64{3}, []*onnx.Tensor{onnx.NewFloat("W", []int64{3, 4}, wt), onnx.NewFloat("C", []int64{4}, cb)},
		node("MatMul", "mm", []string{"x", "W"}, "h"), node("Add", "bias", []string{"h", "C"}, "y")))
	for _, net := range []*nn.Net{gemm, mm} {
		if len(net.Layers) != 1 {
			t.Fatalf("%d layers", len(net.Layers))
		}
		got := forward1(t, net, x)
		for o := range 4 {
			if !close32(float64(got[o]), want[o]) {
				t.Errorf("output %d: %g, want %g", o, got[o], want[o])
			}
		}
	}
}

// Conv with a bias input and SAME_LOWER padding at stride 2, followed by
// BatchNormalization: the fold gives the same as the two in float64.
func TestLowerConvBatchNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w, b := nntest.RandSlice(rng, 3*2*3*3, 0.5), nntest.RandSlice(rng, 3, 0.2)
	gamma, beta, mean := nntest.RandSlice(rng, 3, 1), nntest.RandSlice(rng, 3, 1), nntest.RandSlice(rng, 3, 1)
	variance := []float32{0.5, 2, 0.01}
	m := graph(13, []int64{2, 7, 6}, []*onnx.Tensor{
		onnx.NewFloat("W", []int64{3, 2, 3, 3}, w), onnx.NewFloat("B", []int64{3}, b),
		onnx.NewFloat("g", []int64{3}, gamma), onnx.NewFloat("be", []int64{3}, beta),
		onnx.NewFloat("m", []int64{3}, mean), onnx.NewFloat("v", []int64{3}, variance),
	},
		node("Conv", "conv", []string{"x", "W", "B"}, "c", onnx.StringAttr("auto_pad", "SAME_LOWER"), onnx.IntsAttr("strides", 2, 2)),
		node("BatchNormalization", "bn", []string{"c", "g", "be", "m", "v"}, "y", onnx.FloatAttr("epsilon", 1e-3)))
	net := lower(t, m)
	conv := net.Layers[0].(*nn.Conv2D)
	// Output ceil(7/2)=4 × ceil(6/2)=3; padding 2 rows (1+1) and 1
	// column, the odd one at the start for SAME_LOWER.
	if len(net.Layers) != 1 || conv.PadT != 1 || conv.PadB != 1 || conv.PadL != 1 || conv.PadR != 0 {
		t.Fatalf("layers %d, pads %d %d %d %d", len(net.Layers), conv.PadT, conv.PadL, conv.PadB, conv.PadR)
	}
	x := nntest.RandSlice(rng, 2*7*6, 1)
	plain := &nn.Net{Input: []int{2, 7, 6}, Layers: []nn.Layer{&nn.Conv2D{InC: 2, OutC: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2,
		PadT: 1, PadL: 1, PadB: 1, W: w, B: b}}}
	ref := nntest.NaiveForward(plain, x)
	got := forward1(t, net, x)
	if len(got) != 3*4*3 {
		t.Fatalf("%d outputs", len(got))
	}
	for i, r := range ref {
		o := i / 12
		want := (r-float64(mean[o]))/math.Sqrt(float64(variance[o])+1e-3)*float64(gamma[o]) + float64(beta[o])
		if !close32(float64(got[i]), want) {
			t.Fatalf("output %d: %g, want %g", i, got[i], want)
		}
	}
}

// Constant and Identity nodes, a Reshape of a weight, Flatten, Dropout
// and Softmax (opset 11: axis 1 by default).
func TestLowerMisc(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := nntest.RandSlice(rng, 2*3*2*5, 1) // stored as [2,3,2,5], used as [12,5]
	shape := onnx.NewInt64("", []int64{2}, []int64{12, -1})
	cn := node("Constant", "shape", nil, "s", onnx.TensorAttr("value", shape))
	m := graph(11, []int64{3, 2, 2}, []*onnx.Tensor{onnx.NewFloat("W4", []int64{2, 3, 2, 5}, w)},
		cn, node("Reshape", "wr", []string{"W4", "s"}, "W"), node("Identity", "id", []string{"x"}, "xi"),
		node("Relu", "r", []string{"xi"}, "xr"), node("Flatten", "f", []string{"xr"}, "xf"),
		&onnx.Node{OpType: "Dropout", Input: []string{"xf"}, Output: []string{"xd", "mask"}},
		node("MatMul", "mm", []string{"xd", "W"}, "h"), node("Softmax", "sm", []string{"h"}, "y"))
	net := lower(t, m)
	var kinds []string
	for _, l := range net.Layers {
		kinds = append(kinds, nn.Describe(l))
	}
	if strings.Join(kinds, ",") != "relu,flatten,dense 12→5,softmax" {
		t.Errorf("layers %v", kinds)
	}
	x := nntest.RandSlice(rng, 12, 1)
	got := forward1(t, net, x)
	var z [5]float64
	var sum float64
	for o := range 5 {
		for i := range 12 {
			z[o] += float64(w[i*5+o]) * math.Max(float64(x[i]), 0)
		}
	}
	for o := range 5 {
		sum += math.Exp(z[o])
	}
	for o := range 5 {
		if want := math.Exp(z[o]) / sum; !close32(float64(got[o]), want) {
			t.Errorf("output %d: %g, want %g", o, got[o], want)
		}
	}
}

func TestLowerErrors(t *testing.T) {
	W := onnx.NewFloat("W", []int64{2, 1, 3, 3}, make([]float32, 18))
	conv := func(attrs ...*onnx.Attribute) *onnx.Node {
		return node("Conv", "conv1", []string{"x", "W"}, "c", attrs...)
	}
	cases := []struct {
		name string
		m    *onnx.Model
		want string
	}{
		{"unsupported op", graph(13, []int64{1, 5, 5}, []*onnx.Tensor{W}, conv(), node("Sigmoid", "act7", []string{"c"}, "y")),
			`Sigmoid node "act7": unsupported operator "Sigmoid"`},
		{"group", graph(13, []int64{1, 5, 5}, []*onnx.Tensor{W}, conv(onnx.IntAttr("group", 2))), `Conv node "conv1": group 2`},
		{"channels", graph(13, []int64{3, 5, 5}, []*onnx.Tensor{W}, conv()), `Conv node "conv1": weight of shape [2 1 3 3] on an input of 3 channels`},
		{"kernel too big", graph(13, []int64{1, 2, 2}, []*onnx.Tensor{W}, conv()), "larger than the padded input"},
		{"dilation", graph(13, []int64{1, 5, 5}, []*onnx.Tensor{W}, conv(onnx.IntsAttr("dilations", 2, 2))), "dilations [2 2]"},
		{"branch", graph(13, []int64{1, 5, 5}, []*onnx.Tensor{W}, conv(), node("Relu", "r", []string{"c"}, "r"), node("Add", "res", []string{"r", "c"}, "y")),
			`Add node "res": input "c" is computed`},
		{"dense on 4-D", graph(13, []int64{1, 5, 5}, []*onnx.Tensor{onnx.NewFloat("M", []int64{5, 2}, make([]float32, 10))}, node("MatMul", "mm", []string{"x", "M"}, "y")),
			`MatMul node "mm": input of shape [1 5 5]`},
		{"dense shape", graph(13, []int64{6}, []*onnx.Tensor{onnx.NewFloat("M", []int64{5, 2}, make([]float32, 10))}, node("MatMul", "mm", []string{"x", "M"}, "y")),
			`weight of shape [5 2] (transB 0) on 6 input features`},
		{"add after relu", graph(13, []int64{4}, []*onnx.Tensor{onnx.NewFloat("b", []int64{4}, make([]float32, 4))}, node("Relu", "r", []string{"x"}, "r"), node("Add", "a", []string{"r", "b"}, "y")),
			"only right after Conv, MatMul or Gemm"},
		{"foreign domain", graph(13, []int64{4}, nil, &onnx.Node{OpType: "Gelu", Domain: "com.microsoft", Input: []string{"x"}, Output: []string{"y"}}),
			`operator "Gelu" of domain "com.microsoft"`},
		{"missing input", graph(13, []int64{4}, nil, node("Relu", "r", []string{"z"}, "y")), `does not continue the chain of layers at "x"`},
		{"reshape", graph(13, []int64{2, 3, 3}, []*onnx.Tensor{onnx.NewInt64("s", []int64{3}, []int64{1, 6, 3})}, node("Reshape", "rs", []string{"x", "s"}, "y")),
			`Reshape node "rs": reshape of a sample of shape [2 3 3] to [1 6 3]`},
		{"softmax 4-D", graph(13, []int64{2, 3, 3}, nil, node("Softmax", "sm", []string{"x"}, "y")), "softmax over axis -1"},
		{"ceil mode", graph(13, []int64{1, 4, 4}, nil, node("MaxPool", "mp", []string{"x"}, "y", onnx.IntsAttr("kernel_shape", 2, 2), onnx.IntAttr("ceil_mode", 1))), "ceil_mode 1"},
	}
	for _, c := range cases {
		_, err := Lower(c.m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error containing %q", c.name, err, c.want)
		}
	}
	// Inputs and outputs.
	m := graph(13, []int64{4}, nil, node("Relu", "r", []string{"x"}, "y"))
	m.Graph.Input[0].HasShape = false
	if _, err := Lower(m); err == nil || !strings.Contains(err.Error(), `input "x" has shape`) {
		t.Errorf("no input shape: %v", err)
	}
	// A declared shape that the lowering does not reach.
	m = graph(13, []int64{1, 5, 5}, []*onnx.Tensor{W}, conv())
	m.Graph.ValueInfo = []*onnx.ValueInfo{{Name: "c", ElemType: onnx.DataFloat, HasShape: true,
		Shape: []onnx.Dim{{Value: 1}, {Value: 2}, {Value: 5}, {Value: 5}}}}
	if _, err := Lower(m); err == nil || !strings.Contains(err.Error(), `Conv node "conv1": output "c" has shape [2 3 3] per sample here, but the model declares [1 2 5 5]`) {
		t.Errorf("declared shape: %v", err)
	}
	m.Graph.ValueInfo[0].Shape = []onnx.Dim{{Param: "N"}, {Value: 2}, {Value: 3}, {}}
	if _, err := Lower(m); err != nil {
		t.Errorf("declared shape with an unknown size: %v", err)
	}
	// [N,H,W] is one channel.
	m = graph(13, []int64{5, 4}, nil, node("Flatten", "f", []string{"x"}, "y"))
	if net, err := Lower(m); err != nil || fmt.Sprint(net.Input) != "[1 5 4]" || len(net.Layers) != 1 {
		t.Errorf("[N,H,W] input: %v", err)
	}
	m = graph(13, []int64{4}, nil, node("Relu", "r", []string{"x"}, "y"))
	m.Graph.Output[0].Name = "x2"
	if _, err := Lower(m); err == nil || !strings.Contains(err.Error(), `output "x2" is not the end`) {
		t.Errorf("wrong output: %v", err)
	}
	m = graph(13, []int64{4}, nil, node("Relu", "r", []string{"x"}, "y"))
	m.Graph.Input = append(m.Graph.Input, &onnx.ValueInfo{Name: "x2", ElemType: onnx.DataFloat, HasShape: true, Shape: []onnx.Dim{{Value: 1}}})
	if _, err := Lower(m); err == nil || !strings.Contains(err.Error(), "only networks with one input") {
		t.Errorf("two inputs: %v", err)
	}
}

// The QDQ form ONNX Runtime's quantizer writes by default: uint8
// activations, int8 per-channel weights, int32 biases through
// DequantizeLinear.
func TestLowerQDQUint8Activations(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	codes := make([]int8, 2*1*3*3)
	for i := range codes {
		codes[i] = int8(rng.IntN(255) - 127)
	}
	ws := []float32{0.01, 0.02}
	sa, za := float32(0.05), uint8(7)
	bias := []int64{1000, -300}
	bs := []float32{sa * ws[0], sa * ws[1]}
	bt := &onnx.Tensor{Name: "b_q", Dims: []int64{2}, DataType: onnx.DataInt32, Int32Data: []int32{1000, -300}}
	m := graph(13, []int64{1, 5, 5}, []*onnx.Tensor{
		onnx.NewFloat("sa", nil, []float32{sa}), onnx.NewUint8("za", nil, []uint8{za}),
		onnx.NewInt8("w_q", []int64{2, 1, 3, 3}, codes), onnx.NewFloat("ws", []int64{2}, ws), onnx.NewInt8("wz", []int64{2}, []int8{0, 0}),
		bt, onnx.NewFloat("bs", []int64{2}, bs),
		onnx.NewFloat("so", nil, []float32{0.1}),
	},
		node("QuantizeLinear", "q0", []string{"x", "sa", "za"}, "xq"),
		node("DequantizeLinear", "dq0", []string{"xq", "sa", "za"}, "xd"),
		node("DequantizeLinear", "wdq", []string{"w_q", "ws", "wz"}, "w", onnx.IntAttr("axis", 0)),
		node("DequantizeLinear", "bdq", []string{"b_q", "bs"}, "b", onnx.IntAttr("axis", 0)),
		node("Conv", "conv", []string{"xd", "w", "b"}, "c"),
		node("Relu", "relu", []string{"c"}, "r"),
		node("QuantizeLinear", "q1", []string{"r", "so"}, "rq"), // zero point omitted: uint8 0
		node("DequantizeLinear", "dq1", []string{"rq", "so"}, "y"))
	net := lower(t, m)
	q := net.Quant
	if q == nil || q.WeightBits != 8 || !slices.Equal(q.WeightScale[0], ws) {
		t.Fatalf("quant %+v", q)
	}
	if q.Act[0] != (nn.ActQuant{Scale: sa, ZeroPoint: int32(za) - 128}) || q.Act[2] != (nn.ActQuant{Scale: 0.1, ZeroPoint: -128}) {
		t.Errorf("activations %v", q.Act)
	}
	conv := net.Layers[0].(*nn.Conv2D)
	for o := range 2 {
		if conv.B[o] != float32(bias[o])*bs[o] {
			t.Errorf("bias %d: %g, want %g", o, conv.B[o], float32(bias[o])*bs[o])
		}
	}
	// The uint8 quantization and its int8 image agree everywhere.
	for x := float32(-2); x < 15; x += 0.0137 {
		u := float32(min(max(math.RoundToEven(float64(x/sa))+float64(za), 0), 255)-float64(za)) * sa
		a := q.Act[0]
		v := quant.DequantizeValue(quant.QuantizeValue(x, a.Scale, a.ZeroPoint, -128, 127), a.Scale, a.ZeroPoint)
		if u != v {
			t.Fatalf("x = %g: uint8 gives %g, int8 %g", x, u, v)
		}
	}
}

// Weights left in float and quantized in the graph (QuantizeLinear →
// DequantizeLinear on an initializer), as exports of fake-quantized
// models have them: the same net as with INT8 initializers.
func TestLowerQuantizedFloatWeights(t *testing.T) {
	net := quantized(8)
	m, err := ExportQDQ(net)
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	// Replace each weight's codes by the float weight and a QuantizeLinear.
	var nodes []*onnx.Node
	for _, n := range g.Node {
		if n.OpType == "DequantizeLinear" && strings.HasSuffix(n.Input[0], ".weight_quantized") {
			codes := g.InitializerByName(n.Input[0])
			scales, _ := g.InitializerByName(n.Input[1]).Float32()
			c, _ := codes.Float32()
			k := len(c) / len(scales)
			w := make([]float32, len(c))
			for i := range c {
				w[i] = c[i] * scales[i/k] * 1.0001 // off the grid, rounds back
			}
			f := onnx.NewFloat(n.Input[0]+"_float", codes.Dims, w)
			g.Initializer = append(g.Initializer, f)
			nodes = append(nodes, &onnx.Node{OpType: "QuantizeLinear", Input: []string{f.Name, n.Input[1], n.Input[2]},
				Output: []string{n.Input[0] + "_q"}, Attribute: []*onnx.Attribute{onnx.IntAttr("axis", 0)}})
			n.Input[0] += "_q"
		}
		nodes = append(nodes, n)
	}
	g.Node = nodes
	got := lower(t, m)
	if got.Quant == nil || !reflect.DeepEqual(got.Quant.WeightScale, net.Quant.WeightScale) {
		t.Fatalf("weight scales %v", got.Quant)
	}
	for i, l := range net.Layers {
		if w, _ := nn.Weights(l); w != nil {
			gw, _ := nn.Weights(got.Layers[i])
			s := net.Quant.WeightScale[i]
			if !slices.Equal(nn.WeightCodes(gw, s, 8), nn.WeightCodes(w, s, 8)) {
				t.Errorf("layer %d: codes differ", i)
			}
		}
	}
}
