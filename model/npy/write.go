package npy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/half"
)

// arrayAlign is the alignment numpy gives the start of the data.
const arrayAlign = 64

// growthAxisMaxDigits is the room numpy leaves in a header for the first
// dimension to grow in place: len(str(8*2**64-1)).
const growthAxisMaxDigits = 21

// FromFloat32 returns an array of the given shape holding data converted to
// dtype, which is a float descr: "<f2", "<f4", "<f8" or their big-endian
// ('>') or native ('=') forms. float16 rounds to nearest even.
func FromFloat32(data []float32, shape []int, dtype string) (*Array, error) {
	a, err := fromFloat32(data, shape, dtype)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	return a, nil
}

func fromFloat32(data []float32, shape []int, dtype string) (*Array, error) {
	dt, order, err := parseDescr(dtype)
	if err != nil {
		return nil, err
	}
	n, size, err := dataSize(shape, dt)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("shape %s holds %d elements, data has %d", shapeRepr(shape), n, len(data))
	}
	buf := make([]byte, size)
	switch dt.code {
	case "f2":
		half.EncodeFloat16(buf, data, order)
	case "f4":
		for i, v := range data {
			order.PutUint32(buf[4*i:], math.Float32bits(v))
		}
	case "f8":
		for i, v := range data {
			order.PutUint64(buf[8*i:], math.Float64bits(float64(v)))
		}
	default:
		return nil, fmt.Errorf("FromFloat32 makes float16, float32 or float64 arrays, not %s", dt.name)
	}
	return &Array{Shape: append([]int(nil), shape...), DType: canonicalDescr(dt, order), Data: buf}, nil
}

// encodeHeader returns the bytes numpy writes before the data of a: magic,
// version 1.0, header length and the header dict padded with spaces and a
// newline to a multiple of 64 bytes. The descr is written in canonical
// form ('<' or '>' for multi-byte types, '|' for one-byte types).
func encodeHeader(a *Array) ([]byte, error) {
	dt, order, err := parseDescr(a.DType)
	if err != nil {
		return nil, err
	}
	_, size, err := dataSize(a.Shape, dt)
	if err != nil {
		return nil, err
	}
	if len(a.Data) != size {
		return nil, fmt.Errorf("shape %s of %s needs %d data bytes, have %d", shapeRepr(a.Shape), a.DType, size, len(a.Data))
	}
	var b strings.Builder
	// Keys sorted, each followed by ", ", as numpy's repr-based writer does.
	fmt.Fprintf(&b, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", canonicalDescr(dt, order), shapeRepr(a.Shape))
	if len(a.Shape) > 0 {
		b.WriteString(strings.Repeat(" ", growthAxisMaxDigits-len(fmt.Sprint(a.Shape[0]))))
	}
	hlen := b.Len() + 1 // the final newline
	prefix := len(magic) + 2 + 2
	pad := arrayAlign - (prefix+hlen)%arrayAlign // 1..64, as numpy
	total := hlen + pad
	if total > 0xffff {
		// Unreachable with MaxDims dimensions; kept for the limit's sake.
		return nil, fmt.Errorf("header of %d bytes does not fit version 1.0", total)
	}
	out := make([]byte, 0, prefix+total)
	out = append(out, magic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(total))
	out = append(out, b.String()...)
	for range pad {
		out = append(out, ' ')
	}
	out = append(out, '\n')
	return out, nil
}

// Write writes a to w as a .npy file, version 1.0.
func Write(w io.Writer, a *Array) error {
	h, err := encodeHeader(a)
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if _, err := w.Write(h); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if _, err := w.Write(a.Data); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

// WriteArray writes a to the file at path. It writes a temporary file in
// the same directory and renames it, so path holds either its old content
// or the whole new file.
func WriteArray(path string, a *Array) error {
	h, err := encodeHeader(a) // validate before creating anything
	if err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	// Keep an existing file's permissions; refuse to replace a directory
	// or device with a regular file.
	perm := os.FileMode(0o666)
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("npy: %s: not a regular file", path)
		}
		perm = fi.Mode().Perm()
	}
	err = atomicfile.Write(path, perm, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if _, err := bw.Write(h); err != nil {
			return err
		}
		if _, err := bw.Write(a.Data); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("npy: %w", err) // atomicfile names the path
	}
	return nil
}

// WriteFile writes data with the given shape to path as a little-endian
// float32 ('<f4') array, as numpy.save(path, np.float32(data).reshape(shape))
// would; see WriteArray.
func WriteFile(path string, data []float32, shape []int) error {
	a, err := fromFloat32(data, shape, "<f4")
	if err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	return WriteArray(path, a)
}
