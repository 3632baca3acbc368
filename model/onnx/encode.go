package onnx

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/quantkit/quantkit/internal/atomicfile"
)

// Write encodes m and writes it to path atomically (a temporary file
// renamed into place).
func Write(path string, m *Model) error {
	data, err := Encode(m)
	if err != nil {
		return fmt.Errorf("onnx: %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, data, 0o666); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	return nil
}

// Encode serializes m as a ModelProto, fields in field-number order as
// onnx's own serializer writes them: tensor data packed, dims and attribute
// lists unpacked (as onnx.proto declares them). It checks every tensor and
// the names (Graph.CheckNames) first, so that what it writes Decode reads
// back.
func Encode(m *Model) ([]byte, error) {
	if m.Graph == nil {
		return nil, errors.New("model has no graph")
	}
	for i, t := range m.Graph.Initializer {
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("graph.initializer[%d] (%s).%w", i, t.Name, err)
		}
	}
	for i, n := range m.Graph.Node {
		for j, a := range n.Attribute {
			if a.Type == AttrTensor {
				if a.T == nil {
					return nil, fmt.Errorf("graph.node[%d].attribute[%d] (%s): TENSOR attribute without a tensor", i, j, a.Name)
				}
				if err := a.T.check(); err != nil {
					return nil, fmt.Errorf("graph.node[%d].attribute[%d] (%s).t.%w", i, j, a.Name, err)
				}
			}
		}
	}
	if err := m.Graph.CheckNames(); err != nil {
		return nil, fmt.Errorf("graph.%w", err)
	}
	var b []byte
	b = appendInt(b, 1, m.IRVersion)
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 4, m.Domain)
	b = appendInt(b, 5, m.ModelVersion)
	b = appendMessage(b, 7, encodeGraph(m.Graph))
	for _, o := range m.OpsetImport {
		var ob []byte
		ob = appendString(ob, 1, o.Domain)
		ob = appendInt(ob, 2, o.Version)
		b = appendMessage(b, 8, ob)
	}
	for _, kv := range m.Metadata {
		var kb []byte
		kb = appendString(kb, 1, kv.Key)
		kb = appendString(kb, 2, kv.Value)
		b = appendMessage(b, 14, kb)
	}
	return b, nil
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func encodeGraph(g *Graph) []byte {
	var b []byte
	for _, n := range g.Node {
		b = appendMessage(b, 1, encodeNode(n))
	}
	b = appendString(b, 2, g.Name)
	for _, t := range g.Initializer {
		b = appendMessage(b, 5, encodeTensor(t))
	}
	for i, list := range [][]*ValueInfo{g.Input, g.Output, g.ValueInfo} {
		for _, v := range list {
			b = appendMessage(b, protowire.Number(11+i), encodeValueInfo(v))
		}
	}
	return b
}

func encodeNode(n *Node) []byte {
	var b []byte
	for _, s := range n.Input {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Output {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for _, a := range n.Attribute {
		b = appendMessage(b, 5, encodeAttribute(a))
	}
	b = appendString(b, 7, n.Domain)
	return b
}

// encodeAttribute writes the name, the value field that the type names
// (even when zero) and the type.
func encodeAttribute(a *Attribute) []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case AttrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case AttrTensor:
		b = appendMessage(b, 5, encodeTensor(a.T))
	case AttrFloats:
		for _, v := range a.Floats {
			b = protowire.AppendTag(b, 7, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(v))
		}
	case AttrInts:
		for _, v := range a.Ints {
			b = protowire.AppendTag(b, 8, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	case AttrStrings:
		for _, s := range a.Strings {
			b = protowire.AppendTag(b, 9, protowire.BytesType)
			b = protowire.AppendBytes(b, s)
		}
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(a.Type)))
}

func encodeTensor(t *Tensor) []byte {
	var b []byte
	for _, d := range t.Dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = appendInt(b, 2, int64(t.DataType))
	if len(t.FloatData) > 0 {
		p := make([]byte, 0, 4*len(t.FloatData))
		for _, v := range t.FloatData {
			p = protowire.AppendFixed32(p, math.Float32bits(v))
		}
		b = appendMessage(b, 4, p)
	}
	if len(t.Int32Data) > 0 {
		var p []byte
		for _, v := range t.Int32Data {
			p = protowire.AppendVarint(p, uint64(int64(v)))
		}
		b = appendMessage(b, 5, p)
	}
	if len(t.Int64Data) > 0 {
		var p []byte
		for _, v := range t.Int64Data {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = appendMessage(b, 7, p)
	}
	b = appendString(b, 8, t.Name)
	if t.RawData != nil {
		b = appendMessage(b, 9, t.RawData)
	}
	if len(t.DoubleData) > 0 {
		p := make([]byte, 0, 8*len(t.DoubleData))
		for _, v := range t.DoubleData {
			p = protowire.AppendFixed64(p, math.Float64bits(v))
		}
		b = appendMessage(b, 10, p)
	}
	if len(t.Uint64Data) > 0 {
		var p []byte
		for _, v := range t.Uint64Data {
			p = protowire.AppendVarint(p, v)
		}
		b = appendMessage(b, 11, p)
	}
	return b
}

func encodeValueInfo(v *ValueInfo) []byte {
	var b []byte
	b = appendString(b, 1, v.Name)
	if v.ElemType == DataUndefined && !v.HasShape {
		return b
	}
	var tt []byte
	tt = appendInt(tt, 1, int64(v.ElemType))
	if v.HasShape {
		var sb []byte
		for _, d := range v.Shape {
			var db []byte
			if d.Param != "" {
				db = appendString(db, 2, d.Param)
			} else {
				db = appendInt(db, 1, d.Value)
			}
			sb = appendMessage(sb, 1, db)
		}
		tt = appendMessage(tt, 2, sb)
	}
	return appendMessage(b, 2, appendMessage(nil, 1, tt))
}
