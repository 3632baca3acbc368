//go:build unix

package fault

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Reading a mapped page past the end of a file that was truncated after
// mapping is an error, not a crash.
func TestCatchTruncatedMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 1<<16, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Skip(err)
	}
	defer syscall.Munmap(m)
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	var sum byte
	err = Catch(func() error {
		for _, b := range m[1<<15:] {
			sum += b
		}
		return nil
	})
	var fe *Error
	if !errors.As(err, &fe) || !Is(err) {
		t.Fatalf("Catch returned %v, want a fault", err)
	}
	want := errors.New("plain")
	if err := Catch(func() error { return want }); err != want {
		t.Fatalf("Catch changed f's error: %v", err)
	}
	defer func() {
		if r := recover(); r != "other" {
			t.Fatalf("recovered %v, want the other panic passed on", r)
		}
	}()
	Catch(func() error { panic("other") })
}
