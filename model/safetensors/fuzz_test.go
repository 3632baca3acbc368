package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/alloctest"
)

// Parsing a header is held to allocating at most allocFactor times the
// file's size plus allocSlack bytes, whatever the header holds: the parser
// keeps tensor names, metadata and a few words per tensor, and allocates
// nothing for the JSON it only reads through (delimiters, numbers, field
// names, unknown fields).
const (
	allocFactor = 16
	allocSlack  = 16 << 10
)

// FuzzOpen writes a file made of the length of header, header and data,
// and checks that Open never panics, that parsing allocates within the
// bound above, that the header is accepted only if it is valid JSON
// (encoding/json, the slow twin of the parser, agrees: it finds the same
// tensors and metadata, and rejects what the parser calls invalid JSON),
// that every tensor it accepts can be read and converted, and that
// writing the accepted tensors and metadata gives a file that opens to the
// same content. The seed corpus is in testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]}}`), []byte{0, 0x3c, 0, 0xbc})
	f.Add([]byte(`{"a":{"dtype":"I32","shape":[],"data_offsets":[4,8]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`), make([]byte, 9))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, header, data []byte) {
		path := filepath.Join(dir, "fuzz.safetensors")
		file := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		file = append(append(file, header...), data...)
		var parsed *File
		var perr error
		if err := alloctest.Check("newFile", len(file), allocFactor, allocSlack, func() { parsed, perr = newFile("", file, false) }); err != nil {
			t.Fatal(err)
		}
		checkJSON(t, header, parsed, perr)
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Open(path)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Open: %v; parsing the bytes: %v", err, perr)
		}
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

// checkJSON compares what newFile made of header (f, or err) with what
// encoding/json makes of it.
func checkJSON(t *testing.T, header []byte, f *File, err error) {
	t.Helper()
	valid := json.Valid(header)
	switch {
	case err != nil && !valid, err != nil && !isSyntaxError(err):
		return
	case err != nil:
		t.Fatalf("%v, but encoding/json finds the header valid", err)
	case !valid:
		t.Fatal("header accepted, but encoding/json finds it invalid")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(header, &members); err != nil {
		t.Fatalf("header accepted, but encoding/json: %v", err)
	}
	var md map[string]string
	if raw, ok := members[metadataKey]; ok {
		delete(members, metadataKey)
		if err := json.Unmarshal(raw, &md); err != nil {
			t.Fatalf("metadata accepted, but encoding/json: %v", err)
		}
	}
	if len(members) != len(f.tensors) || !mapsEqual(md, f.metadata) {
		t.Fatalf("encoding/json finds %d tensors and metadata %q; the parser %d and %q", len(members), md, len(f.tensors), f.metadata)
	}
	for _, ti := range f.tensors {
		var want struct {
			DType       string  `json:"dtype"`
			Shape       []int   `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(members[ti.Name], &want); err != nil {
			t.Fatalf("tensor %q: encoding/json: %v", ti.Name, err)
		}
		if want.DType != ti.DType || !slices.Equal(want.Shape, ti.Shape) || !slices.Equal(want.DataOffsets, []int64{ti.Begin, ti.End}) {
			t.Fatalf("tensor %q: encoding/json finds %+v; the parser %+v", ti.Name, want, ti)
		}
	}
}

func isSyntaxError(err error) bool {
	return strings.Contains(err.Error(), "not valid JSON") || strings.Contains(err.Error(), "JSON ends early")
}

// TestHeaderJSON checks the parser against encoding/json on JSON that a
// parser of its own could get wrong: escapes, surrogates, numbers,
// literals and the grammar's corners, in tensor names, metadata and
// unknown fields.
func TestHeaderJSON(t *testing.T) {
	u8 := func(name, extra string) string {
		return `"` + name + `":{"dtype":"U8","shape":[0],"data_offsets":[0,0]` + extra + `}`
	}
	for _, h := range []string{
		`{` + u8(`\ud83d\ude00`, "") + `}`,
		`{` + u8(`\ud800`, "") + `}`,
		`{` + u8(`\ud800\u0041`, "") + `}`,
		`{` + u8(`\udc00\ud800`, "") + `}`,
		`{` + u8(`a\/b\"\\\b\f\n\r\t\u00e9\u00E9`, "") + `}`,
		`{"__metadata__":{"\u0000":"\ud83d\ude00x","k":"\ud83d"}}`,
		`{` + u8("a", `,"x":[-0,-0.5e-3,1E+5,0.0,true,false,null,{},[],{"":[{}]},"\u0000"]`) + `}`,
		"\t{\r\n" + u8("a", "") + " }\n ",
		// Not JSON.
		`{` + u8("a", `,"x":01`) + `}`,
		`{` + u8("a", `,"x":1.`) + `}`,
		`{` + u8("a", `,"x":1.e5`) + `}`,
		`{` + u8("a", `,"x":-`) + `}`,
		`{` + u8("a", `,"x":+1`) + `}`,
		`{` + u8("a", `,"x":tru`) + `}`,
		`{` + u8("a", `,"x":nul`) + `}`,
		`{` + u8("a", `,"x":truex`) + `}`,
		`{` + u8("a", `,"x":[1,]`) + `}`,
		`{` + u8("a", `,"x":{"a" 1}`) + `}`,
		`{` + u8("a", `,"x":{1:1}`) + `}`,
		`{` + u8("a", `,"x":"\x"`) + `}`,
		`{` + u8("a", `,"x":"\u12G4"`) + `}`,
		`{` + u8("a", ",\"x\":\"\x01\"") + `}`,
		`{` + u8("a", `,"x":"`) + `}`,
		// encoding/json's limit of 10000 levels, and one more.
		`{` + u8("a", `,"x":`+strings.Repeat("[", maxDepth-2)+strings.Repeat("]", maxDepth-2)) + `}`,
		`{` + u8("a", `,"x":`+strings.Repeat("[", maxDepth-1)+strings.Repeat("]", maxDepth-1)) + `}`,
		`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},}`,
		`{"__metadata__":nul}`,
		`{"__metadata__":{"k":"v",}}`,
		`{,}`,
		`{"a"}`,
	} {
		f, err := newFile("", stFile(h, nil), false)
		checkJSON(t, []byte(h), f, err)
	}
}

// TestOpenAllocation gives newFile headers of many small items and of
// JSON that is read through: the allocation bound of FuzzOpen holds for
// each.
func TestOpenAllocation(t *testing.T) {
	const n = 20000
	var tensors, metadata, escaped strings.Builder
	for i := range n {
		fmt.Fprintf(&tensors, `"%x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},`, i)
		fmt.Fprintf(&metadata, `"%x":"",`, i)
		fmt.Fprintf(&escaped, `"\u%04x":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"\u0078":{}},`, i+0x100)
	}
	u8 := func(extra string) string { return `"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],` + extra + `}` }
	for name, header := range map[string]string{
		"tensors":         "{" + tensors.String() + `"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`,
		"metadata":        `{"__metadata__":{` + metadata.String() + `"":""}}`,
		"escaped names":   "{" + escaped.String() + `"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`,
		"unknown numbers": "{" + u8(`"x":[`+strings.Repeat("0,", n)+"0]") + "}",
		"unknown strings": "{" + u8(`"x":[`+strings.Repeat(`"\n",`, n)+"0]") + "}",
		"unknown objects": "{" + u8(`"x":[`+strings.Repeat(`{"":0},`, n)+"0]") + "}",
		"unknown keys":    "{" + u8(strings.TrimSuffix(metadata.String(), ",")) + "}",
		"deep":            "{" + u8(`"x":`+strings.Repeat("[", 9000)+strings.Repeat("]", 9000)) + "}",
	} {
		file := stFile(header, nil)
		var err error
		if aerr := alloctest.Check("newFile", len(file), allocFactor, allocSlack, func() { _, err = newFile("", file, false) }); aerr != nil {
			t.Errorf("%s: %v", name, aerr)
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
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
