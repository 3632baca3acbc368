package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/quantkit/quantkit/internal/mmap"
	"github.com/quantkit/quantkit/model/format"
)

// File is an open safetensors file.
type File struct {
	path     string
	data     []byte // the whole file: a read-only mapping, or memory
	mapped   bool
	region   *mmap.Region // what holds data; nil when data is not from a file
	buf      []byte       // the data buffer, data[offset:]
	offset   int64        // where the data buffer starts in the file
	tensors  []TensorInfo
	index    map[string]int
	metadata map[string]string
	// osf stays open beside a mapping so that Float32 can read F32
	// tensors with pread, a kernel copy from the page cache, instead of
	// faulting in every page of the mapping; nil when the file was read.
	osf *os.File
}

// testNoMmap makes Open read files into memory, so tests cover both paths.
var testNoMmap bool

// Open maps the safetensors file at path read-only and validates its
// header; see the package documentation for what is checked. Errors name
// the path and, where there is one, the tensor.
func Open(path string) (*File, error) {
	f, err := open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("safetensors: %w", err) // already names the path
		}
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
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
	if size < 8 {
		return nil, fmt.Errorf("file size %d is smaller than the 8-byte header length", size)
	}
	// Check the header length before mapping or reading anything else.
	var lenBuf [8]byte
	if _, err := osf.ReadAt(lenBuf[:], 0); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderLen {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d", n, MaxHeaderLen)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("header length %d exceeds file size %d", n, size)
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
	if f.mapped {
		if f.osf, _, err = format.Open(path); err != nil {
			f.osf = nil // Float32 reads through the mapping instead
		}
	}
	return f, nil
}

// newFile validates a whole file held in data (a mapping if mapped).
func newFile(path string, data []byte, mapped bool) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("file size %d is smaller than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderLen {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d", n, MaxHeaderLen)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("header length %d exceeds file size %d", n, len(data))
	}
	f := &File{path: path, data: data, mapped: mapped, offset: 8 + int64(n)}
	f.buf = f.data[f.offset:]
	h, err := parseHeader(f.data[8:f.offset], int64(len(f.buf)))
	if err != nil {
		return nil, err
	}
	f.tensors, f.metadata, f.index = h.tensors, h.metadata, h.index
	return f, nil
}

// Close releases the mapping. Slices returned by Bytes must not be used
// afterwards. Closing twice is harmless.
func (f *File) Close() error {
	r := f.region
	f.data, f.buf, f.mapped, f.region = nil, nil, false, nil
	if f.osf != nil {
		f.osf.Close()
		f.osf = nil
	}
	if r != nil {
		if err := r.Close(); err != nil {
			return fmt.Errorf("safetensors: %s: %w", f.path, err)
		}
	}
	return nil
}

// Tensors returns the tensors sorted by data offset (the order of the data
// on disk, which is the order to read them in).
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.tensors))
	for i, t := range f.tensors {
		t.Shape = append([]int(nil), t.Shape...)
		out[i] = t
	}
	return out
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	t := f.tensors[i]
	t.Shape = append([]int(nil), t.Shape...)
	return t, true
}

// Metadata returns a copy of the header's __metadata__ (nil if absent).
func (f *File) Metadata() map[string]string {
	if f.metadata == nil {
		return nil
	}
	md := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		md[k] = v
	}
	return md
}

// DataOffset is where the data buffer starts in the file: 8 plus the
// header length. A tensor's bytes are at DataOffset()+Begin.
func (f *File) DataOffset() int64 { return f.offset }

// Mapped reports whether the file is memory-mapped (rather than read into
// memory because mapping failed).
func (f *File) Mapped() bool { return f.mapped }

// Bytes returns the named tensor's raw little-endian data: a read-only view
// into the file, valid until Close. Writing to it faults.
func (f *File) Bytes(name string) ([]byte, error) {
	i, ok := f.index[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	if f.data == nil {
		return nil, fmt.Errorf("safetensors: %s: file is closed", f.path)
	}
	t := f.tensors[i]
	return f.buf[t.Begin:t.End:t.End], nil
}

// Release lets the pages of the named tensor leave the process's resident
// memory: a checkpoint streamed tensor by tensor then holds only the tensors
// in flight, not every page it has read. Views from Bytes stay valid (their
// pages come back from the page cache on access). It does nothing when the
// file is not mapped.
func (f *File) Release(name string) {
	i, ok := f.index[name]
	if !ok || f.region == nil {
		return
	}
	t := f.tensors[i]
	f.region.Release(f.offset+t.Begin, f.offset+t.End)
}

// Float32 returns the named tensor converted to float32: exact for F32,
// F16, BF16 and integers up to 2^24 in magnitude, rounded to nearest even
// otherwise (F64 beyond float32's range becomes ±Inf); BOOL gives 0 and 1.
func (f *File) Float32(name string) ([]float32, error) {
	return f.Float32Into(name, nil)
}

// Float32Into is Float32 writing into dst when its capacity holds the
// tensor (a new slice otherwise), so that a loop over tensors reuses one
// buffer instead of allocating, and clearing, one per tensor.
func (f *File) Float32Into(name string, dst []float32) ([]float32, error) {
	b, err := f.Bytes(name)
	if err != nil {
		return nil, err
	}
	t := f.tensors[f.index[name]]
	d := lookupDType(t.DType)
	n := len(b) / d.size
	out := dst[:0]
	if cap(out) < n {
		out = make([]float32, n)
	}
	out = out[:n]
	if t.DType == "F32" && littleEndianHost && f.osf != nil && len(out) > 0 {
		dst := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(b))
		if _, err := f.osf.ReadAt(dst, f.offset+t.Begin); err == nil {
			return out, nil
		}
	}
	d.toFloat32(out, b)
	return out, nil
}

// Float32RangeInto converts elements [lo, hi) of the named tensor, in
// row-major order, into dst[:hi-lo], as Float32Into converts the whole
// tensor, and lets the pages it read leave resident memory (Release of
// that range), so that a large tensor read block by block has one block
// resident at a time, not every page read so far. An F32 tensor is read
// with pread and does not touch the mapping at all.
func (f *File) Float32RangeInto(name string, lo, hi int, dst []float32) error {
	b, err := f.Bytes(name)
	if err != nil {
		return err
	}
	t := f.tensors[f.index[name]]
	d := lookupDType(t.DType)
	if n := len(b) / d.size; lo < 0 || hi < lo || hi > n || len(dst) < hi-lo {
		return fmt.Errorf("safetensors: %s: %s: elements [%d, %d) of %d into %d", f.path, name, lo, hi, n, len(dst))
	}
	out := dst[:hi-lo]
	if len(out) == 0 {
		return nil
	}
	b = b[lo*d.size : hi*d.size]
	if t.DType == "F32" && littleEndianHost && f.osf != nil {
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(b))
		if _, err := f.osf.ReadAt(raw, f.offset+t.Begin+int64(lo*d.size)); err == nil {
			return nil
		}
	}
	d.toFloat32(out, b)
	if f.region != nil {
		f.region.Release(f.offset+t.Begin+int64(lo*d.size), f.offset+t.Begin+int64(hi*d.size))
	}
	return nil
}

// ReadTensorAt reads len(dst) bytes of the named tensor's raw data, from
// byte off of it, into dst: with pread when the file is mapped (a kernel
// copy from the page cache that maps nothing into the process, so a
// tensor read block by block into one recycled buffer keeps no page of it
// resident), else copied from memory. It fails if the range runs past the
// tensor.
func (f *File) ReadTensorAt(name string, dst []byte, off int64) error {
	b, err := f.Bytes(name)
	if err != nil {
		return err
	}
	if off < 0 || off > int64(len(b)) || int64(len(dst)) > int64(len(b))-off {
		return fmt.Errorf("safetensors: %s: %s: %d bytes at %d of %d", f.path, name, len(dst), off, len(b))
	}
	if len(dst) == 0 {
		return nil
	}
	t := f.tensors[f.index[name]]
	if f.osf != nil {
		if _, err := f.osf.ReadAt(dst, f.offset+t.Begin+off); err == nil {
			return nil
		}
	}
	copy(dst, b[off:])
	if f.region != nil {
		f.region.Release(f.offset+t.Begin+off, f.offset+t.Begin+off+int64(len(dst)))
	}
	return nil
}

// ReleaseRange is Release of bytes [off, off+n) of the named tensor's
// data only (whole pages around them): a tensor read block by block
// through its mapping lets each block go once it is read.
func (f *File) ReleaseRange(name string, off, n int64) {
	i, ok := f.index[name]
	if !ok || f.region == nil || off < 0 || n <= 0 {
		return
	}
	t := f.tensors[i]
	f.region.Release(f.offset+t.Begin+off, f.offset+min(t.Begin+off+n, t.End))
}
