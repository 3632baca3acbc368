package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/internal/half"
)

// DataType is the TensorProto.DataType enum.
type DataType int32

// The element types of onnx.proto.
const (
	DataUndefined  DataType = 0
	DataFloat      DataType = 1
	DataUint8      DataType = 2
	DataInt8       DataType = 3
	DataUint16     DataType = 4
	DataInt16      DataType = 5
	DataInt32      DataType = 6
	DataInt64      DataType = 7
	DataString     DataType = 8
	DataBool       DataType = 9
	DataFloat16    DataType = 10
	DataDouble     DataType = 11
	DataUint32     DataType = 12
	DataUint64     DataType = 13
	DataComplex64  DataType = 14
	DataComplex128 DataType = 15
	DataBFloat16   DataType = 16
	DataUint4      DataType = 21
	DataInt4       DataType = 22
)

// Which typed field of TensorProto holds the values of a data type.
const (
	noField     = iota
	floatField  // float_data
	int32Field  // int32_data
	int64Field  // int64_data
	doubleField // double_data
	uint64Field // uint64_data
	stringField // string_data, not supported
)

// dataTypes is the one table of element types: name, bits per element in
// raw_data, the typed field that holds them otherwise and how many typed
// values make one element. A type is added by adding a row.
var dataTypes = map[DataType]struct {
	name  string
	bits  int
	field int
	per   int
}{
	DataFloat:      {"FLOAT", 32, floatField, 1},
	DataUint8:      {"UINT8", 8, int32Field, 1},
	DataInt8:       {"INT8", 8, int32Field, 1},
	DataUint16:     {"UINT16", 16, int32Field, 1},
	DataInt16:      {"INT16", 16, int32Field, 1},
	DataInt32:      {"INT32", 32, int32Field, 1},
	DataInt64:      {"INT64", 64, int64Field, 1},
	DataString:     {"STRING", 0, stringField, 1},
	DataBool:       {"BOOL", 8, int32Field, 1},
	DataFloat16:    {"FLOAT16", 16, int32Field, 1},
	DataDouble:     {"DOUBLE", 64, doubleField, 1},
	DataUint32:     {"UINT32", 32, uint64Field, 1},
	DataUint64:     {"UINT64", 64, uint64Field, 1},
	DataComplex64:  {"COMPLEX64", 64, floatField, 2},
	DataComplex128: {"COMPLEX128", 128, doubleField, 2},
	DataBFloat16:   {"BFLOAT16", 16, int32Field, 1},
	17:             {"FLOAT8E4M3FN", 8, int32Field, 1},
	18:             {"FLOAT8E4M3FNUZ", 8, int32Field, 1},
	19:             {"FLOAT8E5M2", 8, int32Field, 1},
	20:             {"FLOAT8E5M2FNUZ", 8, int32Field, 1},
	DataUint4:      {"UINT4", 4, noField, 1}, // raw_data only here
	DataInt4:       {"INT4", 4, noField, 1},
	23:             {"FLOAT4E2M1", 4, noField, 1},
}

func (d DataType) String() string {
	if t, ok := dataTypes[d]; ok {
		return t.name
	}
	if d == DataUndefined {
		return "UNDEFINED"
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// Tensor is a TensorProto. Exactly one of the data fields holds the
// elements in row-major order (none when there are no elements): RawData
// (little-endian, fixed width) or the typed field the data type uses.
// RawData is non-nil when the file has raw_data, even empty.
type Tensor struct {
	Name       string
	Dims       []int64
	DataType   DataType
	FloatData  []float32
	Int32Data  []int32
	Int64Data  []int64
	DoubleData []float64
	Uint64Data []uint64
	RawData    []byte

	external bool // data_location EXTERNAL: rejected by check
}

// Len is the number of elements, the product of Dims (1 for a scalar).
// It is only meaningful for a tensor that check accepted.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Dims {
		n *= int(d)
	}
	return n
}

// Shape is Dims as ints.
func (t *Tensor) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[i] = int(d)
	}
	return s
}

// check reports whether t is a tensor this package can read: a known
// element type, dims within limits, and its data in one field holding
// exactly Len elements.
func (t *Tensor) check() error {
	if len(t.Dims) > MaxRank {
		return fmt.Errorf("dims: rank %d exceeds the limit of %d", len(t.Dims), MaxRank)
	}
	n := int64(1)
	for i, d := range t.Dims {
		if d < 0 {
			return fmt.Errorf("dims[%d]: negative dimension %d", i, d)
		}
		if d != 0 && n > MaxElements/d {
			return fmt.Errorf("dims: %v has more than %d elements", t.Dims, int64(MaxElements))
		}
		n *= d
	}
	dt, ok := dataTypes[t.DataType]
	if !ok {
		return fmt.Errorf("data_type: unknown element type %d", int32(t.DataType))
	}
	if t.external {
		return fmt.Errorf("data_location: the data is stored in a separate file (external data), which is not supported")
	}
	sources := 0
	for _, has := range []bool{t.RawData != nil, len(t.FloatData) > 0, len(t.Int32Data) > 0, len(t.Int64Data) > 0,
		len(t.DoubleData) > 0, len(t.Uint64Data) > 0} {
		if has {
			sources++
		}
	}
	if sources > 1 {
		return fmt.Errorf("data: more than one of raw_data and the typed data fields is set")
	}
	if dt.field == stringField && n > 0 {
		return fmt.Errorf("data_type: STRING tensors are not supported")
	}
	if t.RawData != nil {
		want := (n*int64(dt.bits) + 7) / 8
		if int64(len(t.RawData)) != want {
			return fmt.Errorf("raw_data: %d bytes, want %d for %d %s elements %v", len(t.RawData), want, n, dt.name, t.Dims)
		}
		return nil
	}
	var got int64
	var field string
	switch dt.field {
	case floatField:
		got, field = int64(len(t.FloatData)), "float_data"
	case int32Field:
		got, field = int64(len(t.Int32Data)), "int32_data"
	case int64Field:
		got, field = int64(len(t.Int64Data)), "int64_data"
	case doubleField:
		got, field = int64(len(t.DoubleData)), "double_data"
	case uint64Field:
		got, field = int64(len(t.Uint64Data)), "uint64_data"
	default:
		if n > 0 {
			return fmt.Errorf("data: %s tensors must use raw_data", dt.name)
		}
		return nil
	}
	if sources == 1 && got == 0 {
		return fmt.Errorf("data: a %s tensor keeps its values in %s, not where this one has them", dt.name, field)
	}
	if got != n*int64(dt.per) {
		if got == 0 {
			return fmt.Errorf("data: no data for %d %s elements %v", n, dt.name, t.Dims)
		}
		return fmt.Errorf("%s: %d values, want %d for %s %v", field, got, n*int64(dt.per), dt.name, t.Dims)
	}
	return nil
}

// Float32 returns the elements of a real numeric tensor (floating-point,
// integer or BOOL; not COMPLEX, STRING or the 8- and 4-bit float formats)
// converted to float32.
func (t *Tensor) Float32() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	switch t.DataType {
	case DataComplex64, DataComplex128, DataString, 17, 18, 19, 20, 23:
		return nil, fmt.Errorf("tensor %q: %s elements are not real numbers this package converts", t.Name, t.DataType)
	}
	out := make([]float32, t.Len())
	if t.RawData == nil {
		switch {
		case len(t.FloatData) > 0:
			copy(out, t.FloatData)
		case len(t.DoubleData) > 0:
			for i, v := range t.DoubleData {
				out[i] = float32(v)
			}
		case len(t.Int64Data) > 0:
			for i, v := range t.Int64Data {
				out[i] = float32(v)
			}
		case len(t.Uint64Data) > 0:
			for i, v := range t.Uint64Data {
				out[i] = float32(v)
			}
		case len(t.Int32Data) > 0:
			for i, v := range t.Int32Data {
				switch t.DataType {
				case DataFloat16:
					out[i] = half.Float16ToFloat32(uint16(v))
				case DataBFloat16:
					out[i] = half.BFloat16ToFloat32(uint16(v))
				default:
					out[i] = float32(v)
				}
			}
		}
		return out, nil
	}
	raw := t.RawData
	le := binary.LittleEndian
	for i := range out {
		switch t.DataType {
		case DataFloat:
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		case DataDouble:
			out[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		case DataInt8:
			out[i] = float32(int8(raw[i]))
		case DataUint8, DataBool:
			out[i] = float32(raw[i])
		case DataInt16:
			out[i] = float32(int16(le.Uint16(raw[2*i:])))
		case DataUint16:
			out[i] = float32(le.Uint16(raw[2*i:]))
		case DataInt32:
			out[i] = float32(int32(le.Uint32(raw[4*i:])))
		case DataUint32:
			out[i] = float32(le.Uint32(raw[4*i:]))
		case DataInt64:
			out[i] = float32(int64(le.Uint64(raw[8*i:])))
		case DataUint64:
			out[i] = float32(le.Uint64(raw[8*i:]))
		case DataFloat16:
			out[i] = half.Float16ToFloat32(le.Uint16(raw[2*i:]))
		case DataBFloat16:
			out[i] = half.BFloat16ToFloat32(le.Uint16(raw[2*i:]))
		case DataInt4:
			out[i] = float32(int8(raw[i/2]>>(4*(i%2))<<4) >> 4)
		case DataUint4:
			out[i] = float32(raw[i/2] >> (4 * (i % 2)) & 15)
		}
	}
	return out, nil
}

// Int64 returns the elements of an integer or BOOL tensor.
func (t *Tensor) Int64() ([]int64, error) {
	switch t.DataType {
	case DataInt8, DataUint8, DataInt16, DataUint16, DataInt32, DataUint32, DataInt64, DataUint64, DataBool,
		DataInt4, DataUint4:
	default:
		return nil, fmt.Errorf("tensor %q: %s elements are not integers", t.Name, t.DataType)
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	out := make([]int64, t.Len())
	if t.RawData == nil {
		switch {
		case len(t.Int64Data) > 0:
			copy(out, t.Int64Data)
		case len(t.Uint64Data) > 0:
			for i, v := range t.Uint64Data {
				out[i] = int64(v)
			}
		default:
			for i, v := range t.Int32Data {
				out[i] = int64(v)
			}
		}
		return out, nil
	}
	raw := t.RawData
	le := binary.LittleEndian
	for i := range out {
		switch t.DataType {
		case DataInt8:
			out[i] = int64(int8(raw[i]))
		case DataUint8, DataBool:
			out[i] = int64(raw[i])
		case DataInt16:
			out[i] = int64(int16(le.Uint16(raw[2*i:])))
		case DataUint16:
			out[i] = int64(le.Uint16(raw[2*i:]))
		case DataInt32:
			out[i] = int64(int32(le.Uint32(raw[4*i:])))
		case DataUint32:
			out[i] = int64(le.Uint32(raw[4*i:]))
		case DataInt64, DataUint64:
			out[i] = int64(le.Uint64(raw[8*i:]))
		case DataInt4:
			out[i] = int64(int8(raw[i/2]>>(4*(i%2))<<4) >> 4)
		case DataUint4:
			out[i] = int64(raw[i/2] >> (4 * (i % 2)) & 15)
		}
	}
	return out, nil
}

// NewFloat is a FLOAT tensor holding v (which it keeps in raw_data, as
// onnx's numpy_helper writes tensors).
func NewFloat(name string, dims []int64, v []float32) *Tensor {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &Tensor{Name: name, Dims: dims, DataType: DataFloat, RawData: raw}
}

// NewInt8 is an INT8 tensor holding v.
func NewInt8(name string, dims []int64, v []int8) *Tensor {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return &Tensor{Name: name, Dims: dims, DataType: DataInt8, RawData: raw}
}

// NewUint8 is a UINT8 tensor holding v.
func NewUint8(name string, dims []int64, v []uint8) *Tensor {
	return &Tensor{Name: name, Dims: dims, DataType: DataUint8, RawData: append([]byte{}, v...)}
}

// NewInt64 is an INT64 tensor holding v.
func NewInt64(name string, dims []int64, v []int64) *Tensor {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return &Tensor{Name: name, Dims: dims, DataType: DataInt64, RawData: raw}
}
