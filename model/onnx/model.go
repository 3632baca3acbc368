package onnx

import (
	"fmt"
)

// Model is an ONNX ModelProto.
type Model struct {
	IRVersion       int64
	OpsetImport     []OperatorSet
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	Graph           *Graph
	// Metadata is metadata_props, in file order.
	Metadata []KeyValue
}

// KeyValue is a StringStringEntryProto.
type KeyValue struct {
	Key, Value string
}

// MetadataValue returns the value of the metadata entry key and whether
// there is one.
func (m *Model) MetadataValue(key string) (string, bool) {
	for _, kv := range m.Metadata {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// OperatorSet is an OperatorSetIdProto: the operators of Domain ("" or
// "ai.onnx" for the standard ones) as of Version.
type OperatorSet struct {
	Domain  string
	Version int64
}

// Graph is a GraphProto. Nodes are in topological order.
type Graph struct {
	Name        string
	Node        []*Node
	Initializer []*Tensor
	Input       []*ValueInfo
	Output      []*ValueInfo
	ValueInfo   []*ValueInfo
}

// Node is a NodeProto. An empty name in Input stands for an omitted
// optional input.
type Node struct {
	Input     []string
	Output    []string
	Name      string
	OpType    string
	Domain    string
	Attribute []*Attribute
}

// AttrType is the AttributeProto.AttributeType enum.
type AttrType int32

// The attribute types of onnx.proto. Values of the types after
// AttrTensor other than the lists of floats, ints and strings (graphs,
// sparse tensors, type protos) are not kept: an Attribute of such a type
// has only its name and type.
const (
	AttrUndefined     AttrType = 0
	AttrFloat         AttrType = 1
	AttrInt           AttrType = 2
	AttrString        AttrType = 3
	AttrTensor        AttrType = 4
	AttrGraph         AttrType = 5
	AttrFloats        AttrType = 6
	AttrInts          AttrType = 7
	AttrStrings       AttrType = 8
	AttrTensors       AttrType = 9
	AttrGraphs        AttrType = 10
	AttrSparseTensor  AttrType = 11
	AttrSparseTensors AttrType = 12
	AttrTypeProto     AttrType = 13
	AttrTypeProtos    AttrType = 14
)

var attrTypeNames = [...]string{"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS",
	"STRINGS", "TENSORS", "GRAPHS", "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"}

func (t AttrType) String() string {
	if t >= 0 && int(t) < len(attrTypeNames) {
		return attrTypeNames[t]
	}
	return fmt.Sprintf("AttrType(%d)", int32(t))
}

// Attribute is an AttributeProto; the field its Type names holds the value.
type Attribute struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings [][]byte
}

// ValueInfo is a ValueInfoProto of a tensor: its name, element type and
// shape. ElemType is DataUndefined when the value has no tensor type, and
// Shape is nil with HasShape false when the shape is unknown (a rank-0
// tensor has HasShape true and no dims).
type ValueInfo struct {
	Name     string
	ElemType DataType
	HasShape bool
	Shape    []Dim
}

// Dim is one dimension of a shape: a known Value, or a symbolic Param
// ("batch", "N") when Param is not empty, or unknown when both are zero.
type Dim struct {
	Value int64
	Param string
}

func (d Dim) String() string {
	if d.Param != "" {
		return d.Param
	}
	if d.Value == 0 {
		return "?"
	}
	return fmt.Sprint(d.Value)
}

// Opset is the version of the standard operator set the model imports, 0
// when it imports none.
func (m *Model) Opset() int64 {
	for _, o := range m.OpsetImport {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			return o.Version
		}
	}
	return 0
}

// Attr returns n's attribute called name, or nil.
func (n *Node) Attr(name string) *Attribute {
	for _, a := range n.Attribute {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Describe names n for error messages: `Conv node "conv1"`, or with its
// first output when it has no name.
func (n *Node) Describe() string {
	switch {
	case n.Name != "":
		return fmt.Sprintf("%s node %q", n.OpType, n.Name)
	case len(n.Output) > 0:
		return fmt.Sprintf("%s node with output %q", n.OpType, n.Output[0])
	}
	return n.OpType + " node"
}

// AttrInt returns the INT attribute name, or def when it is absent.
func (n *Node) AttrInt(name string, def int64) (int64, error) {
	a := n.Attr(name)
	if a == nil {
		return def, nil
	}
	if a.Type != AttrInt {
		return 0, fmt.Errorf("%s: attribute %s is %s, want INT", n.Describe(), name, a.Type)
	}
	return a.I, nil
}

// AttrFloat returns the FLOAT attribute name, or def when it is absent.
func (n *Node) AttrFloat(name string, def float32) (float32, error) {
	a := n.Attr(name)
	if a == nil {
		return def, nil
	}
	if a.Type != AttrFloat {
		return 0, fmt.Errorf("%s: attribute %s is %s, want FLOAT", n.Describe(), name, a.Type)
	}
	return a.F, nil
}

// AttrInts returns the INTS attribute name, or def when it is absent.
func (n *Node) AttrInts(name string, def []int64) ([]int64, error) {
	a := n.Attr(name)
	if a == nil {
		return def, nil
	}
	if a.Type != AttrInts {
		return nil, fmt.Errorf("%s: attribute %s is %s, want INTS", n.Describe(), name, a.Type)
	}
	return a.Ints, nil
}

// AttrString returns the STRING attribute name, or def when it is absent.
func (n *Node) AttrString(name, def string) (string, error) {
	a := n.Attr(name)
	if a == nil {
		return def, nil
	}
	if a.Type != AttrString {
		return "", fmt.Errorf("%s: attribute %s is %s, want STRING", n.Describe(), name, a.Type)
	}
	return string(a.S), nil
}

// IntAttr is an INT attribute.
func IntAttr(name string, v int64) *Attribute { return &Attribute{Name: name, Type: AttrInt, I: v} }

// IntsAttr is an INTS attribute.
func IntsAttr(name string, v ...int64) *Attribute {
	return &Attribute{Name: name, Type: AttrInts, Ints: v}
}

// FloatAttr is a FLOAT attribute.
func FloatAttr(name string, v float32) *Attribute {
	return &Attribute{Name: name, Type: AttrFloat, F: v}
}

// StringAttr is a STRING attribute.
func StringAttr(name, v string) *Attribute {
	return &Attribute{Name: name, Type: AttrString, S: []byte(v)}
}

// TensorAttr is a TENSOR attribute.
func TensorAttr(name string, t *Tensor) *Attribute {
	return &Attribute{Name: name, Type: AttrTensor, T: t}
}

// InitializerByName returns g's initializer called name, or nil.
func (g *Graph) InitializerByName(name string) *Tensor {
	for _, t := range g.Initializer {
		if t.Name == name {
			return t
		}
	}
	return nil
}
