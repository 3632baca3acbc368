package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// MaxPartFiles is the most files one part.json may list.
const MaxPartFiles = 1 << 16

// PartFile is one file of a part directory as the run that wrote it left
// it: its name in the directory, its size and its SHA-256, which merge
// checks before it reads the file, so that a part that was truncated,
// rewritten or swapped for another run's file is named instead of merged.
type PartFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// HashPartFiles lists and hashes the regular files of dir, sorted by
// name: every file of a part but part.json itself and hidden (dot) files,
// such as the temporaries of writes in progress. Files are hashed
// concurrently, up to GOMAXPROCS at a time (at most 4: one disk).
func HashPartFiles(dir string) ([]PartFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []PartFile
	for _, e := range ents {
		if name := e.Name(); name != PartFileName && !strings.HasPrefix(name, ".") {
			if !e.Type().IsRegular() {
				return nil, fmt.Errorf("%s: not a regular file; a part holds only files", filepath.Join(dir, name))
			}
			files = append(files, PartFile{Name: name})
		}
	}
	err = forEach(len(files), func(i int) error {
		f := &files[i]
		var err error
		f.Size, f.SHA256, err = hashFile(filepath.Join(dir, f.Name))
		return err
	})
	return files, err
}

// CheckPartFiles compares dir with the files part.json lists: each must
// be there with the recorded size and SHA-256, and dir may hold no other
// (part.json and hidden files aside). Errors name the part directory, the
// file and what differs; every file is checked and every problem named.
func CheckPartFiles(dir string, want []PartFile) error {
	listed := make(map[string]bool, len(want))
	for _, f := range want {
		listed[f.Name] = true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if name := e.Name(); name != PartFileName && !strings.HasPrefix(name, ".") && !listed[name] {
			errs = append(errs, fmt.Errorf("%s: not one of the files %s lists (from another run?)", filepath.Join(dir, name), PartFileName))
		}
	}
	got := make([]error, len(want))
	forEach(len(want), func(i int) error {
		w := want[i]
		path := filepath.Join(dir, w.Name)
		size, sum, err := hashFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			got[i] = fmt.Errorf("%s: missing (%s lists it, %d bytes)", path, PartFileName, w.Size)
		case err != nil:
			got[i] = err
		case size != w.Size:
			got[i] = fmt.Errorf("%s: %d bytes, %s records %d (truncated or rewritten since the part was written)", path, size, PartFileName, w.Size)
		case sum != w.SHA256:
			got[i] = fmt.Errorf("%s: SHA-256 %s, %s records %s (changed since the part was written)", path, sum, PartFileName, w.SHA256)
		}
		return nil
	})
	return errors.Join(append(errs, got...)...)
}

// hashFile returns the size and hex SHA-256 of the regular file at path.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, "", fmt.Errorf("%s: not a regular file", path)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// forEach calls f(0), …, f(n-1), up to min(GOMAXPROCS, 4) at a time, and
// returns the first error by index.
func forEach(n int, f func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 4, n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ValidatePartFileList is ParsePart's check of a files list: unique plain
// names (no separator, not part.json, not hidden), sizes ≥ 0 and SHA-256
// sums in lower-case hex.
func ValidatePartFileList(files []PartFile) error {
	if len(files) > MaxPartFiles {
		return fmt.Errorf("%d files, more than %d", len(files), MaxPartFiles)
	}
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		switch {
		case f.Name == "" || len(f.Name) > 255 || strings.ContainsAny(f.Name, "/\\\x00") || strings.HasPrefix(f.Name, ".") || f.Name == PartFileName:
			return fmt.Errorf("file name %q is not that of a file in the part directory", f.Name)
		case seen[f.Name]:
			return fmt.Errorf("file %q listed twice", f.Name)
		case f.Size < 0:
			return fmt.Errorf("file %q: size %d is negative", f.Name, f.Size)
		case len(f.SHA256) != 2*sha256.Size || strings.ContainsFunc(f.SHA256, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }):
			return fmt.Errorf("file %q: sha256 %q is not 64 lower-case hexadecimal digits", f.Name, f.SHA256)
		}
		seen[f.Name] = true
	}
	if !slices.IsSortedFunc(files, func(a, b PartFile) int { return strings.Compare(a.Name, b.Name) }) {
		return errors.New("files are not sorted by name")
	}
	return nil
}
