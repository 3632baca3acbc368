//go:build unix

package atomicfile

import (
	"os"
	"syscall"
)

// umask is the process's file mode creation mask, read once at start-up
// (umask(2) can only be read by setting it, so it is set back at once,
// before any other goroutine can create files).
var umask = func() os.FileMode {
	m := syscall.Umask(0o022)
	syscall.Umask(m)
	return os.FileMode(m)
}()
