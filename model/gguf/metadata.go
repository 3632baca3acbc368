package gguf

import (
	"fmt"
	"math"
	"slices"
)

// ValueType is the type of a metadata value (enum gguf_type).
type ValueType uint32

// The metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

// valueTypes gives each value type its name (that of the Go type holding
// it) and its size in bytes in a file, 0 for the variable-sized ones.
var valueTypes = [...]struct {
	name string
	size int
}{
	ValueUint8:   {"uint8", 1},
	ValueInt8:    {"int8", 1},
	ValueUint16:  {"uint16", 2},
	ValueInt16:   {"int16", 2},
	ValueUint32:  {"uint32", 4},
	ValueInt32:   {"int32", 4},
	ValueFloat32: {"float32", 4},
	ValueBool:    {"bool", 1},
	ValueString:  {"string", 0},
	ValueArray:   {"array", 0},
	ValueUint64:  {"uint64", 8},
	ValueInt64:   {"int64", 8},
	ValueFloat64: {"float64", 8},
}

func (t ValueType) known() bool { return int(t) < len(valueTypes) }

// String returns the name of the Go type that holds values of type t
// ("uint32", "string", "array").
func (t ValueType) String() string {
	if t.known() {
		return valueTypes[t].name
	}
	return fmt.Sprintf("value type %d", uint32(t))
}

// minSize is the fewest bytes a value of type t takes in a file: its size,
// 8 for a string's length, 12 for an array's element type and count.
func (t ValueType) minSize() int {
	switch t {
	case ValueString:
		return 8
	case ValueArray:
		return 12
	}
	return valueTypes[t].size
}

// KV is one metadata key/value pair. Value holds one of the Go types
// uint8, int8, uint16, int16, uint32, int32, float32, bool, string,
// uint64, int64 and float64 for a scalar, and a slice of one of them for
// an array of it; an array of arrays is a []any whose elements are such
// slices (or []any again, MaxArrayDepth levels in all). The Go type is the
// type in the file: an int, or a uint32 where the file has a uint64, is
// not the same value.
type KV struct {
	Key   string
	Value any
}

// Metadata is a file's key/value pairs, in file order.
type Metadata []KV

// Well-known metadata keys.
const (
	// KeyAlignment is the uint32 alignment of the tensor data.
	KeyAlignment = "general.alignment"
	// KeyArchitecture names the model architecture ("llama").
	KeyArchitecture = "general.architecture"
)

// DefaultAlignment is the alignment of files without KeyAlignment.
const DefaultAlignment = 32

// ValueTypeOf returns the GGUF type of a Go value that KV can hold, and
// false for any other (such as int, []int or a []any holding a scalar).
func ValueTypeOf(v any) (ValueType, bool) {
	t, _, err := typeOf(v, 0)
	return t, err == nil
}

// typeOf returns the type of v and, for an array, the type of its
// elements, checking the whole value (string lengths, array lengths and
// nesting) against the limits the reader applies. depth is the number of
// arrays v is nested in.
func typeOf(v any, depth int) (t, elem ValueType, err error) {
	switch v := v.(type) {
	case uint8:
		return ValueUint8, 0, nil
	case int8:
		return ValueInt8, 0, nil
	case uint16:
		return ValueUint16, 0, nil
	case int16:
		return ValueInt16, 0, nil
	case uint32:
		return ValueUint32, 0, nil
	case int32:
		return ValueInt32, 0, nil
	case float32:
		return ValueFloat32, 0, nil
	case bool:
		return ValueBool, 0, nil
	case string:
		if len(v) > MaxStringLen {
			return 0, 0, fmt.Errorf("string of %d bytes exceeds the limit of %d", len(v), MaxStringLen)
		}
		return ValueString, 0, nil
	case uint64:
		return ValueUint64, 0, nil
	case int64:
		return ValueInt64, 0, nil
	case float64:
		return ValueFloat64, 0, nil
	}
	if depth+1 > MaxArrayDepth {
		return 0, 0, fmt.Errorf("arrays nested more than %d deep", MaxArrayDepth)
	}
	n := 0
	switch v := v.(type) {
	case []uint8:
		n, elem = len(v), ValueUint8
	case []int8:
		n, elem = len(v), ValueInt8
	case []uint16:
		n, elem = len(v), ValueUint16
	case []int16:
		n, elem = len(v), ValueInt16
	case []uint32:
		n, elem = len(v), ValueUint32
	case []int32:
		n, elem = len(v), ValueInt32
	case []float32:
		n, elem = len(v), ValueFloat32
	case []bool:
		n, elem = len(v), ValueBool
	case []string:
		n, elem = len(v), ValueString
		for i, s := range v {
			if len(s) > MaxStringLen {
				return 0, 0, fmt.Errorf("element %d: string of %d bytes exceeds the limit of %d", i, len(s), MaxStringLen)
			}
		}
	case []uint64:
		n, elem = len(v), ValueUint64
	case []int64:
		n, elem = len(v), ValueInt64
	case []float64:
		n, elem = len(v), ValueFloat64
	case []any:
		n, elem = len(v), ValueArray
		for i, e := range v {
			et, _, err := typeOf(e, depth+1)
			if err != nil {
				return 0, 0, fmt.Errorf("element %d: %w", i, err)
			}
			if et != ValueArray {
				return 0, 0, fmt.Errorf("element %d is a %s: the elements of a []any must be arrays (use a typed slice for an array of %[2]ss)", i, et)
			}
		}
	default:
		return 0, 0, fmt.Errorf("Go type %T has no GGUF type (use uint8…int64, float32, float64, bool, string, or a slice of one, or []any of slices)", v)
	}
	if n > MaxArrayLen {
		return 0, 0, fmt.Errorf("array of %d elements exceeds the limit of %d", n, MaxArrayLen)
	}
	return ValueArray, elem, nil
}

// Value returns the value of key.
func (m Metadata) Value(key string) (any, bool) {
	for _, kv := range m {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Get returns the value of key if it has Go type T.
func Get[T any](m Metadata, key string) (T, bool) {
	v, _ := m.Value(key)
	t, ok := v.(T)
	return t, ok
}

// String returns the value of key if it is a string.
func (m Metadata) String(key string) (string, bool) { return Get[string](m, key) }

// Uint32 returns the value of key if it is a uint32.
func (m Metadata) Uint32(key string) (uint32, bool) { return Get[uint32](m, key) }

// Uint64 returns the value of key if it is a uint64.
func (m Metadata) Uint64(key string) (uint64, bool) { return Get[uint64](m, key) }

// Float32 returns the value of key if it is a float32.
func (m Metadata) Float32(key string) (float32, bool) { return Get[float32](m, key) }

// Bool returns the value of key if it is a bool.
func (m Metadata) Bool(key string) (bool, bool) { return Get[bool](m, key) }

// Strings returns the value of key if it is an array of strings.
func (m Metadata) Strings(key string) ([]string, bool) { return Get[[]string](m, key) }

// Int returns the value of key if it is an integer of any type whose
// value fits an int64 (files differ in which integer type they use for
// counts such as "llama.context_length").
func (m Metadata) Int(key string) (int64, bool) {
	v, _ := m.Value(key)
	return asInt(v)
}

func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case uint8:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case int16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case int32:
		return int64(v), true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	case int64:
		return v, true
	}
	return 0, false
}

// Clone returns a deep copy of m: no slice of the copy shares memory with m.
func (m Metadata) Clone() Metadata {
	if m == nil {
		return nil
	}
	out := make(Metadata, len(m))
	for i, kv := range m {
		out[i] = KV{kv.Key, cloneValue(kv.Value)}
	}
	return out
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case []uint8:
		return slices.Clone(v)
	case []int8:
		return slices.Clone(v)
	case []uint16:
		return slices.Clone(v)
	case []int16:
		return slices.Clone(v)
	case []uint32:
		return slices.Clone(v)
	case []int32:
		return slices.Clone(v)
	case []float32:
		return slices.Clone(v)
	case []bool:
		return slices.Clone(v)
	case []string:
		return slices.Clone(v)
	case []uint64:
		return slices.Clone(v)
	case []int64:
		return slices.Clone(v)
	case []float64:
		return slices.Clone(v)
	case []any:
		if v == nil {
			return v
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}

// alignmentOf returns the alignment that m declares, checking that
// KeyAlignment, where present, is a uint32 power of two as ggml requires.
func alignmentOf(m Metadata) (int64, error) {
	v, ok := m.Value(KeyAlignment)
	if !ok {
		return DefaultAlignment, nil
	}
	a, ok := v.(uint32)
	if !ok {
		t, _ := ValueTypeOf(v)
		return 0, fmt.Errorf("metadata key %q: %s, want uint32", KeyAlignment, describeType(v, t))
	}
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("metadata key %q: alignment %d is not a power of two", KeyAlignment, a)
	}
	return int64(a), nil
}

func describeType(v any, t ValueType) string {
	if _, ok := ValueTypeOf(v); !ok {
		return fmt.Sprintf("Go type %T", v)
	}
	return "type " + t.String()
}
