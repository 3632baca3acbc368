package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// checkOutput is run by the commands that write a checkpoint (quantize,
// dequantize, merge) before they write anything. It refuses an output
// path that exists unless force is set, and an output that cannot fit: a
// run that would stop with "no space left on device" after minutes of
// work is refused at once, naming the space it needs and what is free.
// need is the size of the tensor data to be written; headers and side
// files are small beside it.
func checkOutput(out string, force bool, need int64) error {
	if _, err := os.Lstat(out); err == nil && !force {
		return badInput(fmt.Errorf("%s exists; --force replaces it", out))
	}
	dir := existingDir(filepath.Dir(filepath.Clean(out)))
	free, ok := freeBytes(dir)
	if ok && need > free {
		return badInput(fmt.Errorf("%s: not enough space: the output needs %s, %s is free on the filesystem of %s",
			out, formatBytes(need), formatBytes(free), dir))
	}
	return nil
}

// existingDir is dir or its nearest ancestor that exists.
func existingDir(dir string) string {
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// freeBytes is the space an unprivileged user may still write on the
// filesystem of dir; ok is false where that cannot be known. Tests replace
// it to reach the error of a disk that fills during a run.
var freeBytes = statfsFree

// noSpace rewrites an error of a full disk while writing out into one that
// says so plainly; the caller has already removed the partial output.
func noSpace(out string, need int64, err error) error {
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	what := "no space left on device"
	if errors.Is(err, syscall.EDQUOT) {
		what = "disk quota exceeded"
	}
	return fmt.Errorf("%s: %s while writing the output (%s in all); nothing was kept: %w",
		out, what, formatBytes(need), err)
}
