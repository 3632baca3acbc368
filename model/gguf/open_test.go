package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/filetest"
)

// small is a valid file by hand: two pairs, tensors "a" (F32 [2, 2]) at 0
// and "b" (Q8_0 [32]) at 32.
func small() []byte {
	b := gg(3, 2, 2).
		kv("general.name", ValueString).str("tiny").
		kv("n", ValueUint32).u32(7).
		tensor("a", TypeF32, 0, 2, 2).
		tensor("b", TypeQ8_0, 32, 32).
		pad(32)
	b.raw(string(f32bytes(1, 2, 3, 4))).pad(32)
	b.bytes(0x00, 0x3c) // d = 1
	for i := range 32 {
		b.bytes(byte(int8(i - 16)))
	}
	return b.b
}

func TestOpenHandBuilt(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		f, err := Open(writeTemp(t, "small.gguf", small()))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if name, _ := f.String("general.name"); name != "tiny" {
			t.Errorf("general.name = %q", name)
		}
		if n, _ := f.Uint32("n"); n != 7 {
			t.Errorf("n = %d", n)
		}
		if f.Alignment() != 32 || f.Version() != 3 {
			t.Errorf("alignment %d version %d", f.Alignment(), f.Version())
		}
		a, _ := f.Tensor("a")
		if !slices.Equal(a.Dims, []int{2, 2}) || a.Size != 16 || a.Offset != 0 {
			t.Errorf("a = %+v", a)
		}
		if v, err := f.Float32("a"); err != nil || !slices.Equal(v, []float32{1, 2, 3, 4}) {
			t.Errorf("Float32(a) = %v, %v", v, err)
		}
		v, err := f.Float32("b")
		if err != nil || len(v) != 32 || v[0] != -16 || v[31] != 15 {
			t.Errorf("Float32(b) = %v, %v", v, err)
		}
		// The writer reproduces the file byte for byte.
		var tensors []Tensor
		for _, ti := range f.Tensors() {
			b, _ := f.Bytes(ti.Name)
			tensors = append(tensors, Tensor{ti.Name, ti.Type, ti.Dims, b})
		}
		var buf bytes.Buffer
		if err := Write(&buf, f.Metadata(), tensors); err != nil {
			t.Fatal(err)
		}
		want := small()
		want = append(want, make([]byte, 30)...) // ggml pads the last tensor
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("wrote\n% x\nwant\n% x", buf.Bytes(), want)
		}
	})
}

func TestShape(t *testing.T) {
	ti := TensorInfo{Dims: []int{4096, 11008, 3}}
	if s := ti.Shape(); !slices.Equal(s, []int{3, 11008, 4096}) {
		t.Errorf("Shape() = %v", s)
	}
	if ti.Len() != 4096*11008*3 {
		t.Errorf("Len() = %d", ti.Len())
	}
	if s := (TensorInfo{}).Shape(); len(s) != 0 || (TensorInfo{}).Len() != 1 {
		t.Errorf("no dims: Shape %v, Len %d", s, (TensorInfo{}).Len())
	}
}

func TestOpenAccepts(t *testing.T) {
	data := func(b *builder, n int) []byte { return b.zeros(n).b }
	for _, c := range []struct {
		name  string
		file  []byte
		check func(t *testing.T, f *File)
	}{
		{"version 2", data(gg(2, 1, 0).tensor("a", TypeF32, 0, 1).pad(32), 4), nil},
		{"empty file", gg(3, 0, 0).pad(32).b, nil},
		{"tensors out of order, with gaps", data(gg(3, 2, 0).tensor("late", TypeF32, 64, 1).tensor("early", TypeF32, 0, 1).pad(32), 68), func(t *testing.T, f *File) {
			if ts := f.Tensors(); ts[0].Name != "late" || ts[1].Name != "early" {
				t.Errorf("not in header order: %+v", ts)
			}
		}},
		{"empty tensors share offsets", data(gg(3, 3, 0).tensor("a", TypeF32, 0, 2).tensor("z", TypeF32, 0, 0).tensor("y", TypeQ4_0, 0, 32, 0).pad(32), 8), nil},
		{"no padding after the last tensor", data(gg(3, 1, 0).tensor("a", TypeQ4_0, 0, 32).pad(32), 18), nil},
		{"custom alignment", data(gg(3, 2, 1).kv(KeyAlignment, ValueUint32).u32(8).tensor("a", TypeF32, 0, 1).tensor("b", TypeI8, 8, 3).pad(8), 11), func(t *testing.T, f *File) {
			if f.Alignment() != 8 || f.DataOffset()%8 != 0 {
				t.Errorf("alignment %d, data offset %d", f.Alignment(), f.DataOffset())
			}
		}},
		{"alignment 1", data(gg(3, 1, 1).kv(KeyAlignment, ValueUint32).u32(1).tensor("a", TypeI8, 0, 3), 3), func(t *testing.T, f *File) {
			if b, _ := f.Bytes("a"); len(b) != 3 {
				t.Errorf("Bytes: %d", len(b))
			}
		}},
		{"no dims", data(gg(3, 1, 0).tensor("s", TypeF32, 0).pad(32), 4), func(t *testing.T, f *File) {
			if s, _ := f.Tensor("s"); s.Len() != 1 || s.Size != 4 {
				t.Errorf("scalar %+v", s)
			}
		}},
		{"empty name and key", data(gg(3, 1, 1).kv("", ValueBool).bytes(1).tensor("", TypeI8, 0, 1).pad(32), 1), nil},
		{"63-byte name", data(gg(3, 1, 0).tensor(strings.Repeat("n", 63), TypeI8, 0, 1).pad(32), 1), nil},
		{"K-quant", data(gg(3, 1, 0).tensor("k", TypeQ6_K, 0, 512).pad(32), 420), func(t *testing.T, f *File) {
			if v, err := f.Float32("k"); err != nil || len(v) != 512 {
				t.Errorf("Float32 of Q6_K: %d values, %v", len(v), err)
			}
		}},
		{"unconverted i-quant", data(gg(3, 1, 0).tensor("k", TypeIQ3_S, 0, 512).pad(32), 220), func(t *testing.T, f *File) {
			if _, err := f.Float32("k"); err == nil || !strings.Contains(err.Error(), `tensor "k": conversion of IQ3_S to float32 not supported`) {
				t.Errorf("Float32 of IQ3_S: %v", err)
			}
		}},
		{"nested arrays 8 deep", gg(3, 0, 1).kv("deep", ValueArray).
			u32(uint32(ValueArray)).u64(1).u32(uint32(ValueArray)).u64(1).u32(uint32(ValueArray)).u64(1).
			u32(uint32(ValueArray)).u64(1).u32(uint32(ValueArray)).u64(1).u32(uint32(ValueArray)).u64(1).
			u32(uint32(ValueArray)).u64(1).u32(uint32(ValueUint8)).u64(1).bytes(9).pad(32).b, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(writeTemp(t, "ok.gguf", c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, ti := range f.Tensors() {
				if b, err := f.Bytes(ti.Name); err != nil || int64(len(b)) != ti.Size {
					t.Errorf("Bytes(%q): %d bytes, %v", ti.Name, len(b), err)
				}
			}
			if c.check != nil {
				c.check(t, f)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	withData := func(b *builder, n int) []byte { return b.zeros(n).b }
	oneKV := func(key string, typ ValueType) *builder { return gg(3, 0, 1).kv(key, typ) }
	nest := func(depth int) []byte {
		b := oneKV("deep", ValueArray)
		for range depth - 1 {
			b.u32(uint32(ValueArray)).u64(1)
		}
		return b.u32(uint32(ValueUint8)).u64(0).pad(32).b
	}
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, `not a GGUF file: 0 bytes, too short for the magic "GGUF"`},
		{"wrong magic", append([]byte("GGML"), small()[4:]...), `not a GGUF file: magic "GGML", want "GGUF"`},
		{"safetensors", []byte("\x10\x00\x00\x00\x00\x00\x00\x00{}"), `not a GGUF file: magic "\x10\x00\x00\x00", want "GGUF"`},
		{"version 1", gg(1, 0, 0).pad(32).b, "version 1 is not supported"},
		{"version 4", gg(4, 0, 0).pad(32).b, "version 4 is not supported (only versions 2 and 3)"},
		{"big-endian", gg(0x03000000, 0, 0).pad(32).b, "version 0x03000000 is a byte-swapped 3: big-endian files are not supported"},
		{"truncated version", []byte("GGUF\x03"), "truncated: version at byte 4 needs 4 bytes, the file has 1"},
		{"truncated counts", gg(3, 0, 0).b[:20], "truncated: the header needs 24 bytes, the file has 20"},
		{"tensor count huge", gg(3, 1<<20+1, 0).pad(32).b, "tensor count 1048577 exceeds the limit of 1048576"},
		{"tensor count 2^64-1", gg(3, 1<<64-1, 0).pad(32).b, "tensor count 18446744073709551615 exceeds the limit"},
		{"kv count huge", gg(3, 0, 1<<40).pad(32).b, "metadata pair count 1099511627776 exceeds the limit of 1048576"},
		{"kv count beyond the file", gg(3, 0, 1000).pad(64).b, "truncated: 1000 metadata pairs need at least 13000 bytes, the file has 40 after byte 24"},
		{"tensor count beyond the file", gg(3, 1000, 0).pad(64).b, "truncated: 1000 tensor infos need at least 24000 bytes, the file has 40 after byte 24"},
		{"key too long", gg(3, 0, 1).u64(1<<20 + 1).zeros(16).b, "metadata pair 0 of 1: key of 1048577 bytes exceeds the limit of 1048576"},
		{"key length 2^64-1", gg(3, 0, 1).u64(1<<64 - 1).zeros(16).b, "key of 18446744073709551615 bytes exceeds the limit"},
		{"key truncated", gg(3, 0, 1).u64(100).raw("abcdef").b, "metadata pair 0 of 1: truncated: key at byte 32 needs 100 bytes, the file has 6"},
		{"string too long", oneKV("s", ValueString).u64(1<<20 + 1).pad(32).b, `metadata key "s": string of 1048577 bytes exceeds the limit of 1048576`},
		{"string truncated", oneKV("s", ValueString).u64(50).raw("short").b, `metadata key "s": truncated: string at byte 45 needs 50 bytes, the file has 5`},
		{"value truncated", oneKV("v", ValueUint64).u32(1).b, `metadata key "v": truncated: uint64 value at byte 37 needs 8 bytes, the file has 4`},
		{"value type missing", gg(3, 0, 1).str("value").b, `metadata key "value": truncated: value type at byte 37 needs 4 bytes, the file has 0`},
		{"unknown value type", oneKV("v", 13).u64(0).pad(32).b, `metadata key "v": unknown value type 13`},
		{"bool 2", oneKV("b", ValueBool).bytes(2).pad(32).b, `metadata key "b": bool value 2 is neither 0 nor 1`},
		{"duplicate key", gg(3, 0, 2).kv("k", ValueUint8).bytes(1).kv("k", ValueUint8).bytes(2).pad(32).b, `metadata key "k" appears twice`},
		{"array too long", oneKV("a", ValueArray).u32(uint32(ValueUint8)).u64(1<<24 + 1).pad(32).b, `metadata key "a": array of uint8: array element count 16777217 exceeds the limit of 16777216`},
		{"array beyond the file", oneKV("a", ValueArray).u32(uint32(ValueString)).u64(1000).zeros(100).b, `metadata key "a": array of string: truncated: 1000 array elements need at least 8000 bytes, the file has 100`},
		{"array of arrays beyond the file", oneKV("a", ValueArray).u32(uint32(ValueArray)).u64(10).zeros(100).b, `array of array: truncated: 10 array elements need at least 120 bytes`},
		{"array truncated", oneKV("a", ValueArray).u32(uint32(ValueInt32)).u64(3).u32(1).u32(2).b, `metadata key "a": array of int32: truncated: 3 array elements need at least 12 bytes, the file has 8 after byte 49`},
		{"array element type unknown", oneKV("a", ValueArray).u32(99).u64(0).pad(32).b, `metadata key "a": array of unknown value type 99`},
		{"array of bool 2", oneKV("a", ValueArray).u32(uint32(ValueBool)).u64(3).bytes(0, 1, 2).pad(32).b, `metadata key "a": array of bool: element 2 is 2, neither 0 nor 1`},
		{"array string too long", oneKV("a", ValueArray).u32(uint32(ValueString)).u64(2).str("ok").u64(1 << 21).pad(32).b, `metadata key "a": array of string: element 1: string of 2097152 bytes exceeds the limit`},
		{"nested 9 deep", nest(9), `metadata key "deep": array of array: element 0: array of array: element 0: array of array: element 0: array of array: element 0: array of array: element 0: array of array: element 0: array of array: element 0: array of array: element 0: arrays nested more than 8 deep`},
		{"alignment not uint32", gg(3, 0, 1).kv(KeyAlignment, ValueUint64).u64(32).pad(32).b, `metadata key "general.alignment": type uint64, want uint32`},
		{"alignment 0", gg(3, 0, 1).kv(KeyAlignment, ValueUint32).u32(0).pad(32).b, `metadata key "general.alignment": alignment 0 is not a power of two`},
		{"alignment 48", gg(3, 0, 1).kv(KeyAlignment, ValueUint32).u32(48).pad(48).b, `alignment 48 is not a power of two`},
		{"tensor info truncated", gg(3, 1, 0).str("w").u32(4).u64(1).u64(1).u64(1).b, `tensor "w": truncated: dimension at byte 61 needs 8 bytes, the file has 0`},
		{"tensor name truncated", gg(3, 1, 0).u64(30).zeros(24).b, `tensor info 0 of 1: truncated: name at byte 32 needs 30 bytes, the file has 24`},
		{"tensor name too long", withData(gg(3, 1, 0).tensor(strings.Repeat("n", 64), TypeI8, 0, 1).pad(32), 1), `tensor "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn": name of 64 bytes exceeds ggml's limit of 63`},
		{"duplicate tensor", withData(gg(3, 2, 0).tensor("w", TypeI8, 0, 1).tensor("w", TypeI8, 32, 1).pad(32), 33), `tensor "w" appears twice`},
		{"too many dims", withData(gg(3, 1, 0).tensor("w", TypeI8, 0, 1, 1, 1, 1, 1).pad(32), 1), `tensor "w": 5 dimensions, more than 4`},
		{"dim too large", withData(gg(3, 1, 0).tensor("w", TypeI8, 0, 1<<63).pad(32), 1), `tensor "w": dimension 0 is 9223372036854775808, too large`},
		{"element count overflows", withData(gg(3, 1, 0).tensor("w", TypeI8, 0, 1<<32, 1<<32).pad(32), 1), `tensor "w": dims [4294967296 4294967296]: element count overflows`},
		{"size overflows", withData(gg(3, 1, 0).tensor("w", TypeF32, 0, 1<<62).pad(32), 1), `tensor "w": dims [4611686018427387904]: size in bytes overflows`},
		{"unknown type", withData(gg(3, 1, 0).tensor("w", 99, 0, 1).pad(32), 1), `tensor "w": unknown type 99`},
		{"removed type", withData(gg(3, 1, 0).tensor("w", 31, 0, 32).pad(32), 18), `tensor "w": unknown type 31 (Q4_0_4_4, removed from ggml)`},
		{"Q8_0 partial block", withData(gg(3, 1, 0).tensor("w", TypeQ8_0, 0, 33).pad(32), 68), `tensor "w": Q8_0 rows of 33 elements (dims[0]) are not a multiple of the block size 32`},
		{"Q4_0 partial block", withData(gg(3, 1, 0).tensor("w", TypeQ4_0, 0, 16, 2).pad(32), 18), `tensor "w": Q4_0 rows of 16 elements (dims[0]) are not a multiple of the block size 32`},
		{"Q8_0 with no dims", withData(gg(3, 1, 0).tensor("w", TypeQ8_0, 0).pad(32), 34), `tensor "w": Q8_0 rows of 1 elements (dims[0]) are not a multiple of the block size 32`},
		{"offset too large", withData(gg(3, 1, 0).tensor("w", TypeI8, 1<<63, 1).pad(32), 1), `tensor "w": offset 9223372036854775808 is too large`},
		{"misaligned", withData(gg(3, 1, 0).tensor("w", TypeI8, 4, 1).pad(32), 8), `tensor "w": offset 4 is not a multiple of the alignment 32`},
		{"misaligned for a custom alignment", withData(gg(3, 1, 1).kv(KeyAlignment, ValueUint32).u32(64).tensor("w", TypeI8, 32, 1).pad(64), 64), `tensor "w": offset 32 is not a multiple of the alignment 64`},
		{"out of range", withData(gg(3, 1, 0).tensor("w", TypeF32, 0, 4).pad(32), 8), `tensor "w": data [0, 16) of the data section lies past its end at 8 (truncated file?)`},
		{"far out of range", withData(gg(3, 1, 0).tensor("w", TypeF32, 1<<40, 0).pad(32), 8), `tensor "w": data [1099511627776, 1099511627776) of the data section lies past its end at 8`},
		{"range wraps", withData(gg(3, 1, 0).tensor("w", TypeI8, 1<<62, 1<<62, 1).pad(32), 8), `tensor "w": data [4611686018427387904, 9223372036854775808) of the data section lies past its end at 8`},
		{"overlap", withData(gg(3, 2, 0).tensor("a", TypeF32, 0, 16).tensor("b", TypeF32, 32, 8).pad(32), 64), `tensors "a" [0, 64) and "b" [32, 64) overlap`},
		{"same offset", withData(gg(3, 2, 0).tensor("a", TypeI8, 0, 4).tensor("b", TypeI8, 0, 4).pad(32), 4), `tensors "a" [0, 4) and "b" [0, 4) overlap`},
		{"overlap behind a short tensor", withData(gg(3, 3, 0).tensor("a", TypeI8, 0, 128).tensor("b", TypeI8, 32, 1).tensor("c", TypeI8, 96, 1).pad(32), 128), `tensors "a" [0, 128) and "b" [32, 33) overlap`},
		{"no padding before the data section", gg(3, 0, 0).b, "truncated: the data section starts at byte 32 (the header ends at 24, aligned to 32), past the end of the file at 24"},
		{"data section missing", gg(3, 0, 1).kv("k", ValueUint8).bytes(1).b, "truncated: the data section starts at byte 64 (the header ends at 38, aligned to 32), past the end of the file at 38"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.gguf", c.file)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded")
			}
			prefix := "gguf: " + path + ": "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// Every truncation of a valid file fails to open, except those that only
// cut the padding after the last tensor.
func TestOpenTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "all.gguf")
	ts, _ := allTensors()
	if err := WriteFile(path, allValues(), ts); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(path)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var dataEnd int64
	for _, ti := range f.Tensors() {
		dataEnd = max(dataEnd, f.DataOffset()+ti.Offset+ti.Size)
	}
	f.Close()
	for n := range len(full) {
		g, err := newFile("t.gguf", full[:n], false)
		switch {
		case err == nil && int64(n) < dataEnd:
			t.Fatalf("file cut to %d bytes (data ends at %d) opened", n, dataEnd)
		case err != nil && int64(n) >= dataEnd:
			t.Fatalf("file cut to %d bytes, after the data, failed: %v", n, err)
		case err != nil && !strings.Contains(err.Error(), "truncated") && !strings.Contains(err.Error(), "too short"):
			t.Fatalf("file cut to %d bytes: error does not say truncated: %v", n, err)
		}
		if g != nil {
			g.Close()
		}
	}
}

func TestOpenNotAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.gguf")); err == nil || !strings.HasPrefix(err.Error(), "gguf: open ") || !strings.Contains(err.Error(), "missing.gguf") {
		t.Errorf("Open of a missing file: %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open of a directory: %v", err)
	}
}

func TestClose(t *testing.T) {
	path := writeTemp(t, "c.gguf", small())
	bothPaths(t, func(t *testing.T) {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := f.Bytes("a"); err == nil || !strings.Contains(err.Error(), "file is closed") {
			t.Errorf("Bytes after Close: %v", err)
		}
		if _, err := f.Float32("a"); err == nil {
			t.Error("Float32 after Close succeeded")
		}
		if _, err := f.Bytes("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
			t.Errorf("Bytes of a missing name: %v", err)
		}
		if _, ok := f.Tensor("nope"); ok {
			t.Error("Tensor of a missing name succeeded")
		}
		// Metadata stays readable: it was copied out of the mapping.
		if s, _ := f.String("general.name"); s != "tiny" {
			t.Errorf("general.name after Close = %q", s)
		}
	})
}

func TestAccessorsCopy(t *testing.T) {
	f, err := Open(writeTemp(t, "c.gguf", small()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Tensors()[0].Dims[0] = 99
	ti, _ := f.Tensor("a")
	ti.Dims[1] = 99
	if ti, _ := f.Tensor("a"); !slices.Equal(ti.Dims, []int{2, 2}) {
		t.Errorf("Dims changed through a returned TensorInfo: %v", ti.Dims)
	}
}

// TestOpenSpecialFiles gives Open a named pipe, a device and a directory:
// each must be refused at once with an error that names the path and says
// what it is. Opening a named pipe for reading blocks until a writer comes,
// so without the check Open would hang (filetest.Within fails the test then).
func TestOpenSpecialFiles(t *testing.T) {
	for _, tc := range filetest.SpecialFiles(t, "x.gguf") {
		err := filetest.Within(t, tc.Path, func() error {
			f, err := Open(tc.Path)
			if err == nil {
				f.Close()
			}
			return err
		})
		if want := tc.Path + ": not a regular file (" + tc.What + ")"; err == nil || !strings.HasPrefix(err.Error(), "gguf: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s) = %v, want an error saying %q", tc.Path, err, want)
		}
	}
}

// Release drops a tensor's pages, not its data: read again, the bytes are
// the same; an unknown name does nothing.
func TestReleaseKeepsData(t *testing.T) {
	f, err := Open("../../testdata/llm/stories260K/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, ti := range f.Tensors() {
		b, err := f.Bytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		before := bytes.Clone(b)
		f.Release(ti.Name)
		if !bytes.Equal(b, before) {
			t.Fatalf("%s changed after Release", ti.Name)
		}
	}
	f.Release("no such tensor")
}
