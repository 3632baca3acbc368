//go:build linux && !nommap

package mmap

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestReleaseDropsPages checks in /proc/self/smaps that Release takes a
// mapping's pages out of the resident set, and only those it covers.
func TestReleaseDropsPages(t *testing.T) {
	page := os.Getpagesize()
	f, _ := writeFile(t, 64*page)
	r, err := Map(f, int64(64*page))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Mapped() {
		t.Fatal("not mapped")
	}
	touch := func() {
		for i := 0; i < len(r.Bytes()); i += page {
			sink += int(r.Bytes()[i])
		}
	}
	touch()
	if got := residentKB(t, r.Bytes()); got != 64*page/1024 {
		t.Fatalf("after reading every page: %d kB resident, want %d", got, 64*page/1024)
	}
	// Pages 10 to 29: the range starts mid-page 10 and ends mid-page 29.
	r.Release(int64(10*page+5), int64(29*page+1))
	if got, want := residentKB(t, r.Bytes()), 44*page/1024; got != want {
		t.Errorf("after releasing 20 pages of 64: %d kB resident, want %d", got, want)
	}
	r.Release(0, int64(len(r.Bytes())))
	if got := residentKB(t, r.Bytes()); got != 0 {
		t.Errorf("after releasing everything: %d kB resident, want 0", got)
	}
	touch()
	if got := residentKB(t, r.Bytes()); got != 64*page/1024 {
		t.Errorf("after reading again: %d kB resident, want %d", got, 64*page/1024)
	}
}

// sink keeps the reads of touch.
var sink int

// residentKB is the Rss of the mapping that starts at b's first byte.
func residentKB(t *testing.T, b []byte) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	s := bufio.NewScanner(f)
	in := false
	for s.Scan() {
		line := s.Text()
		if fs := strings.Fields(line); len(fs) >= 5 && strings.Contains(fs[0], "-") {
			// A mapping's first line: "start-end perms offset dev inode [path]".
			in = strings.HasPrefix(line, start)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatalf("smaps: %q", line)
			}
			return kb
		}
	}
	t.Fatalf("no mapping at %s in /proc/self/smaps", start)
	return 0
}
