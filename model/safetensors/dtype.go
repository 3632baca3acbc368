package safetensors

import (
	"unsafe"

	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/quantkit/quantkit/internal/half"
)

// dtype is one row of the table of element types: the name the header
// uses, the size in bytes, and the conversion of little-endian elements to
// float32. Add a type by adding a row.
type dtype struct {
	name      string
	size      int
	toFloat32 func(dst []float32, src []byte)
}

var dtypes = []dtype{
	{"F64", 8, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	}},
	{"F32", 4, decodeF32},
	{"F16", 2, func(dst []float32, src []byte) { half.DecodeFloat16(dst, src, binary.LittleEndian) }},
	{"BF16", 2, func(dst []float32, src []byte) { half.DecodeBFloat16(dst, src, binary.LittleEndian) }},
	{"I8", 1, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(int8(src[i]))
		}
	}},
	{"U8", 1, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(src[i])
		}
	}},
	{"I16", 2, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(int16(binary.LittleEndian.Uint16(src[2*i:])))
		}
	}},
	{"I32", 4, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(int32(binary.LittleEndian.Uint32(src[4*i:])))
		}
	}},
	{"I64", 8, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(int64(binary.LittleEndian.Uint64(src[8*i:])))
		}
	}},
	{"BOOL", 1, func(dst []float32, src []byte) {
		for i := range dst {
			if src[i] != 0 {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
	}},
}

func lookupDType(name string) *dtype {
	for i := range dtypes {
		if dtypes[i].name == name {
			return &dtypes[i]
		}
	}
	return nil
}

func supportedDTypes() string {
	names := make([]string, len(dtypes))
	for i, d := range dtypes {
		names[i] = d.name
	}
	return strings.Join(names, " ")
}

// DTypeSize returns the size in bytes of one element of dtype, and whether
// this package supports dtype.
func DTypeSize(dtype string) (int, bool) {
	if d := lookupDType(dtype); d != nil {
		return d.size, true
	}
	return 0, false
}

// DecodeFloat32 converts len(dst) little-endian elements of dtype from src
// to float32, as File.Float32 does; use it to convert a tensor a block of
// rows at a time. It fails if dtype is not supported or src is shorter
// than len(dst) elements.
func DecodeFloat32(dst []float32, src []byte, dtype string) error {
	d := lookupDType(dtype)
	if d == nil {
		return fmt.Errorf("safetensors: dtype %q not supported (supported: %s)", dtype, supportedDTypes())
	}
	if len(src)/d.size < len(dst) {
		return fmt.Errorf("safetensors: %d bytes of %s hold fewer than %d elements", len(src), dtype, len(dst))
	}
	d.toFloat32(dst, src)
	return nil
}

// littleEndianHost is true where float32 in memory is laid out as in a
// safetensors file.
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// decodeF32 is
//
//	for i := range dst { dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:])) }
//
// as one memory copy on little-endian hosts.
func decodeF32(dst []float32, src []byte) {
	if littleEndianHost && len(dst) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}
