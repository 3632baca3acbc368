//go:build !unix || nommap

package mmap

import (
	"errors"
	"fmt"
	"os"
)

// canMap is whether this build maps files.
const canMap = false

// mapFile fails: Map reads the file instead.
func mapFile(f *os.File, n int) ([]byte, error) {
	return nil, fmt.Errorf("mmap: %w on this platform", errors.ErrUnsupported)
}

func unmap(b []byte) error { return nil }

func release(b []byte) {}

// mapAnon fails: Arena allocates on the Go heap instead.
func mapAnon(n int) ([]byte, error) {
	return nil, fmt.Errorf("mmap: anonymous memory: %w on this platform", errors.ErrUnsupported)
}
