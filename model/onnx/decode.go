package onnx

import (
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/quantkit/quantkit/model/format"
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
// with "onnx: path: " (or "onnx: open path: ") and name the field at
// fault. A path that is not a regular file (a directory, a named pipe, a
// device) is refused before a byte is read (format.Open): a FIFO would
// otherwise block for ever, /dev/zero never end.
func Read(path string) (*Model, error) {
	f, fi, err := format.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	defer f.Close()
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("onnx: %s: %d bytes exceeds the limit of %d", path, fi.Size(), MaxFileSize)
	}
	// One buffer of the size the file has; a file that grows meanwhile is
	// an error rather than a reason to allocate more.
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	if n, _ := f.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("onnx: %s: the file grew while it was read", path)
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	return m, nil
}

// Decode decodes a serialized ModelProto. Besides the wire format it checks
// that there is a graph, that the limits hold, that every tensor's data
// agrees with its type and dims, and that names are not used twice (see
// Graph.CheckNames).
//
// Memory is bounded by the input: every slice is allocated at the size
// the input holds (counted before it is filled), never at a size the
// input declares, so decoding allocates at most a few tens of times
// len(data).
func Decode(data []byte) (*Model, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%d bytes exceeds the limit of %d", len(data), MaxFileSize)
	}
	if len(data) == 0 {
		return nil, errors.New("not an ONNX model: the file is empty")
	}
	m := &Model{}
	err := decodeModel(data, m)
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
	if err := m.Graph.CheckNames(); err != nil {
		return nil, fmt.Errorf("graph.%w", err)
	}
	return m, nil
}

var modelCounts = countKinds{8: countMessages, 14: countMessages}

func decodeModel(data []byte, m *Model) error {
	n := countFields(data, &modelCounts)
	if n[8] > MaxOpsets {
		return fmt.Errorf("opset_import: more than %d entries", MaxOpsets)
	}
	if n[14] > MaxOpsets {
		return fmt.Errorf("metadata_props: more than %d entries", MaxOpsets)
	}
	m.OpsetImport = makeCap[OperatorSet](n[8])
	m.Metadata = makeCap[KeyValue](n[14])
	return walk(data, loc{}, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.IRVersion, err = f.int64(at("ir_version"))
		case 2:
			m.ProducerName, err = f.string(at("producer_name"))
		case 3:
			m.ProducerVersion, err = f.string(at("producer_version"))
		case 4:
			m.Domain, err = f.string(at("domain"))
		case 5:
			m.ModelVersion, err = f.int64(at("model_version"))
		case 7:
			if m.Graph != nil {
				return errors.New("graph: more than one graph")
			}
			var b []byte
			if b, err = f.bytes(at("graph")); err == nil {
				m.Graph, err = decodeGraph(b, at("graph"))
			}
		case 14:
			p := loc{"metadata_props", len(m.Metadata), true}
			var b []byte
			if b, err = f.bytes(p); err == nil {
				var kv KeyValue
				err = walk(b, p, func(f field) error {
					var err error
					switch f.num {
					case 1:
						kv.Key, err = f.string(at("key"))
					case 2:
						kv.Value, err = f.string(at("value"))
					}
					return err
				})
				m.Metadata = append(m.Metadata, kv)
			}
		case 8:
			p := loc{"opset_import", len(m.OpsetImport), true}
			var b []byte
			if b, err = f.bytes(p); err == nil {
				var o OperatorSet
				o, err = decodeOpset(b, p)
				m.OpsetImport = append(m.OpsetImport, o)
			}
		}
		return err
	})
}

// loc names a field or message for error messages without formatting
// the name until an error needs it: name, or name[i] when indexed.
type loc struct {
	name    string
	i       int
	indexed bool
}

func at(name string) loc { return loc{name: name} }

func (l loc) String() string {
	if l.indexed {
		return fmt.Sprintf("%s[%d]", l.name, l.i)
	}
	return l.name
}

// field is one field of a message as the wire has it: the value of a
// varint or fixed-size field in u, the bytes of a length-delimited one in b.
// It is passed by value: a pointer handed to a function value would make
// every field a heap allocation.
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
// fields are fn's to ignore; groups are an error. Errors are prefixed
// with where's name (the top-level message has none).
func walk(b []byte, where loc, fn func(f field) error) error {
	name := func() string {
		if where.name == "" {
			return "model"
		}
		return where.String()
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%s: field tag: %w", name(), protowire.ParseError(n))
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
			return fmt.Errorf("%s: field %d uses the group wire type, which ONNX never does", name(), num)
		default:
			return fmt.Errorf("%s: field %d has unknown wire type %d", name(), num, typ)
		}
		if n < 0 {
			return fmt.Errorf("%s: field %d: %w", name(), num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			if where.name == "" {
				return err
			}
			return fmt.Errorf("%s.%w", where, err)
		}
	}
	return nil
}

// countKind says how countFields counts a repeated field's values.
type countKind uint8

const (
	countNone     countKind = iota
	countMessages           // one per occurrence: messages, strings, bytes
	countVarints            // one per unpacked value, one per last byte of a packed varint
	countFixed32            // one per unpacked value, len/4 per packed run
	countFixed64            // one per unpacked value, len/8 per packed run
)

// countKinds maps the field numbers of a message (below 16, where every
// repeated field of onnx.proto this package reads lies) to how to count
// their values.
type countKinds [16]countKind

// countFields counts the values of the repeated fields of the message in
// b that kinds names, so that their slices are allocated once at the size
// the input holds. Malformed input is walk's to report: counting stops
// there.
func countFields(b []byte, kinds *countKinds) (n [16]int) {
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 || typ == protowire.StartGroupType || typ == protowire.EndGroupType {
			return n
		}
		b = b[k:]
		v := protowire.ConsumeFieldValue(num, typ, b)
		if v < 0 {
			return n
		}
		if num < 16 && kinds[num] != countNone {
			switch kind := kinds[num]; {
			case typ != protowire.BytesType || kind == countMessages:
				n[num]++
			case kind == countVarints:
				p, _ := protowire.ConsumeBytes(b[:v])
				for _, c := range p {
					if c < 0x80 {
						n[num]++
					}
				}
			case kind == countFixed32:
				p, _ := protowire.ConsumeBytes(b[:v])
				n[num] += len(p) / 4
			case kind == countFixed64:
				p, _ := protowire.ConsumeBytes(b[:v])
				n[num] += len(p) / 8
			}
		}
		b = b[v:]
	}
	return n
}

// makeCap is a slice of capacity n, nil when n is 0 (so that a field
// that is absent stays nil).
func makeCap[T any](n int) []T {
	if n == 0 {
		return nil
	}
	return make([]T, 0, n)
}

func (f *field) want(l loc, t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("%s: wire type %s, want %s", l, wireNames[f.typ], wireNames[t])
	}
	return nil
}

func (f *field) bytes(l loc) ([]byte, error) {
	return f.b, f.want(l, protowire.BytesType)
}

func (f *field) string(l loc) (string, error) {
	if err := f.want(l, protowire.BytesType); err != nil {
		return "", err
	}
	return string(f.b), nil
}

func (f *field) int64(l loc) (int64, error) {
	return int64(f.u), f.want(l, protowire.VarintType)
}

// int32 reads an int32 or enum field, which protobuf encodes sign-extended
// to 64 bits.
func (f *field) int32(l loc) (int32, error) {
	if err := f.want(l, protowire.VarintType); err != nil {
		return 0, err
	}
	v := int64(f.u)
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%s: %d overflows int32", l, v)
	}
	return int32(v), nil
}

// varints calls add with each value of a repeated varint field, packed or
// not.
func (f *field) varints(l loc, add func(u uint64) error) error {
	switch f.typ {
	case protowire.VarintType:
		return add(f.u)
	case protowire.BytesType:
		for b, i := f.b, 0; len(b) > 0; i++ {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%s: packed value %d: %w", l, i, protowire.ParseError(n))
			}
			if err := add(v); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}
	return fmt.Errorf("%s: wire type %s, want varint or packed", l, wireNames[f.typ])
}

func (f *field) int64s(dst []int64, l loc) ([]int64, error) {
	err := f.varints(l, func(u uint64) error { dst = append(dst, int64(u)); return nil })
	return dst, err
}

func (f *field) int32s(dst []int32, l loc) ([]int32, error) {
	err := f.varints(l, func(u uint64) error {
		if int64(u) < math.MinInt32 || int64(u) > math.MaxInt32 {
			return fmt.Errorf("%s: %d overflows int32", l, int64(u))
		}
		dst = append(dst, int32(u))
		return nil
	})
	return dst, err
}

func (f *field) uint64s(dst []uint64, l loc) ([]uint64, error) {
	err := f.varints(l, func(u uint64) error { dst = append(dst, u); return nil })
	return dst, err
}

// fixed calls add with each value of a repeated fixed-size field, packed
// or not.
func (f *field) fixed(l loc, size int, typ protowire.Type, add func(u uint64)) error {
	switch f.typ {
	case typ:
		add(f.u)
		return nil
	case protowire.BytesType:
		if len(f.b)%size != 0 {
			return fmt.Errorf("%s: packed length %d is not a multiple of %d", l, len(f.b), size)
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
	return fmt.Errorf("%s: wire type %s, want %s or packed", l, wireNames[f.typ], wireNames[typ])
}

func (f *field) float32s(dst []float32, l loc) ([]float32, error) {
	err := f.fixed(l, 4, protowire.Fixed32Type, func(u uint64) { dst = append(dst, math.Float32frombits(uint32(u))) })
	return dst, err
}

func (f *field) float64s(dst []float64, l loc) ([]float64, error) {
	err := f.fixed(l, 8, protowire.Fixed64Type, func(u uint64) { dst = append(dst, math.Float64frombits(u)) })
	return dst, err
}

func decodeOpset(b []byte, where loc) (OperatorSet, error) {
	var o OperatorSet
	err := walk(b, where, func(f field) error {
		var err error
		switch f.num {
		case 1:
			o.Domain, err = f.string(at("domain"))
		case 2:
			o.Version, err = f.int64(at("version"))
		}
		return err
	})
	return o, err
}

var graphCounts = countKinds{1: countMessages, 5: countMessages, 11: countMessages, 12: countMessages, 13: countMessages}

func decodeGraph(b []byte, where loc) (*Graph, error) {
	g := &Graph{}
	n := countFields(b, &graphCounts)
	for _, c := range []struct {
		num  int
		name string
	}{{1, "node"}, {5, "initializer"}, {11, "input"}, {12, "output"}, {13, "value_info"}} {
		if n[c.num] > MaxNodes {
			return nil, fmt.Errorf("%s.%s: more than %d entries", where, c.name, MaxNodes)
		}
	}
	g.Node = makeCap[*Node](n[1])
	g.Initializer = makeCap[*Tensor](n[5])
	g.Input, g.Output, g.ValueInfo = makeCap[*ValueInfo](n[11]), makeCap[*ValueInfo](n[12]), makeCap[*ValueInfo](n[13])
	err := walk(b, where, func(f field) error {
		var err error
		switch f.num {
		case 1:
			p := loc{"node", len(g.Node), true}
			var nb []byte
			if nb, err = f.bytes(p); err == nil {
				var n *Node
				n, err = decodeNode(nb, p)
				g.Node = append(g.Node, n)
			}
		case 2:
			g.Name, err = f.string(at("name"))
		case 5:
			p := loc{"initializer", len(g.Initializer), true}
			var tb []byte
			if tb, err = f.bytes(p); err == nil {
				var t *Tensor
				if t, err = decodeTensor(tb, p); err == nil && t.Name == "" {
					// onnx.proto requires it; initializers are looked up by name.
					err = fmt.Errorf("%s: initializer without a name", p)
				}
				g.Initializer = append(g.Initializer, t)
			}
		case 11, 12, 13:
			list, name := &g.Input, "input"
			if f.num == 12 {
				list, name = &g.Output, "output"
			} else if f.num == 13 {
				list, name = &g.ValueInfo, "value_info"
			}
			p := loc{name, len(*list), true}
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

var nodeCounts = countKinds{1: countMessages, 2: countMessages, 5: countMessages}

func decodeNode(b []byte, where loc) (*Node, error) {
	n := &Node{}
	c := countFields(b, &nodeCounts)
	for _, k := range []struct {
		num  int
		name string
	}{{1, "input"}, {2, "output"}, {5, "attribute"}} {
		if c[k.num] > MaxNodeItems {
			return nil, fmt.Errorf("%s.%s: more than %d entries", where, k.name, MaxNodeItems)
		}
	}
	n.Input, n.Output, n.Attribute = makeCap[string](c[1]), makeCap[string](c[2]), makeCap[*Attribute](c[5])
	err := walk(b, where, func(f field) error {
		var err error
		var s string
		switch f.num {
		case 1, 2:
			list, name := &n.Input, "input"
			if f.num == 2 {
				list, name = &n.Output, "output"
			}
			if s, err = f.string(loc{name, len(*list), true}); err == nil {
				*list = append(*list, s)
			}
		case 3:
			n.Name, err = f.string(at("name"))
		case 4:
			n.OpType, err = f.string(at("op_type"))
		case 7:
			n.Domain, err = f.string(at("domain"))
		case 5:
			p := loc{"attribute", len(n.Attribute), true}
			var ab []byte
			if ab, err = f.bytes(p); err == nil {
				var a *Attribute
				a, err = decodeAttribute(ab, p)
				n.Attribute = append(n.Attribute, a)
			}
		}
		return err
	})
	if err == nil && n.OpType == "" {
		err = fmt.Errorf("%s: node without an op_type", where)
	}
	return n, err
}

var attributeCounts = countKinds{7: countFixed32, 8: countVarints, 9: countMessages}

func decodeAttribute(b []byte, where loc) (*Attribute, error) {
	a := &Attribute{}
	c := countFields(b, &attributeCounts)
	a.Floats, a.Ints, a.Strings = makeCap[float32](c[7]), makeCap[int64](c[8]), makeCap[[]byte](c[9])
	var s []byte
	err := walk(b, where, func(f field) error {
		var err error
		switch f.num {
		case 1:
			a.Name, err = f.string(at("name"))
		case 20:
			var t int32
			t, err = f.int32(at("type"))
			a.Type = AttrType(t)
		case 2:
			if err = f.want(at("f"), protowire.Fixed32Type); err == nil {
				a.F = math.Float32frombits(uint32(f.u))
			}
		case 3:
			a.I, err = f.int64(at("i"))
		case 4:
			if s, err = f.bytes(at("s")); err == nil {
				a.S = append([]byte{}, s...)
			}
		case 5:
			if s, err = f.bytes(at("t")); err == nil {
				a.T, err = decodeTensor(s, at("t"))
			}
		case 7:
			a.Floats, err = f.float32s(a.Floats, at("floats"))
		case 8:
			a.Ints, err = f.int64s(a.Ints, at("ints"))
		case 9:
			if s, err = f.bytes(loc{"strings", len(a.Strings), true}); err == nil {
				a.Strings = append(a.Strings, append([]byte{}, s...))
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if a.Name == "" {
		return nil, fmt.Errorf("%s: attribute without a name", where)
	}
	// The slices were allocated for what the input holds: keep a field
	// that held no values nil, as it would be without them.
	if len(a.Floats) == 0 {
		a.Floats = nil
	}
	if len(a.Ints) == 0 {
		a.Ints = nil
	}
	if len(a.Strings) == 0 {
		a.Strings = nil
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
		return nil, fmt.Errorf("%s (%s): TENSOR attribute without a tensor", where, a.Name)
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
	*a = v
	return a, nil
}

var tensorCounts = countKinds{1: countVarints, 4: countFixed32, 5: countVarints, 7: countVarints, 10: countFixed64, 11: countVarints}

func decodeTensor(b []byte, where loc) (*Tensor, error) {
	t := &Tensor{}
	c := countFields(b, &tensorCounts)
	if c[1] > MaxRank {
		return nil, fmt.Errorf("%s.dims: rank %d exceeds the limit of %d", where, c[1], MaxRank)
	}
	t.Dims = makeCap[int64](c[1])
	t.FloatData, t.Int32Data, t.Int64Data = makeCap[float32](c[4]), makeCap[int32](c[5]), makeCap[int64](c[7])
	t.DoubleData, t.Uint64Data = makeCap[float64](c[10]), makeCap[uint64](c[11])
	err := walk(b, where, func(f field) error {
		var err error
		switch f.num {
		case 1:
			t.Dims, err = f.int64s(t.Dims, at("dims"))
		case 2:
			var d int32
			d, err = f.int32(at("data_type"))
			t.DataType = DataType(d)
		case 4:
			t.FloatData, err = f.float32s(t.FloatData, at("float_data"))
		case 5:
			t.Int32Data, err = f.int32s(t.Int32Data, at("int32_data"))
		case 7:
			t.Int64Data, err = f.int64s(t.Int64Data, at("int64_data"))
		case 8:
			t.Name, err = f.string(at("name"))
		case 9:
			var raw []byte
			if raw, err = f.bytes(at("raw_data")); err == nil {
				t.RawData = append(make([]byte, 0, len(raw)), raw...)
			}
		case 10:
			t.DoubleData, err = f.float64s(t.DoubleData, at("double_data"))
		case 11:
			t.Uint64Data, err = f.uint64s(t.Uint64Data, at("uint64_data"))
		case 14:
			var location int32
			location, err = f.int32(at("data_location"))
			t.external = location == 1
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// Keep fields that held no values nil (the typed data fields) or
	// empty (dims), as they would be without the counting.
	if len(t.Dims) == 0 {
		t.Dims = nil
	}
	if len(t.FloatData) == 0 {
		t.FloatData = nil
	}
	if len(t.Int32Data) == 0 {
		t.Int32Data = nil
	}
	if len(t.Int64Data) == 0 {
		t.Int64Data = nil
	}
	if len(t.DoubleData) == 0 {
		t.DoubleData = nil
	}
	if len(t.Uint64Data) == 0 {
		t.Uint64Data = nil
	}
	if err := t.check(); err != nil {
		if t.Name != "" {
			return nil, fmt.Errorf("%s (%s).%w", where, t.Name, err)
		}
		return nil, fmt.Errorf("%s.%w", where, err)
	}
	return t, nil
}

var shapeCounts = countKinds{1: countMessages}

func decodeValueInfo(b []byte, where loc) (*ValueInfo, error) {
	v := &ValueInfo{}
	err := walk(b, where, func(f field) error {
		switch f.num {
		case 1:
			var err error
			v.Name, err = f.string(at("name"))
			return err
		case 2:
			tb, err := f.bytes(at("type"))
			if err != nil {
				return err
			}
			return walk(tb, at("type"), func(f field) error {
				if f.num != 1 {
					return nil
				}
				ttb, err := f.bytes(at("tensor_type"))
				if err != nil {
					return err
				}
				return walk(ttb, at("tensor_type"), func(f field) error {
					switch f.num {
					case 1:
						et, err := f.int32(at("elem_type"))
						v.ElemType = DataType(et)
						return err
					case 2:
						sb, err := f.bytes(at("shape"))
						if err != nil {
							return err
						}
						v.HasShape = true
						if n := countFields(sb, &shapeCounts)[1]; len(v.Shape)+n > MaxRank {
							return fmt.Errorf("shape.dim: rank exceeds the limit of %d", MaxRank)
						} else if v.Shape == nil {
							v.Shape = makeCap[Dim](n)
						}
						return walk(sb, at("shape"), func(f field) error {
							if f.num != 1 {
								return nil
							}
							p := loc{"dim", len(v.Shape), true}
							db, err := f.bytes(p)
							if err != nil {
								return err
							}
							var d Dim
							err = walk(db, p, func(f field) error {
								var err error
								switch f.num {
								case 1: // dim_value and dim_param are a oneof
									d.Value, err = f.int64(at("dim_value"))
									d.Param = ""
								case 2:
									d.Param, err = f.string(at("dim_param"))
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
	if err == nil && v.Name == "" {
		// onnx.proto requires it: values are looked up by name.
		err = fmt.Errorf("%s: value without a name", where)
	}
	return v, err
}
