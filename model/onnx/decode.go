package onnx

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits on what Read and Decode accept. They bound memory and work on
// hostile input; real classifiers are far inside them.
const (
	MaxFileSize  = 1 << 30 // bytes; protobuf itself cannot exceed 2 GiB
	MaxNodes     = 1 << 20 // nodes, initializers, inputs, outputs, value_infos, each
	MaxNodeItems = 1 << 12 // inputs, outputs and attributes of one node, each
	MaxOpsets    = 1 << 10 // opset_import entries, metadata_props entries
	MaxRank      = 32      // dims of a tensor or shape
	MaxElements  = 1 << 40 // elements of one tensor (its data must be in the file too)
)

// Read reads and decodes the ONNX model in the file at path. Errors start
// with "onnx: path: " and name the field at fault.
func Read(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("onnx: %s: not a regular file", path)
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("onnx: %s: %d bytes exceeds the limit of %d", path, fi.Size(), MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	return m, nil
}

// Decode decodes a serialized ModelProto. Besides the wire format it checks
// that there is a graph, that the limits hold and that every tensor's data
// agrees with its type and dims.
func Decode(data []byte) (*Model, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%d bytes exceeds the limit of %d", len(data), MaxFileSize)
	}
	if len(data) == 0 {
		return nil, errors.New("not an ONNX model: the file is empty")
	}
	m := &Model{}
	err := walk(data, "", func(f *field) error {
		var err error
		switch f.num {
		case 1:
			m.IRVersion, err = f.int64("ir_version")
		case 2:
			m.ProducerName, err = f.string("producer_name")
		case 3:
			m.ProducerVersion, err = f.string("producer_version")
		case 4:
			m.Domain, err = f.string("domain")
		case 5:
			m.ModelVersion, err = f.int64("model_version")
		case 7:
			if m.Graph != nil {
				return errors.New("graph: more than one graph")
			}
			var b []byte
			if b, err = f.bytes("graph"); err == nil {
				m.Graph, err = decodeGraph(b, "graph")
			}
		case 14:
			if len(m.Metadata) >= MaxOpsets {
				return fmt.Errorf("metadata_props: more than %d entries", MaxOpsets)
			}
			p := fmt.Sprintf("metadata_props[%d]", len(m.Metadata))
			var b []byte
			if b, err = f.bytes(p); err == nil {
				var kv KeyValue
				err = walk(b, p, func(f *field) error {
					var err error
					switch f.num {
					case 1:
						kv.Key, err = f.string("key")
					case 2:
						kv.Value, err = f.string("value")
					}
					return err
				})
				m.Metadata = append(m.Metadata, kv)
			}
		case 8:
			if len(m.OpsetImport) >= MaxOpsets {
				return fmt.Errorf("opset_import: more than %d entries", MaxOpsets)
			}
			p := fmt.Sprintf("opset_import[%d]", len(m.OpsetImport))
			var b []byte
			if b, err = f.bytes(p); err == nil {
				var o OperatorSet
				o, err = decodeOpset(b, p)
				m.OpsetImport = append(m.OpsetImport, o)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("not an ONNX model, or a damaged one: %w", err)
	}
	if m.Graph == nil {
		return nil, errors.New("not an ONNX model: no graph (ModelProto field 7)")
	}
	if m.IRVersion >= 3 && len(m.OpsetImport) == 0 {
		// IR version 3 introduced opset_import and made it mandatory; a
		// file cut short after its graph lacks it.
		return nil, fmt.Errorf("opset_import: missing (required from IR version 3; this file says %d): the file may be truncated", m.IRVersion)
	}
	return m, nil
}

// field is one field of a message as the wire has it: the value of a
// varint or fixed-size field in u, the bytes of a length-delimited one in b.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

var wireNames = map[protowire.Type]string{
	protowire.VarintType: "varint", protowire.Fixed32Type: "fixed32", protowire.Fixed64Type: "fixed64",
	protowire.BytesType: "length-delimited", protowire.StartGroupType: "group", protowire.EndGroupType: "end-group",
}

// walk calls fn on each field of the message in b, in order. Unknown
// fields are fn's to ignore; groups are an error.
func walk(b []byte, path string, fn func(f *field) error) error {
	where := path
	if where == "" {
		where = "model"
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%s: field tag: %w", where, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		case protowire.StartGroupType, protowire.EndGroupType:
			return fmt.Errorf("%s: field %d uses the group wire type, which ONNX never does", where, num)
		default:
			return fmt.Errorf("%s: field %d has unknown wire type %d", where, num, typ)
		}
		if n < 0 {
			return fmt.Errorf("%s: field %d: %w", where, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(&f); err != nil {
			if path == "" {
				return err
			}
			return fmt.Errorf("%s.%w", path, err)
		}
	}
	return nil
}

func (f *field) want(name string, t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("%s: wire type %s, want %s", name, wireNames[f.typ], wireNames[t])
	}
	return nil
}

func (f *field) bytes(name string) ([]byte, error) {
	return f.b, f.want(name, protowire.BytesType)
}

func (f *field) string(name string) (string, error) {
	return string(f.b), f.want(name, protowire.BytesType)
}

func (f *field) int64(name string) (int64, error) {
	return int64(f.u), f.want(name, protowire.VarintType)
}

// int32 reads an int32 or enum field, which protobuf encodes sign-extended
// to 64 bits.
func (f *field) int32(name string) (int32, error) {
	if err := f.want(name, protowire.VarintType); err != nil {
		return 0, err
	}
	v := int64(f.u)
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%s: %d overflows int32", name, v)
	}
	return int32(v), nil
}

// varints appends the values of a repeated varint field, packed or not.
func (f *field) varints(dst []uint64, name string) ([]uint64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, f.u), nil
	case protowire.BytesType:
		for b := f.b; len(b) > 0; {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%s: packed value %d: %w", name, len(dst), protowire.ParseError(n))
			}
			dst = append(dst, v)
			b = b[n:]
		}
		return dst, nil
	}
	return nil, fmt.Errorf("%s: wire type %s, want varint or packed", name, wireNames[f.typ])
}

func (f *field) int64s(dst []int64, name string) ([]int64, error) {
	u, err := f.varints(nil, name)
	for _, v := range u {
		dst = append(dst, int64(v))
	}
	return dst, err
}

func (f *field) int32s(dst []int32, name string) ([]int32, error) {
	u, err := f.varints(nil, name)
	for _, v := range u {
		if int64(v) < math.MinInt32 || int64(v) > math.MaxInt32 {
			return nil, fmt.Errorf("%s: %d overflows int32", name, int64(v))
		}
		dst = append(dst, int32(v))
	}
	return dst, err
}

func (f *field) uint64s(dst []uint64, name string) ([]uint64, error) {
	return f.varints(dst, name)
}

// fixed appends the values of a repeated fixed-size field, packed or not.
func (f *field) fixed(name string, size int, typ protowire.Type, add func(u uint64)) error {
	switch f.typ {
	case typ:
		add(f.u)
		return nil
	case protowire.BytesType:
		if len(f.b)%size != 0 {
			return fmt.Errorf("%s: packed length %d is not a multiple of %d", name, len(f.b), size)
		}
		for b := f.b; len(b) > 0; b = b[size:] {
			if size == 4 {
				v, _ := protowire.ConsumeFixed32(b)
				add(uint64(v))
			} else {
				v, _ := protowire.ConsumeFixed64(b)
				add(v)
			}
		}
		return nil
	}
	return fmt.Errorf("%s: wire type %s, want %s or packed", name, wireNames[f.typ], wireNames[typ])
}

func (f *field) float32s(dst []float32, name string) ([]float32, error) {
	err := f.fixed(name, 4, protowire.Fixed32Type, func(u uint64) { dst = append(dst, math.Float32frombits(uint32(u))) })
	return dst, err
}

func (f *field) float64s(dst []float64, name string) ([]float64, error) {
	err := f.fixed(name, 8, protowire.Fixed64Type, func(u uint64) { dst = append(dst, math.Float64frombits(u)) })
	return dst, err
}

func decodeOpset(b []byte, path string) (OperatorSet, error) {
	var o OperatorSet
	err := walk(b, path, func(f *field) error {
		var err error
		switch f.num {
		case 1:
			o.Domain, err = f.string("domain")
		case 2:
			o.Version, err = f.int64("version")
		}
		return err
	})
	return o, err
}

func decodeGraph(b []byte, path string) (*Graph, error) {
	g := &Graph{}
	count := func(n int, name string) error {
		if n >= MaxNodes {
			return fmt.Errorf("%s: more than %d entries", name, MaxNodes)
		}
		return nil
	}
	err := walk(b, path, func(f *field) error {
		var err error
		switch f.num {
		case 1:
			if err = count(len(g.Node), "node"); err != nil {
				return err
			}
			p := fmt.Sprintf("node[%d]", len(g.Node))
			var nb []byte
			if nb, err = f.bytes(p); err == nil {
				var n *Node
				n, err = decodeNode(nb, p)
				g.Node = append(g.Node, n)
			}
		case 2:
			g.Name, err = f.string("name")
		case 5:
			if err = count(len(g.Initializer), "initializer"); err != nil {
				return err
			}
			p := fmt.Sprintf("initializer[%d]", len(g.Initializer))
			var tb []byte
			if tb, err = f.bytes(p); err == nil {
				var t *Tensor
				t, err = decodeTensor(tb, p)
				g.Initializer = append(g.Initializer, t)
			}
		case 11, 12, 13:
			list, name := &g.Input, "input"
			if f.num == 12 {
				list, name = &g.Output, "output"
			} else if f.num == 13 {
				list, name = &g.ValueInfo, "value_info"
			}
			if err = count(len(*list), name); err != nil {
				return err
			}
			p := fmt.Sprintf("%s[%d]", name, len(*list))
			var vb []byte
			if vb, err = f.bytes(p); err == nil {
				var v *ValueInfo
				v, err = decodeValueInfo(vb, p)
				*list = append(*list, v)
			}
		}
		return err
	})
	return g, err
}

func decodeNode(b []byte, path string) (*Node, error) {
	n := &Node{}
	err := walk(b, path, func(f *field) error {
		var err error
		var s string
		switch f.num {
		case 1, 2:
			list, name := &n.Input, "input"
			if f.num == 2 {
				list, name = &n.Output, "output"
			}
			if len(*list) >= MaxNodeItems {
				return fmt.Errorf("%s: more than %d entries", name, MaxNodeItems)
			}
			if s, err = f.string(fmt.Sprintf("%s[%d]", name, len(*list))); err == nil {
				*list = append(*list, s)
			}
		case 3:
			n.Name, err = f.string("name")
		case 4:
			n.OpType, err = f.string("op_type")
		case 7:
			n.Domain, err = f.string("domain")
		case 5:
			if len(n.Attribute) >= MaxNodeItems {
				return fmt.Errorf("attribute: more than %d entries", MaxNodeItems)
			}
			p := fmt.Sprintf("attribute[%d]", len(n.Attribute))
			var ab []byte
			if ab, err = f.bytes(p); err == nil {
				var a *Attribute
				a, err = decodeAttribute(ab, p)
				n.Attribute = append(n.Attribute, a)
			}
		}
		return err
	})
	return n, err
}

func decodeAttribute(b []byte, path string) (*Attribute, error) {
	a := &Attribute{}
	var s []byte
	err := walk(b, path, func(f *field) error {
		var err error
		switch f.num {
		case 1:
			a.Name, err = f.string("name")
		case 20:
			var t int32
			t, err = f.int32("type")
			a.Type = AttrType(t)
		case 2:
			if err = f.want("f", protowire.Fixed32Type); err == nil {
				a.F = math.Float32frombits(uint32(f.u))
			}
		case 3:
			a.I, err = f.int64("i")
		case 4:
			if s, err = f.bytes("s"); err == nil {
				a.S = append([]byte{}, s...)
			}
		case 5:
			if s, err = f.bytes("t"); err == nil {
				a.T, err = decodeTensor(s, "t")
			}
		case 7:
			a.Floats, err = f.float32s(a.Floats, "floats")
		case 8:
			a.Ints, err = f.int64s(a.Ints, "ints")
		case 9:
			if s, err = f.bytes(fmt.Sprintf("strings[%d]", len(a.Strings))); err == nil {
				a.Strings = append(a.Strings, append([]byte{}, s...))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if a.Name == "" {
		return nil, fmt.Errorf("%s: attribute without a name", path)
	}
	if a.Type == AttrUndefined {
		// IR version 1 had no type field: the value field in use says it.
		switch {
		case a.T != nil:
			a.Type = AttrTensor
		case a.S != nil:
			a.Type = AttrString
		case a.Floats != nil:
			a.Type = AttrFloats
		case a.Ints != nil:
			a.Type = AttrInts
		case a.Strings != nil:
			a.Type = AttrStrings
		case a.F != 0:
			a.Type = AttrFloat
		default:
			a.Type = AttrInt
		}
	}
	if a.Type == AttrTensor && a.T == nil {
		return nil, fmt.Errorf("%s (%s): TENSOR attribute without a tensor", path, a.Name)
	}
	// Keep only the value the type names, so that writing back gives the
	// same attribute.
	v := Attribute{Name: a.Name, Type: a.Type}
	switch a.Type {
	case AttrFloat:
		v.F = a.F
	case AttrInt:
		v.I = a.I
	case AttrString:
		v.S = a.S
		if v.S == nil {
			v.S = []byte{}
		}
	case AttrTensor:
		v.T = a.T
	case AttrFloats:
		v.Floats = a.Floats
	case AttrInts:
		v.Ints = a.Ints
	case AttrStrings:
		v.Strings = a.Strings
	}
	return &v, nil
}

func decodeTensor(b []byte, path string) (*Tensor, error) {
	t := &Tensor{}
	err := walk(b, path, func(f *field) error {
		var err error
		switch f.num {
		case 1:
			if len(t.Dims) > MaxRank {
				return fmt.Errorf("dims: rank exceeds the limit of %d", MaxRank)
			}
			t.Dims, err = f.int64s(t.Dims, "dims")
		case 2:
			var d int32
			d, err = f.int32("data_type")
			t.DataType = DataType(d)
		case 4:
			t.FloatData, err = f.float32s(t.FloatData, "float_data")
		case 5:
			t.Int32Data, err = f.int32s(t.Int32Data, "int32_data")
		case 7:
			t.Int64Data, err = f.int64s(t.Int64Data, "int64_data")
		case 8:
			t.Name, err = f.string("name")
		case 9:
			var raw []byte
			if raw, err = f.bytes("raw_data"); err == nil {
				t.RawData = append(make([]byte, 0, len(raw)), raw...)
			}
		case 10:
			t.DoubleData, err = f.float64s(t.DoubleData, "double_data")
		case 11:
			t.Uint64Data, err = f.uint64s(t.Uint64Data, "uint64_data")
		case 14:
			var loc int32
			loc, err = f.int32("data_location")
			t.external = loc == 1
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		if t.Name != "" {
			return nil, fmt.Errorf("%s (%s).%w", path, t.Name, err)
		}
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	return t, nil
}

func decodeValueInfo(b []byte, path string) (*ValueInfo, error) {
	v := &ValueInfo{}
	err := walk(b, path, func(f *field) error {
		switch f.num {
		case 1:
			var err error
			v.Name, err = f.string("name")
			return err
		case 2:
			tb, err := f.bytes("type")
			if err != nil {
				return err
			}
			return walk(tb, "type", func(f *field) error {
				if f.num != 1 {
					return nil
				}
				ttb, err := f.bytes("tensor_type")
				if err != nil {
					return err
				}
				return walk(ttb, "tensor_type", func(f *field) error {
					switch f.num {
					case 1:
						et, err := f.int32("elem_type")
						v.ElemType = DataType(et)
						return err
					case 2:
						sb, err := f.bytes("shape")
						if err != nil {
							return err
						}
						v.HasShape = true
						return walk(sb, "shape", func(f *field) error {
							if f.num != 1 {
								return nil
							}
							if len(v.Shape) >= MaxRank {
								return fmt.Errorf("dim: rank exceeds the limit of %d", MaxRank)
							}
							p := fmt.Sprintf("dim[%d]", len(v.Shape))
							db, err := f.bytes(p)
							if err != nil {
								return err
							}
							var d Dim
							err = walk(db, p, func(f *field) error {
								var err error
								switch f.num {
								case 1: // dim_value and dim_param are a oneof
									d.Value, err = f.int64("dim_value")
									d.Param = ""
								case 2:
									d.Param, err = f.string("dim_param")
									d.Value = 0
								}
								return err
							})
							v.Shape = append(v.Shape, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return v, err
}
