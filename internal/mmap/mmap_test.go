package mmap

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// writeFile writes n random bytes (fixed seed) to a new file and opens it.
func writeFile(t *testing.T, n int) (*os.File, []byte) {
	t.Helper()
	want := make([]byte, n)
	rnd := rand.New(rand.NewPCG(1, 1))
	for i := range want {
		want[i] = byte(rnd.Uint32())
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, want
}

// failMapping makes mapping fail for the rest of the test.
func failMapping(t *testing.T) {
	old := mapFunc
	mapFunc = func(*os.File, int) ([]byte, error) { return nil, errors.New("no mapping in this test") }
	t.Cleanup(func() { mapFunc = old })
}

// ways are the ways to get a Region, and whether each maps.
var ways = []struct {
	name  string
	open  func(t *testing.T, f *os.File, size int64) (*Region, error)
	mapps bool
}{
	{"Map", func(t *testing.T, f *os.File, size int64) (*Region, error) { return Map(f, size) }, canMap},
	{"Map/mapping fails", func(t *testing.T, f *os.File, size int64) (*Region, error) {
		failMapping(t)
		return Map(f, size)
	}, false},
	{"Read", func(t *testing.T, f *os.File, size int64) (*Region, error) { return Read(f, size) }, false},
}

func TestRegion(t *testing.T) {
	page := os.Getpagesize()
	for _, w := range ways {
		for _, n := range []int{1, page, 3*page + 17} {
			t.Run(w.name+"/"+strconv.Itoa(n), func(t *testing.T) {
				f, want := writeFile(t, n)
				r, err := w.open(t, f, int64(n))
				if err != nil {
					t.Fatal(err)
				}
				// The region outlives the descriptor.
				f.Close()
				if r.Mapped() != w.mapps {
					t.Errorf("Mapped() = %v, want %v", r.Mapped(), w.mapps)
				}
				if !bytes.Equal(r.Bytes(), want) {
					t.Fatalf("Bytes() differ from the file")
				}
				// Release keeps the contents, whatever the range.
				for _, rg := range [][2]int64{{0, int64(n)}, {1, 2}, {int64(page) - 1, int64(page) + 1},
					{-5, 3}, {int64(n) - 1, int64(n) + 100}, {int64(n) + 5, int64(n) + 9}, {7, 3}, {0, 1 << 40}} {
					r.Release(rg[0], rg[1])
					if !bytes.Equal(r.Bytes(), want) {
						t.Fatalf("after Release(%d, %d) Bytes() differ from the file", rg[0], rg[1])
					}
				}
				if err := r.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if r.Bytes() != nil || r.Mapped() {
					t.Errorf("after Close: %d bytes, mapped %v", len(r.Bytes()), r.Mapped())
				}
				if err := r.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
				r.Release(0, int64(n)) // harmless after Close
			})
		}
	}
}

// TestPrefix maps fewer bytes than the file holds.
func TestPrefix(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			f, want := writeFile(t, 10000)
			r, err := w.open(t, f, 4097)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if !bytes.Equal(r.Bytes(), want[:4097]) {
				t.Errorf("Bytes() are not the first 4097 bytes of the file")
			}
		})
	}
}

func TestEmptyFile(t *testing.T) {
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			f, _ := writeFile(t, 0)
			r, err := w.open(t, f, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Bytes()) != 0 || r.Mapped() {
				t.Errorf("empty file: %d bytes, mapped %v", len(r.Bytes()), r.Mapped())
			}
			r.Release(0, 10)
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	f, _ := writeFile(t, 100)
	if _, err := Read(f, 101); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Read of 101 bytes of a 100-byte file: %v, want io.ErrUnexpectedEOF", err)
	}
	t.Run("mapping fails", func(t *testing.T) {
		failMapping(t)
		if _, err := Map(f, 101); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Map of 101 bytes of a 100-byte file that cannot be mapped: %v, want io.ErrUnexpectedEOF", err)
		}
	})
	for _, size := range []int64{-1, -1 << 62} {
		if _, err := Map(f, size); err == nil {
			t.Errorf("Map of size %d: no error", size)
		}
		if _, err := Read(f, size); err == nil {
			t.Errorf("Read of size %d: no error", size)
		}
	}
	// A descriptor that is not open for reading: neither way can read.
	wf, err := os.OpenFile(filepath.Join(t.TempDir(), "w"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	if _, err := wf.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if r, err := Map(wf, 100); err == nil {
		r.Close()
		t.Errorf("Map of a write-only descriptor: no error")
	}
}
