// Package mmap holds the contents of a file read-only in memory: mapped
// where the platform can map files (unix), read into memory where it
// cannot or where mapping fails (a file system without mmap, an empty
// file). The model readers (gguf, safetensors) open files through it, so
// there is one copy of the system calls and of the fallback.
//
// The fallback also builds on unix with the nommap tag, the way gonum's
// noasm tag selects its pure-Go kernels, so that it is tested here:
//
//	go test -tags nommap ./internal/mmap
//
// A mapping reads the file as it is on disk: a file truncated by another
// process while mapped makes reads past its new end fault (SIGBUS);
// internal/fault turns those into errors.
package mmap

import (
	"fmt"
	"io"
	"math"
	"os"
)

// Region is the first bytes of a file, held read-only: a shared read-only
// mapping of the file, or a copy read into memory.
type Region struct {
	data   []byte
	mapped bool
}

// Map maps the first size bytes of f read-only (PROT_READ, MAP_SHARED);
// size must not exceed the file's size (pages past its end fault).
// Where it cannot (a platform without mmap, a file system that refuses,
// size 0) it reads them into memory instead, as Read does; Mapped says
// which. Only errors of that read are returned. The mapping outlives f:
// callers may close f once Map returns.
func Map(f *os.File, size int64) (*Region, error) {
	n, err := checkSize(size)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		if b, err := mapFunc(f, n); err == nil {
			return &Region{data: b, mapped: true}, nil
		}
	}
	return read(f, n)
}

// mapFunc is mapFile; tests make it fail to check the fallback.
var mapFunc = mapFile

// Read reads the first size bytes of f into memory. It fails when f holds
// fewer (io.ErrUnexpectedEOF).
func Read(f *os.File, size int64) (*Region, error) {
	n, err := checkSize(size)
	if err != nil {
		return nil, err
	}
	return read(f, n)
}

func read(f *os.File, n int) (*Region, error) {
	data := make([]byte, n)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, int64(n)), data); err != nil {
		return nil, err
	}
	return &Region{data: data}, nil
}

func checkSize(size int64) (int, error) {
	if size < 0 {
		return 0, fmt.Errorf("negative file size %d", size)
	}
	if size > math.MaxInt {
		return 0, fmt.Errorf("file size %d too large for this platform", size)
	}
	return int(size), nil
}

// Bytes is the region's contents, len the size given to Map or Read. They
// must not be written (a mapping is read-only: writes fault), nor used
// after Close.
func (r *Region) Bytes() []byte { return r.data }

// Mapped reports whether the region is a mapping of the file (rather than
// a copy read into memory).
func (r *Region) Mapped() bool { return r.mapped }

// Release tells the kernel that bytes [lo, hi) of a mapping will not be
// needed soon (madvise MADV_DONTNEED), so that their pages leave the
// process's resident set; they stay in the page cache and come back, with
// the same contents, on the next access. The range widens to whole pages
// and is clipped to the region. For a copy read into memory it does
// nothing.
func (r *Region) Release(lo, hi int64) {
	if !r.mapped || r.data == nil {
		return
	}
	page := int64(os.Getpagesize())
	lo = max(lo, 0) / page * page
	hi = min((hi+page-1)/page*page, int64(len(r.data)))
	if lo < hi {
		release(r.data[lo:hi])
	}
}

// Close unmaps a mapping (a copy is left to the garbage collector). Bytes
// must not be used afterwards. Closing twice is harmless.
func (r *Region) Close() error {
	data, mapped := r.data, r.mapped
	r.data, r.mapped = nil, false
	if mapped && data != nil {
		return unmap(data)
	}
	return nil
}
