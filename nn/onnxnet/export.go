package onnxnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/nn"
)

// The ONNX versions the exporters write: opset 13 is the first whose
// DequantizeLinear takes per-channel scales (axis); IR version 7 is the
// one that opset 13 came out with.
const (
	ExportOpset     = 13
	ExportIRVersion = 7
)

// Export writes net as an ONNX graph of opset 13: Conv, Gemm (transB = 1,
// weights [Out][In] as stored), Relu, MaxPool, Flatten, Softmax, with
// weights and biases as initializers that are not graph inputs. For a
// quantized net it is ExportQDQ's graph.
func Export(net *nn.Net) (*onnx.Model, error) {
	shapes, err := nn.Shapes(net)
	if err != nil {
		return nil, err
	}
	if net.Quant != nil {
		if err := nn.CheckQuant(net); err != nil {
			return nil, err
		}
	}
	x := &exporter{net: net, names: map[string]bool{}}
	return x.model(shapes)
}

// ExportQDQ writes a quantized net (Quant set) as an ONNX graph in QDQ
// form, the form ONNX Runtime and TensorRT take quantized models in:
//
//   - each quantized weight is an INT8 initializer of its codes, with a
//     per-output-channel DequantizeLinear (axis 0; scales FLOAT [OutC],
//     zero points INT8 zeros) giving the float weight; 4-bit weights are
//     stored the same way, as int8 codes in −7..7 (metadata says 4 bits);
//   - each quantized activation (Quant.Act) passes through QuantizeLinear
//     → DequantizeLinear with a FLOAT scalar scale and INT8 scalar zero
//     point, before the layer that reads it;
//   - biases stay FLOAT, added by the Conv and Gemm (not quantized to
//     int32 as some exporters do), as the integer engine keeps them.
//
// The model is opset 13, IR version 7; metadata_props record the input
// scale, weight bits and calibration method, which Lower reads back.
func ExportQDQ(net *nn.Net) (*onnx.Model, error) {
	if net == nil || net.Quant == nil {
		return nil, errors.New("nn: ExportQDQ of a float net (quantize it first)")
	}
	return Export(net)
}

// ImportQDQ lowers a QDQ model (as ExportQDQ writes it) to a quantized Net;
// a model without quantization is an error.
func ImportQDQ(m *onnx.Model) (*nn.Net, error) {
	net, err := Lower(m)
	if err != nil {
		return nil, err
	}
	if net.Quant == nil {
		return nil, errors.New("nn: the model has no QuantizeLinear/DequantizeLinear nodes")
	}
	return net, nil
}

type exporter struct {
	net   *nn.Net
	g     onnx.Graph
	names map[string]bool
}

// unique returns name, or name with a number added when it is taken.
func (x *exporter) unique(name string) string {
	if name == "" {
		name = "t"
	}
	u := name
	for k := 1; x.names[u]; k++ {
		u = fmt.Sprintf("%s_%d", name, k)
	}
	x.names[u] = true
	return u
}

func (x *exporter) init(t *onnx.Tensor) string {
	t.Name = x.unique(t.Name)
	x.g.Initializer = append(x.g.Initializer, t)
	return t.Name
}

func (x *exporter) add(op, name string, in []string, out string, attrs ...*onnx.Attribute) {
	x.g.Node = append(x.g.Node, &onnx.Node{OpType: op, Name: x.unique(name), Input: in, Output: []string{out}, Attribute: attrs})
}

// layerName is the base name of layer i's tensors and nodes.
func layerName(net *nn.Net, i int) string {
	var name string
	switch l := net.Layers[i].(type) {
	case *nn.Conv2D:
		name = l.Name
	case *nn.Dense:
		name = l.Name
	}
	if name == "" {
		name = fmt.Sprintf("layer%d", i)
	}
	return name
}

// qdq passes cur through a QuantizeLinear → DequantizeLinear pair with a.
func (x *exporter) qdq(cur, base string, a nn.ActQuant) string {
	s := x.init(onnx.NewFloat(base+".scale", nil, []float32{a.Scale}))
	z := x.init(onnx.NewInt8(base+".zero_point", nil, []int8{int8(a.ZeroPoint)}))
	q, dq := x.unique(base+".quantized"), x.unique(base+".dequantized")
	x.add("QuantizeLinear", base+".quantize", []string{cur, s, z}, q)
	x.add("DequantizeLinear", base+".dequantize", []string{q, s, z}, dq)
	return dq
}

// weight adds layer i's weight, as codes and a DequantizeLinear when the
// layer is quantized, and returns the float tensor's name.
func (x *exporter) weight(i int, base string, w []float32, dims []int64) string {
	q := x.net.Quant
	if q == nil || q.WeightScale[i] == nil {
		return x.init(onnx.NewFloat(base+".weight", dims, w))
	}
	s := q.WeightScale[i]
	codes := nn.WeightCodes(w, s, q.WeightBits)
	c := x.init(onnx.NewInt8(base+".weight_quantized", dims, codes))
	sc := x.init(onnx.NewFloat(base+".weight_scale", []int64{int64(len(s))}, s))
	z := x.init(onnx.NewInt8(base+".weight_zero_point", []int64{int64(len(s))}, make([]int8, len(s))))
	out := x.unique(base + ".weight")
	x.add("DequantizeLinear", base+".weight_dequantize", []string{c, sc, z}, out, onnx.IntAttr("axis", 0))
	return out
}

func (x *exporter) model(shapes []nn.Shape) (*onnx.Model, error) {
	net := x.net
	inName, outName := net.InputName, net.OutputName
	if inName == "" {
		inName = "input"
	}
	if outName == "" || outName == inName {
		outName = "output"
	}
	x.names[inName], x.names[outName] = true, true
	in := &onnx.ValueInfo{Name: inName, ElemType: onnx.DataFloat, HasShape: true, Shape: []onnx.Dim{{Param: "N"}}}
	for _, d := range net.Input {
		in.Shape = append(in.Shape, onnx.Dim{Value: int64(d)})
	}
	x.g.Input = []*onnx.ValueInfo{in}
	act := func(i int) (nn.ActQuant, bool) {
		if net.Quant == nil || net.Quant.Act[i].Scale == 0 {
			return nn.ActQuant{}, false
		}
		return net.Quant.Act[i], true
	}
	cur := inName
	for i, l := range net.Layers {
		base := layerName(net, i)
		if a, ok := act(i); ok {
			cur = x.qdq(cur, fmt.Sprintf("%s.input", base), a)
		}
		out := x.unique(fmt.Sprintf("%s.output", base))
		switch l := l.(type) {
		case *nn.Conv2D:
			w := x.weight(i, base, l.W, []int64{int64(l.OutC), int64(l.InC), int64(l.KH), int64(l.KW)})
			b := x.init(onnx.NewFloat(base+".bias", []int64{int64(l.OutC)}, l.B))
			x.add("Conv", base, []string{cur, w, b}, out,
				onnx.IntsAttr("kernel_shape", int64(l.KH), int64(l.KW)), onnx.IntsAttr("strides", int64(l.StrideH), int64(l.StrideW)),
				onnx.IntsAttr("pads", int64(l.PadT), int64(l.PadL), int64(l.PadB), int64(l.PadR)),
				onnx.IntsAttr("dilations", 1, 1), onnx.IntAttr("group", 1))
		case *nn.Dense:
			if len(net.Input) != 1 && !afterFlatten(net, i) {
				return nil, fmt.Errorf("nn: layer %d (dense %s) reads a [C,H,W] tensor without a Flatten before it", i, l.Name)
			}
			w := x.weight(i, base, l.W, []int64{int64(l.Out), int64(l.In)})
			b := x.init(onnx.NewFloat(base+".bias", []int64{int64(l.Out)}, l.B))
			x.add("Gemm", base, []string{cur, w, b}, out, onnx.IntAttr("transB", 1))
		case *nn.ReLU:
			x.add("Relu", fmt.Sprintf("relu%d", i), []string{cur}, out)
		case *nn.MaxPool:
			x.add("MaxPool", fmt.Sprintf("maxpool%d", i), []string{cur}, out,
				onnx.IntsAttr("kernel_shape", int64(l.KH), int64(l.KW)), onnx.IntsAttr("strides", int64(l.StrideH), int64(l.StrideW)),
				onnx.IntsAttr("pads", int64(l.PadT), int64(l.PadL), int64(l.PadB), int64(l.PadR)))
		case *nn.Flatten:
			x.add("Flatten", fmt.Sprintf("flatten%d", i), []string{cur}, out, onnx.IntAttr("axis", 1))
		case *nn.Softmax:
			if s := shapes[i]; s.H != 1 || s.W != 1 {
				return nil, fmt.Errorf("nn: layer %d: softmax of a [C,H,W] tensor", i)
			}
			x.add("Softmax", fmt.Sprintf("softmax%d", i), []string{cur}, out, onnx.IntAttr("axis", 1))
		}
		cur = out
	}
	if a, ok := act(len(net.Layers)); ok {
		x.qdq(cur, "output", a) // its last node is renamed the output below
	}
	// The last node writes the output's name.
	last := x.g.Node[len(x.g.Node)-1]
	last.Output[0] = outName
	outShape := []onnx.Dim{{Param: "N"}}
	s := shapes[len(shapes)-1]
	if s.H == 1 && s.W == 1 {
		outShape = append(outShape, onnx.Dim{Value: int64(s.C)})
	} else {
		outShape = append(outShape, onnx.Dim{Value: int64(s.C)}, onnx.Dim{Value: int64(s.H)}, onnx.Dim{Value: int64(s.W)})
	}
	x.g.Output = []*onnx.ValueInfo{{Name: outName, ElemType: onnx.DataFloat, HasShape: true, Shape: outShape}}
	x.g.Name = "quantkit"
	m := &onnx.Model{
		IRVersion:    ExportIRVersion,
		OpsetImport:  []onnx.OperatorSet{{Domain: "", Version: ExportOpset}},
		ProducerName: "quantkit",
		Graph:        &x.g,
		Metadata:     []onnx.KeyValue{{Key: MetaInputScale, Value: strconv.FormatFloat(float64(net.InputScale), 'g', -1, 32)}},
	}
	if net.InputScale == 0 {
		m.Metadata[0].Value = "1"
	}
	if q := net.Quant; q != nil {
		m.Metadata = append(m.Metadata, onnx.KeyValue{Key: MetaWeightBits, Value: strconv.Itoa(q.WeightBits)})
		if q.Method != "" {
			m.Metadata = append(m.Metadata, onnx.KeyValue{Key: MetaMethod, Value: q.Method})
		}
	}
	return m, nil
}

// afterFlatten reports whether a Flatten comes before layer i.
func afterFlatten(net *nn.Net, i int) bool {
	for _, l := range net.Layers[:i] {
		if _, ok := l.(*nn.Flatten); ok {
			return true
		}
	}
	return false
}

// Save writes net to path (atomically): ExportQDQ's graph for a
// quantized net, a float graph otherwise.
func Save(net *nn.Net, path string) error {
	m, err := Export(net)
	if err != nil {
		return fmt.Errorf("nn: %s: %w", path, err)
	}
	return onnx.Write(path, m)
}

// SaveSafetensors writes the quantized weights of net to path
// (atomically), per Conv2D and Dense layer called NAME (its name, or
// layerI):
//
//	NAME.weight            I8   codes, [OutC,InC,KH,KW] or [Out,In]
//	NAME.weight_scale      F32  [OutC], weight ≈ code·scale per output channel
//	NAME.bias              F32  [OutC]
//	NAME.input_scale       F32  [] (when the layer's input is quantized)
//	NAME.input_zero_point  I8   []
//
// in layer order, with metadata weight_bits, method, input_scale and
// layers (the NAMEs, comma-separated). 4-bit codes are stored one per int8.
func SaveSafetensors(net *nn.Net, path string) error {
	if net == nil || net.Quant == nil {
		return fmt.Errorf("nn: %s: SaveSafetensors of a float net (quantize it first)", path)
	}
	if _, err := nn.Shapes(net); err != nil {
		return fmt.Errorf("nn: %s: %w", path, err)
	}
	if err := nn.CheckQuant(net); err != nil {
		return fmt.Errorf("nn: %s: %w", path, err)
	}
	q := net.Quant
	f32 := func(v []float32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	var tensors []safetensors.Tensor
	var names []string
	seen := map[string]bool{}
	for i, l := range net.Layers {
		w, outC := nn.Weights(l)
		if w == nil {
			continue
		}
		if q.WeightScale[i] == nil {
			return fmt.Errorf("nn: %s: layer %d has no weight scales", path, i)
		}
		name := layerName(net, i)
		for k := 1; seen[name]; k++ {
			name = fmt.Sprintf("%s_%d", layerName(net, i), k)
		}
		seen[name] = true
		names = append(names, name)
		var shape []int
		var bias []float32
		switch l := l.(type) {
		case *nn.Conv2D:
			shape, bias = []int{l.OutC, l.InC, l.KH, l.KW}, l.B
		case *nn.Dense:
			shape, bias = []int{l.Out, l.In}, l.B
		}
		codes := nn.WeightCodes(w, q.WeightScale[i], q.WeightBits)
		cb := make([]byte, len(codes))
		for j, c := range codes {
			cb[j] = byte(c)
		}
		tensors = append(tensors,
			safetensors.Tensor{Name: name + ".weight", DType: "I8", Shape: shape, Data: cb},
			safetensors.Tensor{Name: name + ".weight_scale", DType: "F32", Shape: []int{outC}, Data: f32(q.WeightScale[i])},
			safetensors.Tensor{Name: name + ".bias", DType: "F32", Shape: []int{outC}, Data: f32(bias)})
		if a := q.Act[i]; a.Scale != 0 {
			tensors = append(tensors,
				safetensors.Tensor{Name: name + ".input_scale", DType: "F32", Shape: []int{}, Data: f32([]float32{a.Scale})},
				safetensors.Tensor{Name: name + ".input_zero_point", DType: "I8", Shape: []int{}, Data: []byte{byte(int8(a.ZeroPoint))}})
		}
	}
	meta := map[string]string{
		"format":      "quantkit",
		"weight_bits": strconv.Itoa(q.WeightBits),
		"input_scale": strconv.FormatFloat(float64(net.InputScale), 'g', -1, 32),
		"layers":      strings.Join(names, ","),
	}
	if q.Method != "" {
		meta["method"] = q.Method
	}
	return safetensors.WriteFile(path, tensors, meta)
}
