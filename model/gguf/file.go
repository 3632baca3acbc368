package gguf

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/quantkit/quantkit/internal/mmap"
	"github.com/quantkit/quantkit/model/format"
)

// File is an open GGUF file.
type File struct {
	path    string
	data    []byte // the whole file: a read-only mapping, or memory
	mapped  bool
	region  *mmap.Region // what holds data; nil when data is not from a file
	hdr     *header
	keys    map[string]int // metadata index by key
	tensors map[string]int // tensor index by name
}

// testNoMmap makes Open read files into memory, so tests cover both paths.
var testNoMmap bool

// Open maps the GGUF file at path read-only and validates its header; see
// the package documentation for what is checked. Errors name the path and,
// where there is one, the metadata key or tensor.
func Open(path string) (*File, error) {
	f, err := open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("gguf: %w", err) // already names the path
		}
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	return f, nil
}

func open(path string) (*File, error) {
	// Not os.Open: it would wait forever for a writer on a named pipe.
	osf, fi, err := format.Open(path)
	if err != nil {
		return nil, err
	}
	defer osf.Close() // a mapping outlives its descriptor
	size := fi.Size()
	if size < headerMin {
		// Read what there is, for the error message (wrong magic, version 1...).
		data, err := io.ReadAll(io.LimitReader(osf, headerMin))
		if err != nil {
			return nil, err
		}
		if _, err = parseHeader(data); err == nil {
			err = errors.New("truncated header") // parseHeader cannot accept it
		}
		return nil, err
	}
	var r *mmap.Region
	if testNoMmap {
		r, err = mmap.Read(osf, size)
	} else {
		r, err = mmap.Map(osf, size)
	}
	if err != nil {
		return nil, err
	}
	f, err := newFile(path, r.Bytes(), r.Mapped())
	if err != nil {
		r.Close()
		return nil, err
	}
	f.region = r
	return f, nil
}

// newFile validates a whole file held in data (a mapping if mapped).
func newFile(path string, data []byte, mapped bool) (*File, error) {
	h, err := parseHeader(data)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, data: data, mapped: mapped, hdr: h}
	f.keys = make(map[string]int, len(h.meta))
	for i, kv := range h.meta {
		f.keys[kv.Key] = i
	}
	f.tensors = make(map[string]int, len(h.tensors))
	for i, t := range h.tensors {
		f.tensors[t.Name] = i
	}
	return f, nil
}

// Close releases the mapping. Slices returned by Bytes must not be used
// afterwards. Closing twice is harmless.
func (f *File) Close() error {
	r := f.region
	f.data, f.mapped, f.region = nil, false, nil
	if r != nil {
		if err := r.Close(); err != nil {
			return fmt.Errorf("gguf: %s: %w", f.path, err)
		}
	}
	return nil
}

// Version is the file's format version, 2 or 3.
func (f *File) Version() uint32 { return f.hdr.version }

// Alignment is the alignment of the tensor data: the value of
// KeyAlignment, or DefaultAlignment.
func (f *File) Alignment() int { return int(f.hdr.alignment) }

// DataOffset is where the data section starts in the file. A tensor's
// bytes are at DataOffset()+Offset.
func (f *File) DataOffset() int64 { return f.hdr.dataOffset }

// Mapped reports whether the file is memory-mapped (rather than read into
// memory because mapping failed).
func (f *File) Mapped() bool { return f.mapped }

// Metadata returns a deep copy of the key/value pairs, in file order.
func (f *File) Metadata() Metadata { return f.hdr.meta.Clone() }

// Value returns a deep copy of the value of key.
func (f *File) Value(key string) (any, bool) {
	i, ok := f.keys[key]
	if !ok {
		return nil, false
	}
	return cloneValue(f.hdr.meta[i].Value), true
}

func fileGet[T any](f *File, key string) (T, bool) {
	v, _ := f.Value(key)
	t, ok := v.(T)
	return t, ok
}

// String returns the value of key if it is a string. File has helpers for
// the common types; Value, or Get on Metadata, returns any other.
func (f *File) String(key string) (string, bool) { return fileGet[string](f, key) }

// Uint32 returns the value of key if it is a uint32.
func (f *File) Uint32(key string) (uint32, bool) { return fileGet[uint32](f, key) }

// Uint64 returns the value of key if it is a uint64.
func (f *File) Uint64(key string) (uint64, bool) { return fileGet[uint64](f, key) }

// Bool returns the value of key if it is a bool.
func (f *File) Bool(key string) (bool, bool) { return fileGet[bool](f, key) }

// Strings returns a copy of the value of key if it is an array of strings.
func (f *File) Strings(key string) ([]string, bool) { return fileGet[[]string](f, key) }

// Int returns the value of key if it is an integer of any type whose value
// fits an int64.
func (f *File) Int(key string) (int64, bool) {
	i, ok := f.keys[key]
	if !ok {
		return 0, false
	}
	return asInt(f.hdr.meta[i].Value)
}

// Tensors returns the tensors in header order.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.hdr.tensors))
	for i, t := range f.hdr.tensors {
		out[i] = t.clone()
	}
	return out
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.hdr.tensors[i].clone(), true
}

// Bytes returns the named tensor's raw data: a read-only view into the
// file, valid until Close. Writing to it faults.
func (f *File) Bytes(name string) ([]byte, error) {
	i, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("gguf: %s: no tensor %q", f.path, name)
	}
	if f.data == nil {
		return nil, fmt.Errorf("gguf: %s: file is closed", f.path)
	}
	t := f.hdr.tensors[i]
	begin := f.hdr.dataOffset + t.Offset
	end := begin + t.Size
	return f.data[begin:end:end], nil
}

// Release lets the pages of the named tensor leave the process's resident
// memory (madvise MADV_DONTNEED on the whole pages of its data), once it
// has been read: a pass over a large file then holds only the tensors in
// flight. Reading the tensor again faults its pages back in from the
// file. It does nothing for a file read into memory.
func (f *File) Release(name string) {
	i, ok := f.tensors[name]
	if !ok || f.region == nil {
		return
	}
	t := f.hdr.tensors[i]
	begin := int64(f.hdr.dataOffset + t.Offset)
	f.region.Release(begin, begin+int64(t.Size))
}

// ReleaseRange is Release of bytes [off, off+n) of the named tensor's
// data only: a tensor copied a block at a time lets each block go once it
// is written.
func (f *File) ReleaseRange(name string, off, n int64) {
	i, ok := f.tensors[name]
	if !ok || f.region == nil || off < 0 || n <= 0 {
		return
	}
	t := f.hdr.tensors[i]
	begin := int64(f.hdr.dataOffset+t.Offset) + off
	f.region.Release(begin, min(begin+n, int64(f.hdr.dataOffset+t.Offset+t.Size)))
}

// Float32 returns the named tensor converted to float32, in memory order
// (Dims[0] fastest): exact for F32, F16, BF16 and integers up to 2^24 in
// magnitude; Q8_0 and Q4_0 dequantized as ggml does. Other types fail.
func (f *File) Float32(name string) ([]float32, error) {
	b, err := f.Bytes(name)
	if err != nil {
		return nil, err
	}
	t := f.hdr.tensors[f.tensors[name]]
	if !t.Type.CanDecode() {
		return nil, fmt.Errorf("gguf: %s: tensor %q: conversion of %v to float32 not supported (supported: %s)", f.path, name, t.Type, typeNames(func(tt *typeTraits) bool { return tt.toFloat != nil }))
	}
	out := make([]float32, t.Len())
	t.Type.traits().toFloat(out, b)
	return out, nil
}
