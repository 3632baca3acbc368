package gguf

import (
	"github.com/quantkit/quantkit/internal/atomicfile"

	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// Tensor is a tensor to write: Data is Type's encoding of the elements in
// ggml order (Dims[0] fastest), exactly as many bytes as Dims call for.
type Tensor struct {
	Name string
	Type Type
	Dims []int
	Data []byte
}

// WriteFile writes meta and tensors, in the order given, to a new GGUF file
// at path, through a temporary file that is renamed into place.
func WriteFile(path string, meta []KV, tensors []Tensor) error {
	w, err := Create(path, meta, infosOf(tensors))
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// Write writes meta and tensors, in the order given, to out as a GGUF file.
func Write(out io.Writer, meta []KV, tensors []Tensor) error {
	w, err := NewWriter(out, meta, infosOf(tensors))
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			return err
		}
	}
	return w.Close()
}

func infosOf(tensors []Tensor) []TensorInfo {
	infos := make([]TensorInfo, len(tensors))
	for i, t := range tensors {
		infos[i] = TensorInfo{Name: t.Name, Type: t.Type, Dims: t.Dims}
	}
	return infos
}

// Writer writes a GGUF file whose header is known before its data: Create
// (or NewWriter) writes the header, then the data of each tensor follows
// in order, through WriteTensor or, in chunks of any size, Write; the
// Writer adds the zero padding between tensors and at the end. Close
// checks that every byte has been written and, for Create, renames the
// file into place. Errors are final: after one, the temporary file is gone
// and every later call returns the same error. A Writer is not safe for
// concurrent use.
type Writer struct {
	path    string           // "" for NewWriter
	f       *atomicfile.File // the temporary file; nil for NewWriter
	bw      *bufio.Writer    // over f; nil for NewWriter
	out     io.Writer        // where bytes go: bw, or the caller's writer
	tensors []TensorInfo     // in file order, offsets filled in
	index   map[string]int
	align   int64
	total   int64 // data section size, padding included
	pos     int64 // data section bytes written, padding included
	cur     int   // the tensor pos is in or at; len(tensors) at the end
	// dataTotal is the sum of the tensor sizes, dataWritten how much of
	// it has been written.
	dataTotal, dataWritten int64
	err                    error // sticky
	done                   bool
}

// Create starts a GGUF file at path holding meta and the given tensors, in
// the given order; their Offset and Size are ignored and computed (see
// Writer.Tensors). The alignment is meta's KeyAlignment (a uint32 power of
// two) or DefaultAlignment; KeyAlignment is not added where meta lacks it.
// Nothing appears at path until Close.
func Create(path string, meta []KV, tensors []TensorInfo) (*Writer, error) {
	w := &Writer{path: path}
	hdr, err := w.layout(meta, tensors)
	if err != nil {
		return nil, w.errorf("%w", err)
	}
	if w.f, err = atomicfile.Create(path); err != nil {
		return nil, w.errorf("%w", err)
	}
	w.bw = bufio.NewWriterSize(w.f, 1<<20)
	w.out = w.bw
	if _, err := w.bw.Write(hdr); err != nil {
		return nil, w.fail(err)
	}
	if err := w.pad(); err != nil {
		return nil, err
	}
	return w, nil
}

// NewWriter is Create for a stream: it writes the header to out at once
// and the data as it comes. Close does not close out.
func NewWriter(out io.Writer, meta []KV, tensors []TensorInfo) (*Writer, error) {
	w := &Writer{out: out}
	hdr, err := w.layout(meta, tensors)
	if err != nil {
		return nil, w.errorf("%w", err)
	}
	if _, err := out.Write(hdr); err != nil {
		return nil, w.fail(err)
	}
	if err := w.pad(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) errorf(format string, args ...any) error {
	if w.path == "" {
		return fmt.Errorf("gguf: %w", fmt.Errorf(format, args...))
	}
	return fmt.Errorf("gguf: %s: %w", w.path, fmt.Errorf(format, args...))
}

// fail records err, removes the temporary file and returns err with context.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = w.errorf("%w", err)
	}
	if !w.done {
		w.done = true
		if w.f != nil {
			w.f.Abort()
		}
	}
	return w.err
}

// layout validates meta and tensors against the limits Open applies, fills
// in w.tensors, w.align and w.total, and returns the encoded header,
// padded to the alignment.
func (w *Writer) layout(meta []KV, tensors []TensorInfo) ([]byte, error) {
	if len(meta) > MaxKVs {
		return nil, fmt.Errorf("%d metadata pairs exceed the limit of %d", len(meta), MaxKVs)
	}
	if len(tensors) > MaxTensors {
		return nil, fmt.Errorf("%d tensors exceed the limit of %d", len(tensors), MaxTensors)
	}
	var err error
	if w.align, err = alignmentOf(meta); err != nil {
		return nil, err
	}
	b := []byte(magic)
	b = binary.LittleEndian.AppendUint32(b, Version)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(tensors)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(meta)))
	keys := make(map[string]bool, len(meta))
	for _, kv := range meta {
		if len(kv.Key) > MaxStringLen {
			return nil, fmt.Errorf("metadata key of %d bytes exceeds the limit of %d", len(kv.Key), MaxStringLen)
		}
		if keys[kv.Key] {
			return nil, fmt.Errorf("metadata key %q appears twice", kv.Key)
		}
		keys[kv.Key] = true
		if b, err = appendKV(b, kv); err != nil {
			return nil, fmt.Errorf("metadata key %q: %w", kv.Key, err)
		}
	}
	w.index = make(map[string]int, len(tensors))
	var off int64
	for i, t := range tensors {
		if len(t.Name) > MaxTensorNameLen {
			return nil, fmt.Errorf("tensor %q: name of %d bytes exceeds ggml's limit of %d", t.Name, len(t.Name), MaxTensorNameLen)
		}
		if _, dup := w.index[t.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		w.index[t.Name] = i
		size, err := tensorSize(t.Type, t.Dims)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		off = alignUp(off, w.align)
		if off > math.MaxInt64-w.align-size {
			return nil, fmt.Errorf("tensor %q: data section size overflows", t.Name)
		}
		t = t.clone()
		t.Offset, t.Size = off, size
		off += size
		w.dataTotal += size
		w.tensors = append(w.tensors, t)
		b = appendString(b, t.Name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.Dims)))
		for _, d := range t.Dims {
			b = binary.LittleEndian.AppendUint64(b, uint64(d))
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(t.Type))
		b = binary.LittleEndian.AppendUint64(b, uint64(t.Offset))
	}
	// ggml pads the last tensor too, so the data section is whole blocks
	// of the alignment.
	w.total = alignUp(off, w.align)
	for int64(len(b))%w.align != 0 {
		b = append(b, 0)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendKV appends a key, the type of the value and the value.
func appendKV(b []byte, kv KV) ([]byte, error) {
	t, _, err := typeOf(kv.Value, 0)
	if err != nil {
		return nil, err
	}
	b = appendString(b, kv.Key)
	b = binary.LittleEndian.AppendUint32(b, uint32(t))
	return appendValue(b, kv.Value), nil
}

func appendSlice[T any](b []byte, t ValueType, s []T, put func([]byte, T) []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(t))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	for _, v := range s {
		b = put(b, v)
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendValue appends v, which typeOf has accepted, without its type.
func appendValue(b []byte, v any) []byte {
	le := binary.LittleEndian
	switch v := v.(type) {
	case uint8:
		return append(b, v)
	case int8:
		return append(b, byte(v))
	case uint16:
		return le.AppendUint16(b, v)
	case int16:
		return le.AppendUint16(b, uint16(v))
	case uint32:
		return le.AppendUint32(b, v)
	case int32:
		return le.AppendUint32(b, uint32(v))
	case float32:
		return le.AppendUint32(b, math.Float32bits(v))
	case bool:
		return appendBool(b, v)
	case string:
		return appendString(b, v)
	case uint64:
		return le.AppendUint64(b, v)
	case int64:
		return le.AppendUint64(b, uint64(v))
	case float64:
		return le.AppendUint64(b, math.Float64bits(v))
	case []uint8:
		return appendSlice(b, ValueUint8, v, func(b []byte, v uint8) []byte { return append(b, v) })
	case []int8:
		return appendSlice(b, ValueInt8, v, func(b []byte, v int8) []byte { return append(b, byte(v)) })
	case []uint16:
		return appendSlice(b, ValueUint16, v, le.AppendUint16)
	case []int16:
		return appendSlice(b, ValueInt16, v, func(b []byte, v int16) []byte { return le.AppendUint16(b, uint16(v)) })
	case []uint32:
		return appendSlice(b, ValueUint32, v, le.AppendUint32)
	case []int32:
		return appendSlice(b, ValueInt32, v, func(b []byte, v int32) []byte { return le.AppendUint32(b, uint32(v)) })
	case []float32:
		return appendSlice(b, ValueFloat32, v, func(b []byte, v float32) []byte { return le.AppendUint32(b, math.Float32bits(v)) })
	case []bool:
		return appendSlice(b, ValueBool, v, appendBool)
	case []string:
		return appendSlice(b, ValueString, v, appendString)
	case []uint64:
		return appendSlice(b, ValueUint64, v, le.AppendUint64)
	case []int64:
		return appendSlice(b, ValueInt64, v, func(b []byte, v int64) []byte { return le.AppendUint64(b, uint64(v)) })
	case []float64:
		return appendSlice(b, ValueFloat64, v, func(b []byte, v float64) []byte { return le.AppendUint64(b, math.Float64bits(v)) })
	case []any:
		return appendSlice(b, ValueArray, v, appendValue)
	}
	panic(fmt.Sprintf("gguf: appendValue of %T", v))
}

// Tensors returns the tensors in file order with their offsets and sizes.
func (w *Writer) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(w.tensors))
	for i, t := range w.tensors {
		out[i] = t.clone()
	}
	return out
}

var zeros [4096]byte

// pad moves w.cur past the tensors that are complete (or empty) at w.pos
// and writes the zeros up to the start of the next tensor with data, or to
// the end of the data section.
func (w *Writer) pad() error {
	for {
		for w.cur < len(w.tensors) && w.pos == w.tensors[w.cur].Offset+w.tensors[w.cur].Size {
			w.cur++
		}
		next := w.total
		if w.cur < len(w.tensors) {
			next = w.tensors[w.cur].Offset
		}
		if w.pos >= next {
			return nil
		}
		// Empty tensors at next are complete once the padding is written.
		n, err := w.out.Write(zeros[:min(int64(len(zeros)), next-w.pos)])
		w.pos += int64(n)
		if err != nil {
			return w.fail(err)
		}
	}
}

// Write appends raw tensor data, continuing wherever the previous Write or
// WriteTensor stopped (padding is not part of it: the Writer adds it); it
// fails, writing nothing, if p runs past the end of the last tensor.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, w.errorf("write after Close")
	}
	if left := w.dataTotal - w.dataWritten; int64(len(p)) > left {
		return 0, w.fail(fmt.Errorf("%d more data bytes than the %d the tensors hold", int64(len(p))-left, w.dataTotal))
	}
	written := 0
	for len(p) > 0 {
		t := w.tensors[w.cur]
		chunk := p[:min(int64(len(p)), t.Offset+t.Size-w.pos)]
		n, err := w.out.Write(chunk)
		w.pos += int64(n)
		w.dataWritten += int64(n)
		written += n
		if err != nil {
			return written, w.fail(err)
		}
		p = p[n:]
		if err := w.pad(); err != nil {
			return written, err
		}
	}
	return written, nil
}

// WriteTensor writes the whole data of the named tensor, which must start
// where the data written so far ends: tensors go in file order, and empty
// tensors may be skipped.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.err != nil {
		return w.err
	}
	i, ok := w.index[name]
	if !ok {
		return w.fail(fmt.Errorf("no tensor %q in the header", name))
	}
	t := w.tensors[i]
	if int64(len(data)) != t.Size {
		return w.fail(fmt.Errorf("tensor %q: %s %v needs %d bytes, got %d", name, t.Type, t.Dims, t.Size, len(data)))
	}
	if w.pos != t.Offset {
		// The tensor the next data byte belongs to: offsets are non-decreasing.
		c := sort.Search(len(w.tensors), func(j int) bool { return w.tensors[j].Offset+w.tensors[j].Size > w.pos })
		switch {
		case c == len(w.tensors):
			return w.fail(fmt.Errorf("tensor %q written out of order: all data has been written", name))
		case w.pos > w.tensors[c].Offset:
			return w.fail(fmt.Errorf("tensor %q: %d bytes of tensor %q are still to be written", name, w.tensors[c].Offset+w.tensors[c].Size-w.pos, w.tensors[c].Name))
		}
		return w.fail(fmt.Errorf("tensor %q written out of order: tensor %q is next", name, w.tensors[c].Name))
	}
	_, err := w.Write(data)
	return err
}

// WriteTensorAt writes data at byte off of the named tensor's data, where
// the data written so far ends: a tensor written in consecutive pieces, a
// block of rows at a time. The pieces must not run past the tensor's end;
// the Writer pads after its last piece.
func (w *Writer) WriteTensorAt(name string, off int64, data []byte) error {
	if w.err != nil {
		return w.err
	}
	i, ok := w.index[name]
	if !ok {
		return w.fail(fmt.Errorf("no tensor %q in the header", name))
	}
	t := w.tensors[i]
	switch {
	case off < 0 || off > t.Size || int64(len(data)) > t.Size-off:
		return w.fail(fmt.Errorf("tensor %q: %d bytes at %d run past its %d", name, len(data), off, t.Size))
	case w.pos != t.Offset+off:
		return w.fail(fmt.Errorf("tensor %q: piece at byte %d, but the data written so far ends at data section offset %d, not %d", name, off, w.pos, t.Offset+off))
	}
	_, err := w.Write(data)
	return err
}

// Close finishes the file: if every data byte has been written it flushes,
// syncs and renames the temporary file to path; otherwise it removes it and
// fails. After an earlier error it returns that error. For NewWriter it
// only checks that every data byte has been written.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return nil
	}
	if w.pos != w.total {
		t := w.tensors[w.cur]
		return w.fail(fmt.Errorf("closed with %d bytes of tensor %q (and any after it) still to be written", t.Offset+t.Size-w.pos, t.Name))
	}
	if w.f == nil {
		w.done = true
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return w.fail(err)
	}
	w.done = true
	if err := w.f.Commit(); err != nil {
		w.err = w.errorf("%w", err)
		return w.err
	}
	return nil
}

// Abort discards the file: the temporary file is removed and path is left
// as it was (for NewWriter, later writes and Close fail). It is harmless
// after Close.
func (w *Writer) Abort() {
	if !w.done {
		w.fail(errors.New("aborted"))
	}
}
