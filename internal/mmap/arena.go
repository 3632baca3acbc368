package mmap

import (
	"errors"
	"sync"
	"unsafe"
)

// Arena hands out memory outside the Go heap for large buffers that live
// as long as their owner, such as a model's weights, and gives it all back
// at once with Free.
//
// Why outside the heap: the garbage collector lets the heap grow to twice
// what was live after the last collection (GOGC=100) before it collects
// again. With gigabytes of weights on the heap, a few hundred kilobytes of
// garbage a token (logits, scratch) pile up to hundreds of megabytes of
// resident memory before the next collection; with the weights in an
// Arena, the collector paces itself on the small working heap.
//
// On unix the memory is anonymous private mappings; elsewhere, with the
// nommap tag, or when a mapping fails, ordinary slices (then Free only
// drops them). Buffers must not be used after Free. An Arena is safe for
// concurrent use.
type Arena struct {
	mu     sync.Mutex
	maps   [][]byte
	mapped int64
}

// Bytes returns n zeroed bytes that stay valid until Free.
func (a *Arena) Bytes(n int) []byte {
	if n <= 0 {
		return nil
	}
	b, err := mapAnon(n)
	if err != nil {
		return make([]byte, n)
	}
	a.mu.Lock()
	a.maps = append(a.maps, b)
	a.mapped += int64(len(b))
	a.mu.Unlock()
	return b[:n:n]
}

// Float32s returns n zeroed float32s that stay valid until Free (4-byte
// aligned: mappings start on a page).
func (a *Arena) Float32s(n int) []float32 {
	b := a.Bytes(4 * n)
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

// CopyBytes returns a copy of b in the arena.
func (a *Arena) CopyBytes(b []byte) []byte {
	c := a.Bytes(len(b))
	copy(c, b)
	return c
}

// CopyFloat32s returns a copy of x in the arena.
func (a *Arena) CopyFloat32s(x []float32) []float32 {
	c := a.Float32s(len(x))
	copy(c, x)
	return c
}

// Mapped is the bytes the arena holds outside the Go heap.
func (a *Arena) Mapped() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mapped
}

// Free unmaps everything the arena handed out; the arena may be used
// again afterwards.
func (a *Arena) Free() error {
	a.mu.Lock()
	maps := a.maps
	a.maps, a.mapped = nil, 0
	a.mu.Unlock()
	var errs []error
	for _, b := range maps {
		errs = append(errs, unmap(b))
	}
	return errors.Join(errs...)
}
