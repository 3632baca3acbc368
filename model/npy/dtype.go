package npy

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/quantkit/quantkit/internal/half"
)

// dtype is one row of the table of element types this package reads: the
// numpy kind character and item size that name it in a descr ("f4"), its
// numpy name, and the conversion of its elements to float32.
type dtype struct {
	code      string // kind and size, as in a descr without byte order: "f4"
	name      string // numpy's name: "float32"
	size      int    // bytes per element
	toFloat32 func(dst []float32, src []byte, order binary.ByteOrder)
}

// dtypes is the table of supported element types. Add a type by adding a row.
var dtypes = []dtype{
	{"f2", "float16", 2, func(dst []float32, src []byte, o binary.ByteOrder) {
		half.DecodeFloat16(dst, src, o)
	}},
	{"f4", "float32", 4, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = math.Float32frombits(o.Uint32(src[4*i:]))
		}
	}},
	{"f8", "float64", 8, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(math.Float64frombits(o.Uint64(src[8*i:])))
		}
	}},
	{"i1", "int8", 1, func(dst []float32, src []byte, _ binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(int8(src[i]))
		}
	}},
	{"u1", "uint8", 1, func(dst []float32, src []byte, _ binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(src[i])
		}
	}},
	{"i2", "int16", 2, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(int16(o.Uint16(src[2*i:])))
		}
	}},
	{"u2", "uint16", 2, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(o.Uint16(src[2*i:]))
		}
	}},
	{"i4", "int32", 4, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(int32(o.Uint32(src[4*i:])))
		}
	}},
	{"u4", "uint32", 4, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(o.Uint32(src[4*i:]))
		}
	}},
	{"i8", "int64", 8, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(int64(o.Uint64(src[8*i:])))
		}
	}},
	{"u8", "uint64", 8, func(dst []float32, src []byte, o binary.ByteOrder) {
		for i := range dst {
			dst[i] = float32(o.Uint64(src[8*i:]))
		}
	}},
	{"b1", "bool", 1, func(dst []float32, src []byte, _ binary.ByteOrder) {
		for i := range dst {
			if src[i] != 0 {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
	}},
}

// unsupported names the dtypes numpy writes that this package does not
// read, by kind and size, or by kind alone.
var unsupported = map[string]string{
	"c8":  "complex64",
	"c16": "complex128",
	"c32": "complex256",
	"f12": "float96",
	"f16": "float128",
	"O":   "object",
	"S":   "bytes",
	"a":   "bytes",
	"U":   "str",
	"V":   "void",
	"M":   "datetime64",
	"m":   "timedelta64",
}

const supportedList = "float16/32/64, int8-64, uint8-64 and bool only"

var nativeOrder binary.ByteOrder = func() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}()

// parseDescr resolves a numpy type descriptor such as "<f4" to its table
// row and byte order.
func parseDescr(descr string) (*dtype, binary.ByteOrder, error) {
	if descr == "" {
		return nil, nil, fmt.Errorf("empty descr")
	}
	code, orderChar := descr, byte(0)
	if strings.IndexByte("<>=|", descr[0]) >= 0 {
		code, orderChar = descr[1:], descr[0]
	}
	var dt *dtype
	for i := range dtypes {
		if dtypes[i].code == code {
			dt = &dtypes[i]
			break
		}
	}
	if dt == nil {
		return nil, nil, unsupportedDescr(descr, code)
	}
	switch orderChar {
	case '<':
		return dt, binary.LittleEndian, nil
	case '>':
		return dt, binary.BigEndian, nil
	case '|':
		if dt.size != 1 {
			return nil, nil, fmt.Errorf("dtype %q: byte order '|' (not applicable) given for the %d-byte %s; want '<' or '>'", descr, dt.size, dt.name)
		}
	}
	return dt, nativeOrder, nil // '=', '|' or none: the machine's order
}

func unsupportedDescr(descr, code string) error {
	if code == "O" {
		return fmt.Errorf("object dtype %q not supported: it holds pickled Python objects", descr)
	}
	name, ok := unsupported[code]
	if !ok && code != "" {
		// Kind with a size or unit: "S10", "U5", "V8", "M8[ns]".
		name, ok = unsupported[code[:1]]
		if ok {
			name += " (" + code + ")"
		}
	}
	if ok {
		return fmt.Errorf("dtype %q: %s not supported; %s", descr, name, supportedList)
	}
	return fmt.Errorf("dtype %s not supported; %s", strconv.Quote(descr), supportedList)
}

// canonicalDescr is the descr numpy writes for dt in the given order:
// '|' for one-byte types, '<' or '>' otherwise.
func canonicalDescr(dt *dtype, order binary.ByteOrder) string {
	switch {
	case dt.size == 1:
		return "|" + dt.code
	case order == binary.BigEndian:
		return ">" + dt.code
	}
	return "<" + dt.code
}
