//go:build unix && !nommap

package mmap

import (
	"os"

	"golang.org/x/sys/unix"
)

// canMap is whether this build maps files.
const canMap = true

// mapFile maps n > 0 bytes of f read-only.
func mapFile(f *os.File, n int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
}

func unmap(b []byte) error { return unix.Munmap(b) }

// release drops the pages of b, whole pages of a mapping, from the
// resident set. An error (the kernel refusing the advice) costs only
// memory, so it is ignored.
func release(b []byte) { unix.Madvise(b, unix.MADV_DONTNEED) }

// mapAnon maps n > 0 bytes of zeroed private memory, read-write.
func mapAnon(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
}
