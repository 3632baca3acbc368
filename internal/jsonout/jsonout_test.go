package jsonout

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, map[string]any{"a": 1, "b": []int{2}}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}\n"; b.String() != want {
		t.Errorf("%q, want %q", b.String(), want)
	}
}

// A report that cannot be encoded leaves the file as it was.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")
	if err := WriteFile(path, []int{1}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, math.NaN()); err == nil {
		t.Fatal("NaN written")
	}
	if b, _ := os.ReadFile(path); string(b) != "[\n  1\n]\n" {
		t.Errorf("after a failed write the file holds %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}
