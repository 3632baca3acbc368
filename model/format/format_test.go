package format_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/filetest"
	"github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
)

func write(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// files written by this repository's writers, and the ONNX model of the
// testdata, each the smallest of its format.
func files(t *testing.T) map[*format.Format][]byte {
	var st, gg, np bytes.Buffer
	if err := safetensors.Write(&st, []safetensors.Tensor{{Name: "w", DType: "F32", Shape: []int{1}, Data: make([]byte, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(&gg, []gguf.KV{{Key: "general.architecture", Value: "llama"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := npy.Write(&np, &npy.Array{Shape: []int{1}, DType: "<f4", Data: make([]byte, 4)}); err != nil {
		t.Fatal(err)
	}
	onnx, err := os.ReadFile("../onnx/testdata/mnist-cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	return map[*format.Format][]byte{
		format.Safetensors: st.Bytes(),
		format.GGUF:        gg.Bytes(),
		format.NPY:         np.Bytes(),
		format.ONNX:        onnx,
		format.JSON:        []byte("\n {\"weight_map\": {}}"),
	}
}

func TestDetect(t *testing.T) {
	zip := []byte("PK\x03\x04\x14\x00\x00\x00\x00\x00")
	pickle := []byte("\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.")
	type tc struct {
		name      string
		content   []byte
		want      *format.Format
		byContent bool
	}
	var cases []tc
	for f, b := range files(t) {
		// By content whatever the name says, and by name too.
		cases = append(cases, tc{"x" + f.Exts[0], b, f, true}, tc{"x.bin.txt", b, f, true})
		if f == format.JSON {
			continue
		}
		// Damaged (its first bytes lost): by name only, or nothing.
		cases = append(cases, tc{"x" + f.Exts[0], b[3:], f, false}, tc{"x", b[3:], nil, false})
	}
	cases = append(cases,
		tc{"x.npz", zip, format.NPZ, true},
		tc{"pytorch_model.bin", zip, format.PyTorch, true},
		tc{"X.PT", zip, format.PyTorch, true},
		tc{"model.pt", pickle, format.PyTorch, true},
		tc{"pickle", pickle, format.PyTorch, true},
		tc{"x.zip", zip, format.Zip, true},
		tc{"x", zip, format.Zip, true},
		tc{"empty.gguf", nil, format.GGUF, false},
		tc{"empty", nil, nil, false},
		// A safetensors header length past the end of the file.
		tc{"x.safetensors", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), format.Safetensors, false},
		tc{"x", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), nil, false},
	)
	for _, c := range cases {
		d, err := format.Detect(write(t, c.name, c.content))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if d.Format != c.want || d.ByContent != c.byContent {
			t.Errorf("%s (% x…): %v by content %v, want %v by content %v", c.name, d.Head, d.Format, d.ByContent, c.want, c.byContent)
		}
		if d.Size != int64(len(c.content)) || !bytes.HasPrefix(c.content, d.Head) || len(d.Head) != min(len(c.content), format.HeadLen) {
			t.Errorf("%s: size %d head % x", c.name, d.Size, d.Head)
		}
	}
	if _, err := format.Detect(filepath.Join(t.TempDir(), "missing.gguf")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.gguf") {
		t.Errorf("Detect of a missing file: %v", err)
	}
}

// Every row has the fields messages need, and a unique ID.
func TestFormatsTable(t *testing.T) {
	ids := map[string]bool{}
	for _, f := range format.Formats {
		if f.ID == "" || f.Name == "" || f.Noun == "" || len(f.Exts) == 0 || ids[f.ID] {
			t.Errorf("row %+v", *f)
		}
		ids[f.ID] = true
		for _, e := range f.Exts {
			if !strings.HasPrefix(e, ".") || strings.ToLower(e) != e {
				t.Errorf("%s: extension %q", f.ID, e)
			}
		}
	}
}

// TestOpenSpecialFiles: Open and Detect refuse a named pipe, a device and a
// directory at once (a plain open of a pipe blocks until a writer comes,
// and /dev/zero never ends), with an *os.PathError that names the path and
// what it is and wraps ErrNotRegular.
func TestOpenSpecialFiles(t *testing.T) {
	special := []struct{ path, what string }{{filetest.NamedPipe(t, "pipe.gguf"), "a named pipe"}, {t.TempDir(), "a directory"}}
	if _, err := os.Stat("/dev/zero"); err == nil {
		special = append(special, struct{ path, what string }{"/dev/zero", "a character device"})
	}
	for _, s := range special {
		for _, open := range []func() error{
			func() error {
				f, _, err := format.Open(s.path)
				if err == nil {
					f.Close()
				}
				return err
			},
			func() error { _, err := format.Detect(s.path); return err },
		} {
			err := filetest.Within(t, s.path, open)
			var pe *os.PathError
			if want := "open " + s.path + ": not a regular file (" + s.what + ")"; err == nil || err.Error() != want || !errors.Is(err, format.ErrNotRegular) || !errors.As(err, &pe) {
				t.Errorf("%s: %v, want %q", s.path, err, want)
			}
		}
	}
	// A regular file opens, blocking, at its start.
	path := write(t, "x", []byte("abc"))
	f, fi, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || fi.Size() != 3 || string(b) != "abc" {
		t.Errorf("size %d, %q, %v", fi.Size(), b, err)
	}
}
