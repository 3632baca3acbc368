package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/quantkit/quantkit/model/format"
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

// ReadFile reads and decodes the .npy file at path, which must be a
// regular file (a named pipe or a device is refused, not read). Errors name
// the path.
func ReadFile(path string) (*Array, error) {
	f, fi, err := format.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err) // names the path
	}
	defer f.Close()
	if fi.Size() > math.MaxInt {
		return nil, fmt.Errorf("npy: %s: file size %d too large for this platform", path, fi.Size())
	}
	// Check the header before reading what it describes.
	if _, err := readHeader(f, fi.Size()); err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, fi.Size()), data); err != nil {
		return nil, fmt.Errorf("npy: %s: reading %d bytes: %w", path, fi.Size(), err)
	}
	a, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	return a, nil
}

// Header describes the array of a .npy file without its data.
type Header struct {
	// Version is the format version, 1, 2 or 3 (minor version 0).
	Version int
	// DType and Shape are as in Array; Type is numpy's name of DType's
	// element type ("float32").
	DType string
	Type  string
	Shape []int
	// DataOffset is where the data starts in the file, and DataLen its
	// length in bytes, product(Shape)·itemsize: the rest of the file.
	DataOffset, DataLen int64
}

// Len is the number of elements, the product of Shape (1 for a scalar).
func (h *Header) Len() int {
	n := 1
	for _, d := range h.Shape {
		n *= d
	}
	return n
}

// ReadHeader reads and checks the header of the .npy file at path, and
// that the file holds exactly the data the header describes, without
// reading the data: as ReadFile checks it, but reading at most the
// header. Errors name the path.
func ReadHeader(path string) (*Header, error) {
	f, fi, err := format.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err) // names the path
	}
	defer f.Close()
	h, err := readHeader(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	return h, nil
}

// readHeader reads and checks the header of a file of size bytes.
func readHeader(r io.ReaderAt, size int64) (*Header, error) {
	prefix := make([]byte, min(size, int64(prefixLen)))
	if _, err := io.ReadFull(io.NewSectionReader(r, 0, size), prefix); err != nil {
		return nil, err
	}
	major, start, end, err := parsePrefix(prefix, size)
	if err != nil {
		return nil, err
	}
	text := make([]byte, end-start)
	if _, err := io.ReadFull(io.NewSectionReader(r, int64(start), int64(len(text))), text); err != nil {
		return nil, err
	}
	h, dt, err := parseText(text, major, size-int64(end))
	if err != nil {
		return nil, err
	}
	return &Header{Version: int(major), DType: h.descr, Type: dt.name, Shape: h.shape, DataOffset: int64(end), DataLen: size - int64(end)}, nil
}

// prefixLen is the most bytes magic, version and header length take.
const prefixLen = len(magic) + 2 + 4

// parsePrefix checks the magic, version and header length at the start of
// a file of size bytes (prefix holds its first bytes, prefixLen of them or
// all of a shorter file), and returns the version and where the header
// text starts and ends.
func parsePrefix(prefix []byte, size int64) (major byte, start, end int, err error) {
	if len(prefix) < len(magic) || string(prefix[:len(magic)]) != magic {
		n := min(len(prefix), len(magic))
		if !bytes.HasPrefix([]byte(magic), prefix[:n]) {
			return 0, 0, 0, fmt.Errorf("bad magic %q, not a .npy file", prefix[:n])
		}
		return 0, 0, 0, fmt.Errorf("file of %d bytes is too short for a .npy header", size)
	}
	if len(prefix) < len(magic)+2 {
		return 0, 0, 0, fmt.Errorf("file of %d bytes is too short for a .npy header", size)
	}
	major, minor := prefix[6], prefix[7]
	var lenSize int
	switch {
	case major == 1 && minor == 0:
		lenSize = 2
	case (major == 2 || major == 3) && minor == 0:
		lenSize = 4
	default:
		return 0, 0, 0, fmt.Errorf("unsupported format version %d.%d (1.0, 2.0 and 3.0 are read)", major, minor)
	}
	start = len(magic) + 2 + lenSize
	if len(prefix) < start {
		return 0, 0, 0, fmt.Errorf("file of %d bytes is too short for a version %d.0 header", size, major)
	}
	var hlen uint64
	if lenSize == 2 {
		hlen = uint64(binary.LittleEndian.Uint16(prefix[8:]))
	} else {
		hlen = uint64(binary.LittleEndian.Uint32(prefix[8:]))
	}
	if hlen > MaxHeaderLen {
		return 0, 0, 0, fmt.Errorf("header length %d exceeds the limit of %d", hlen, MaxHeaderLen)
	}
	if hlen > uint64(size)-uint64(start) {
		return 0, 0, 0, fmt.Errorf("header length %d exceeds file size %d", hlen, size)
	}
	return major, start, start + int(hlen), nil
}

// parseText parses the header text of a version major file and checks it
// describes exactly dataLen bytes of data.
func parseText(text []byte, major byte, dataLen int64) (header, *dtype, error) {
	if major == 3 && !utf8.Valid(text) {
		return header{}, nil, errors.New("version 3.0 header is not valid UTF-8")
	}
	// Versions 1.0 and 2.0 are latin-1; the parser works on bytes and
	// everything it accepts outside strings is ASCII, so no decoding is
	// needed.
	h, err := parseHeader(string(text))
	if err != nil {
		return header{}, nil, err
	}
	dt, _, err := parseDescr(h.descr)
	if err != nil {
		return header{}, nil, err
	}
	if h.fortranOrder {
		// Even where the layouts coincide (at most one dimension above 1)
		// numpy never writes True, so the file did not come from numpy.save.
		return header{}, nil, fmt.Errorf("Fortran order not supported (shape %s)", shapeRepr(h.shape))
	}
	_, size, err := dataSize(h.shape, dt)
	if err != nil {
		return header{}, nil, err
	}
	if int64(size) != dataLen {
		return header{}, nil, fmt.Errorf("shape %s of %s needs %d data bytes, file has %d", shapeRepr(h.shape), h.descr, size, dataLen)
	}
	return h, dt, nil
}

func decode(data []byte) (*Array, error) {
	major, start, end, err := parsePrefix(data[:min(len(data), prefixLen)], int64(len(data)))
	if err != nil {
		return nil, err
	}
	h, _, err := parseText(data[start:end], major, int64(len(data)-end))
	if err != nil {
		return nil, err
	}
	return &Array{Shape: h.shape, DType: h.descr, Data: data[end:len(data):len(data)]}, nil
}
