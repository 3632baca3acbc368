package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/quantkit/quantkit/internal/half"
)

// Type is a ggml tensor type, the value of enum ggml_type stored in a
// tensor info.
type Type uint32

// The ggml tensor types. Ids missing from the list were removed from ggml
// (Q4_2 4, Q4_3 5, Q4_0_4_4 31, Q4_0_4_8 32, Q4_0_8_8 33, IQ4_NL_4_4 36,
// IQ4_NL_4_8 37, IQ4_NL_8_8 38) and are rejected.
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
	TypeTQ1_0   Type = 34
	TypeTQ2_0   Type = 35
	TypeMXFP4   Type = 39
)

// typeTraits is one row of the table of tensor types, after ggml's
// type_traits: the name, elements per block, bytes per block, and the
// conversions of whole blocks to and from float32 (nil where this package
// has none). Add a type by adding a row.
type typeTraits struct {
	name      string
	blockSize int
	typeSize  int
	toFloat   func(dst []float32, src []byte) // len(dst) whole blocks
	fromFloat func(dst []byte, src []float32) // len(src) whole blocks
}

// types is indexed by Type; rows with an empty name are ids ggml does not
// (or no longer) define. Block layouts are ggml-common.h's.
var types = [...]typeTraits{
	TypeF32:     {"F32", 1, 4, decodeF32, encodeF32},
	TypeF16:     {"F16", 1, 2, decodeF16, encodeF16},
	TypeQ4_0:    {"Q4_0", QK4_0, blockQ4_0Size, DequantizeQ4_0, QuantizeQ4_0},
	TypeQ4_1:    {"Q4_1", QK4_1, blockQ4_1Size, DequantizeQ4_1, QuantizeQ4_1},
	TypeQ5_0:    {"Q5_0", QK5_0, blockQ5_0Size, DequantizeQ5_0, QuantizeQ5_0},
	TypeQ5_1:    {"Q5_1", QK5_1, blockQ5_1Size, DequantizeQ5_1, QuantizeQ5_1},
	TypeQ8_0:    {"Q8_0", QK8_0, blockQ8_0Size, DequantizeQ8_0, QuantizeQ8_0},
	TypeQ8_1:    {"Q8_1", 32, 36, nil, nil},
	TypeQ2_K:    {"Q2_K", QK_K, blockQ2_KSize, DequantizeQ2_K, QuantizeQ2_K},
	TypeQ3_K:    {"Q3_K", QK_K, blockQ3_KSize, DequantizeQ3_K, QuantizeQ3_K},
	TypeQ4_K:    {"Q4_K", QK_K, blockQ4_KSize, DequantizeQ4_K, QuantizeQ4_K},
	TypeQ5_K:    {"Q5_K", QK_K, blockQ5_KSize, DequantizeQ5_K, QuantizeQ5_K},
	TypeQ6_K:    {"Q6_K", QK_K, blockQ6_KSize, DequantizeQ6_K, QuantizeQ6_K},
	TypeQ8_K:    {"Q8_K", 256, 292, nil, nil},
	TypeIQ2_XXS: {"IQ2_XXS", 256, 66, nil, nil},
	TypeIQ2_XS:  {"IQ2_XS", 256, 74, nil, nil},
	TypeIQ3_XXS: {"IQ3_XXS", 256, 98, nil, nil},
	TypeIQ1_S:   {"IQ1_S", 256, 50, nil, nil},
	TypeIQ4_NL:  {"IQ4_NL", 32, 18, nil, nil},
	TypeIQ3_S:   {"IQ3_S", 256, 110, nil, nil},
	TypeIQ2_S:   {"IQ2_S", 256, 82, nil, nil},
	TypeIQ4_XS:  {"IQ4_XS", 256, 136, nil, nil},
	TypeI8:      {"I8", 1, 1, decodeI8, nil},
	TypeI16:     {"I16", 1, 2, decodeI16, nil},
	TypeI32:     {"I32", 1, 4, decodeI32, nil},
	TypeI64:     {"I64", 1, 8, decodeI64, nil},
	TypeF64:     {"F64", 1, 8, decodeF64, nil},
	TypeIQ1_M:   {"IQ1_M", 256, 56, nil, nil},
	TypeBF16:    {"BF16", 1, 2, decodeBF16, encodeBF16},
	TypeTQ1_0:   {"TQ1_0", 256, 54, nil, nil},
	TypeTQ2_0:   {"TQ2_0", 256, 66, nil, nil},
	TypeMXFP4:   {"MXFP4", 32, 17, nil, nil},
}

// removedTypes names the ids ggml has removed, for error messages.
var removedTypes = map[Type]string{
	4: "Q4_2", 5: "Q4_3", 31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",
	36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8", 38: "IQ4_NL_8_8",
}

func (t Type) traits() *typeTraits {
	if int(t) < len(types) && types[t].name != "" {
		return &types[t]
	}
	return nil
}

// Known reports whether t is a ggml type this package knows the layout of.
func (t Type) Known() bool { return t.traits() != nil }

// String returns ggml's name of the type ("Q8_0"), or a description of an
// unknown id ("type 4 (Q4_2, removed from ggml)", "type 99").
func (t Type) String() string {
	if tt := t.traits(); tt != nil {
		return tt.name
	}
	if name, ok := removedTypes[t]; ok {
		return fmt.Sprintf("type %d (%s, removed from ggml)", uint32(t), name)
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// BlockSize is the number of elements in one block (1 for plain types, 0
// for unknown ones).
func (t Type) BlockSize() int {
	if tt := t.traits(); tt != nil {
		return tt.blockSize
	}
	return 0
}

// TypeSize is the size in bytes of one block (0 for unknown types).
func (t Type) TypeSize() int {
	if tt := t.traits(); tt != nil {
		return tt.typeSize
	}
	return 0
}

// CanDecode reports whether DecodeFloat32 (and File.Float32) converts t.
func (t Type) CanDecode() bool { tt := t.traits(); return tt != nil && tt.toFloat != nil }

// CanEncode reports whether EncodeFloat32 converts to t.
func (t Type) CanEncode() bool { tt := t.traits(); return tt != nil && tt.fromFloat != nil }

// RowSize returns the size in bytes of n elements of type t, as ggml's
// ggml_row_size; it fails if t is unknown or n is negative or not a whole
// number of blocks.
func (t Type) RowSize(n int64) (int64, error) {
	tt := t.traits()
	if tt == nil {
		return 0, fmt.Errorf("unknown %v", t)
	}
	if n < 0 {
		return 0, fmt.Errorf("%s: negative element count %d", t, n)
	}
	if n%int64(tt.blockSize) != 0 {
		return 0, fmt.Errorf("%s: %d elements are not a multiple of the block size %d", t, n, tt.blockSize)
	}
	return n / int64(tt.blockSize) * int64(tt.typeSize), nil
}

// ParseType returns the type named name (ggml's name, any case).
func ParseType(name string) (Type, bool) {
	for i := range types {
		if types[i].name != "" && strings.EqualFold(types[i].name, name) {
			return Type(i), true
		}
	}
	return 0, false
}

func typeNames(ok func(*typeTraits) bool) string {
	var names []string
	for i := range types {
		if types[i].name != "" && ok(&types[i]) {
			names = append(names, types[i].name)
		}
	}
	return strings.Join(names, " ")
}

// DecodeFloat32 converts len(dst) elements of type t from src to float32,
// as File.Float32 does; use it to convert a tensor a block of rows at a
// time. It fails if t has no conversion, len(dst) is not a whole number of
// blocks or src holds fewer than len(dst) elements.
func DecodeFloat32(dst []float32, src []byte, t Type) error {
	tt := t.traits()
	if tt == nil || tt.toFloat == nil {
		return fmt.Errorf("gguf: conversion of %v to float32 not supported (supported: %s)", t, typeNames(func(tt *typeTraits) bool { return tt.toFloat != nil }))
	}
	size, err := t.RowSize(int64(len(dst)))
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if int64(len(src)) < size {
		return fmt.Errorf("gguf: %d bytes of %s hold fewer than %d elements", len(src), t, len(dst))
	}
	tt.toFloat(dst, src[:size])
	return nil
}

// EncodeFloat32 converts src to len(src) elements of type t in dst (the
// first RowSize(len(src)) bytes of it). It fails if t has no conversion,
// len(src) is not a whole number of blocks or dst is too short.
func EncodeFloat32(dst []byte, src []float32, t Type) error {
	tt := t.traits()
	if tt == nil || tt.fromFloat == nil {
		return fmt.Errorf("gguf: conversion of float32 to %v not supported (supported: %s)", t, typeNames(func(tt *typeTraits) bool { return tt.fromFloat != nil }))
	}
	size, err := t.RowSize(int64(len(src)))
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if int64(len(dst)) < size {
		return fmt.Errorf("gguf: %d elements of %s need %d bytes, dst has %d", len(src), t, size, len(dst))
	}
	tt.fromFloat(dst[:size], src)
	return nil
}

func decodeF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func encodeF32(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func decodeBF16(dst []float32, src []byte) { half.DecodeBFloat16(dst, src, binary.LittleEndian) }

// decodeF16 is ggml's ggml_fp16_to_fp32_row: exact, and a NaN keeps its
// payload but comes back quiet (ggml's conversion ends in a multiplication,
// which quiets a signaling NaN; internal/half keeps it signaling).
func decodeF16(dst []float32, src []byte) {
	half.DecodeFloat16(dst, src, binary.LittleEndian)
	for i, v := range dst {
		if v != v {
			dst[i] = math.Float32frombits(math.Float32bits(v) | 0x400000)
		}
	}
}

// encodeF16 is ggml's ggml_fp32_to_fp16_row (what ggml_quantize_chunk does
// for F16): round to nearest, ties to even, and every NaN to the quiet NaN
// 0x7e00 with its sign.
func encodeF16(dst []byte, src []float32) {
	_ = dst[:2*len(src)]
	n := 0
	if legacyKernels() {
		encodeF16AVX2(dst, src)
		n = len(src) &^ 7
	}
	encodeF16Go(dst[2*n:], src[n:])
}

// encodeBF16 is ggml's ggml_fp32_to_bf16_row_ref (ggml_compute_fp32_to_bf16):
// round to nearest, ties to even, by adding 0x7fff plus the lowest kept bit
// (which carries into Inf past the largest finite value), and a NaN keeps
// its top bits with the quiet bit forced on. internal/half differs only
// there: it sets the quiet bit only when the kept payload would be zero.
func encodeBF16(dst []byte, src []float32) {
	_ = dst[:2*len(src)]
	n := 0
	if legacyKernels() {
		encodeBF16AVX2(dst, src)
		n = len(src) &^ 15
	}
	encodeBF16Go(dst[2*n:], src[n:])
}

func decodeI8(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int8(src[i]))
	}
}

func decodeI16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int16(binary.LittleEndian.Uint16(src[2*i:])))
	}
}

func decodeI32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int32(binary.LittleEndian.Uint32(src[4*i:])))
	}
}

func decodeI64(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int64(binary.LittleEndian.Uint64(src[8*i:])))
	}
}

func decodeF64(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
	}
}
