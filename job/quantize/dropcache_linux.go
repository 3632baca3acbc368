package quantize

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dropCache evicts the pages of files from the page cache
// (posix_fadvise POSIX_FADV_DONTNEED), so that the next read of them goes
// to the disk. Only clean pages go; the files are inputs, never dirty.
func dropCache(files []string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: evicting from the page cache: %w", name, err)
		}
	}
	return nil
}
