//go:build cuda

package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
)

// allocation is one cuMemAlloc: the memory a Buffer and its views share.
type allocation struct {
	ptr   cu.DevicePtr // 0 for an empty buffer
	bytes int64
	freed atomic.Bool
}

// Buffer is device memory of a Backend, or a view of it: elements
// [off, off+n) of an allocation.
type Buffer struct {
	b   *Backend
	a   *allocation
	dt  backend.DType
	off int // elements
	n   int
}

var _ backend.Buffer = (*Buffer)(nil)

// DType is the element type.
func (x *Buffer) DType() backend.DType { return x.dt }

// Len is the number of elements.
func (x *Buffer) Len() int { return x.n }

// Slice is a view of elements [off, off+n) sharing the memory; it panics
// when they are not inside the buffer. Its device address is the buffer's
// plus off elements, so views of int8 data may be unaligned (GemmS8 copies
// those).
func (x *Buffer) Slice(off, n int) backend.Buffer {
	if off < 0 || n < 0 || off > x.n-n {
		panic(fmt.Sprintf("gpu: Slice(%d, %d) of a %d-element %v buffer", off, n, x.n, x.dt))
	}
	return &Buffer{b: x.b, a: x.a, dt: x.dt, off: x.off + off, n: n}
}

// DevicePtr is the device address of the first element (0 for a buffer of
// no elements that is no view).
func (x *Buffer) DevicePtr() cu.DevicePtr { return x.ptr() }

// Bytes is the size of the buffer's elements in bytes.
func (x *Buffer) Bytes() int64 { return int64(x.n) * int64(x.dt.Size()) }

func (x *Buffer) ptr() cu.DevicePtr {
	return x.a.ptr + cu.DevicePtr(x.off*x.dt.Size())
}

// whole reports whether x covers its entire allocation.
func (x *Buffer) whole() bool {
	return x.off == 0 && int64(x.n)*int64(x.dt.Size()) == x.a.bytes
}

// own returns buf as a live Buffer of this backend.
func (b *Backend) own(op, what string, buf backend.Buffer) (*Buffer, error) {
	x, ok := buf.(*Buffer)
	if !ok || x == nil {
		return nil, b.errorf("%s: %s is a %T, not a gpu buffer", op, what, buf)
	}
	if x.b != b {
		return nil, b.errorf("%s: %s belongs to %s", op, what, x.b.label())
	}
	if x.a.freed.Load() {
		return nil, b.errorf("%s: %s was freed", op, what)
	}
	return x, nil
}

// typed is own that also checks the element type.
func (b *Backend) typed(op, what string, buf backend.Buffer, dt backend.DType) (*Buffer, error) {
	x, err := b.own(op, what, buf)
	if err != nil {
		return nil, err
	}
	if x.dt != dt {
		return nil, b.errorf("%s: %s is %v, want %v", op, what, x.dt, dt)
	}
	return x, nil
}

// Alloc allocates n elements of type dt on the device, zeroed as
// backend.Backend requires: a cuMemsetD8 queued on the stream, so that it
// runs before any operation queued after Alloc returns (the driver hands
// freed memory back with whatever it held). When the device is out of
// memory the error says how much was asked for and how much is free.
func (b *Backend) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	if n < 0 {
		return nil, b.errorf("Alloc of %d elements", n)
	}
	switch dt {
	case backend.F32, backend.S8, backend.U8, backend.S32:
	default:
		return nil, b.errorf("Alloc of unknown type %v", dt)
	}
	if n > math.MaxInt64/dt.Size() {
		return nil, b.errorf("Alloc of %d %v elements overflows", n, dt)
	}
	a := &allocation{bytes: int64(n) * int64(dt.Size())}
	err := b.do(func() error {
		if a.bytes > 0 {
			p, err := b.memAlloc(a.bytes, fmt.Sprintf("Alloc of %d %v", n, dt))
			if err != nil {
				return err
			}
			if err := cu.MemsetD8Async(p, 0, a.bytes, b.stream); err != nil {
				cu.MemFree(p)
				return b.asyncErr(fmt.Sprintf("zeroing an Alloc of %d %v", n, dt), err)
			}
			a.ptr = p
		}
		b.live[a] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Buffer{b: b, a: a, dt: dt, n: n}, nil
}

// memAlloc is cuMemAlloc with an error that says what asked for the memory
// (what), how much, and how much the device has free. It runs on the owner
// goroutine.
func (b *Backend) memAlloc(bytes int64, what string) (cu.DevicePtr, error) {
	p, err := cu.MemAlloc(bytes)
	if err == nil {
		return p, nil
	}
	err = cuErr(err)
	if errors.Is(err, cu.OutOfMemory) {
		if free, total, e := cu.MemInfo(); e == nil {
			return 0, b.errorf("%s (%d bytes, %s): %w; %s of %s free", what, bytes, gib(uint64(bytes)), err, gib(uint64(free)), gib(uint64(total)))
		}
	}
	return 0, b.errorf("%s (%d bytes): %w", what, bytes, err)
}

// Free releases the memory of buf, a buffer from Alloc (not a view of
// part of one), after the work queued before it. Freeing twice is an
// error.
func (b *Backend) Free(buf backend.Buffer) error {
	x, err := b.own("Free", "buffer", buf)
	if err != nil {
		return err
	}
	if !x.whole() {
		return b.errorf("Free of a view of elements [%d, %d); free the buffer it was sliced from", x.off, x.off+x.n)
	}
	return b.do(func() error {
		if x.a.freed.Load() {
			return b.errorf("Free: buffer was freed")
		}
		delete(b.live, x.a)
		x.a.freed.Store(true)
		if x.a.ptr == 0 {
			return nil
		}
		// Kernels queued before may still use the memory.
		if err := b.sync(); err != nil {
			return err
		}
		if err := cu.MemFree(x.a.ptr); err != nil {
			return b.errorf("Free of %d bytes: %w", x.a.bytes, cuErr(err))
		}
		return nil
	})
}

// hostSlice gives the address, length and element type of a host slice.
func hostSlice(h any) (unsafe.Pointer, int, backend.DType, bool) {
	switch h := h.(type) {
	case []float32:
		return unsafe.Pointer(unsafe.SliceData(h)), len(h), backend.F32, true
	case []int8:
		return unsafe.Pointer(unsafe.SliceData(h)), len(h), backend.S8, true
	case []uint8:
		return unsafe.Pointer(unsafe.SliceData(h)), len(h), backend.U8, true
	case []int32:
		return unsafe.Pointer(unsafe.SliceData(h)), len(h), backend.S32, true
	}
	return nil, 0, 0, false
}

// checkHost reports whether host slice h fits buffer x.
func (b *Backend) checkHost(op string, x *Buffer, h any) (unsafe.Pointer, error) {
	p, n, dt, ok := hostSlice(h)
	if !ok {
		return nil, b.errorf("%s: host value is a %T, want []float32, []int8, []uint8 or []int32", op, h)
	}
	if dt != x.dt {
		return nil, b.errorf("%s: host slice is %v, buffer is %v", op, dt, x.dt)
	}
	if n != x.n {
		return nil, b.errorf("%s: host slice has %d elements, buffer %d", op, n, x.n)
	}
	return p, nil
}

// Upload copies a host slice of the buffer's type and length into dst,
// after the work queued before, and returns when the copy is done: from a
// slice of AllocPinned memory directly, from another of a MiB or more
// through page-locked staging buffers (transfer.go).
func (b *Backend) Upload(dst backend.Buffer, src any) error {
	x, err := b.own("Upload", "destination", dst)
	if err != nil {
		return err
	}
	p, err := b.checkHost("Upload", x, src)
	if err != nil || x.n == 0 {
		return err
	}
	return b.do(func() error {
		if err := b.joinCopies(); err != nil {
			return err
		}
		if err := b.upload(x.ptr(), p, x.Bytes(), fmt.Sprintf("Upload of %d %v", x.n, x.dt)); err != nil {
			return err
		}
		err := b.sync()
		// p points into src, which the closure must keep alive until here.
		runtime.KeepAlive(src)
		return err
	})
}

// Download copies src into a host slice of its type and length once the
// work queued before is done (directly into AllocPinned memory, through
// the staging buffers into other slices of a MiB or more).
func (b *Backend) Download(dst any, src backend.Buffer) error {
	x, err := b.own("Download", "source", src)
	if err != nil {
		return err
	}
	p, err := b.checkHost("Download", x, dst)
	if err != nil || x.n == 0 {
		return err
	}
	return b.do(func() error {
		if err := b.joinCopies(); err != nil {
			return err
		}
		err := b.download(p, x.ptr(), x.Bytes(), fmt.Sprintf("Download of %d %v", x.n, x.dt))
		runtime.KeepAlive(dst)
		return err
	})
}

// asyncErr wraps the error of a call that may report a failure of a kernel
// queued before it, naming that kernel.
func (b *Backend) asyncErr(what string, err error) error {
	if b.lastLaunch != "" {
		return b.errorf("%s (after %s): %w", what, b.lastLaunch, cuErr(err))
	}
	return b.errorf("%s: %w", what, cuErr(err))
}

// scratch is device memory the backend keeps between operations: padded
// GEMM operands, epilogue and quantization parameter vectors, reduction
// results. A parameter vector remembers what it last uploaded (host), so
// that repeated calls with the same values upload nothing.
type scratch struct {
	ptr   cu.DevicePtr
	bytes int64
	host  []byte
	valid bool
}

type scratchBuffers struct {
	padA, padB                          scratch
	colOffset, rowScale, colScale, bias scratch
	scales, zeroPoints                  scratch
	reduce                              scratch
	lmIDs, lmPos, lmLimit, lmFreqs      scratch // lm.go's host vectors
}

func (s *scratchBuffers) all() []*scratch {
	return []*scratch{&s.padA, &s.padB, &s.colOffset, &s.rowScale, &s.colScale, &s.bias,
		&s.scales, &s.zeroPoints, &s.reduce, &s.lmIDs, &s.lmPos, &s.lmLimit, &s.lmFreqs}
}

// free releases every scratch buffer; the stream must be idle.
func (s *scratchBuffers) free() {
	for _, sc := range s.all() {
		if sc.ptr != 0 {
			cu.MemFree(sc.ptr)
		}
		*sc = scratch{}
	}
}

// ensure gives s at least need bytes, replacing it (after the queued work,
// which may use it) when it is smaller. It runs on the owner goroutine.
func (b *Backend) ensure(s *scratch, need int64, what string) (cu.DevicePtr, error) {
	if need <= s.bytes {
		return s.ptr, nil
	}
	if s.ptr != 0 {
		if err := b.sync(); err != nil {
			return 0, err
		}
		if err := cu.MemFree(s.ptr); err != nil {
			return 0, b.errorf("freeing scratch memory: %w", cuErr(err))
		}
		*s = scratch{}
	}
	size := (need + 4095) &^ 4095
	p, err := b.memAlloc(size, "scratch memory for "+what)
	if err != nil {
		return 0, err
	}
	s.ptr, s.bytes = p, size
	return p, nil
}

// vector uploads data into s (queued on the stream, so that kernels queued
// before still see the old values) unless s holds it already, and returns
// its address; 0 for no data.
func (b *Backend) vector(s *scratch, data []byte, what string) (cu.DevicePtr, error) {
	if len(data) == 0 {
		return 0, nil
	}
	if s.valid && bytes.Equal(s.host, data) {
		return s.ptr, nil
	}
	p, err := b.ensure(s, int64(len(data)), what)
	if err != nil {
		return 0, err
	}
	s.valid = false
	// From pageable memory the driver copies data into a staging buffer
	// before it returns; the transfer itself follows the queued kernels.
	if err := cu.MemcpyHtoDAsync(p, unsafe.Pointer(unsafe.SliceData(data)), int64(len(data)), b.stream); err != nil {
		return 0, b.asyncErr("uploading "+what, err)
	}
	s.host = append(s.host[:0], data...)
	s.valid = true
	return p, nil
}

// asBytes is the memory of a float32 or int32 slice.
func asBytes[T float32 | int32 | uint32 | uint64](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}
