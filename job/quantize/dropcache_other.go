//go:build !linux

package quantize

import "errors"

// dropCache is not supported here: the page cache cannot be dropped file
// by file.
func dropCache(files []string) error {
	return errors.New("evicting files from the page cache is supported on Linux only")
}
