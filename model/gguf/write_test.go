package gguf

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The writer's bytes are the hand-built file's: header, pairs in order,
// tensor infos, padding, each tensor padded to the alignment.
func TestWriteBytes(t *testing.T) {
	q := make([]byte, 34)
	q[1] = 0x3c
	for i := range 32 {
		q[2+i] = byte(i)
	}
	var buf bytes.Buffer
	err := Write(&buf, []KV{{"general.alignment", uint32(16)}, {"s", []string{"ab", "c"}}, {"x", []any{[]int8{-1}}}}, []Tensor{
		{"w", TypeF32, []int{3}, f32bytes(1, 2, 3)},
		{"e", TypeF16, []int{0}, nil},
		{"q", TypeQ8_0, []int{32, 1}, q},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := gg(3, 3, 3).
		kv("general.alignment", ValueUint32).u32(16).
		kv("s", ValueArray).u32(uint32(ValueString)).u64(2).str("ab").str("c").
		kv("x", ValueArray).u32(uint32(ValueArray)).u64(1).u32(uint32(ValueInt8)).u64(1).bytes(0xff).
		tensor("w", TypeF32, 0, 3).
		tensor("e", TypeF16, 16, 0).
		tensor("q", TypeQ8_0, 16, 32, 1).
		pad(16)
	b.raw(string(f32bytes(1, 2, 3))).pad(16).raw(string(q)).pad(16)
	if !bytes.Equal(buf.Bytes(), b.b) {
		t.Errorf("wrote\n% x\nwant\n% x", buf.Bytes(), b.b)
	}

	// No tensors, no metadata: the 24-byte header padded to 32.
	buf.Reset()
	if err := Write(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	if want := gg(3, 0, 0).pad(32).b; !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("empty file % x, want % x", buf.Bytes(), want)
	}
}

// Data written in chunks of any size makes the same file as WriteTensor.
func TestWriterChunks(t *testing.T) {
	ts, _ := allTensors()
	meta := allValues()
	var whole bytes.Buffer
	if err := Write(&whole, meta, ts); err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, tt := range ts {
		data = append(data, tt.Data...)
	}
	r := rand.New(rand.NewPCG(4, 4))
	for range 20 {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, meta, infosOf(ts))
		if err != nil {
			t.Fatal(err)
		}
		for p := data; len(p) > 0; {
			n := min(len(p), r.IntN(100))
			if m, err := w.Write(p[:n]); err != nil || m != n {
				t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
			}
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), whole.Bytes()) {
			t.Fatal("chunked writes made a different file")
		}
	}
}

func TestWriterTensors(t *testing.T) {
	w, err := NewWriter(new(bytes.Buffer), nil, []TensorInfo{
		{Name: "a", Type: TypeQ4_0, Dims: []int{32, 2}, Offset: 999, Size: 1},
		{Name: "b", Type: TypeI8, Dims: []int{1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := w.Tensors()
	if ts[0].Offset != 0 || ts[0].Size != 36 || ts[1].Offset != 64 || ts[1].Size != 1 {
		t.Errorf("Tensors() = %+v", ts)
	}
	ts[0].Dims[0] = 7
	if w.Tensors()[0].Dims[0] != 32 {
		t.Error("Tensors() shares Dims")
	}
	w.Abort()
}

func TestWriterLayoutErrors(t *testing.T) {
	deep := any([]uint8{1})
	for range MaxArrayDepth {
		deep = []any{deep}
	}
	for _, c := range []struct {
		name    string
		meta    []KV
		tensors []TensorInfo
		want    string
	}{
		{"int", []KV{{"n", 5}}, nil, `metadata key "n": Go type int has no GGUF type`},
		{"nil value", []KV{{"n", nil}}, nil, `metadata key "n": Go type <nil> has no GGUF type`},
		{"[]int", []KV{{"n", []int{5}}}, nil, `metadata key "n": Go type []int has no GGUF type`},
		{"[]any of scalars", []KV{{"n", []any{uint8(1)}}}, nil, `metadata key "n": element 0 is a uint8: the elements of a []any must be arrays (use a typed slice for an array of uint8s)`},
		{"[]any of bad slices", []KV{{"n", []any{[]int{1}}}}, nil, `metadata key "n": element 0: Go type []int has no GGUF type`},
		{"too deep", []KV{{"d", deep}}, nil, `metadata key "d": element 0: element 0: element 0: element 0: element 0: element 0: element 0: element 0: arrays nested more than 8 deep`},
		{"string too long", []KV{{"s", strings.Repeat("x", MaxStringLen+1)}}, nil, `metadata key "s": string of 1048577 bytes exceeds the limit of 1048576`},
		{"array string too long", []KV{{"s", []string{"", strings.Repeat("x", MaxStringLen+1)}}}, nil, `metadata key "s": element 1: string of 1048577 bytes exceeds the limit`},
		{"array too long", []KV{{"a", make([]bool, MaxArrayLen+1)}}, nil, `metadata key "a": array of 16777217 elements exceeds the limit of 16777216`},
		{"key too long", []KV{{strings.Repeat("k", MaxStringLen+1), true}}, nil, `metadata key of 1048577 bytes exceeds the limit`},
		{"duplicate key", []KV{{"k", true}, {"k", false}}, nil, `metadata key "k" appears twice`},
		{"alignment type", []KV{{KeyAlignment, uint64(32)}}, nil, `metadata key "general.alignment": type uint64, want uint32`},
		{"alignment Go type", []KV{{KeyAlignment, 32}}, nil, `metadata key "general.alignment": Go type int, want uint32`},
		{"alignment 24", []KV{{KeyAlignment, uint32(24)}}, nil, `alignment 24 is not a power of two`},
		{"duplicate tensor", nil, []TensorInfo{{Name: "a", Type: TypeF32}, {Name: "a", Type: TypeF32}}, `tensor "a" appears twice`},
		{"name too long", nil, []TensorInfo{{Name: strings.Repeat("n", 64), Type: TypeF32}}, `name of 64 bytes exceeds ggml's limit of 63`},
		{"unknown type", nil, []TensorInfo{{Name: "a", Type: 5}}, `tensor "a": unknown type 5 (Q4_3, removed from ggml)`},
		{"too many dims", nil, []TensorInfo{{Name: "a", Type: TypeF32, Dims: []int{1, 1, 1, 1, 1}}}, `tensor "a": 5 dimensions, more than 4`},
		{"negative dim", nil, []TensorInfo{{Name: "a", Type: TypeF32, Dims: []int{-1}}}, `tensor "a": dims [-1]: negative dimension`},
		{"partial block", nil, []TensorInfo{{Name: "a", Type: TypeQ4_0, Dims: []int{48, 2}}}, `tensor "a": Q4_0 rows of 48 elements (dims[0]) are not a multiple of the block size 32`},
		{"block type with no dims", nil, []TensorInfo{{Name: "a", Type: TypeQ8_0}}, `tensor "a": Q8_0 rows of 1 elements (dims[0]) are not a multiple of the block size 32`},
		{"size overflows", nil, []TensorInfo{{Name: "a", Type: TypeF64, Dims: []int{1 << 61}}}, `tensor "a": dims [2305843009213693952]: size in bytes overflows`},
		{"data section overflows", nil, []TensorInfo{{Name: "a", Type: TypeI8, Dims: []int{1 << 62}}, {Name: "b", Type: TypeI8, Dims: []int{1 << 62}}}, `tensor "b": data section size overflows`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.gguf")
			_, err := Create(path, c.meta, c.tensors)
			if err == nil || !strings.HasPrefix(err.Error(), "gguf: "+path+": ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Create: %v, want %q", err, c.want)
			}
			if _, err := NewWriter(new(bytes.Buffer), c.meta, c.tensors); err == nil || !strings.HasPrefix(err.Error(), "gguf: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("NewWriter: %v, want %q", err, c.want)
			}
			assertOnlyFiles(t, filepath.Dir(path))
		})
	}
}

// assertOnlyFiles fails if dir holds other files than names.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func TestWriterErrors(t *testing.T) {
	infos := []TensorInfo{
		{Name: "a", Type: TypeF32, Dims: []int{2}},
		{Name: "empty", Type: TypeF32, Dims: []int{0}},
		{Name: "b", Type: TypeI8, Dims: []int{3}},
	}
	a, b := f32bytes(1, 2), []byte{1, 2, 3}
	for _, c := range []struct {
		name string
		run  func(w *Writer) error
		want string
	}{
		{"unknown tensor", func(w *Writer) error { return w.WriteTensor("nope", nil) }, `no tensor "nope" in the header`},
		{"wrong size", func(w *Writer) error { return w.WriteTensor("a", b) }, `tensor "a": F32 [2] needs 8 bytes, got 3`},
		{"out of order", func(w *Writer) error { return w.WriteTensor("b", b) }, `tensor "b" written out of order: tensor "a" is next`},
		{"twice", func(w *Writer) error {
			w.WriteTensor("a", a)
			return w.WriteTensor("a", a)
		}, `tensor "a" written out of order: tensor "b" is next`},
		{"after a partial write", func(w *Writer) error {
			w.Write(a[:3])
			return w.WriteTensor("b", b)
		}, `tensor "b": 5 bytes of tensor "a" are still to be written`},
		{"after everything", func(w *Writer) error {
			w.WriteTensor("a", a)
			w.WriteTensor("b", b)
			return w.WriteTensor("a", a)
		}, `tensor "a" written out of order: all data has been written`},
		{"too many bytes", func(w *Writer) error {
			_, err := w.Write(make([]byte, 12))
			return err
		}, `1 more data bytes than the 11 the tensors hold`},
		{"close early", func(w *Writer) error {
			w.WriteTensor("a", a)
			return w.Close()
		}, `closed with 3 bytes of tensor "b" (and any after it) still to be written`},
		{"close before anything", func(w *Writer) error { return w.Close() }, `closed with 8 bytes of tensor "a"`},
		{"aborted", func(w *Writer) error {
			w.Abort()
			return w.Close()
		}, `aborted`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "w.gguf")
			w, err := Create(path, nil, infos)
			if err != nil {
				t.Fatal(err)
			}
			err = c.run(w)
			if err == nil || !strings.HasPrefix(err.Error(), "gguf: "+path+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want %q", err, c.want)
			}
			// Errors are sticky and the temporary file is gone.
			if err2 := w.Close(); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Close after the error: %v", err2)
			}
			if _, err2 := w.Write([]byte{1}); err2 == nil {
				t.Error("Write after the error succeeded")
			}
			w.Abort()
			assertOnlyFiles(t, dir)
		})
	}
}

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	infos := []TensorInfo{{Name: "a", Type: TypeF32, Dims: []int{2}}, {Name: "e", Type: TypeF32, Dims: []int{0, 3}}}
	w, err := Create(path, []KV{{"k", "v"}}, infos)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", f32bytes(1, 2)); err != nil { // "e" is empty: may be skipped
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("path exists before Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	w.Abort() // harmless after Close
	if _, err := w.Write([]byte{1}); err == nil || !strings.Contains(err.Error(), "write after Close") {
		t.Errorf("Write after Close: %v", err)
	}
	assertOnlyFiles(t, dir, "m.gguf")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Float32("a"); len(v) != 2 || v[1] != 2 {
		t.Errorf("a = %v", v)
	}
	f.Close()

	// Overwriting keeps the permissions; Abort leaves the old file.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, nil, nil); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after overwrite, want 0600", fi.Mode())
	}
	before, _ := os.ReadFile(path)
	w, err = Create(path, []KV{{"k", "new"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("Abort changed the file")
	}
	assertOnlyFiles(t, dir, "m.gguf")

	if _, err := Create(dir, nil, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Create of a directory: %v", err)
	}
	if _, err := Create(filepath.Join(dir, "missing", "x.gguf"), nil, nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Create in a missing directory: %v", err)
	}
	// WriteFile stops at a bad tensor and leaves nothing behind.
	err = WriteFile(filepath.Join(dir, "bad.gguf"), nil, []Tensor{{"a", TypeF32, []int{2}, []byte{1}}})
	if err == nil || !strings.Contains(err.Error(), `tensor "a": F32 [2] needs 8 bytes, got 1`) {
		t.Errorf("WriteFile with short data: %v", err)
	}
	assertOnlyFiles(t, dir, "m.gguf")
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriterStreamErrors(t *testing.T) {
	infos := []TensorInfo{{Name: "a", Type: TypeI8, Dims: []int{40}}}
	if _, err := NewWriter(&failWriter{10}, nil, infos); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("header write: %v", err)
	}
	w, err := NewWriter(&failWriter{32 + 64 + 20}, nil, infos)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", make([]byte, 40)); err == nil || !strings.Contains(err.Error(), "gguf: disk full") {
		t.Errorf("data write: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
}

// WriteTensorAt takes each tensor in pieces and writes the file
// WriteTensor writes, padding included; a piece that does not continue
// its tensor fails.
func TestWriterPieces(t *testing.T) {
	ts, _ := allTensors()
	meta := allValues()
	var whole bytes.Buffer
	if err := Write(&whole, meta, ts); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 7, 100} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, meta, infosOf(ts))
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			for off := 0; off < len(x.Data); off += size {
				if err := w.WriteTensorAt(x.Name, int64(off), x.Data[off:min(off+size, len(x.Data))]); err != nil {
					t.Fatalf("%s at %d: %v", x.Name, off, err)
				}
			}
		}
		if err := w.Close(); err != nil || !bytes.Equal(buf.Bytes(), whole.Bytes()) {
			t.Fatalf("pieces of %d bytes: %v, or a different file", size, err)
		}
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, meta, infosOf(ts))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensorAt(ts[0].Name, 1, ts[0].Data[1:]); err == nil || !strings.Contains(err.Error(), "piece at byte 1") {
		t.Errorf("a gap: %v", err)
	}
}
