package gguf

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Limits on what Open accepts (and Create writes, so that whatever is
// written can be read back).
const (
	// MaxStringLen bounds the length in bytes of a key or string value.
	MaxStringLen = 1 << 20
	// MaxArrayLen bounds the number of elements of an array value.
	MaxArrayLen = 1 << 24
	// MaxArrayDepth bounds the nesting of arrays: 1 for an array of
	// scalars, 2 for an array of arrays of scalars...
	MaxArrayDepth = 8
	// MaxDims is ggml's GGML_MAX_DIMS.
	MaxDims = 4
	// MaxTensors bounds the number of tensors.
	MaxTensors = 1 << 20
	// MaxKVs bounds the number of metadata key/value pairs.
	MaxKVs = 1 << 20
	// MaxTensorNameLen is ggml's GGML_MAX_NAME less its NUL.
	MaxTensorNameLen = 63
)

// magic starts every GGUF file; Version is the version written.
const (
	magic   = "GGUF"
	Version = 3
)

// headerMin is the size of magic, version and the two counts.
const headerMin = 4 + 4 + 8 + 8

// Fewest bytes a metadata pair (empty key, type, a 1-byte value) and a
// tensor info (empty name, no dims, type, offset) take in a file.
const (
	minKVSize     = 8 + 4 + 1
	minTensorSize = 8 + 4 + 4 + 8
)

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name string
	Type Type
	// Dims are the dimensions in ggml order: Dims[0] (ne[0]) is the
	// innermost, contiguous one, the length of a row. Shape gives them
	// outermost first.
	Dims []int
	// Offset is where the data starts, relative to the data section
	// (File.DataOffset in the file), and Size its length in bytes. Create
	// ignores both and computes them.
	Offset, Size int64
}

// Shape returns the dimensions outermost first (row-major, as numpy and
// safetensors give them): Dims reversed.
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = d
	}
	return s
}

// Len is the number of elements, the product of Dims (1 for no dims).
func (t TensorInfo) Len() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

func (t TensorInfo) clone() TensorInfo {
	t.Dims = slices.Clone(t.Dims)
	return t
}

// tensorSize returns the size in bytes of a tensor of type typ and dims,
// checking what ggml checks: a known type, at most MaxDims non-negative
// dims whose product and size in bytes fit an int64, and rows of whole
// blocks.
func tensorSize(typ Type, dims []int) (int64, error) {
	tt := typ.traits()
	if tt == nil {
		return 0, fmt.Errorf("unknown %v", typ)
	}
	if len(dims) > MaxDims {
		return 0, fmt.Errorf("%d dimensions, more than %d", len(dims), MaxDims)
	}
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("dims %v: negative dimension", dims)
		}
		if d != 0 && n > math.MaxInt64/int64(d) {
			return 0, fmt.Errorf("dims %v: element count overflows", dims)
		}
		n *= int64(d)
	}
	row := 1 // ggml takes missing dims as 1: no dims is one element
	if len(dims) > 0 {
		row = dims[0]
	}
	if row%tt.blockSize != 0 {
		return 0, fmt.Errorf("%s rows of %d elements (dims[0]) are not a multiple of the block size %d", tt.name, row, tt.blockSize)
	}
	blocks := n / int64(tt.blockSize)
	if blocks > math.MaxInt64/int64(tt.typeSize) {
		return 0, fmt.Errorf("dims %v: size in bytes overflows", dims)
	}
	return blocks * int64(tt.typeSize), nil
}

func alignUp(n, align int64) int64 { return (n + align - 1) &^ (align - 1) }

// header is a parsed and validated header.
type header struct {
	version    uint32
	meta       Metadata
	tensors    []TensorInfo // in header order
	alignment  int64
	dataOffset int64 // where the data section starts in the file
}

// decoder reads little-endian values from a whole file held in b.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) left() int { return len(d.b) - d.off }

// take returns the next n bytes, or an error saying the file is truncated.
func (d *decoder) take(n uint64, what string) ([]byte, error) {
	if n > uint64(d.left()) {
		return nil, fmt.Errorf("truncated: %s at byte %d needs %d bytes, the file has %d", what, d.off, n, d.left())
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	b, err := d.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	b, err := d.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a string of at most max bytes.
func (d *decoder) str(what string, max int) (string, error) {
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(max) {
		return "", fmt.Errorf("%s of %d bytes exceeds the limit of %d", what, n, max)
	}
	b, err := d.take(n, what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// count reads an element count, checking it against limit and against the
// bytes left in the file at minSize bytes an element, before anything is
// allocated for it.
func (d *decoder) count(what string, limit uint64, minSize int) (int, error) {
	n, err := d.u64(what + " count")
	if err != nil {
		return 0, err
	}
	if n > limit {
		return 0, fmt.Errorf("%s count %d exceeds the limit of %d", what, n, limit)
	}
	if hi, lo := bits.Mul64(n, uint64(minSize)); hi != 0 || lo > uint64(d.left()) {
		return 0, fmt.Errorf("truncated: %d %ss need at least %d bytes, the file has %d after byte %d", n, what, n*uint64(minSize), d.left(), d.off)
	}
	return int(n), nil
}

// value reads a value of type t, nested in depth arrays.
func (d *decoder) value(t ValueType, depth int) (any, error) {
	if !t.known() {
		return nil, fmt.Errorf("unknown %v", t)
	}
	switch t {
	case ValueString:
		return d.str("string", MaxStringLen)
	case ValueArray:
		return d.array(depth + 1)
	}
	b, err := d.take(uint64(valueTypes[t].size), t.String()+" value")
	if err != nil {
		return nil, err
	}
	return scalar(t, b)
}

// scalar decodes a fixed-size value of type t from b.
func scalar(t ValueType, b []byte) (any, error) {
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return b[0], nil
	case ValueInt8:
		return int8(b[0]), nil
	case ValueUint16:
		return le.Uint16(b), nil
	case ValueInt16:
		return int16(le.Uint16(b)), nil
	case ValueUint32:
		return le.Uint32(b), nil
	case ValueInt32:
		return int32(le.Uint32(b)), nil
	case ValueFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case ValueBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("bool value %d is neither 0 nor 1", b[0])
		}
		return b[0] == 1, nil
	case ValueUint64:
		return le.Uint64(b), nil
	case ValueInt64:
		return int64(le.Uint64(b)), nil
	case ValueFloat64:
		return math.Float64frombits(le.Uint64(b)), nil
	}
	panic("gguf: scalar of " + t.String())
}

// fixed decodes n elements of size bytes each with get.
func fixed[T any](d *decoder, n, size int, what string, get func([]byte) T) ([]T, error) {
	b, err := d.take(uint64(n)*uint64(size), what)
	if err != nil {
		return nil, err
	}
	out := make([]T, n)
	for i := range out {
		out[i] = get(b[i*size:])
	}
	return out, nil
}

// array reads an array's element type, count and elements; depth counts
// this array.
func (d *decoder) array(depth int) (any, error) {
	if depth > MaxArrayDepth {
		return nil, fmt.Errorf("arrays nested more than %d deep", MaxArrayDepth)
	}
	raw, err := d.u32("array element type")
	if err != nil {
		return nil, err
	}
	et := ValueType(raw)
	if !et.known() {
		return nil, fmt.Errorf("array of unknown %v", et)
	}
	n, err := d.count("array element", MaxArrayLen, et.minSize())
	if err != nil {
		return nil, fmt.Errorf("array of %s: %w", et, err)
	}
	le := binary.LittleEndian
	what := "array of " + et.String()
	switch et {
	case ValueUint8:
		return fixed(d, n, 1, what, func(b []byte) uint8 { return b[0] })
	case ValueInt8:
		return fixed(d, n, 1, what, func(b []byte) int8 { return int8(b[0]) })
	case ValueUint16:
		return fixed(d, n, 2, what, le.Uint16)
	case ValueInt16:
		return fixed(d, n, 2, what, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case ValueUint32:
		return fixed(d, n, 4, what, le.Uint32)
	case ValueInt32:
		return fixed(d, n, 4, what, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case ValueFloat32:
		return fixed(d, n, 4, what, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case ValueBool:
		b, err := d.take(uint64(n), what)
		if err != nil {
			return nil, err
		}
		out := make([]bool, n)
		for i, v := range b {
			if v > 1 {
				return nil, fmt.Errorf("array of bool: element %d is %d, neither 0 nor 1", i, v)
			}
			out[i] = v == 1
		}
		return out, nil
	case ValueUint64:
		return fixed(d, n, 8, what, le.Uint64)
	case ValueInt64:
		return fixed(d, n, 8, what, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case ValueFloat64:
		return fixed(d, n, 8, what, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	case ValueString:
		out := make([]string, n)
		for i := range out {
			if out[i], err = d.str("string", MaxStringLen); err != nil {
				return nil, fmt.Errorf("array of string: element %d: %w", i, err)
			}
		}
		return out, nil
	case ValueArray:
		out := make([]any, n)
		for i := range out {
			if out[i], err = d.array(depth + 1); err != nil {
				return nil, fmt.Errorf("array of array: element %d: %w", i, err)
			}
		}
		return out, nil
	}
	panic("gguf: array of " + et.String())
}

// parseHeader parses and validates the header of the file held in data,
// and every tensor's place in it.
func parseHeader(data []byte) (*header, error) {
	if len(data) < 4 || string(data[:4]) != magic {
		if len(data) < 4 {
			return nil, fmt.Errorf("not a GGUF file: %d bytes, too short for the magic %q", len(data), magic)
		}
		return nil, fmt.Errorf("not a GGUF file: magic %q, want %q", data[:4], magic)
	}
	d := &decoder{b: data, off: 4}
	h := &header{}
	var err error
	if h.version, err = d.u32("version"); err != nil {
		return nil, err
	}
	switch {
	case h.version == 2 || h.version == 3:
	case h.version&0xffff == 0 && bits.ReverseBytes32(h.version) <= 3:
		return nil, fmt.Errorf("version %#08x is a byte-swapped %d: big-endian files are not supported", h.version, bits.ReverseBytes32(h.version))
	case h.version == 1:
		return nil, fmt.Errorf("version 1 is not supported (only versions 2 and 3; version 1 files predate 64-bit counts and are no longer written)")
	default:
		return nil, fmt.Errorf("version %d is not supported (only versions 2 and 3)", h.version)
	}
	if len(data) < headerMin {
		return nil, fmt.Errorf("truncated: the header needs %d bytes, the file has %d", headerMin, len(data))
	}
	nTensors, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	if nTensors > MaxTensors {
		return nil, fmt.Errorf("tensor count %d exceeds the limit of %d", nTensors, MaxTensors)
	}
	nKV, err := d.count("metadata pair", MaxKVs, minKVSize)
	if err != nil {
		return nil, err
	}
	if hi, lo := bits.Mul64(nTensors, minTensorSize); hi != 0 || lo > uint64(d.left()) {
		return nil, fmt.Errorf("truncated: %d tensor infos need at least %d bytes, the file has %d after byte %d", nTensors, lo, d.left(), d.off)
	}

	h.meta = make(Metadata, 0, nKV)
	keys := make(map[string]bool, nKV)
	for i := range nKV {
		key, err := d.str("key", MaxStringLen)
		if err != nil {
			return nil, fmt.Errorf("metadata pair %d of %d: %w", i, nKV, err)
		}
		if keys[key] {
			return nil, fmt.Errorf("metadata key %q appears twice", key)
		}
		keys[key] = true
		t, err := d.u32("value type")
		if err != nil {
			return nil, fmt.Errorf("metadata key %q: %w", key, err)
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata key %q: %w", key, err)
		}
		h.meta = append(h.meta, KV{key, v})
	}
	if h.alignment, err = alignmentOf(h.meta); err != nil {
		return nil, err
	}

	h.tensors = make([]TensorInfo, 0, nTensors)
	names := make(map[string]bool, nTensors)
	for i := range int(nTensors) {
		t, err := d.tensorInfo()
		if err != nil {
			if t.Name == "" {
				return nil, fmt.Errorf("tensor info %d of %d: %w", i, nTensors, err)
			}
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		names[t.Name] = true
		h.tensors = append(h.tensors, t)
	}

	h.dataOffset = alignUp(int64(d.off), h.alignment)
	if h.dataOffset > int64(len(data)) {
		return nil, fmt.Errorf("truncated: the data section starts at byte %d (the header ends at %d, aligned to %d), past the end of the file at %d", h.dataOffset, d.off, h.alignment, len(data))
	}
	if err := checkLayout(h.tensors, h.alignment, int64(len(data))-h.dataOffset); err != nil {
		return nil, err
	}
	return h, nil
}

// tensorInfo reads one tensor info and computes its size. On an error
// after the name, the returned TensorInfo holds the name.
func (d *decoder) tensorInfo() (TensorInfo, error) {
	var t TensorInfo
	name, err := d.str("name", MaxStringLen)
	if err != nil {
		return t, err
	}
	t.Name = name
	if len(name) > MaxTensorNameLen {
		return t, fmt.Errorf("name of %d bytes exceeds ggml's limit of %d", len(name), MaxTensorNameLen)
	}
	nDims, err := d.u32("n_dims")
	if err != nil {
		return t, err
	}
	if nDims > MaxDims {
		return t, fmt.Errorf("%d dimensions, more than %d", nDims, MaxDims)
	}
	t.Dims = make([]int, nDims)
	for j := range t.Dims {
		v, err := d.u64("dimension")
		if err != nil {
			return t, err
		}
		if v > math.MaxInt {
			return t, fmt.Errorf("dimension %d is %d, too large", j, v)
		}
		t.Dims[j] = int(v)
	}
	typ, err := d.u32("type")
	if err != nil {
		return t, err
	}
	t.Type = Type(typ)
	off, err := d.u64("offset")
	if err != nil {
		return t, err
	}
	if off > math.MaxInt64 {
		return t, fmt.Errorf("offset %d is too large", off)
	}
	t.Offset = int64(off)
	if t.Size, err = tensorSize(t.Type, t.Dims); err != nil {
		return t, err
	}
	return t, nil
}

// checkLayout checks that every tensor is aligned, lies in a data section
// of dataLen bytes and overlaps no other. Empty tensors share no bytes with
// anything.
func checkLayout(ts []TensorInfo, align, dataLen int64) error {
	for _, t := range ts {
		if t.Offset%align != 0 {
			return fmt.Errorf("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, align)
		}
		if t.Offset > dataLen || t.Size > dataLen-t.Offset {
			return fmt.Errorf("tensor %q: data [%d, %d) of the data section lies past its end at %d (truncated file?)", t.Name, t.Offset, uint64(t.Offset)+uint64(t.Size), dataLen)
		}
	}
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(ts[a].Offset, ts[b].Offset), cmp.Compare(ts[a].Size, ts[b].Size), cmp.Compare(a, b))
	})
	last := -1 // the non-empty tensor reaching furthest so far
	for _, i := range order {
		t := ts[i]
		if t.Size == 0 {
			continue
		}
		if last >= 0 && t.Offset < ts[last].Offset+ts[last].Size {
			p := ts[last]
			return fmt.Errorf("tensors %q [%d, %d) and %q [%d, %d) overlap", p.Name, p.Offset, p.Offset+p.Size, t.Name, t.Offset, t.Offset+t.Size)
		}
		if last < 0 || t.Offset+t.Size > ts[last].Offset+ts[last].Size {
			last = i
		}
	}
	return nil
}
