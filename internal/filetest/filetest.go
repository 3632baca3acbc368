// Package filetest holds helpers for tests of file readers: a named pipe
// to give them, and a deadline so that a reader that blocks on one fails
// its test instead of hanging it.
package filetest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Timeout is how long Within waits before it calls a reader hung.
const Timeout = 5 * time.Second

// NamedPipe creates a named pipe (FIFO) called name in a temporary
// directory and returns its path; it skips t where the platform has none.
func NamedPipe(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := mkfifo(path); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	return path
}

// Within runs read, which reads path, and returns its error; it fails t
// when read has not returned after Timeout. A read blocked opening a
// named pipe at path is then released by opening the pipe's other end,
// so the goroutine does not outlive the test.
func Within(t testing.TB, path string, read func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- read() }()
	select {
	case err := <-done:
		return err
	case <-time.After(Timeout):
		if w, err := os.OpenFile(path, os.O_WRONLY|nonblock, 0); err == nil {
			w.Close()
		}
		t.Fatalf("reading %s did not return in %v (blocked on a named pipe?)", path, Timeout)
		return nil
	}
}

// Special is a file that is not a regular one, and what a reader's error
// must call it.
type Special struct{ Path, What string }

// SpecialFiles returns a named pipe called name, /dev/zero where there is
// one, and a directory: the inputs every reader must refuse at once.
func SpecialFiles(t testing.TB, name string) []Special {
	t.Helper()
	files := []Special{{NamedPipe(t, name), "a named pipe"}, {t.TempDir(), "a directory"}}
	if _, err := os.Stat("/dev/zero"); err == nil {
		files = append(files, Special{"/dev/zero", "a character device"})
	}
	return files
}
