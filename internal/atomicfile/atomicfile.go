// Package atomicfile writes files so that a reader sees either the old
// file or the complete new one, never a half-written file: data goes to a
// temporary file in the same directory, which is synced and renamed over
// the destination only on success.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File is a temporary file beside its destination, which it replaces on
// Commit. Errors from its methods name the temporary file; callers add the
// destination's context.
type File struct {
	*os.File
	path string
	done bool
	// written counts the bytes of Write, started those already handed to
	// the disk by startWriteback.
	written, started int64
}

// writeBehind is how many bytes Write lets accumulate before it asks the
// kernel to start writing them out. Without it a multi-gigabyte output
// sits in the page cache until Commit's sync, which then writes all of it
// while nothing else runs; with it, the disk works while the data is
// still being computed, and the final sync has little left to do.
const writeBehind = 32 << 20

// Write is os.File's Write, for sequential writers (bufio over a File),
// starting the disk's writeback of every writeBehind bytes as they pass.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.written += int64(n)
	if f.written-f.started >= writeBehind {
		startWriteback(f.File, f.started, f.written-f.started)
		f.started = f.written
	}
	return n, err
}

// Create starts a temporary file that Commit renames to path. It keeps the
// permissions of an existing file at path (0644 otherwise) and refuses to
// replace anything but a regular file.
func Create(path string) (*File, error) {
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, errors.New("not a regular file")
		}
		perm = fi.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs and closes the temporary file and renames it to the
// destination; on any failure it removes it. A second call does nothing.
func (f *File) Commit() error {
	if f.done {
		return nil
	}
	f.done = true
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Abort closes and removes the temporary file, leaving the destination as
// it was. It is harmless after Commit or Abort.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// WriteFile is os.WriteFile made atomic.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Write creates a temporary file beside path, lets fill write it, and
// renames it to path with permissions perm when fill and the sync succeed;
// otherwise it removes the temporary file and returns the error, prefixed
// with path.
func Write(path string, perm os.FileMode, fill func(f *os.File) error) error {
	f, err := Create(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = fill(f.File); err == nil {
		err = f.Chmod(perm)
	}
	if err != nil {
		f.Abort()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
