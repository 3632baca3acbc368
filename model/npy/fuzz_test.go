package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/alloctest"
)

// Decode is held to allocating at most allocFactor times its input plus
// allocSlack bytes, whatever the header holds: it keeps only what it needs
// of the header's literals (the dict's pairs and the shape's dimensions),
// and no more of them than a valid header has.
const (
	allocFactor = 2
	allocSlack  = 16 << 10
)

// FuzzDecode checks that Decode never panics, that it allocates within
// the bound above, that whatever it accepts converts to float32 with one
// value per element, and that writing an accepted array and decoding it
// again gives the same array. The seed corpus is in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, g := range numpyGolden {
		f.Add([]byte(g.bytes))
	}
	f.Add(npyFile(2, "{'descr': '>f2', 'fortran_order': False, 'shape': (2, 1), }\n", []byte{0x3c, 0, 0xc0, 0}))
	f.Add(npyFile(3, "{\"descr\": \"|b1\", \"fortran_order\": False, \"shape\": (3,)}", []byte{0, 1, 0}))
	f.Add(npyFile(1, "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }", le32(1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a *Array
		var err error
		if aerr := alloctest.Check("Decode", len(data), allocFactor, allocSlack, func() { a, err = Decode(data) }); aerr != nil {
			t.Fatal(aerr)
		}
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

// TestDecodeAllocation gives Decode headers that are long lists of
// literals, which a parser building the whole tree would hold a value of
// about 100 bytes for every 2 bytes of.
func TestDecodeAllocation(t *testing.T) {
	const n = 50000
	f4 := func(shape string) string {
		return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + "}"
	}
	for name, header := range map[string]string{
		"long shape":       f4("(" + strings.Repeat("1,", n) + ")"),
		"structured":       "{'descr': [" + strings.Repeat("('', '<f4'),", n) + "]}",
		"nested lists":     "{'descr': [" + strings.Repeat("[[0]],", n) + "]}",
		"lists of 32":      "{'descr': [" + strings.Repeat("["+strings.Repeat("0,", 32)+"],", n/32) + "]}",
		"deep":             "{'descr': " + strings.Repeat("[", 14) + strings.Repeat("0,", n) + strings.Repeat("]", 14) + "}",
		"dict value":       "{'descr': {" + strings.Repeat("0:0,", n) + "}}",
		"many keys":        "{" + strings.Repeat("'descr': 0,", n) + "}",
		"escaped strings":  "{'descr': [" + strings.Repeat(`'\\n',`, n) + "]}",
		"one long string":  "{'descr': '" + strings.Repeat(`\\`, n) + "'}",
		"escape then text": "{'descr': '\\\\" + strings.Repeat("a", n) + "'}",
	} {
		data := npyFile(3, header, nil)
		var err error
		if aerr := alloctest.Check("Decode", len(data), allocFactor, allocSlack, func() { _, err = Decode(data) }); aerr != nil {
			t.Errorf("%s: %v", name, aerr)
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
