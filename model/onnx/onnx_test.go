package onnx

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

const mnistPath = "testdata/mnist-cnn.onnx"

func TestReadMNIST(t *testing.T) {
	m, err := Read(mnistPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.IRVersion != 3 || m.Opset() != 7 || m.ProducerName != "CNTK" || m.ProducerVersion != "2.5.1" {
		t.Errorf("header: ir %d opset %d producer %q %q", m.IRVersion, m.Opset(), m.ProducerName, m.ProducerVersion)
	}
	g := m.Graph
	var ops []string
	for _, n := range g.Node {
		ops = append(ops, n.OpType)
	}
	want := []string{"Reshape", "Conv", "Add", "Relu", "MaxPool", "Conv", "Add", "Relu", "MaxPool", "Reshape", "MatMul", "Add"}
	if !slices.Equal(ops, want) {
		t.Errorf("ops %v, want %v", ops, want)
	}
	conv := g.Node[1]
	if k, _ := conv.AttrInts("kernel_shape", nil); !slices.Equal(k, []int64{5, 5}) {
		t.Errorf("kernel_shape %v", k)
	}
	if pad, _ := conv.AttrString("auto_pad", ""); pad != "SAME_UPPER" {
		t.Errorf("auto_pad %q", pad)
	}
	if grp, _ := conv.AttrInt("group", 0); grp != 1 {
		t.Errorf("group %d", grp)
	}
	if _, err := conv.AttrInt("kernel_shape", 0); err == nil || !strings.Contains(err.Error(), "Convolution28") {
		t.Errorf("INTS read as INT: %v", err)
	}
	params := 0
	for _, init := range g.Initializer {
		if init.DataType == DataFloat {
			v, err := init.Float32()
			if err != nil {
				t.Fatal(err)
			}
			params += len(v)
		}
	}
	if params != 5994 || len(g.Initializer) != 8 {
		t.Errorf("%d initializers with %d float parameters, want 8 and 5994", len(g.Initializer), params)
	}
	shape, err := g.InitializerByName("Parameter193_reshape1_shape").Int64()
	if err != nil || !slices.Equal(shape, []int64{256, 10}) {
		t.Errorf("reshape target %v, %v", shape, err)
	}
	in := g.Input[0]
	if in.Name != "Input3" || in.ElemType != DataFloat || !reflect.DeepEqual(in.Shape, []Dim{{Value: 1}, {Value: 1}, {Value: 28}, {Value: 28}}) {
		t.Errorf("input %+v", in)
	}
	if len(g.Input) != 9 || len(g.Output) != 1 || g.Output[0].Name != "Plus214_Output_0" || len(g.ValueInfo) != 11 {
		t.Errorf("%d inputs, %d outputs (%s), %d value infos", len(g.Input), len(g.Output), g.Output[0].Name, len(g.ValueInfo))
	}
}

// fullModel uses every field and value kind the package models.
func fullModel() *Model {
	return &Model{
		IRVersion:       7,
		OpsetImport:     []OperatorSet{{"", 13}, {"com.example", 1}},
		ProducerName:    "test",
		ProducerVersion: "1.0",
		Domain:          "org.example",
		ModelVersion:    -3,
		Metadata:        []KeyValue{{"a", "1"}, {"", ""}, {"a", "2"}},
		Graph: &Graph{
			Name: "g",
			Node: []*Node{
				{Input: []string{"x", "", "w"}, Output: []string{"y"}, Name: "n0", OpType: "Conv", Attribute: []*Attribute{
					FloatAttr("alpha", 0), FloatAttr("beta", -1.5), IntAttr("zero", 0), IntAttr("neg", -7),
					StringAttr("empty", ""), StringAttr("mode", "SAME_UPPER"), IntsAttr("pads", 0, 1, -2, 1<<40),
					{Name: "fs", Type: AttrFloats, Floats: []float32{1, float32(math.Inf(-1)), 0}},
					{Name: "ss", Type: AttrStrings, Strings: [][]byte{[]byte("a"), {}, {0xff}}},
					TensorAttr("value", NewInt64("", []int64{2}, []int64{-1, 256})),
				}},
				{Input: []string{"y"}, Output: []string{"z", "mask"}, OpType: "Custom", Domain: "com.example"},
			},
			Initializer: []*Tensor{
				NewFloat("w", []int64{2, 1, 1, 1}, []float32{0.5, -0}),
				NewInt8("q", []int64{3}, []int8{-128, 0, 127}),
				NewUint8("u", nil, []uint8{200}),
				{Name: "f", Dims: []int64{2}, DataType: DataFloat, FloatData: []float32{1, float32(math.NaN())}},
				{Name: "i32", Dims: []int64{3}, DataType: DataInt8, Int32Data: []int32{-128, 5, 127}},
				{Name: "i64", Dims: []int64{1, 2}, DataType: DataInt64, Int64Data: []int64{math.MinInt64, 3}},
				{Name: "d", Dims: []int64{1}, DataType: DataDouble, DoubleData: []float64{1e300}},
				{Name: "u64", Dims: []int64{2}, DataType: DataUint64, Uint64Data: []uint64{math.MaxUint64, 0}},
				{Name: "h", Dims: []int64{1}, DataType: DataFloat16, Int32Data: []int32{0x3c00}},
				{Name: "e", Dims: []int64{0, 3}, DataType: DataFloat},
				{Name: "e2", Dims: []int64{0}, DataType: DataFloat, RawData: []byte{}},
				{Name: "i4", Dims: []int64{3}, DataType: DataInt4, RawData: []byte{0x8f, 0x07}},
			},
			Input: []*ValueInfo{
				{Name: "x", ElemType: DataFloat, HasShape: true, Shape: []Dim{{Param: "N"}, {Value: 3}, {}, {Value: 7}}},
				{Name: "scalar", ElemType: DataInt64, HasShape: true},
				{Name: "noshape", ElemType: DataFloat},
			},
			Output:    []*ValueInfo{{Name: "z", ElemType: DataFloat, HasShape: true, Shape: []Dim{{Value: 1}}}},
			ValueInfo: []*ValueInfo{{Name: "untyped"}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	m := fullModel()
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// Encoding is deterministic.
	if b2, _ := Encode(got); !bytes.Equal(b, b2) {
		t.Error("encoding the decoded model gives other bytes")
	}
	// NaN != NaN: compare that tensor by bits, the rest deeply.
	f := got.Graph.Initializer[3]
	if math.Float32bits(f.FloatData[1]) != math.Float32bits(m.Graph.Initializer[3].FloatData[1]) {
		t.Errorf("NaN payload changed")
	}
	f.FloatData[1], m.Graph.Initializer[3].FloatData[1] = 0, 0
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed the model:\n got %+v\nwant %+v", got.Graph, m.Graph)
		for i := range m.Graph.Node {
			for j := range m.Graph.Node[i].Attribute {
				if !reflect.DeepEqual(got.Graph.Node[i].Attribute[j], m.Graph.Node[i].Attribute[j]) {
					t.Errorf("attribute %d.%d: got %+v, want %+v", i, j, got.Graph.Node[i].Attribute[j], m.Graph.Node[i].Attribute[j])
				}
			}
		}
		for i := range m.Graph.Initializer {
			if !reflect.DeepEqual(got.Graph.Initializer[i], m.Graph.Initializer[i]) {
				t.Errorf("initializer %d: got %+v, want %+v", i, got.Graph.Initializer[i], m.Graph.Initializer[i])
			}
		}
	}
	// Values as the conversions read them.
	want := map[string][]float32{
		"w": {0.5, 0}, "q": {-128, 0, 127}, "u": {200}, "i32": {-128, 5, 127}, "i64": {math.MinInt64, 3},
		"d": {float32(math.Inf(1))}, "u64": {math.MaxUint64, 0}, "h": {1}, "e": {}, "e2": {}, "i4": {-1, -8, 7},
	}
	for name, w := range want {
		v, err := got.Graph.InitializerByName(name).Float32()
		if err != nil || !slices.Equal(v, w) {
			t.Errorf("%s: %v, %v; want %v", name, v, err, w)
		}
	}
	if v, err := got.Graph.InitializerByName("i64").Int64(); err != nil || !slices.Equal(v, []int64{math.MinInt64, 3}) {
		t.Errorf("i64: %v %v", v, err)
	}
	if _, err := got.Graph.InitializerByName("w").Int64(); err == nil {
		t.Error("Int64 of a FLOAT tensor")
	}
}

func TestRoundTripMNIST(t *testing.T) {
	data, err := os.ReadFile(mnistPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.onnx")
	if err := Write(path, m); err != nil {
		t.Fatal(err)
	}
	again, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, again) {
		t.Error("writing and reading back changed the MNIST model")
	}
}

// The wire format allows what onnx's serializer does not write: unknown
// fields anywhere, packed and unpacked repeated numbers, fields in any
// order, a oneof set twice. Decode reads them all.
func TestDecodeWireVariants(t *testing.T) {
	unknown := func(b []byte) []byte {
		b = protowire.AppendTag(b, 999, protowire.VarintType)
		b = protowire.AppendVarint(b, 1<<50)
		b = protowire.AppendTag(b, 998, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, 1)
		b = protowire.AppendTag(b, 997, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, 1)
		b = protowire.AppendTag(b, 996, protowire.BytesType)
		return protowire.AppendString(b, "skip me")
	}
	msg := func(num protowire.Number, inner []byte) []byte { return appendMessage(nil, num, inner) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	// A tensor with packed dims, unpacked float_data, name last.
	tensor := cat(unknown(nil),
		msg(1, protowire.AppendVarint(protowire.AppendVarint(nil, 2), 1)), // packed dims [2 1]
		protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1),
		protowire.AppendFixed32(protowire.AppendTag(nil, 4, protowire.Fixed32Type), math.Float32bits(3)),
		protowire.AppendFixed32(protowire.AppendTag(nil, 4, protowire.Fixed32Type), math.Float32bits(4)),
		appendString(nil, 8, "w"))
	attr := cat(appendString(nil, 1, "pads"), unknown(nil),
		msg(8, protowire.AppendVarint(protowire.AppendVarint(nil, 1), 2)), // packed ints
		protowire.AppendVarint(protowire.AppendTag(nil, 8, protowire.VarintType), 3))
	// No type field (IR version 1): inferred from the value.
	attrNoType := cat(appendString(nil, 1, "axis"), protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 1))
	dim := cat(appendInt(nil, 1, 5), appendString(nil, 2, "N")) // oneof: the last one wins
	vi := cat(appendString(nil, 1, "x"), msg(2, msg(1, cat(unknown(nil), appendInt(nil, 1, 1), msg(2, msg(1, dim))))))
	node := cat(appendString(nil, 4, "Pad"), unknown(nil), msg(5, attr), msg(5, attrNoType), appendString(nil, 1, "x"))
	graph := cat(msg(11, vi), msg(5, tensor), unknown(nil), msg(1, node))
	model := cat(msg(8, cat(appendInt(nil, 2, 13), unknown(nil))), msg(7, graph), appendInt(nil, 1, 7), unknown(nil))

	m, err := Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	want := &Model{IRVersion: 7, OpsetImport: []OperatorSet{{"", 13}}, Graph: &Graph{
		Node:        []*Node{{Input: []string{"x"}, OpType: "Pad", Attribute: []*Attribute{IntsAttr("pads", 1, 2, 3), IntAttr("axis", 1)}}},
		Initializer: []*Tensor{{Name: "w", Dims: []int64{2, 1}, DataType: DataFloat, FloatData: []float32{3, 4}}},
		Input:       []*ValueInfo{{Name: "x", ElemType: DataFloat, HasShape: true, Shape: []Dim{{Param: "N"}}}},
	}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %+v\nwant %+v", m.Graph, want.Graph)
	}
}

func TestDecodeErrors(t *testing.T) {
	msg := func(num protowire.Number, inner []byte) []byte { return appendMessage(nil, num, inner) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	opset := msg(8, appendInt(nil, 2, 7))
	model := func(graph []byte) []byte { return cat(appendInt(nil, 1, 3), msg(7, graph), opset) }
	tensorModel := func(tensor []byte) []byte { return model(msg(5, tensor)) }
	dims := func(d ...int64) []byte {
		var b []byte
		for _, v := range d {
			b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), uint64(v))
		}
		return b
	}
	group := protowire.AppendTag(protowire.AppendTag(nil, 5, protowire.StartGroupType), 5, protowire.EndGroupType)
	tooManyDims := dims(make([]int64, MaxRank+1)...)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"text", []byte("hello, this is not a model\n"), "not an ONNX model"},
		{"no graph", cat(appendInt(nil, 1, 7), opset), "no graph"},
		{"no opset", cat(appendInt(nil, 1, 7), msg(7, nil)), "opset_import: missing"},
		{"graph twice", cat(msg(7, nil), msg(7, nil), opset), "more than one graph"},
		{"truncated varint", []byte{0x08, 0xff}, "model: field 1"},
		{"truncated bytes", cat(protowire.AppendTag(nil, 7, protowire.BytesType), []byte{10, 1}), "model: field 7"},
		{"wrong wire type", cat(protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 1), opset), "graph: wire type varint, want length-delimited"},
		{"group", model(group), "graph: field 5 uses the group wire type"},
		{"nested truncation", model(msg(1, []byte{0x22, 5, 'C'})), "graph.node[0]: field 4: unexpected EOF"},
		{"attribute without name", model(msg(1, msg(5, appendInt(nil, 3, 1)))), "graph.node[0].attribute[0]: attribute without a name"},
		{"tensor attribute without tensor", model(msg(1, msg(5, cat(appendString(nil, 1, "value"), appendInt(nil, 20, 4))))), "TENSOR attribute without a tensor"},
		{"negative dim", tensorModel(cat(dims(2, -1), appendInt(nil, 2, 1))), "graph.initializer[0].dims[1]: negative dimension -1"},
		{"rank", tensorModel(cat(tooManyDims, appendInt(nil, 2, 1))), "rank"},
		{"element overflow", tensorModel(cat(dims(1<<31, 1<<31, 1<<31), appendInt(nil, 2, 1))), "elements"},
		{"unknown type", tensorModel(cat(dims(1), appendInt(nil, 2, 99), msg(9, []byte{1}))), "unknown element type 99"},
		{"raw size", tensorModel(cat(appendString(nil, 8, "w"), dims(2, 3), appendInt(nil, 2, 1), msg(9, make([]byte, 20)))), "initializer[0] (w).raw_data: 20 bytes, want 24"},
		{"typed count", tensorModel(cat(dims(3), appendInt(nil, 2, 7), msg(7, []byte{1, 2}))), "int64_data: 2 values, want 3"},
		{"wrong typed field", tensorModel(cat(dims(1), appendInt(nil, 2, 1), msg(7, []byte{1}))), "keeps its values in float_data"},
		{"no data", tensorModel(cat(dims(4), appendInt(nil, 2, 1))), "no data for 4 FLOAT elements"},
		{"two sources", tensorModel(cat(dims(1), appendInt(nil, 2, 1), msg(4, make([]byte, 4)), msg(9, make([]byte, 4)))), "more than one"},
		{"packed floats", tensorModel(cat(dims(1), appendInt(nil, 2, 1), msg(4, make([]byte, 5)))), "float_data: packed length 5"},
		{"external", tensorModel(cat(dims(1), appendInt(nil, 2, 1), appendInt(nil, 14, 1))), "external data"},
		{"string tensor", tensorModel(cat(dims(1), appendInt(nil, 2, 8), msg(6, []byte("a")))), "STRING tensors are not supported"},
		{"int32 overflow", tensorModel(cat(dims(1), appendInt(nil, 2, 6), msg(5, protowire.AppendVarint(nil, 1<<40)))), "overflows int32"},
		{"value info rank", model(msg(11, cat(appendString(nil, 1, "x"), msg(2, msg(1, msg(2, bytes.Repeat(msg(1, appendInt(nil, 1, 1)), MaxRank+1))))))), "graph.input[0].type.tensor_type.shape.dim: rank exceeds"},
	}
	for _, c := range cases {
		_, err := Decode(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "missing.onnx")); err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	// Every proper prefix of the real model is an error that names the file.
	data, err := os.ReadFile(mnistPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cut.onnx")
	if err := os.WriteFile(path, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.HasPrefix(err.Error(), "onnx: "+path+": ") {
		t.Errorf("truncated file: %v", err)
	}
	step := 1
	if testing.Short() {
		step = 97
	}
	for n := 0; n < len(data); n += step {
		if _, err := Decode(data[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes decode without error", n, len(data))
		}
	}
}

func TestEncodeChecks(t *testing.T) {
	m := fullModel()
	m.Graph.Initializer[0].Dims = []int64{3}
	if _, err := Encode(m); err == nil || !strings.Contains(err.Error(), "initializer[0] (w).raw_data") {
		t.Errorf("bad tensor: %v", err)
	}
	if _, err := Encode(&Model{}); err == nil {
		t.Error("model without graph encoded")
	}
	path := filepath.Join(t.TempDir(), "x.onnx")
	if err := Write(path, &Model{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Write error %v does not name the file", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a failed Write left a file")
	}
}
