package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/filetest"
)

// stFile assembles a safetensors file by hand: length, header as given, data.
func stFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func writeTemp(t testing.TB, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// bothPaths runs f with the file mapped and with it read into memory.
func bothPaths(t *testing.T, f func(t *testing.T)) {
	t.Run("mmap", f)
	t.Run("read", func(t *testing.T) {
		testNoMmap = true
		defer func() { testNoMmap = false }()
		f(t)
	})
}

func le(put func([]byte, int), n, size int) []byte {
	b := make([]byte, n*size)
	for i := range n {
		put(b[i*size:], i)
	}
	return b
}

// allDTypes is one tensor of every dtype with the float32 values its data
// must convert to.
func allDTypes() ([]Tensor, map[string][]float32) {
	ts := []Tensor{
		{"f64", "F64", []int{2, 2}, le(func(b []byte, i int) {
			binary.LittleEndian.PutUint64(b, math.Float64bits([]float64{0.1, -2, 1e300, math.SmallestNonzeroFloat64}[i]))
		}, 4, 8)},
		{"f32", "F32", []int{3}, le(func(b []byte, i int) {
			binary.LittleEndian.PutUint32(b, math.Float32bits([]float32{1.5, float32(math.Inf(-1)), -0}[i]))
		}, 3, 4)},
		{"f16", "F16", []int{1, 3}, le(func(b []byte, i int) {
			binary.LittleEndian.PutUint16(b, []uint16{0x3c00, 0x7bff, 0x8001}[i])
		}, 3, 2)},
		{"bf16", "BF16", []int{2}, le(func(b []byte, i int) {
			binary.LittleEndian.PutUint16(b, []uint16{0x3f80, 0xc2f7}[i])
		}, 2, 2)},
		{"i8", "I8", []int{2}, []byte{0x80, 0x7f}},
		{"u8", "U8", []int{}, []byte{200}},
		{"i16", "I16", []int{2}, le(func(b []byte, i int) {
			binary.LittleEndian.PutUint16(b, []uint16{0x8000, 3}[i])
		}, 2, 2)},
		{"i32", "I32", []int{1}, le(func(b []byte, _ int) { binary.LittleEndian.PutUint32(b, 0xffffff00) }, 1, 4)},
		{"i64", "I64", []int{1}, le(func(b []byte, _ int) { binary.LittleEndian.PutUint64(b, 1<<40) }, 1, 8)},
		{"bool", "BOOL", []int{3}, []byte{1, 0, 1}},
		{"empty", "F32", []int{0, 4}, nil},
	}
	want := map[string][]float32{
		"f64":   {0.1, -2, float32(math.Inf(1)), 0},
		"f32":   {1.5, float32(math.Inf(-1)), 0},
		"f16":   {1, 65504, -0x1p-24},
		"bf16":  {1, -123.5},
		"i8":    {-128, 127},
		"u8":    {200},
		"i16":   {-32768, 3},
		"i32":   {-256},
		"i64":   {0x1p40},
		"bool":  {1, 0, 1},
		"empty": {},
	}
	return ts, want
}

func TestRoundTripAllDTypes(t *testing.T) {
	ts, want := allDTypes()
	md := map[string]string{"format": "pt", "quantkit": `{"json": "<inside> & \"quoted\""}`, "ünïcode": "✓"}
	path := filepath.Join(t.TempDir(), "all.safetensors")
	if err := WriteFile(path, ts, md); err != nil {
		t.Fatal(err)
	}
	bothPaths(t, func(t *testing.T) {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Mapped() == testNoMmap {
			t.Errorf("Mapped() = %v", f.Mapped())
		}
		infos := f.Tensors()
		if len(infos) != len(ts) {
			t.Fatalf("%d tensors, want %d", len(infos), len(ts))
		}
		var off int64
		for i, info := range infos {
			src := ts[i]
			if info.Name != src.Name || info.DType != src.DType || !slices.Equal(info.Shape, src.Shape) {
				t.Errorf("tensor %d: %+v, want %s %s %v", i, info, src.Name, src.DType, src.Shape)
			}
			if info.Begin != off || info.End != off+int64(len(src.Data)) {
				t.Errorf("%s: offsets [%d, %d], want contiguous from %d", src.Name, info.Begin, info.End, off)
			}
			off = info.End
			if got, ok := f.Tensor(src.Name); !ok || got.Begin != info.Begin {
				t.Errorf("Tensor(%q) = %+v, %v", src.Name, got, ok)
			}
			b, err := f.Bytes(src.Name)
			if err != nil || !bytes.Equal(b, src.Data) {
				t.Errorf("Bytes(%q) = %x, %v; want %x", src.Name, b, err, src.Data)
			}
			if cap(b) != len(b) {
				t.Errorf("Bytes(%q) has spare capacity", src.Name)
			}
			vals, err := f.Float32(src.Name)
			if err != nil || !slices.Equal(vals, want[src.Name]) {
				t.Errorf("Float32(%q) = %v, %v; want %v", src.Name, vals, err, want[src.Name])
			}
			// Float32Into fills a buffer that holds the tensor, whatever it
			// held, and allocates past one that does not.
			buf := make([]float32, len(vals)+3)
			for k := range buf {
				buf[k] = 7
			}
			into, err := f.Float32Into(src.Name, buf)
			if err != nil || !slices.Equal(into, want[src.Name]) || len(into) > 0 && &into[0] != &buf[0] {
				t.Errorf("Float32Into(%q, big buffer) = %v, %v; want %v in the buffer", src.Name, into, err, want[src.Name])
			}
			if len(vals) > 0 {
				small := make([]float32, len(vals)-1)
				into, err = f.Float32Into(src.Name, small)
				if err != nil || !slices.Equal(into, want[src.Name]) || len(small) > 0 && &into[0] == &small[0] {
					t.Errorf("Float32Into(%q, small buffer) = %v, %v; want %v", src.Name, into, err, want[src.Name])
				}
			}
			// Float32RangeInto converts any range to what Float32 gives
			// there, and refuses ranges outside the tensor.
			w := want[src.Name]
			for _, r := range [][2]int{{0, len(w)}, {len(w) / 3, len(w) - len(w)/4}, {len(w), len(w)}} {
				part := make([]float32, r[1]-r[0]+1)
				part[len(part)-1] = 7
				if err := f.Float32RangeInto(src.Name, r[0], r[1], part); err != nil || !slices.Equal(part[:r[1]-r[0]], w[r[0]:r[1]]) || part[len(part)-1] != 7 {
					t.Errorf("Float32RangeInto(%q, %d, %d) = %v, %v; want %v", src.Name, r[0], r[1], part, err, w[r[0]:r[1]])
				}
			}
			for _, r := range [][2]int{{-1, 1}, {1, 0}, {0, len(w) + 1}} {
				if err := f.Float32RangeInto(src.Name, r[0], r[1], make([]float32, len(w)+2)); err == nil {
					t.Errorf("Float32RangeInto(%q, %d, %d) of %d elements: no error", src.Name, r[0], r[1], len(w))
				}
			}
			if len(w) > 0 {
				if err := f.Float32RangeInto(src.Name, 0, len(w), make([]float32, len(w)-1)); err == nil {
					t.Errorf("Float32RangeInto(%q) into a short buffer: no error", src.Name)
				}
			}
			if info.Len() != int64(len(want[src.Name])) {
				t.Errorf("%s: Len() = %d", src.Name, info.Len())
			}
		}
		if got := f.Metadata(); !mapsEqual(got, md) {
			t.Errorf("Metadata() = %v, want %v", got, md)
		}
		if (f.DataOffset()-8)%8 != 0 {
			t.Errorf("header length %d not a multiple of 8", f.DataOffset()-8)
		}
		if _, ok := f.Tensor("nope"); ok {
			t.Error("Tensor of a missing name succeeded")
		}
		if _, err := f.Bytes("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
			t.Errorf("Bytes of a missing name: %v", err)
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The header is what the Rust crate writes: __metadata__ first, compact
// JSON, tensors in order, padded with spaces to a multiple of 8.
func TestWriteHeaderBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.safetensors")
	err := WriteFile(path, []Tensor{
		{"b", "F32", []int{2}, make([]byte, 8)},
		{"a<&>", "BF16", []int{1, 1}, []byte{1, 2}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	json := `{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a<&>":{"dtype":"BF16","shape":[1,1],"data_offsets":[8,10]}}`
	padded := json + strings.Repeat(" ", (8-len(json)%8)%8)
	want := stFile(padded, append(make([]byte, 8), 1, 2))
	if !bytes.Equal(got, want) {
		t.Errorf("wrote\n%q\nwant\n%q", got, want)
	}
	// No metadata: no __metadata__ key.
	if err := WriteFile(path, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if want := stFile("{}      ", nil); !bytes.Equal(got, want) {
		t.Errorf("empty file %q, want %q", got, want)
	}
}

func TestOpenAccepts(t *testing.T) {
	for _, c := range []struct {
		name, header string
		data         []byte
		order        []string // tensor names by offset
	}{
		{"sorted by offset", `{"late":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"early":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}, []string{"early", "late"}},
		{"gap and trailing bytes", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`, make([]byte, 8), []string{"a"}},
		{"empty tensors share offsets", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"y":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]}}`, make([]byte, 8), []string{"a", "y", "z"}},
		{"null metadata", `{"__metadata__":null}`, nil, nil},
		{"unknown fields ignored", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":{"x":[1,{"y":null}]}}}`, []byte{1}, []string{"a"}},
		{"whitespace", " {\n\t\"a\" : { \"shape\" : [ ] , \"dtype\" : \"BOOL\" , \"data_offsets\" : [ 0 , 1 ] } } \r\n ", []byte{1}, []string{"a"}},
		{"escaped names", `{"\u00e9\n":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1}, []string{"é\n"}},
		{"empty file", `{}`, nil, nil},
		{"empty header", ``, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.header == "" {
				// An empty header is not JSON; check that it fails instead.
				_, err := Open(writeTemp(t, "x.safetensors", stFile("", nil)))
				if err == nil {
					t.Fatal("empty header accepted")
				}
				return
			}
			f, err := Open(writeTemp(t, "x.safetensors", stFile(c.header, c.data)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var names []string
			for _, ti := range f.Tensors() {
				names = append(names, ti.Name)
			}
			if !slices.Equal(names, c.order) {
				t.Errorf("tensors %q, want %q", names, c.order)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	hdr := func(n uint64, rest string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	u8 := func(name, extra string) string {
		return `"` + name + `":{"dtype":"U8","shape":[1],"data_offsets":[0,1]` + extra + `}`
	}
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "file size 0 is smaller than the 8-byte header length"},
		{"truncated length", []byte{1, 0, 0}, "file size 3 is smaller"},
		{"header length huge", hdr(9e18, "{}"), "header length 9000000000000000000 exceeds the limit of 104857600"},
		{"header length past end", hdr(100, "{}"), "header length 100 exceeds file size 10"},
		{"bad JSON", stFile(`{"a":{"dtype":"F32",}`, nil), "header is not valid JSON at byte"},
		{"truncated JSON", stFile(`{"a":{"dtype":"F32"`, nil), "header JSON ends early"},
		{"not an object", stFile(`["a"]`, nil), "header: expected '{', found '['"},
		{"not UTF-8", stFile("{\"\xff\":1}", nil), "header is not valid UTF-8"},
		{"junk after object", stFile(`{} {}`, nil), `header has "{}" after its JSON object`},
		{"tensor not object", stFile(`{"a":[1]}`, nil), `tensor "a": expected '{', found '['`},
		{"missing dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, []byte{1}), `tensor "a" has no "dtype"`},
		{"missing shape", stFile(`{"a":{"dtype":"U8","data_offsets":[0,1]}}`, []byte{1}), `tensor "a" has no "shape"`},
		{"missing offsets", stFile(`{"a":{"dtype":"U8","shape":[1]}}`, []byte{1}), `tensor "a" has no "data_offsets"`},
		{"dtype not string", stFile(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,1]}}`, []byte{1}), `tensor "a" dtype: expected a string, found 4`},
		{"unknown dtype", stFile(`{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w": dtype "F8_E4M3" not supported (supported: F64 F32 F16 BF16 I8 U8 I16 I32 I64 BOOL)`},
		{"lowercase dtype", stFile(`{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "w": dtype "f32" not supported`},
		{"negative dim", stFile(`{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w" shape: -1 is negative`},
		{"fractional dim", stFile(`{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w" shape: 1.5 is not an integer`},
		{"exponent dim", stFile(`{"w":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w" shape: 1e0 is not an integer`},
		{"huge dim", stFile(`{"w":{"dtype":"U8","shape":[99999999999999999999],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w" shape: 99999999999999999999 is too large`},
		{"string dim", stFile(`{"w":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w" shape: expected an integer, found "1"`},
		{"shape not array", stFile(`{"w":{"dtype":"U8","shape":1,"data_offsets":[0,1]}}`, []byte{1}), `tensor "w" shape: expected '[', found 1`},
		{"too many dims", stFile(`{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w" shape has more than 8 dimensions`},
		{"count overflow", stFile(`{"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w": shape [4294967296 4294967296]: element count overflows`},
		{"bytes overflow", stFile(`{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,1]}}`, []byte{1}), `tensor "w": shape [2305843009213693952]: size in bytes overflows`},
		{"one offset", stFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}}`, []byte{1}), `tensor "w": data_offsets has 1 numbers, want 2`},
		{"three offsets", stFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, []byte{1}), `tensor "w" data_offsets has more than 2 numbers`},
		{"negative offset", stFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, []byte{1}), `tensor "w" data_offsets: -1 is negative`},
		{"begin after end", stFile(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, []byte{1}), `tensor "w": data_offsets [1, 0] begin after they end`},
		{"offsets outside", stFile(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 8)), `tensor "w": data_offsets [0, 16] exceed the data buffer of 8 bytes`},
		{"offsets far outside", stFile(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[9223372036854775807,9223372036854775807]}}`, nil), `exceed the data buffer of 0 bytes`},
		{"size mismatch", stFile(`{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), `tensor "w": F16 [3] needs 6 bytes, data_offsets [0, 8] hold 8`},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), `tensors "a" [0, 8] and "b" [4, 8] overlap`},
		{"same range", stFile(`{`+u8("a", "")+`,`+u8("b", "")+`}`, []byte{1}), `tensors "a" [0, 1] and "b" [0, 1] overlap`},
		{"overlap behind a short tensor", stFile(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"c":{"dtype":"U8","shape":[1],"data_offsets":[5,6]}}`, make([]byte, 8)), `tensors "a" [0, 8] and "b" [1, 2] overlap`},
		{"duplicate tensor", stFile(`{`+u8("a", "")+`,`+u8("a", "")+`}`, []byte{1}), `tensor "a" appears twice`},
		{"duplicate field", stFile(`{`+u8("a", `,"dtype":"I8"`)+`}`, []byte{1}), `tensor "a": key "dtype" appears twice`},
		{"duplicate metadata", stFile(`{"__metadata__":{},"__metadata__":{}}`, nil), `__metadata__ appears twice`},
		{"duplicate metadata key", stFile(`{"__metadata__":{"k":"1","k":"2"}}`, nil), `__metadata__: key "k" appears twice`},
		{"metadata not string", stFile(`{"__metadata__":{"k":1}}`, nil), `__metadata__["k"]: expected a string, found 1`},
		{"metadata not object", stFile(`{"__metadata__":"x"}`, nil), `__metadata__: expected an object of strings, found "x"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "m.safetensors", c.file)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded")
			}
			prefix := "safetensors: " + path + ": "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestOpenNotAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("Open of a missing file: %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open of a directory: %v", err)
	}
}

func TestClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := WriteFile(path, []Tensor{{"a", "U8", []int{1}, []byte{7}}}, nil); err != nil {
		t.Fatal(err)
	}
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
		if _, err := f.Bytes("a"); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Bytes after Close: %v", err)
		}
		if _, err := f.Float32("a"); err == nil {
			t.Error("Float32 after Close succeeded")
		}
		if len(f.Tensors()) != 1 {
			t.Error("Tensors after Close lost the header")
		}
	})
}

// Tensors, Tensor and Metadata return copies the caller may change.
func TestAccessorsCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := WriteFile(path, []Tensor{{"a", "U8", []int{1}, []byte{7}}}, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Tensors()[0].Shape[0] = 99
	ti, _ := f.Tensor("a")
	ti.Shape[0] = 98
	f.Metadata()["k"] = "changed"
	if ti, _ := f.Tensor("a"); ti.Shape[0] != 1 || f.Metadata()["k"] != "v" {
		t.Error("accessors returned shared state")
	}
}

func TestWriterStreaming(t *testing.T) {
	ts, want := allDTypes()
	infos := make([]TensorInfo, len(ts))
	var all []byte
	for i, x := range ts {
		infos[i] = TensorInfo{Name: x.Name, DType: x.DType, Shape: x.Shape, Begin: 1000, End: -1}
		all = append(all, x.Data...)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "s.safetensors")
	w, err := Create(path, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("path exists before Close")
	}
	if got := w.Tensors(); got[1].Begin != 32 || got[1].End != 44 {
		t.Errorf("layout %+v", got[1])
	}
	// Odd-sized chunks that straddle tensors.
	for rest := all; len(rest) > 0; {
		n := min(len(rest), 5)
		if m, err := w.Write(rest[:n]); err != nil || m != n {
			t.Fatal(m, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, x := range ts {
		vals, err := f.Float32(x.Name)
		if err != nil || !slices.Equal(vals, want[x.Name]) {
			t.Errorf("%s: %v %v", x.Name, vals, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v", entries)
	}
}

func TestWriterErrors(t *testing.T) {
	big := 1 << 30 // big·big·4 bytes = 2^62
	u8 := func(name string, n int) TensorInfo { return TensorInfo{Name: name, DType: "U8", Shape: []int{n}} }
	dir := t.TempDir()
	path := filepath.Join(dir, "e.safetensors")
	for _, c := range []struct {
		name  string
		infos []TensorInfo
		md    map[string]string
		want  string
	}{
		{"reserved", []TensorInfo{u8("__metadata__", 1)}, nil, `tensor name "__metadata__" is reserved`},
		{"duplicate", []TensorInfo{u8("a", 1), u8("a", 2)}, nil, `tensor "a" appears twice`},
		{"dtype", []TensorInfo{{Name: "a", DType: "C64", Shape: []int{1}}}, nil, `tensor "a": dtype "C64" not supported`},
		{"negative", []TensorInfo{u8("a", -1)}, nil, `tensor "a": shape [-1] has a negative dimension`},
		{"dims", []TensorInfo{{Name: "a", DType: "U8", Shape: make([]int, 9)}}, nil, "9 dimensions, more than 8"},
		{"overflow", []TensorInfo{{Name: "a", DType: "F64", Shape: []int{big, big, 4}}}, nil, "size in bytes overflows"},
		{"total overflow", []TensorInfo{{Name: "a", DType: "U8", Shape: []int{big, big, 4}}, {Name: "b", DType: "U8", Shape: []int{big, big, 4}}}, nil, `tensor "b": data size overflows`},
		{"name utf8", []TensorInfo{u8("\xff", 1)}, nil, "not valid UTF-8"},
		{"metadata utf8", nil, map[string]string{"k": "\xff"}, `metadata "k" is not valid UTF-8`},
	} {
		_, err := Create(path, c.infos, c.md)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "safetensors: "+path+": ") {
			t.Errorf("%s: Create = %v, want %q", c.name, err, c.want)
		}
	}

	// Data errors: each leaves nothing behind.
	infos := []TensorInfo{u8("a", 2), u8("b", 3)}
	for _, c := range []struct {
		name string
		do   func(w *Writer) error
		want string
	}{
		{"short close", func(w *Writer) error { w.Write([]byte{1, 2, 3}); return w.Close() }, "closed after 3 of 5 data bytes"},
		{"too much", func(w *Writer) error { _, err := w.Write(make([]byte, 6)); return err }, "1 more data bytes than the 5"},
		{"out of order", func(w *Writer) error { return w.WriteTensor("b", make([]byte, 3)) }, `tensor "b" written out of order: tensor "a" is next`},
		{"unknown", func(w *Writer) error { return w.WriteTensor("z", nil) }, `no tensor "z" in the header`},
		{"wrong size", func(w *Writer) error { return w.WriteTensor("a", make([]byte, 3)) }, `tensor "a": U8 [2] needs 2 bytes, got 3`},
		{"partial then tensor", func(w *Writer) error { w.Write([]byte{1}); return w.WriteTensor("a", make([]byte, 2)) }, `tensor "a": 1 bytes of tensor "a" are still to be written`},
		{"mid-tensor", func(w *Writer) error { w.Write([]byte{1, 2, 3}); return w.WriteTensor("b", make([]byte, 3)) }, `tensor "b": 2 bytes of tensor "b" are still to be written`},
		{"twice", func(w *Writer) error { w.WriteTensor("a", make([]byte, 2)); return w.WriteTensor("a", make([]byte, 2)) }, `tensor "a" written out of order: tensor "b" is next`},
		{"after the end", func(w *Writer) error { w.Write(make([]byte, 5)); return w.WriteTensor("a", make([]byte, 2)) }, `tensor "a" written out of order: all data has been written`},
		{"abort", func(w *Writer) error {
			w.WriteTensor("a", make([]byte, 2))
			w.Abort()
			return w.Close()
		}, "aborted"},
	} {
		w, err := Create(path, infos, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.do(w)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if err2 := w.Close(); err2 == nil {
			t.Errorf("%s: Close after an error succeeded", c.name)
		}
		if _, err := w.Write([]byte{1}); err == nil {
			t.Errorf("%s: Write after an error succeeded", c.name)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: left %v behind", c.name, entries)
		}
	}

	// WriteFile with wrong data leaves an existing file alone.
	if err := WriteFile(path, []Tensor{{"a", "U8", []int{1}, []byte{1}}}, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err := WriteFile(path, []Tensor{{"a", "U8", []int{2}, []byte{1}}}, nil)
	if err == nil || !strings.Contains(err.Error(), `tensor "a": U8 [2] needs 2 bytes, got 1`) {
		t.Errorf("WriteFile with short data: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("failed WriteFile changed the file")
	}
	if err := WriteFile(filepath.Join(dir, "no", "dir.safetensors"), nil, nil); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
	if err := WriteFile(dir, nil, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("WriteFile onto a directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left %v behind", entries)
	}
}

// Empty tensors may be skipped by WriteTensor or written with no data.
func TestWriterEmptyTensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.safetensors")
	infos := []TensorInfo{
		{Name: "e1", DType: "F32", Shape: []int{0}},
		{Name: "a", DType: "U8", Shape: []int{1}},
		{Name: "e2", DType: "F32", Shape: []int{2, 0}},
		{Name: "b", DType: "U8", Shape: []int{1}},
		{Name: "e3", DType: "F32", Shape: []int{0}},
	}
	w, err := Create(path, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		data []byte
	}{{"a", []byte{1}}, {"e2", nil}, {"b", []byte{2}}} {
		if err := w.WriteTensor(step.name, step.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Tensors()) != 5 {
		t.Errorf("%d tensors", len(f.Tensors()))
	}
}

func TestDecodeFloat32(t *testing.T) {
	dst := make([]float32, 2)
	if err := DecodeFloat32(dst, []byte{0x80, 0x3f, 0x00, 0xc0}, "BF16"); err != nil || dst[0] != 1 || dst[1] != -2 {
		t.Errorf("DecodeFloat32 BF16 = %v, %v", dst, err)
	}
	if err := DecodeFloat32(dst, []byte{1, 2, 3}, "F16"); err == nil {
		t.Error("DecodeFloat32 with short input succeeded")
	}
	if err := DecodeFloat32(dst, make([]byte, 8), "U16"); err == nil || !strings.Contains(err.Error(), `dtype "U16" not supported`) {
		t.Errorf("DecodeFloat32 U16: %v", err)
	}
	for _, d := range dtypes {
		if n, ok := DTypeSize(d.name); !ok || n != d.size {
			t.Errorf("DTypeSize(%s) = %d, %v", d.name, n, ok)
		}
	}
	if _, ok := DTypeSize("F8_E4M3"); ok {
		t.Error("DTypeSize(F8_E4M3) ok")
	}
}

func BenchmarkFloat32_BF16_1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "b.safetensors")
	if err := WriteFile(path, []Tensor{{"w", "BF16", []int{1024, 1024}, make([]byte, 2<<20)}}, nil); err != nil {
		b.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(2 << 20)
	for b.Loop() {
		if _, err := f.Float32("w"); err != nil {
			b.Fatal(err)
		}
	}
}

// Write and NewWriter give the same bytes as WriteFile.
func TestWriteStream(t *testing.T) {
	ts, _ := allDTypes()
	md := map[string]string{"a": "b"}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := WriteFile(path, ts, md); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(path)
	var buf bytes.Buffer
	if err := Write(&buf, ts, md); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Error("Write and WriteFile differ")
	}
	buf.Reset()
	w, err := NewWriter(&buf, infosOf(ts), md)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(want[len(want)-10:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || err.Error() != "safetensors: closed after 10 of 76 data bytes" {
		t.Errorf("Close of a short stream: %v", err)
	}
	if err := Write(&buf, []Tensor{{"a", "U8", []int{1}, nil}}, nil); err == nil || err.Error() != `safetensors: tensor "a": U8 [1] needs 1 bytes, got 0` {
		t.Errorf("Write with short data: %v", err)
	}
}

// TestOpenSpecialFiles gives Open a named pipe, a device and a directory:
// each must be refused at once with an error that names the path and says
// what it is. Opening a named pipe for reading blocks until a writer comes,
// so without the check Open would hang (filetest.Within fails the test then).
func TestOpenSpecialFiles(t *testing.T) {
	for _, tc := range filetest.SpecialFiles(t, "x.safetensors") {
		err := filetest.Within(t, tc.Path, func() error {
			f, err := Open(tc.Path)
			if err == nil {
				f.Close()
			}
			return err
		})
		if want := tc.Path + ": not a regular file (" + tc.What + ")"; err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s) = %v, want an error saying %q", tc.Path, err, want)
		}
	}
}

// WriteTensorAt takes each tensor in pieces of any size and writes the
// file WriteTensor writes; a piece that does not continue its tensor,
// or runs past it, fails and removes the file.
func TestWriterPieces(t *testing.T) {
	ts, _ := allDTypes()
	var whole bytes.Buffer
	if err := Write(&whole, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 3, 64} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, infosOf(ts), map[string]string{"k": "v"})
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
	a, b := ts[0], ts[1]
	for _, c := range []struct {
		name  string
		write func(w *Writer) error
		want  string
	}{
		{"a gap", func(w *Writer) error { return w.WriteTensorAt(a.Name, 1, a.Data[1:]) }, "piece at byte 1"},
		{"the next tensor first", func(w *Writer) error { return w.WriteTensorAt(b.Name, 0, b.Data) }, "piece at byte 0"},
		{"past the end", func(w *Writer) error { return w.WriteTensorAt(a.Name, 0, append(slices.Clone(a.Data), 0)) }, "run past"},
		{"no such tensor", func(w *Writer) error { return w.WriteTensorAt("nope", 0, nil) }, `no tensor "nope"`},
	} {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		w, err := Create(path, infosOf(ts), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.write(w); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if err := w.Close(); err == nil {
			t.Errorf("%s: Close after the error succeeded", c.name)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
			t.Errorf("%s: left %v", c.name, entries)
		}
	}
}

// ReadTensorAt reads any range of a tensor's bytes, mapped or read into
// memory, and refuses a range past the tensor.
func TestReadTensorAt(t *testing.T) {
	ts, _ := allDTypes()
	path := filepath.Join(t.TempDir(), "r.safetensors")
	if err := WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	for _, noMmap := range []bool{false, true} {
		testNoMmap = noMmap
		f, err := Open(path)
		testNoMmap = false
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			for lo := 0; lo <= len(x.Data); lo++ {
				for hi := lo; hi <= len(x.Data); hi++ {
					dst := make([]byte, hi-lo)
					if err := f.ReadTensorAt(x.Name, dst, int64(lo)); err != nil || !bytes.Equal(dst, x.Data[lo:hi]) {
						t.Fatalf("%s [%d, %d) (no mmap %v): %v %v", x.Name, lo, hi, noMmap, dst, err)
					}
				}
			}
			// Pages let go come back from the file when read again.
			f.ReleaseRange(x.Name, 1, int64(len(x.Data)))
			if b, err := f.Bytes(x.Name); err != nil || !bytes.Equal(b, x.Data) {
				t.Errorf("%s after ReleaseRange: %v %v", x.Name, b, err)
			}
			if err := f.ReadTensorAt(x.Name, make([]byte, 1), int64(len(x.Data))); err == nil {
				t.Errorf("%s: a byte past the end read", x.Name)
			}
			if err := f.ReadTensorAt(x.Name, nil, -1); err == nil {
				t.Errorf("%s: offset -1 read", x.Name)
			}
		}
		f.Close()
	}
}
