//go:build !unix

package safetensors

import (
	"errors"
	"os"
)

// mapFile is not implemented here; Open falls back to reading the file.
func mapFile(f *os.File, size int) ([]byte, error) {
	return nil, errors.New("mmap not supported on this platform")
}

func unmapFile(b []byte) error { return nil }

func releasePages(b []byte, lo, hi int64) {}
