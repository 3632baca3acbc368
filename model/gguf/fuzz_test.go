package gguf

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

// Parsing a header is held to allocating at most allocFactor times the
// file's size plus allocSlack bytes, whatever counts and lengths it
// declares: none is believed beyond what the rest of the file could hold,
// and what is kept of each item (a metadata pair, a tensor info, an array
// element) is a few times the bytes it takes in the file.
const (
	allocFactor = 16
	allocSlack  = 16 << 10
)

// FuzzOpen parses arbitrary bytes as a file and checks that it never
// panics, that it allocates within the bound above, that every tensor it
// accepts
// can be read and, where its type converts, converted, and that writing
// back what it accepted gives a file that parses to the same thing: the
// metadata, tensor infos and data, and (since the writer is deterministic)
// the same bytes when written again. Parsing is bounded by the input's
// size (no count is believed beyond what the rest of the input could
// hold), so memory stays small. The seed corpus is in
// testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	f.Add(small())
	f.Add(gg(2, 0, 1).kv("a", ValueArray).u32(uint32(ValueArray)).u64(1).u32(uint32(ValueString)).u64(1).str("x").pad(32).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.gguf"
		var file *File
		var err error
		if aerr := alloctest.Check("newFile", len(data), allocFactor, allocSlack, func() { file, err = newFile(name, data, false) }); aerr != nil {
			t.Fatal(aerr)
		}
		if err != nil {
			// Open adds "gguf: path: "; the message itself must say something
			// and not repeat the prefix.
			if msg := err.Error(); msg == "" || strings.HasPrefix(msg, "gguf:") {
				t.Fatalf("error %q", msg)
			}
			return
		}
		var tensors []Tensor
		for _, ti := range file.Tensors() {
			b, err := file.Bytes(ti.Name)
			if err != nil || int64(len(b)) != ti.Size {
				t.Fatalf("%s: Bytes gave %d bytes, want %d (%v)", ti.Name, len(b), ti.Size, err)
			}
			vals, err := file.Float32(ti.Name)
			switch {
			case ti.Type.CanDecode() && (err != nil || int64(len(vals)) != ti.Len()):
				t.Fatalf("%s: Float32 gave %d values, want %d (%v)", ti.Name, len(vals), ti.Len(), err)
			case !ti.Type.CanDecode() && err == nil:
				t.Fatalf("%s: Float32 of %v succeeded", ti.Name, ti.Type)
			}
			tensors = append(tensors, Tensor{ti.Name, ti.Type, ti.Dims, b})
		}
		var buf bytes.Buffer
		if err := Write(&buf, file.Metadata(), tensors); err != nil {
			t.Fatalf("writing back what Open accepted: %v", err)
		}
		again, err := newFile("", buf.Bytes(), false)
		if err != nil {
			t.Fatalf("opening what was written: %v", err)
		}
		if again.Alignment() != file.Alignment() || len(again.Tensors()) != len(tensors) {
			t.Fatalf("round trip: alignment %d, %d tensors; want %d, %d", again.Alignment(), len(again.Tensors()), file.Alignment(), len(tensors))
		}
		for i, ti := range again.Tensors() {
			b, _ := again.Bytes(ti.Name)
			want := tensors[i]
			if ti.Name != want.Name || ti.Type != want.Type || !slices.Equal(ti.Dims, want.Dims) || !bytes.Equal(b, want.Data) {
				t.Fatalf("round trip changed tensor %q", want.Name)
			}
		}
		var buf2 bytes.Buffer
		if err := Write(&buf2, again.Metadata(), tensors); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("writing what was read back changed the bytes (metadata not preserved)")
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
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a one-argument fuzz corpus file", e.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		f, err := Open(writeTemp(t, e.Name(), []byte(s)))
		switch {
		case strings.HasPrefix(e.Name(), "valid_") && err != nil:
			t.Errorf("%s: %v", e.Name(), err)
		case strings.HasPrefix(e.Name(), "invalid_") && err == nil:
			t.Errorf("%s: opened without error", e.Name())
		case !strings.HasPrefix(e.Name(), "valid_") && !strings.HasPrefix(e.Name(), "invalid_"):
			t.Errorf("%s: name says neither valid_ nor invalid_", e.Name())
		}
		if err == nil {
			f.Close()
		}
	}
}

// TestOpenAllocation gives newFile headers of many small items, and
// headers whose counts claim all the file could hold: the allocation bound
// of FuzzOpen holds for each.
func TestOpenAllocation(t *testing.T) {
	const n = 20000
	files := map[string][]byte{}
	b := gg(3, 0, n)
	for i := range n {
		b.kv(string([]byte{byte(i), byte(i >> 8)}), ValueUint32).u32(uint32(i))
	}
	files["pairs"] = b.pad(32).b
	b = gg(3, n, 0)
	for i := range n {
		b.tensor(string([]byte{byte(i), byte(i >> 8)}), TypeF32, 0, 0)
	}
	files["tensors"] = b.pad(32).b
	for _, et := range []ValueType{ValueArray, ValueString, ValueBool, ValueUint8} {
		b = gg(3, 0, 1).kv("a", ValueArray).u32(uint32(et)).u64(n)
		for range n {
			switch et {
			case ValueArray:
				b.u32(uint32(ValueUint8)).u64(0)
			case ValueString:
				b.u64(0)
			default:
				b.bytes(0)
			}
		}
		files["array of "+et.String()] = b.pad(32).b
	}
	// Counts as large as the rest of the file allows, then nothing valid.
	files["claimed pairs"] = gg(3, 0, n).zeros(13 * n).b
	files["claimed tensors"] = gg(3, n, 0).zeros(24 * n).b
	files["claimed elements"] = gg(3, 0, 1).kv("a", ValueArray).u32(uint32(ValueArray)).u64(n).zeros(12 * n).b
	for name, data := range files {
		if err := alloctest.Check("newFile", len(data), allocFactor, allocSlack, func() { newFile(name, data, false) }); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
