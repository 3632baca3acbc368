package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecode checks that Decode never panics, that whatever it accepts
// converts to float32 with one value per element, and that writing an
// accepted array and decoding it again gives the same array. The seed
// corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, g := range numpyGolden {
		f.Add([]byte(g.bytes))
	}
	f.Add(npyFile(2, "{'descr': '>f2', 'fortran_order': False, 'shape': (2, 1), }\n", []byte{0x3c, 0, 0xc0, 0}))
	f.Add(npyFile(3, "{\"descr\": \"|b1\", \"fortran_order\": False, \"shape\": (3,)}", []byte{0, 1, 0}))
	f.Add(npyFile(1, "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }", le32(1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			if a != nil {
				t.Fatal("Decode returned an array and an error")
			}
			return
		}
		vals, err := a.Float32()
		if err != nil {
			t.Fatalf("Decode accepted %s %v but Float32 failed: %v", a.DType, a.Shape, err)
		}
		if len(vals) != a.Len() {
			t.Fatalf("Float32 gave %d values for shape %v", len(vals), a.Shape)
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatalf("Write of a decoded array: %v", err)
		}
		b, err := Decode(buf.Bytes())
		if err != nil {
			t.Fatalf("Decode of a written array: %v", err)
		}
		dta, oa, _ := parseDescr(a.DType)
		dtb, ob, _ := parseDescr(b.DType)
		if dta != dtb || (dta.size > 1 && oa != ob) || !slices.Equal(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Fatalf("round trip changed %s %v into %s %v", a.DType, a.Shape, b.DType, b.Shape)
		}
		if buf.Len()%64 != len(b.Data)%64 {
			t.Fatalf("written header of %d bytes is not 64-aligned", buf.Len()-len(b.Data))
		}
	})
}

// The committed seed corpus says what each file is by its name: valid_*
// files must decode and invalid_* files must not.
func TestSeedCorpus(t *testing.T) {
	for name, data := range readCorpus(t, "testdata/fuzz/FuzzDecode") {
		_, err := Decode(data[0])
		switch {
		case strings.HasPrefix(name, "valid_") && err != nil:
			t.Errorf("%s: %v", name, err)
		case strings.HasPrefix(name, "invalid_") && err == nil:
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// readCorpus reads the []byte arguments of each file of a Go fuzz corpus.
func readCorpus(t *testing.T, dir string) map[string][][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][]byte{}
	for _, e := range entries {
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		if lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file", e.Name())
		}
		for _, l := range lines[1:] {
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(l, "[]byte("), ")"))
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			out[e.Name()] = append(out[e.Name()], []byte(s))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", dir)
	}
	return out
}
