package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// builder assembles a GGUF file by hand, independently of the writer.
type builder struct{ b []byte }

func gg(version uint32, nTensors, nKV uint64) *builder {
	return new(builder).raw("GGUF").u32(version).u64(nTensors).u64(nKV)
}

func (b *builder) raw(s string) *builder    { b.b = append(b.b, s...); return b }
func (b *builder) bytes(p ...byte) *builder { b.b = append(b.b, p...); return b }
func (b *builder) u32(v uint32) *builder {
	b.b = binary.LittleEndian.AppendUint32(b.b, v)
	return b
}
func (b *builder) u64(v uint64) *builder {
	b.b = binary.LittleEndian.AppendUint64(b.b, v)
	return b
}
func (b *builder) str(s string) *builder { return b.u64(uint64(len(s))).raw(s) }

// kv starts a metadata pair: key and value type; the value follows.
func (b *builder) kv(key string, t ValueType) *builder { return b.str(key).u32(uint32(t)) }

// tensor appends a tensor info.
func (b *builder) tensor(name string, t Type, off uint64, dims ...uint64) *builder {
	b.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		b.u64(d)
	}
	return b.u32(uint32(t)).u64(off)
}

// pad appends zeros up to a multiple of align.
func (b *builder) pad(align int) *builder {
	for len(b.b)%align != 0 {
		b.b = append(b.b, 0)
	}
	return b
}

func (b *builder) zeros(n int) *builder { b.b = append(b.b, make([]byte, n)...); return b }

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

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	encodeF32(b, v)
	return b
}

// allValues is metadata with every value type, arrays of each, and nested
// arrays, with edge values.
func allValues() Metadata {
	return Metadata{
		{"general.architecture", "llama"},
		{"general.alignment", uint32(64)},
		{"u8", uint8(255)},
		{"i8", int8(-128)},
		{"u16", uint16(65535)},
		{"i16", int16(-32768)},
		{"u32", uint32(math.MaxUint32)},
		{"i32", int32(math.MinInt32)},
		{"f32", float32(-1.5e-40)},
		{"bool.true", true},
		{"bool.false", false},
		{"str", "héllo\x00wörld\n"},
		{"str.empty", ""},
		{"u64", uint64(math.MaxUint64)},
		{"i64", int64(math.MinInt64)},
		{"f64", math.Inf(-1)},
		{"", "an empty key is allowed"},
		{"arr.u8", []uint8{0, 1, 255}},
		{"arr.i8", []int8{-128, 0, 127}},
		{"arr.u16", []uint16{1, 65535}},
		{"arr.i16", []int16{-32768, 32767}},
		{"arr.u32", []uint32{0, math.MaxUint32}},
		{"arr.i32", []int32{math.MinInt32, -1}},
		{"arr.f32", []float32{1, float32(math.Inf(1)), -0.25}},
		{"arr.bool", []bool{true, false, true}},
		{"arr.str", []string{"a", "", "ü\x00", strings.Repeat("x", 300)}},
		{"arr.u64", []uint64{math.MaxUint64}},
		{"arr.i64", []int64{math.MaxInt64, math.MinInt64}},
		{"arr.f64", []float64{math.SmallestNonzeroFloat64, -math.MaxFloat64}},
		{"arr.empty.f32", []float32{}},
		{"arr.empty.str", []string{}},
		{"arr.nested", []any{
			[]int32{1, -2},
			[]string{"x"},
			[]any{[]uint8{7}, []any{}, []any{[]bool{true}}},
			[]float64{},
		}},
		{"arr.empty.nested", []any{}},
	}
}

// allTensors is a tensor of every kind the round trip covers, with the
// float32 values each must convert to (nil: no conversion).
func allTensors() ([]Tensor, map[string][]float32) {
	r := rand.New(rand.NewPCG(3, 3))
	x := make([]float32, 96)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	q8 := make([]byte, 3*34)
	QuantizeQ8_0(q8, x)
	q8f := make([]float32, 96)
	DequantizeQ8_0(q8f, q8)
	q4 := make([]byte, 3*18)
	QuantizeQ4_0(q4, x)
	q4f := make([]float32, 96)
	DequantizeQ4_0(q4f, q4)
	q4k := make([]byte, 144)
	for i := range q4k {
		q4k[i] = byte(i * 7)
	}
	binary.LittleEndian.PutUint16(q4k, 0x3c00) // finite d and dmin
	binary.LittleEndian.PutUint16(q4k[2:], 0x3800)
	q4kf := make([]float32, 256)
	DequantizeQ4_K(q4kf, q4k)
	iq3s := make([]byte, 110)
	for i := range iq3s {
		iq3s[i] = byte(i * 5)
	}
	ts := []Tensor{
		{"f32", TypeF32, []int{3, 2}, f32bytes(1, 2, 3, 4, 5, -6)},
		{"f16", TypeF16, []int{3}, []byte{0x00, 0x3c, 0xff, 0x7b, 0x01, 0x80}},
		{"bf16", TypeBF16, []int{2}, []byte{0x80, 0x3f, 0xf7, 0xc2}},
		{"q8_0", TypeQ8_0, []int{32, 3}, q8},
		{"empty", TypeF32, []int{0, 4}, nil},
		{"q4_0", TypeQ4_0, []int{64, 1, 1, 1}, q4[:36]},
		{"i32", TypeI32, []int{2}, []byte{0, 0xff, 0xff, 0xff, 7, 0, 0, 0}},
		{"scalar", TypeF32, []int{}, f32bytes(42)},
		{"q4_k", TypeQ4_K, []int{256}, q4k},
		{"iq3_s", TypeIQ3_S, []int{256}, iq3s},
	}
	want := map[string][]float32{
		"f32":    {1, 2, 3, 4, 5, -6},
		"f16":    {1, 65504, -0x1p-24},
		"bf16":   {1, -123.5},
		"q8_0":   q8f,
		"empty":  {},
		"q4_0":   q4f[:64],
		"i32":    {-256, 7},
		"scalar": {42},
		"q4_k":   q4kf,
	}
	return ts, want
}

func TestRoundTrip(t *testing.T) {
	meta := allValues()
	ts, want := allTensors()
	path := filepath.Join(t.TempDir(), "all.gguf")
	if err := WriteFile(path, meta, ts); err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile(path)
	if err != nil {
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
		if f.Version() != 3 || f.Alignment() != 64 || f.DataOffset()%64 != 0 {
			t.Errorf("version %d, alignment %d, data offset %d", f.Version(), f.Alignment(), f.DataOffset())
		}
		if got := f.Metadata(); !reflect.DeepEqual(got, meta) {
			for i := range min(len(got), len(meta)) {
				if !reflect.DeepEqual(got[i], meta[i]) {
					t.Errorf("pair %d: %#v, want %#v", i, got[i], meta[i])
				}
			}
			t.Fatalf("metadata differs (%d pairs, want %d)", len(got), len(meta))
		}
		infos := f.Tensors()
		if len(infos) != len(ts) {
			t.Fatalf("%d tensors, want %d", len(infos), len(ts))
		}
		var end int64
		for i, info := range infos {
			src := ts[i]
			if info.Name != src.Name || info.Type != src.Type || !slices.Equal(info.Dims, src.Dims) {
				t.Errorf("tensor %d: %+v, want %s %v %v", i, info, src.Name, src.Type, src.Dims)
			}
			// ggml's layout: contiguous in order, each padded to the alignment.
			if off := (end + 63) &^ 63; info.Offset != off || info.Size != int64(len(src.Data)) {
				t.Errorf("%s: offset %d size %d, want %d %d", src.Name, info.Offset, info.Size, off, len(src.Data))
			}
			end = info.Offset + info.Size
			if got, ok := f.Tensor(src.Name); !ok || !reflect.DeepEqual(got, info) {
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
			switch w, ok := want[src.Name]; {
			case !ok && (err == nil || !strings.Contains(err.Error(), `tensor "`+src.Name+`": conversion of `+src.Type.String()+` to float32 not supported`)):
				t.Errorf("Float32(%q): %v, want an error", src.Name, err)
			case ok && (err != nil || !slices.Equal(vals, w)):
				t.Errorf("Float32(%q) = %v, %v; want %v", src.Name, vals, err, w)
			}
			if ok := want[src.Name] != nil; ok && info.Len() != int64(len(want[src.Name])) {
				t.Errorf("%s: Len() = %d", src.Name, info.Len())
			}
		}
		if n := int64(len(original)); n != f.DataOffset()+(end+63)&^63 {
			t.Errorf("file is %d bytes, want the data section padded to 64 bytes", n)
		}

		// Read → write → identical bytes.
		var again []Tensor
		for _, info := range f.Tensors() {
			b, _ := f.Bytes(info.Name)
			again = append(again, Tensor{info.Name, info.Type, info.Dims, b})
		}
		var buf bytes.Buffer
		if err := Write(&buf, f.Metadata(), again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), original) {
			t.Errorf("rewriting what was read changed the file (%d bytes, was %d)", buf.Len(), len(original))
		}
	})
}

func TestMetadataHelpers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteFile(path, allValues(), nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := f.Metadata()
	if s, ok := f.String("general.architecture"); !ok || s != "llama" {
		t.Errorf("String = %q, %v", s, ok)
	}
	if _, ok := f.String("u32"); ok {
		t.Error("String of a uint32 succeeded")
	}
	if _, ok := f.String("missing"); ok {
		t.Error("String of a missing key succeeded")
	}
	if v, ok := f.Uint32("u32"); !ok || v != math.MaxUint32 {
		t.Errorf("Uint32 = %d, %v", v, ok)
	}
	if v, ok := f.Uint64("u64"); !ok || v != math.MaxUint64 {
		t.Errorf("Uint64 = %d, %v", v, ok)
	}
	if v, ok := f.Bool("bool.true"); !ok || !v {
		t.Errorf("Bool = %v, %v", v, ok)
	}
	for key, want := range map[string]int64{"u8": 255, "i8": -128, "u16": 65535, "i16": -32768, "u32": math.MaxUint32, "i32": math.MinInt32, "i64": math.MinInt64} {
		if v, ok := f.Int(key); !ok || v != want {
			t.Errorf("Int(%q) = %d, %v; want %d", key, v, ok, want)
		}
		if v, ok := m.Int(key); !ok || v != want {
			t.Errorf("Metadata.Int(%q) = %d, %v; want %d", key, v, ok, want)
		}
	}
	for _, key := range []string{"u64", "f32", "str", "missing"} { // u64 is MaxUint64: too large
		if v, ok := f.Int(key); ok {
			t.Errorf("Int(%q) = %d", key, v)
		}
	}
	if v, ok := m.Float32("f32"); !ok || v != -1.5e-40 {
		t.Errorf("Metadata.Float32 = %g, %v", v, ok)
	}
	if v, ok := Get[float64](m, "f64"); !ok || !math.IsInf(v, -1) {
		t.Errorf("Get[float64] = %g, %v", v, ok)
	}
	if v, ok := Get[[]any](m, "arr.nested"); !ok || len(v) != 4 {
		t.Errorf("Get[[]any] = %v, %v", v, ok)
	}
	if v, ok := m.String("str"); !ok || v != "héllo\x00wörld\n" {
		t.Errorf("Metadata.String = %q, %v", v, ok)
	}
	// Copies: changing what was returned changes nothing in the File.
	s, ok := f.Strings("arr.str")
	if !ok || len(s) != 4 {
		t.Fatalf("Strings = %q, %v", s, ok)
	}
	s[0] = "changed"
	m[0].Value = "changed"
	ms, _ := m.Strings("arr.str")
	ms[1] = "changed"
	nested, _ := m.Value("arr.nested")
	nested.([]any)[0].([]int32)[0] = 99
	fv, _ := f.Value("arr.nested")
	fv.([]any)[0].([]int32)[1] = 99
	if s2, _ := f.Strings("arr.str"); s2[0] != "a" {
		t.Error("Strings shares memory with the File")
	}
	if got := f.Metadata(); !reflect.DeepEqual(got, allValues()) {
		t.Error("changing returned values changed the File's metadata")
	}
}

func TestValueTypeOf(t *testing.T) {
	for _, c := range []struct {
		v    any
		want ValueType
		ok   bool
	}{
		{uint8(1), ValueUint8, true}, {int8(1), ValueInt8, true}, {uint16(1), ValueUint16, true},
		{int16(1), ValueInt16, true}, {uint32(1), ValueUint32, true}, {int32(1), ValueInt32, true},
		{float32(1), ValueFloat32, true}, {true, ValueBool, true}, {"s", ValueString, true},
		{uint64(1), ValueUint64, true}, {int64(1), ValueInt64, true}, {1.0, ValueFloat64, true},
		{[]bool(nil), ValueArray, true}, {[]any{[]string{}}, ValueArray, true},
		{1, 0, false}, {[]int{1}, 0, false}, {[]any{uint8(1)}, 0, false}, {nil, 0, false},
		{map[string]string{}, 0, false}, {[][]string{{"a"}}, 0, false},
	} {
		if got, ok := ValueTypeOf(c.v); got != c.want || ok != c.ok {
			t.Errorf("ValueTypeOf(%#v) = %v, %v; want %v, %v", c.v, got, ok, c.want, c.ok)
		}
	}
	if s := ValueType(13).String(); s != "value type 13" {
		t.Errorf("ValueType(13) = %q", s)
	}
}
