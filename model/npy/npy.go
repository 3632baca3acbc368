package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"unicode/utf8"
)

// Limits on what Decode accepts.
const (
	// MaxHeaderLen bounds the header dict's length in bytes. numpy itself
	// refuses headers over 10000 bytes unless told otherwise.
	MaxHeaderLen = 1 << 20
	// MaxDims bounds the number of dimensions (numpy's NPY_MAXDIMS before
	// numpy 2.0).
	MaxDims = 32
)

// magic starts every .npy file; the major and minor version follow it.
const magic = "\x93NUMPY"

// Array is a decoded .npy array.
type Array struct {
	// Shape holds the dimensions, outermost first; it is empty for a
	// scalar (a 0-d array, one element).
	Shape []int
	// DType is the numpy type descriptor as the file gives it, such as
	// "<f4" (little-endian float32) or ">f2" (big-endian float16).
	DType string
	// Data holds the elements in C (row-major) order, in the byte order
	// DType gives. Decode leaves it pointing into its input.
	Data []byte
}

// Len is the number of elements, the product of Shape (1 for a scalar).
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// Float32 returns the elements converted to float32: exactly for float16,
// float32 and integers up to 2^24 in magnitude, rounded to nearest even
// otherwise (float64 values beyond float32's range become ±Inf); bool gives
// 0 and 1.
func (a *Array) Float32() ([]float32, error) {
	dt, order, err := parseDescr(a.DType)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	n, _, err := dataSize(a.Shape, dt)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if len(a.Data) != n*dt.size {
		return nil, fmt.Errorf("npy: shape %s of %s needs %d data bytes, have %d", shapeRepr(a.Shape), a.DType, n*dt.size, len(a.Data))
	}
	out := make([]float32, n)
	dt.toFloat32(out, a.Data, order)
	return out, nil
}

// dataSize returns the element count of shape and its size in bytes for dt,
// or an error when a dimension is negative, there are too many, or either
// number overflows.
func dataSize(shape []int, dt *dtype) (n, size int, err error) {
	if len(shape) > MaxDims {
		return 0, 0, fmt.Errorf("shape has %d dimensions, more than the limit of %d", len(shape), MaxDims)
	}
	n = 1
	for i, d := range shape {
		if d < 0 {
			return 0, 0, fmt.Errorf("shape %s: dimension %d is negative", shapeRepr(shape), i)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, 0, fmt.Errorf("shape %s: element count overflows", shapeRepr(shape))
		}
		n *= d
	}
	if n > math.MaxInt/dt.size {
		return 0, 0, fmt.Errorf("shape %s: size in bytes of %s overflows", shapeRepr(shape), dt.name)
	}
	return n, n * dt.size, nil
}

// Decode parses a whole .npy file. The returned Array's Data aliases data.
// See the package documentation for what is accepted.
func Decode(data []byte) (*Array, error) {
	a, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	return a, nil
}

// ReadFile reads and decodes the .npy file at path. Errors name the path.
func ReadFile(path string) (*Array, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	a, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	return a, nil
}

func decode(data []byte) (*Array, error) {
	if len(data) < len(magic) || string(data[:len(magic)]) != magic {
		n := min(len(data), len(magic))
		if !bytes.HasPrefix([]byte(magic), data[:n]) {
			return nil, fmt.Errorf("bad magic %q, not a .npy file", data[:n])
		}
		return nil, fmt.Errorf("file of %d bytes is too short for a .npy header", len(data))
	}
	if len(data) < len(magic)+2 {
		return nil, fmt.Errorf("file of %d bytes is too short for a .npy header", len(data))
	}
	major, minor := data[6], data[7]
	var lenSize int
	switch {
	case major == 1 && minor == 0:
		lenSize = 2
	case (major == 2 || major == 3) && minor == 0:
		lenSize = 4
	default:
		return nil, fmt.Errorf("unsupported format version %d.%d (1.0, 2.0 and 3.0 are read)", major, minor)
	}
	start := len(magic) + 2 + lenSize
	if len(data) < start {
		return nil, fmt.Errorf("file of %d bytes is too short for a version %d.0 header", len(data), major)
	}
	var hlen uint64
	if lenSize == 2 {
		hlen = uint64(binary.LittleEndian.Uint16(data[8:]))
	} else {
		hlen = uint64(binary.LittleEndian.Uint32(data[8:]))
	}
	if hlen > MaxHeaderLen {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d", hlen, MaxHeaderLen)
	}
	if hlen > uint64(len(data)-start) {
		return nil, fmt.Errorf("header length %d exceeds file size %d", hlen, len(data))
	}
	end := start + int(hlen)
	text := data[start:end]
	if major == 3 && !utf8.Valid(text) {
		return nil, errors.New("version 3.0 header is not valid UTF-8")
	}
	// Versions 1.0 and 2.0 are latin-1; the parser works on bytes and
	// everything it accepts outside strings is ASCII, so no decoding is
	// needed.
	h, err := parseHeader(string(text))
	if err != nil {
		return nil, err
	}
	dt, _, err := parseDescr(h.descr)
	if err != nil {
		return nil, err
	}
	if h.fortranOrder {
		// Even where the layouts coincide (at most one dimension above 1)
		// numpy never writes True, so the file did not come from numpy.save.
		return nil, fmt.Errorf("Fortran order not supported (shape %s)", shapeRepr(h.shape))
	}
	_, size, err := dataSize(h.shape, dt)
	if err != nil {
		return nil, err
	}
	if have := len(data) - end; have != size {
		return nil, fmt.Errorf("shape %s of %s needs %d data bytes, file has %d", shapeRepr(h.shape), h.descr, size, have)
	}
	return &Array{Shape: h.shape, DType: h.descr, Data: data[end:len(data):len(data)]}, nil
}
