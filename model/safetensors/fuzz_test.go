package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpen writes a file made of the length of header, header and data,
// and checks that Open never panics, that every tensor it accepts can be
// read and converted, and that writing the accepted tensors and metadata
// gives a file that opens to the same content. The seed corpus is in
// testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]}}`), []byte{0, 0x3c, 0, 0xbc})
	f.Add([]byte(`{"a":{"dtype":"I32","shape":[],"data_offsets":[4,8]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`), make([]byte, 9))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, header, data []byte) {
		path := filepath.Join(dir, "fuzz.safetensors")
		file := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		file = append(append(file, header...), data...)
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Open(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "safetensors: "+path+": ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		defer st.Close()
		var tensors []Tensor
		for _, ti := range st.Tensors() {
			b, err := st.Bytes(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := st.Float32(ti.Name)
			if err != nil || int64(len(vals)) != ti.Len() {
				t.Fatalf("%s: Float32 gave %d values, want %d (%v)", ti.Name, len(vals), ti.Len(), err)
			}
			tensors = append(tensors, Tensor{ti.Name, ti.DType, ti.Shape, b})
		}
		// Write back in memory: a file per input would be slow to sync.
		var buf bytes.Buffer
		if err := Write(&buf, tensors, st.Metadata()); err != nil {
			t.Fatalf("writing back what Open accepted: %v", err)
		}
		again, err := newFile("", buf.Bytes(), false)
		if err != nil {
			t.Fatalf("opening what was written: %v", err)
		}
		got := again.Tensors()
		if len(got) != len(tensors) || !mapsEqual(again.Metadata(), st.Metadata()) {
			t.Fatalf("round trip: %d tensors, metadata %v; want %d, %v", len(got), again.Metadata(), len(tensors), st.Metadata())
		}
		for i, ti := range got {
			b, _ := again.Bytes(ti.Name)
			want := tensors[i]
			if ti.Name != want.Name || ti.DType != want.DType || !slices.Equal(ti.Shape, want.Shape) || !bytes.Equal(b, want.Data) {
				t.Fatalf("round trip changed tensor %q", want.Name)
			}
		}
	})
}

// The committed seed corpus says what each file is by its name: valid_*
// files must open and invalid_* files must not.
func TestSeedCorpus(t *testing.T) {
	dir := "testdata/fuzz/FuzzOpen"
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("seed corpus: %v", err)
	}
	for _, e := range entries {
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a two-argument fuzz corpus file", e.Name())
		}
		var args [2][]byte
		for i, l := range lines[1:] {
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(l, "[]byte("), ")"))
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			args[i] = []byte(s)
		}
		path := writeTemp(t, e.Name(), stFile(string(args[0]), args[1]))
		f, err := Open(path)
		switch {
		case strings.HasPrefix(e.Name(), "valid_") && err != nil:
			t.Errorf("%s: %v", e.Name(), err)
		case strings.HasPrefix(e.Name(), "invalid_") && err == nil:
			t.Errorf("%s: opened without error", e.Name())
		}
		if err == nil {
			f.Close()
		}
	}
}
