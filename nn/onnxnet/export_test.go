package onnxnet

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/internal/nntest"
)

// quantized returns oddNet with per-channel weight scales from the
// weights' ranges and activation parameters before every layer that has
// weights, before the first ReLU, and on the output.
func quantized(bits int) *nn.Net {
	net := nntest.OddNet(rand.New(rand.NewPCG(7, 7)), false)
	q := &nn.Quant{WeightBits: bits, WeightScale: make([][]float32, len(net.Layers)), Act: make([]nn.ActQuant, len(net.Layers)+1), Method: "max"}
	qmax := float32(int(1)<<(bits-1) - 1)
	for i, l := range net.Layers {
		w, outC := nn.Weights(l)
		if w == nil {
			continue
		}
		k := len(w) / outC
		s := make([]float32, outC)
		for o := range s {
			var m float32
			for _, v := range w[o*k : (o+1)*k] {
				m = max(m, v, -v)
			}
			s[o] = m / qmax
		}
		q.WeightScale[i] = s
		q.Act[i] = nn.ActQuant{Scale: 0.02 * float32(i+1), ZeroPoint: int32(i) - 3}
	}
	q.Act[1] = nn.ActQuant{Scale: 0.03, ZeroPoint: -128}
	q.Act[len(net.Layers)] = nn.ActQuant{Scale: 0.1, ZeroPoint: 5}
	net.Quant = q
	net.InputScale = 1.0 / 255
	net.InputName, net.OutputName = "image", "logits"
	return net
}

func TestExportQDQRoundTrip(t *testing.T) {
	for _, bits := range []int{8, 4} {
		net := quantized(bits)
		m, err := ExportQDQ(net)
		if err != nil {
			t.Fatal(err)
		}
		checkQDQStructure(t, m, net)
		path := filepath.Join(t.TempDir(), "q.onnx")
		if err := onnx.Write(path, m); err != nil {
			t.Fatal(err)
		}
		back, err := onnx.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ImportQDQ(back)
		if err != nil {
			t.Fatal(err)
		}
		q, gq := net.Quant, got.Quant
		if gq.WeightBits != bits || gq.Method != "max" || got.InputScale != net.InputScale ||
			got.InputName != "image" || got.OutputName != "logits" || !slices.Equal(got.Input, net.Input) {
			t.Errorf("%d-bit: bits %d method %q scale %g names %q %q", bits, gq.WeightBits, gq.Method, got.InputScale, got.InputName, got.OutputName)
		}
		if !reflect.DeepEqual(gq.Act, q.Act) {
			t.Errorf("%d-bit: activations\n got %v\nwant %v", bits, gq.Act, q.Act)
		}
		if len(got.Layers) != len(net.Layers) {
			t.Fatalf("%d layers, want %d", len(got.Layers), len(net.Layers))
		}
		for i, l := range net.Layers {
			if nn.Describe(got.Layers[i]) != nn.Describe(l) {
				t.Errorf("layer %d: %s, want %s", i, nn.Describe(got.Layers[i]), nn.Describe(l))
			}
			w, _ := nn.Weights(l)
			if w == nil {
				continue
			}
			gw, _ := nn.Weights(got.Layers[i])
			if !slices.Equal(gq.WeightScale[i], q.WeightScale[i]) {
				t.Errorf("layer %d: weight scales differ", i)
			}
			if !slices.Equal(nn.WeightCodes(gw, gq.WeightScale[i], bits), nn.WeightCodes(w, q.WeightScale[i], bits)) {
				t.Errorf("layer %d: weight codes differ", i)
			}
		}
		// The imported net computes exactly what the original does.
		x := nntest.RandSlice(rand.New(rand.NewPCG(8, 8)), 5*e2eIn(net), 2)
		a, err := float.Forward(cpu.New(), net, x, 5)
		if err != nil {
			t.Fatal(err)
		}
		b, err := float.Forward(cpu.New(), got, x, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a, b) {
			t.Errorf("%d-bit: the imported net computes other outputs", bits)
		}
	}
}

func e2eIn(net *nn.Net) int {
	n := 1
	for _, d := range net.Input {
		n *= d
	}
	return n
}

// checkQDQStructure checks what runtimes rely on: opset 13, IR 7, weights
// only as initializers, INT8 codes with per-channel DequantizeLinear on
// axis 0, scalar INT8 Q/DQ parameters on activations.
func checkQDQStructure(t *testing.T, m *onnx.Model, net *nn.Net) {
	t.Helper()
	if m.IRVersion != 7 || m.Opset() != 13 || len(m.OpsetImport) != 1 {
		t.Errorf("IR %d, opsets %v", m.IRVersion, m.OpsetImport)
	}
	g := m.Graph
	if len(g.Input) != 1 || g.Input[0].Name != "image" || len(g.Output) != 1 || g.Output[0].Name != "logits" {
		t.Errorf("inputs %d, outputs %d", len(g.Input), len(g.Output))
	}
	inits := map[string]*onnx.Tensor{}
	for _, t := range g.Initializer {
		inits[t.Name] = t
	}
	produced := map[string]bool{"image": true}
	var ops []string
	for _, n := range g.Node {
		ops = append(ops, n.OpType)
		for _, in := range n.Input {
			if !produced[in] && inits[in] == nil {
				t.Errorf("%s reads %q before it is made", n.Describe(), in)
			}
		}
		produced[n.Output[0]] = true
		switch n.OpType {
		case "QuantizeLinear", "DequantizeLinear":
			if len(n.Input) != 3 {
				t.Errorf("%s: %d inputs", n.Describe(), len(n.Input))
				continue
			}
			s, z := inits[n.Input[1]], inits[n.Input[2]]
			if s == nil || z == nil || s.DataType != onnx.DataFloat || z.DataType != onnx.DataInt8 || !slices.Equal(s.Dims, z.Dims) {
				t.Errorf("%s: scale %v zero point %v", n.Describe(), s, z)
				continue
			}
			if w := inits[n.Input[0]]; w != nil { // a weight
				axis, _ := n.AttrInt("axis", 1)
				if n.OpType != "DequantizeLinear" || w.DataType != onnx.DataInt8 || axis != 0 || len(s.Dims) != 1 || s.Dims[0] != w.Dims[0] {
					t.Errorf("%s: weight %v dims %v, axis %d, scales %v", n.Describe(), w.DataType, w.Dims, axis, s.Dims)
				}
				codes, _ := w.Int64()
				lim := int64(1)<<(net.Quant.WeightBits-1) - 1
				for _, c := range codes {
					if c < -lim || c > lim {
						t.Fatalf("%s: code %d outside ±%d", n.Describe(), c, lim)
					}
				}
			} else if len(s.Dims) != 0 {
				t.Errorf("%s: activation scale of dims %v, want a scalar", n.Describe(), s.Dims)
			}
		case "Gemm":
			if tb, _ := n.AttrInt("transB", 0); tb != 1 {
				t.Errorf("%s: transB %d", n.Describe(), tb)
			}
		}
	}
	want := "QuantizeLinear DequantizeLinear DequantizeLinear Conv QuantizeLinear DequantizeLinear Relu MaxPool " +
		"QuantizeLinear DequantizeLinear DequantizeLinear Conv Relu Flatten " +
		"QuantizeLinear DequantizeLinear DequantizeLinear Gemm QuantizeLinear DequantizeLinear"
	if got := strings.Join(ops, " "); got != want {
		t.Errorf("ops\n got %s\nwant %s", got, want)
	}
	if v, _ := m.MetadataValue(MetaWeightBits); v != string(rune('0'+net.Quant.WeightBits)) {
		t.Errorf("metadata weight bits %q", v)
	}
}

// A float net written as ONNX (explicit pads) and lowered again computes
// the same as the original (SAME_UPPER padding).
func TestExportFloat(t *testing.T) {
	net, err := Load(nntest.MNISTONNX)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Export(net)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ExportQDQ(net); err == nil {
		t.Error("ExportQDQ of a float net")
	}
	for _, in := range m.Graph.Input {
		if in.Name != net.InputName {
			t.Errorf("graph input %q besides the image", in.Name)
		}
	}
	path := filepath.Join(t.TempDir(), "f.onnx")
	if err := Save(net, path); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Quant != nil || nn.Params(again) != 5994 {
		t.Errorf("quant %v, %d params", again.Quant, nn.Params(again))
	}
	x := nntest.RandSlice(rand.New(rand.NewPCG(9, 9)), 3*784, 100)
	a, _ := float.Forward(cpu.New(), net, x, 3)
	b, _ := float.Forward(cpu.New(), again, x, 3)
	if !slices.Equal(a, b) {
		t.Error("the re-read model computes other outputs")
	}
}

func TestSaveSafetensors(t *testing.T) {
	net := quantized(4)
	path := filepath.Join(t.TempDir(), "q.safetensors")
	if err := SaveSafetensors(net, path); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta := f.Metadata()
	if meta["weight_bits"] != "4" || meta["method"] != "max" || meta["layers"] != "c1,c2,d" {
		t.Errorf("metadata %v", meta)
	}
	var names []string
	for _, ti := range f.Tensors() {
		names = append(names, ti.Name+":"+ti.DType)
	}
	slices.Sort(names)
	want := []string{"c1.bias:F32", "c1.input_scale:F32", "c1.input_zero_point:I8", "c1.weight:I8", "c1.weight_scale:F32",
		"c2.bias:F32", "c2.input_scale:F32", "c2.input_zero_point:I8", "c2.weight:I8", "c2.weight_scale:F32",
		"d.bias:F32", "d.input_scale:F32", "d.input_zero_point:I8", "d.weight:I8", "d.weight_scale:F32"}
	if !slices.Equal(names, want) {
		t.Errorf("tensors %v", names)
	}
	c1 := net.Layers[0].(*nn.Conv2D)
	codes, _ := f.Float32("c1.weight")
	for i, c := range nn.WeightCodes(c1.W, net.Quant.WeightScale[0], 4) {
		if float32(c) != codes[i] || c < -7 || c > 7 {
			t.Fatalf("c1.weight[%d] = %g, want %d", i, codes[i], c)
		}
	}
	if ti, _ := f.Tensor("c1.weight"); !slices.Equal(ti.Shape, []int{4, 3, 3, 2}) {
		t.Errorf("c1.weight shape %v", ti.Shape)
	}
	s, _ := f.Float32("d.input_scale")
	z, _ := f.Float32("d.input_zero_point")
	if a := net.Quant.Act[len(net.Layers)-1]; len(s) != 1 || s[0] != a.Scale || z[0] != float32(a.ZeroPoint) {
		t.Errorf("d input %v %v, want %+v", s, z, a)
	}
	net.Quant = nil
	if err := SaveSafetensors(net, path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("float net: %v", err)
	}
}
