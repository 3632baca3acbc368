package npy

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
	"github.com/quantkit/quantkit/internal/half"
)

// npyFile assembles a .npy file by hand: magic, version, header length
// (2 bytes for 1.0, 4 otherwise), the header text exactly as given, data.
func npyFile(major byte, header string, data []byte) []byte {
	b := []byte(magic)
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(header)))
	}
	b = append(b, header...)
	return append(b, data...)
}

// numpyHeader pads a header dict the way numpy does for version 1.0.
func numpyHeader(dict string) string {
	hlen := len(dict) + 1
	pad := 64 - (10+hlen)%64
	return dict + strings.Repeat(" ", pad) + "\n"
}

func le32(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// These are the bytes numpy ≥ 1.24 writes for np.save(f, x) with
// x = np.array([1, 2, 3], '<f4'), x.reshape(()) of one element, and
// np.zeros((2, 3)); written out by hand from numpy/lib/format.py
// (_write_array_header and _wrap_header) since numpy is not at hand: the
// dict, 21 − len(str(shape[0])) spare spaces, padding to 64, newline.
var numpyGolden = []struct {
	name  string
	shape []int
	data  []float32
	bytes string
}{
	{"vector", []int{3}, []float32{1, 2, 3},
		"\x93NUMPY\x01\x00\x76\x00" +
			"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" +
			strings.Repeat(" ", 60) + "\n" +
			"\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40"},
	{"scalar", []int{}, []float32{-2},
		"\x93NUMPY\x01\x00\x76\x00" +
			"{'descr': '<f4', 'fortran_order': False, 'shape': (), }" +
			strings.Repeat(" ", 62) + "\n" +
			"\x00\x00\x00\xc0"},
	{"matrix", []int{2, 3}, []float32{0, 0, 0, 0, 0, 0},
		"\x93NUMPY\x01\x00\x76\x00" +
			"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
			strings.Repeat(" ", 58) + "\n" +
			strings.Repeat("\x00", 24)},
}

func TestWriteMatchesNumpy(t *testing.T) {
	for _, g := range numpyGolden {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.npy")
			if err := WriteFile(path, g.data, g.shape); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != g.bytes {
				t.Errorf("wrote\n%q\nwant\n%q", got, g.bytes)
			}
			if (len(got)-len(g.data)*4)%64 != 0 {
				t.Errorf("data starts at %d, not 64-aligned", len(got)-len(g.data)*4)
			}
			a, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.Shape, g.shape) || a.DType != "<f4" {
				t.Errorf("read shape %v dtype %s", a.Shape, a.DType)
			}
			f, err := a.Float32()
			if err != nil || !slices.Equal(f, g.data) {
				t.Errorf("read %v, %v; want %v", f, err, g.data)
			}
		})
	}
}

// Each dtype in each byte order, through a hand-built file of each version.
func TestDecodeDTypes(t *testing.T) {
	type elem struct {
		put  func(o binary.AppendByteOrder, b []byte) []byte
		want float32
	}
	cases := []struct {
		code  string
		elems []elem
	}{
		{"f2", []elem{
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint16(b, 0x3c00) }, 1},
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint16(b, 0xc500) }, -5},
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint16(b, 0x0001) }, 0x1p-24},
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint16(b, 0xfc00) }, float32(math.Inf(-1))},
		}},
		{"f4", []elem{
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint32(b, math.Float32bits(1.5)) }, 1.5},
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint32(b, math.Float32bits(-3e38)) }, -3e38},
		}},
		{"f8", []elem{
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint64(b, math.Float64bits(0.1)) }, 0.1},
			{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint64(b, math.Float64bits(1e300)) }, float32(math.Inf(1))},
		}},
		{"i1", []elem{{func(_ binary.AppendByteOrder, b []byte) []byte { return append(b, 0xff) }, -1}}},
		{"u1", []elem{{func(_ binary.AppendByteOrder, b []byte) []byte { return append(b, 0xff) }, 255}}},
		{"b1", []elem{
			{func(_ binary.AppendByteOrder, b []byte) []byte { return append(b, 1) }, 1},
			{func(_ binary.AppendByteOrder, b []byte) []byte { return append(b, 0) }, 0},
		}},
		{"i2", []elem{{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint16(b, 0xfffe) }, -2}}},
		{"u2", []elem{{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint16(b, 0xfffe) }, 65534}}},
		{"i4", []elem{{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint32(b, 0xfffffff0) }, -16}}},
		{"u4", []elem{{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint32(b, 1<<24+1) }, 1 << 24}}}, // rounds to even
		{"i8", []elem{{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint64(b, uint64(1<<62)) }, 0x1p62}}},
		{"u8", []elem{{func(o binary.AppendByteOrder, b []byte) []byte { return o.AppendUint64(b, math.MaxUint64) }, 0x1p64}}},
	}
	orders := map[byte]binary.AppendByteOrder{'<': binary.LittleEndian, '>': binary.BigEndian, '=': nativeOrder.(binary.AppendByteOrder)}
	for _, c := range cases {
		for _, oc := range []byte{'<', '>', '=', '|'} {
			descr := string(oc) + c.code
			order := orders[oc]
			if oc == '|' {
				if c.code[1] != '1' {
					continue // tested as an error below
				}
				order = binary.LittleEndian
			}
			var data []byte
			var want []float32
			for _, e := range c.elems {
				data = e.put(order, data)
				want = append(want, e.want)
			}
			for _, major := range []byte{1, 2, 3} {
				dict := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + itoa(len(want)) + ",), }"
				a, err := Decode(npyFile(major, numpyHeader(dict), data))
				if err != nil {
					t.Errorf("%s v%d: %v", descr, major, err)
					continue
				}
				if a.DType != descr || !slices.Equal(a.Shape, []int{len(want)}) || a.Len() != len(want) {
					t.Errorf("%s v%d: dtype %q shape %v", descr, major, a.DType, a.Shape)
				}
				got, err := a.Float32()
				if err != nil || !slices.Equal(got, want) {
					t.Errorf("%s v%d: Float32 = %v, %v; want %v", descr, major, got, err, want)
				}
			}
		}
	}
}

func itoa(n int) string { return shapeRepr([]int{n})[1 : len(shapeRepr([]int{n}))-2] }

// Headers numpy could have written, or a person by hand.
func TestDecodeHeaderVariants(t *testing.T) {
	data := le32(1, 2, 3, 4, 5, 6)
	for _, c := range []struct {
		dict  string
		shape []int
	}{
		{`{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }`, []int{6}},
		{`{"descr": "<f4", "fortran_order": False, "shape": (6,)}`, []int{6}},
		{`{'shape':(2,3),'descr':'<f4','fortran_order':False}`, []int{2, 3}},
		{"{ 'descr' : '<f4' ,\t'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }", []int{2, 3}},
		{`{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }`, []int{2, 3}},
		{`{'descr': 'f4', 'fortran_order': False, 'shape': (1, 6, 1), }`, []int{1, 6, 1}},
		{`{'descr': '<f4', 'fortran_order': False, 'shape': (+6,), }`, []int{6}},
		// Parentheses around a value are the value, as in Python.
		{`{'descr': ('<f4'), 'fortran_order': (False), 'shape': ((((2, 3)))), }`, []int{2, 3}},
		{"{'shape': " + strings.Repeat("(", 14) + "(1, 6)" + strings.Repeat(")", 14) + ", 'descr': '<f4', 'fortran_order': False}", []int{1, 6}},
	} {
		for _, header := range []string{numpyHeader(c.dict), c.dict, c.dict + "\n", "  " + c.dict + " \r\n"} {
			a, err := Decode(npyFile(1, header, data))
			if err != nil {
				t.Errorf("%q: %v", header, err)
				continue
			}
			if !slices.Equal(a.Shape, c.shape) {
				t.Errorf("%q: shape %v, want %v", header, a.Shape, c.shape)
			}
		}
	}
	// Zero-size arrays and scalars.
	for _, c := range []struct {
		shape string
		want  []int
		data  []byte
	}{
		{"()", []int{}, le32(7)},
		{"(0,)", []int{0}, nil},
		{"(3, 0, 5)", []int{3, 0, 5}, nil},
	} {
		a, err := Decode(npyFile(1, numpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': "+c.shape+", }"), c.data))
		if err != nil {
			t.Errorf("shape %s: %v", c.shape, err)
			continue
		}
		f, err := a.Float32()
		if !slices.Equal(a.Shape, c.want) || err != nil || len(f) != a.Len() || len(f) != len(c.data)/4 {
			t.Errorf("shape %s: got %v len %d (%v)", c.shape, a.Shape, len(f), err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	f4 := func(shape string) string {
		return numpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }")
	}
	withDescr := func(descr string) []byte {
		return npyFile(1, numpyHeader("{'descr': "+descr+", 'fortran_order': False, 'shape': (1,), }"), make([]byte, 16))
	}
	hugeLen := npyFile(2, "", nil)
	binary.LittleEndian.PutUint32(hugeLen[8:], 2<<20)
	longHeader := npyFile(3, "", nil)
	binary.LittleEndian.PutUint32(longHeader[8:], 4000)
	longHeader = append(longHeader, make([]byte, 120-len(longHeader))...)
	for _, c := range []struct {
		name string
		file []byte
		want string // substrings, separated by |
	}{
		{"empty", nil, "too short"},
		{"bad magic", []byte("PK\x03\x04 this is a zip"), `bad magic "PK\x03\x04 t"`},
		{"truncated magic", []byte("\x93NUM"), "too short"},
		{"no version", []byte("\x93NUMPY\x01"), "too short"},
		{"no header length v2", []byte("\x93NUMPY\x02\x00\x10\x00"), "too short"},
		{"version 4", npyFile(4, f4("(1,)"), le32(1)), "unsupported format version 4.0"},
		{"version 1.1", append([]byte("\x93NUMPY\x01\x01"), 0, 0), "unsupported format version 1.1"},
		{"header past end", longHeader, "header length 4000 exceeds file size 120"},
		{"header over limit", hugeLen, "header length 2097152 exceeds the limit of 1048576"},
		{"v3 not utf-8", npyFile(3, "{'descr': '\xff'}", nil), "not valid UTF-8"},
		{"not a dict", npyFile(1, "['descr']", nil), "malformed header at byte 0: expected '{'"},
		{"unterminated dict", npyFile(1, "{'descr': '<f4'", nil), "expected ',' or '}', found end of header"},
		{"missing colon", npyFile(1, "{'descr' '<f4'}", nil), "expected ':' after key 'descr'"},
		{"unterminated string", npyFile(1, "{'descr: '<f4'}", nil), "expected ':'"},
		{"open string", npyFile(1, "{'descr", nil), "unterminated string"},
		{"mixed quotes", npyFile(1, "{'descr\": 1}", nil), "unterminated string"},
		{"bad value", npyFile(1, "{'descr': <f4}", nil), `expected a value, found "<f4}"`},
		{"bad name", npyFile(1, "{'fortran_order': false}", nil), `expected a value, found "false}"`},
		{"junk after dict", npyFile(1, "{} x", nil), `unexpected "x" after the dict`},
		{"two dicts", npyFile(1, "{}{}", nil), "after the dict"},
		{"bad integer", npyFile(1, "{'shape': (3x,)}", nil), "malformed integer"},
		{"float dim", npyFile(1, "{'shape': (3.0,)}", nil), "malformed integer"},
		{"integer overflow", npyFile(1, "{'shape': (99999999999999999999,)}", nil), "integer 99999999999999999999 out of range"},
		{"bare sign", npyFile(1, "{'shape': (-,)}", nil), "expected digits"},
		{"bad escape", npyFile(1, `{'descr': '\x41'}`, nil), `unsupported escape \x`},
		{"deep nesting", npyFile(1, "{'shape': "+strings.Repeat("(", 100)+"}", nil), "nested more than 16 deep"},
		{"missing shape", npyFile(1, numpyHeader("{'descr': '<f4', 'fortran_order': False}"), nil), `header has no "shape" key`},
		{"missing descr", npyFile(1, numpyHeader("{'fortran_order': False, 'shape': ()}"), nil), `header has no "descr" key`},
		{"missing fortran_order", npyFile(1, numpyHeader("{'descr': '<f4', 'shape': ()}"), nil), `header has no "fortran_order" key`},
		{"duplicate key", npyFile(1, numpyHeader("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': ()}"), nil), `header key "descr" appears twice`},
		{"unknown key", npyFile(1, numpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}"), nil), `unexpected header key "x"`},
		{"integer key", npyFile(1, "{1: 2}", nil), "header key 1 is an integer, not a string"},
		{"fortran order 1-d", npyFile(1, numpyHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }"), make([]byte, 4)), "Fortran order not supported (shape (1,))"},
		{"fortran order", npyFile(1, numpyHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"), make([]byte, 24)), "Fortran order not supported (shape (2, 3))"},
		{"fortran_order not bool", npyFile(1, numpyHeader("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }"), make([]byte, 24)), "fortran_order 0 is an integer, not True or False"},
		{"shape list", npyFile(1, f4("[2, 3]"), make([]byte, 24)), "shape [2, 3] is a list, not a tuple"},
		{"shape int", npyFile(1, f4("(6)"), make([]byte, 24)), "shape (6) is an integer, not a tuple"},
		{"shape string dim", npyFile(1, f4("('6',)"), make([]byte, 24)), "dimension 0 is a string, not an integer"},
		{"negative dim", npyFile(1, f4("(2, -3)"), make([]byte, 24)), "shape (2, -3): dimension 1 is negative"},
		{"count overflow", npyFile(1, f4("(4294967296, 4294967296)"), nil), "element count overflows"},
		{"bytes overflow", npyFile(1, f4("(4611686018427387904,)"), nil), "size in bytes of float32 overflows"},
		{"too many dims", npyFile(1, f4("("+strings.Repeat("1, ", 33)+")"), le32(1)), "33 dimensions, more than the limit of 32"},
		{"data short", npyFile(1, f4("(2, 3)"), make([]byte, 20)), "shape (2, 3) of <f4 needs 24 data bytes, file has 20"},
		{"data long", npyFile(1, f4("(2, 3)"), make([]byte, 28)), "needs 24 data bytes, file has 28"},
		{"object", withDescr("'|O'"), `object dtype "|O" not supported`},
		{"complex", withDescr("'<c8'"), `dtype "<c8": complex64 not supported; float16/32/64`},
		{"complex128", withDescr("'<c16'"), "complex128 not supported"},
		{"longdouble", withDescr("'<f16'"), "float128 not supported"},
		{"string", withDescr("'|S10'"), "bytes (S10) not supported"},
		{"unicode", withDescr("'<U5'"), "str (U5) not supported"},
		{"datetime", withDescr("'<M8[ns]'"), "datetime64 (M8[ns]) not supported"},
		{"nonsense dtype", withDescr("'<f3'"), `dtype "<f3" not supported`},
		{"empty dtype", withDescr("''"), "empty descr"},
		{"structured", withDescr("[('x', '<f4'), ('y', '<i4')]"), "structured dtype [('x', '<f4'), ('y', '<i4')] not supported"},
		{"descr int", withDescr("4"), "descr 4 is an integer, not a string"},
		{"pipe order for f4", withDescr("'|f4'"), "byte order '|' (not applicable) given for the 4-byte float32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := Decode(c.file)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", a)
			}
			if !strings.HasPrefix(err.Error(), "npy: ") {
				t.Errorf("error %q lacks the npy: prefix", err)
			}
			for _, w := range strings.Split(c.want, "|") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// From a file, ReadFile and ReadHeader (which reads only the
			// header) say the same, with the path.
			path := filepath.Join(t.TempDir(), "x.npy")
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			want := "npy: " + path + ": " + strings.TrimPrefix(err.Error(), "npy: ")
			if _, err := ReadFile(path); err == nil || err.Error() != want {
				t.Errorf("ReadFile: %v, want %s", err, want)
			}
			if _, err := ReadHeader(path); err == nil || err.Error() != want {
				t.Errorf("ReadHeader: %v, want %s", err, want)
			}
		})
	}
}

func TestReadHeader(t *testing.T) {
	for i, g := range numpyGolden {
		path := filepath.Join(t.TempDir(), "x.npy")
		if err := os.WriteFile(path, []byte(g.bytes), 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Decode([]byte(g.bytes))
		if err != nil {
			t.Fatal(err)
		}
		h, err := ReadHeader(path)
		if err != nil {
			t.Fatalf("golden %d: %v", i, err)
		}
		off := int64(len(g.bytes) - len(a.Data))
		dt, _, _ := parseDescr(a.DType)
		if h.DType != a.DType || h.Type != dt.name || !slices.Equal(h.Shape, a.Shape) || h.Len() != a.Len() || h.DataOffset != off || h.DataLen != int64(len(a.Data)) || h.Version != int(g.bytes[6]) {
			t.Errorf("golden %d: header %+v, array %s %v at %d", i, h, a.DType, a.Shape, off)
		}
	}
	if _, err := ReadHeader(filepath.Join(t.TempDir(), "missing.npy")); err == nil || !os.IsNotExist(unwrapAll(err)) || !strings.Contains(err.Error(), "missing.npy") {
		t.Errorf("ReadHeader of a missing file: %v", err)
	}
}

func TestReadFileErrorNamesPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "acts.npy")
	file := npyFile(1, "", nil)
	binary.LittleEndian.PutUint16(file[8:], 4000)
	file = append(file, make([]byte, 120-len(file))...)
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	want := "npy: " + path + ": header length 4000 exceeds file size 120"
	if err == nil || err.Error() != want {
		t.Errorf("ReadFile error = %v, want %s", err, want)
	}
	_, err = ReadFile(filepath.Join(dir, "missing.npy"))
	if err == nil || !strings.Contains(err.Error(), "missing.npy") || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestFromFloat32RoundTrip(t *testing.T) {
	src := []float32{0, -1, 0.1, 65504, 1e-8, float32(math.Inf(1)), 3.25}
	for _, dtype := range []string{"<f2", ">f2", "=f2", "<f4", ">f4", "<f8", ">f8"} {
		a, err := FromFloat32(src, []int{7, 1}, dtype)
		if err != nil {
			t.Fatal(err)
		}
		if dtype[0] == '=' && a.DType[0] == '=' {
			t.Errorf("%s: descr %s not canonical", dtype, a.DType)
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatal(err)
		}
		b, err := Decode(buf.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", dtype, err)
		}
		got, err := b.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range src {
			want := v
			if dtype[1:] == "f2" {
				want = half.Float16ToFloat32(half.Float32ToFloat16(v))
			}
			if got[i] != want {
				t.Errorf("%s [%d]: %v → %v, want %v", dtype, i, v, got[i], want)
			}
		}
	}
	if _, err := FromFloat32(src, []int{2, 3}, "<f4"); err == nil || !strings.Contains(err.Error(), "shape (2, 3) holds 6 elements, data has 7") {
		t.Errorf("FromFloat32 with a wrong shape: %v", err)
	}
	if _, err := FromFloat32(src, []int{7}, "<i4"); err == nil || !strings.Contains(err.Error(), "not int32") {
		t.Errorf("FromFloat32 to int32: %v", err)
	}
}

// Every supported dtype survives Write and Decode byte for byte.
func TestWriteRoundTripAllDTypes(t *testing.T) {
	for _, dt := range dtypes {
		for _, o := range []string{"<", ">"} {
			a := &Array{Shape: []int{2, 2}, DType: o + dt.code, Data: make([]byte, 4*dt.size)}
			for i := range a.Data {
				a.Data[i] = byte(i*37 + 1)
			}
			if dt.code == "b1" {
				copy(a.Data, []byte{0, 1, 1, 0})
			}
			var buf bytes.Buffer
			if err := Write(&buf, a); err != nil {
				t.Fatal(err)
			}
			if buf.Len()%64 != len(a.Data)%64 {
				t.Errorf("%s: data not 64-aligned", a.DType)
			}
			b, err := Decode(buf.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", a.DType, err)
			}
			wantDescr := a.DType
			if dt.size == 1 {
				wantDescr = "|" + dt.code
			}
			if b.DType != wantDescr || !slices.Equal(b.Shape, a.Shape) || !bytes.Equal(b.Data, a.Data) {
				t.Errorf("%s: round trip gave %s %v %x", a.DType, b.DType, b.Shape, b.Data)
			}
		}
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.npy")
	for _, c := range []struct {
		a    *Array
		want string
	}{
		{&Array{Shape: []int{3}, DType: "<f4", Data: make([]byte, 8)}, "needs 12 data bytes, have 8"},
		{&Array{Shape: []int{-1}, DType: "<f4"}, "negative"},
		{&Array{Shape: []int{1}, DType: "<c8", Data: make([]byte, 8)}, "complex64 not supported"},
		{&Array{Shape: make([]int, 33), DType: "<f4"}, "more than the limit of 32"},
	} {
		err := WriteArray(path, c.a)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "npy: "+path+": ") {
			t.Errorf("WriteArray(%+v) = %v, want %q", c.a, err, c.want)
		}
	}
	if err := WriteFile(path, []float32{1, 2}, []int{3}); err == nil {
		t.Error("WriteFile with a wrong shape succeeded")
	}
	if err := WriteFile(filepath.Join(dir, "no", "such", "dir.npy"), []float32{1}, []int{1}); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("failed writes left files behind: %v", entries)
	}
}

// A failed write leaves an existing file as it was; a successful one keeps
// its permissions and leaves no temporary file.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.npy")
	if err := WriteFile(path, []float32{1, 2, 3}, []int{3}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if err := WriteFile(path, []float32{1, 2}, []int{3}); err == nil {
		t.Fatal("bad write succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("failed write changed the file")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []float32{4}, []int{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("permissions after rewrite: %v %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only w.npy", entries)
	}
	if err := WriteFile(dir, []float32{4}, []int{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("WriteFile onto a directory: %v", err)
	}
}

// Float32 on an Array built by hand checks what Decode would have.
func TestFloat32Errors(t *testing.T) {
	for _, a := range []*Array{
		{Shape: []int{2}, DType: "<f4", Data: make([]byte, 4)},
		{Shape: []int{2}, DType: "<c8", Data: make([]byte, 16)},
		{Shape: []int{-2}, DType: "<f4"},
	} {
		if _, err := a.Float32(); err == nil {
			t.Errorf("Float32 of %+v succeeded", a)
		}
	}
}

func BenchmarkFloat32_f2_65536(b *testing.B) {
	a := &Array{Shape: []int{65536}, DType: "<f2", Data: make([]byte, 2*65536)}
	b.SetBytes(int64(len(a.Data)))
	for b.Loop() {
		if _, err := a.Float32(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadFileSpecialFiles gives ReadFile and ReadHeader a named pipe, a
// device and a directory: each must be refused at once with an error that
// names the path and says what it is. Opening a named pipe for reading
// blocks until a writer comes, so without the check ReadFile would hang
// (filetest.Within fails the test then); /dev/zero never ends, so ReadFile
// would read until memory ran out.
func TestReadFileSpecialFiles(t *testing.T) {
	for _, tc := range filetest.SpecialFiles(t, "x.npy") {
		for name, read := range map[string]func() error{
			"ReadFile":   func() error { _, err := ReadFile(tc.Path); return err },
			"ReadHeader": func() error { _, err := ReadHeader(tc.Path); return err },
		} {
			err := filetest.Within(t, tc.Path, read)
			if want := tc.Path + ": not a regular file (" + tc.What + ")"; err == nil || !strings.HasPrefix(err.Error(), "npy: ") || !strings.Contains(err.Error(), want) {
				t.Errorf("%s(%s) = %v, want an error saying %q", name, tc.Path, err, want)
			}
		}
	}
}
