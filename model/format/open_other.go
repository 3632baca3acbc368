//go:build !unix

package format

import (
	"fmt"
	"os"
)

// openNonblocking checks what path is before opening it: without
// O_NONBLOCK, that is the only way not to open a pipe (the file is checked
// again through its descriptor after).
func openNonblocking(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, Describe(fi.Mode()))}
	}
	return os.Open(path)
}

func setBlocking(f *os.File) error { return nil }
