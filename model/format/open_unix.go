//go:build unix

package format

import (
	"os"
	"syscall"
)

// openNonblocking opens path read-only with O_NONBLOCK, which returns at
// once for a named pipe that has no writer (a plain open waits for one).
func openNonblocking(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// setBlocking clears O_NONBLOCK on a regular file (where Linux ignores it,
// but not every system does for every file system).
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}
