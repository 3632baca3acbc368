//go:build unix

package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps size bytes of f read-only.
func mapFile(f *os.File, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
}

func unmapFile(b []byte) error { return unix.Munmap(b) }

// releasePages tells the kernel that b[lo:hi] of a mapping will not be
// needed soon, so its pages leave this process's resident set (they stay in
// the page cache, and come back on the next access).
func releasePages(b []byte, lo, hi int64) {
	page := int64(os.Getpagesize())
	lo = lo / page * page
	hi = min((hi+page-1)/page*page, int64(len(b)))
	if lo < hi {
		unix.Madvise(b[lo:hi], unix.MADV_DONTNEED)
	}
}
