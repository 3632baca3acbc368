package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// checkOutputFile is run before any work for every side output a command
// writes at the end (--json FILE, --csv FILE, --plot FILE, -o FILE,
// --trt-cache FILE, ...), so that a typo in a path costs nothing: flag
// names the option in the error. It checks that path has one of exts
// (compared case-insensitively; none given: any), that it is not a
// directory or other non-regular file, and that its directory exists and
// is writable. "-" (standard output) passes when dash is true.
func checkOutputFile(flag, path string, dash bool, exts ...string) error {
	if path == "" {
		return badInput(fmt.Errorf("--%s: empty path", flag))
	}
	if path == "-" && dash {
		return nil
	}
	if len(exts) > 0 && !slices.Contains(exts, strings.ToLower(filepath.Ext(path))) {
		return badInput(fmt.Errorf("--%s %s: want a %s file", flag, path, strings.Join(exts, " or ")))
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		what := "not a regular file"
		if fi.IsDir() {
			what = "a directory"
		}
		return badInput(fmt.Errorf("--%s %s: is %s", flag, path, what))
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return badInput(fmt.Errorf("--%s %s: directory %s does not exist", flag, path, dir))
	case err != nil:
		return badInput(fmt.Errorf("--%s %s: %w", flag, path, err))
	case !fi.IsDir():
		return badInput(fmt.Errorf("--%s %s: %s is not a directory", flag, path, dir))
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return badInput(fmt.Errorf("--%s %s: cannot write in %s: %w", flag, path, dir, err))
	}
	return nil
}
