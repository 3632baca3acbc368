package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPartFiles: HashPartFiles records what is in a part directory (the
// SHA-256 of "abc" is FIPS 180-2's example), and CheckPartFiles names
// every file that is missing, foreign, truncated or changed in place.
func TestPartFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	write("b.safetensors", "abc")
	write("a.json", "")
	write(PartFileName, "{}")             // not listed
	write(".b.safetensors.tmp-1-2", "xx") // a temporary: not listed
	files, err := HashPartFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []PartFile{
		{"a.json", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"b.safetensors", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	if len(files) != len(want) || files[0] != want[0] || files[1] != want[1] {
		t.Fatalf("HashPartFiles = %+v, want %+v", files, want)
	}
	if err := ValidatePartFileList(files); err != nil {
		t.Errorf("its own list: %v", err)
	}
	if err := CheckPartFiles(dir, files); err != nil {
		t.Fatalf("unchanged part: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func()
		want   []string
	}{
		{"changed in place", func() { write("b.safetensors", "abd") }, []string{"b.safetensors: SHA-256 a52d159f", "records ba7816bf"}},
		{"truncated", func() { write("b.safetensors", "ab") }, []string{"b.safetensors: 2 bytes, part.json records 3"}},
		{"missing", func() { os.Remove(filepath.Join(dir, "a.json")) }, []string{"a.json: missing"}},
		{"foreign", func() { write("c.safetensors", "") }, []string{"c.safetensors: not one of the files part.json lists"}},
		{"all", func() {
			write("b.safetensors", "")
			os.Remove(filepath.Join(dir, "a.json"))
			write("z", "")
		}, []string{"b.safetensors: 0 bytes", "a.json: missing", "z: not one of"}},
	} {
		tc.change()
		err := CheckPartFiles(dir, files)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want %q", tc.name, err, w)
			}
		}
		for _, f := range []string{"c.safetensors", "z"} {
			os.Remove(filepath.Join(dir, f))
		}
		write("a.json", "")
		write("b.safetensors", "abc")
		if err := CheckPartFiles(dir, files); err != nil {
			t.Fatalf("after %s, restored: %v", tc.name, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := HashPartFiles(dir); err == nil || !strings.Contains(err.Error(), "sub: not a regular file") {
		t.Errorf("a directory in a part: %v", err)
	}
}
