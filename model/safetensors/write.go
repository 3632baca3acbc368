package safetensors

import (
	"github.com/quantkit/quantkit/internal/atomicfile"

	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Tensor is a tensor to write: its data is little-endian, in C order,
// exactly dtype size × product(Shape) bytes.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// WriteFile writes tensors, in the order given, and metadata (which may be
// nil) to a new safetensors file at path, through a temporary file that is
// renamed into place.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	w, err := Create(path, infosOf(tensors), metadata)
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

// Write writes tensors, in the order given, and metadata (which may be nil)
// to out as a safetensors file.
func Write(out io.Writer, tensors []Tensor, metadata map[string]string) error {
	w, err := NewWriter(out, infosOf(tensors), metadata)
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
		infos[i] = TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	return infos
}

// Writer writes a safetensors file whose header is known before its data:
// Create (or NewWriter) writes the header, then the data of each tensor
// follows in order, through WriteTensor or, in chunks of any size, Write.
// Close checks that every byte has been written and, for Create, renames
// the file into place. Errors are final: after one, the temporary file is
// gone and every later call returns the same error. A Writer is not safe
// for concurrent use.
type Writer struct {
	path    string           // "" for NewWriter
	f       *atomicfile.File // the temporary file; nil for NewWriter
	bw      *bufio.Writer    // over f; nil for NewWriter
	out     io.Writer        // where data goes: bw, or the caller's writer
	tensors []TensorInfo     // in file order, offsets filled in
	total   int64            // data buffer size
	written int64            // data bytes written so far
	index   map[string]int
	err     error // sticky
	done    bool
}

// Create starts a safetensors file at path holding the given tensors in
// the given order, laid out contiguously; their Begin and End are ignored
// and computed (see Writer.Tensors). Nothing appears at path until Close.
func Create(path string, tensors []TensorInfo, metadata map[string]string) (*Writer, error) {
	w := &Writer{path: path}
	hdr, err := w.layout(tensors, metadata)
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
	return w, nil
}

// NewWriter is Create for a stream: it writes the header to out at once
// and the data as it comes. Close does not close out.
func NewWriter(out io.Writer, tensors []TensorInfo, metadata map[string]string) (*Writer, error) {
	w := &Writer{out: out}
	hdr, err := w.layout(tensors, metadata)
	if err != nil {
		return nil, w.errorf("%w", err)
	}
	if _, err := out.Write(hdr); err != nil {
		return nil, w.fail(err)
	}
	return w, nil
}

func (w *Writer) errorf(format string, args ...any) error {
	if w.path == "" {
		return fmt.Errorf("safetensors: %w", fmt.Errorf(format, args...))
	}
	return fmt.Errorf("safetensors: %s: %w", w.path, fmt.Errorf(format, args...))
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

// layout validates the tensors, fills in w.tensors and w.total, and returns
// the encoded header with its length prefix.
func (w *Writer) layout(tensors []TensorInfo, metadata map[string]string) ([]byte, error) {
	var j bytes.Buffer
	j.WriteByte('{')
	if len(metadata) > 0 {
		writeJSONString(&j, metadataKey)
		j.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, fmt.Errorf("metadata %q is not valid UTF-8", k)
			}
			if i > 0 {
				j.WriteByte(',')
			}
			writeJSONString(&j, k)
			j.WriteByte(':')
			writeJSONString(&j, metadata[k])
		}
		j.WriteByte('}')
	}
	w.index = make(map[string]int, len(tensors))
	var off int64
	for i, t := range tensors {
		switch {
		case t.Name == metadataKey:
			return nil, fmt.Errorf("tensor name %q is reserved", metadataKey)
		case !utf8.ValidString(t.Name):
			return nil, fmt.Errorf("tensor name %q is not valid UTF-8", t.Name)
		}
		if _, dup := w.index[t.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		w.index[t.Name] = i
		d := lookupDType(t.DType)
		if d == nil {
			return nil, fmt.Errorf("tensor %q: dtype %q not supported (supported: %s)", t.Name, t.DType, supportedDTypes())
		}
		if len(t.Shape) > MaxDims {
			return nil, fmt.Errorf("tensor %q: shape has %d dimensions, more than %d", t.Name, len(t.Shape), MaxDims)
		}
		size, err := byteSize(d, t.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if off > math.MaxInt64-size {
			return nil, fmt.Errorf("tensor %q: data size overflows", t.Name)
		}
		t.Shape = append([]int(nil), t.Shape...)
		t.Begin, t.End = off, off+size
		off = t.End
		w.tensors = append(w.tensors, t)
		if i > 0 || len(metadata) > 0 {
			j.WriteByte(',')
		}
		writeJSONString(&j, t.Name)
		j.WriteString(`:{"dtype":`)
		writeJSONString(&j, t.DType)
		j.WriteString(`,"shape":[`)
		for k, dim := range t.Shape {
			if k > 0 {
				j.WriteByte(',')
			}
			j.WriteString(strconv.Itoa(dim))
		}
		fmt.Fprintf(&j, `],"data_offsets":[%d,%d]}`, t.Begin, t.End)
	}
	j.WriteByte('}')
	// Pad with spaces so that the data buffer starts 8-byte aligned.
	for j.Len()%8 != 0 {
		j.WriteByte(' ')
	}
	if j.Len() > MaxHeaderLen {
		return nil, fmt.Errorf("header of %d bytes exceeds the limit of %d", j.Len(), MaxHeaderLen)
	}
	w.total = off
	out := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+j.Len()), uint64(j.Len()))
	return append(out, j.Bytes()...), nil
}

// writeJSONString writes s as a JSON string, without escaping <, > and &
// as json.Marshal would.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // cannot fail for a string
	b.Truncate(b.Len() - 1) // Encode's newline
}

// Tensors returns the tensors in file order with their data offsets.
func (w *Writer) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(w.tensors))
	for i, t := range w.tensors {
		t.Shape = append([]int(nil), t.Shape...)
		out[i] = t
	}
	return out
}

// Write appends raw data bytes, continuing wherever the previous Write or
// WriteTensor stopped; it fails, writing nothing, if p runs past the end of
// the last tensor.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, w.errorf("write after Close")
	}
	if int64(len(p)) > w.total-w.written {
		return 0, w.fail(fmt.Errorf("%d more data bytes than the %d the header declares", int64(len(p))-(w.total-w.written), w.total))
	}
	n, err := w.out.Write(p)
	w.written += int64(n)
	if err != nil {
		return n, w.fail(err)
	}
	return n, nil
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
	if w.written != t.Begin {
		// The tensor the next data byte belongs to: End is non-decreasing.
		c := sort.Search(len(w.tensors), func(j int) bool { return w.tensors[j].End > w.written })
		switch {
		case c == len(w.tensors):
			return w.fail(fmt.Errorf("tensor %q written out of order: all data has been written", name))
		case w.written > w.tensors[c].Begin:
			return w.fail(fmt.Errorf("tensor %q: %d bytes of tensor %q are still to be written", name, w.tensors[c].End-w.written, w.tensors[c].Name))
		}
		return w.fail(fmt.Errorf("tensor %q written out of order: tensor %q is next", name, w.tensors[c].Name))
	}
	if int64(len(data)) != t.End-t.Begin {
		return w.fail(fmt.Errorf("tensor %q: %s %v needs %d bytes, got %d", name, t.DType, t.Shape, t.End-t.Begin, len(data)))
	}
	_, err := w.Write(data)
	return err
}

// WriteTensorAt writes data at byte off of the named tensor's data, where
// the data written so far ends: a tensor written in consecutive pieces,
// as a streaming quantizer produces it a block of rows at a time. The
// pieces must not run past the tensor's end; the next tensor starts only
// after its last piece.
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
	case off < 0 || off > t.End-t.Begin || int64(len(data)) > t.End-t.Begin-off:
		return w.fail(fmt.Errorf("tensor %q: %d bytes at %d run past its %d", name, len(data), off, t.End-t.Begin))
	case w.written != t.Begin+off:
		return w.fail(fmt.Errorf("tensor %q: piece at byte %d, but the data written so far ends at byte %d of the data buffer, not %d", name, off, w.written, t.Begin+off))
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
	if w.written != w.total {
		return w.fail(fmt.Errorf("closed after %d of %d data bytes", w.written, w.total))
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
