package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// HeadLen is how many bytes of a file Detect reads.
const HeadLen = 16

// Format is a kind of file: one row of Formats.
type Format struct {
	// ID is short and stable, for switches and --json: "gguf", "npy"...
	ID string
	// Name is the format as a message names it: "GGUF", "NumPy .npy".
	Name string
	// Noun is what a file of the format is, with its article: "a GGUF
	// file", "an ONNX model".
	Noun string
	// Exts are the extensions files of the format usually have, lower
	// case, with the dot.
	Exts []string
	// match tests the first bytes of a file (head, at most HeadLen of
	// them) whose size is size and whose extension, lower case, is ext.
	match func(head []byte, size int64, ext string) bool
}

func (f *Format) String() string { return f.Name }

// The rows of Formats, for callers to compare a detected format with.
var (
	GGUF = &Format{ID: "gguf", Name: "GGUF", Noun: "a GGUF file", Exts: []string{".gguf"},
		match: func(h []byte, _ int64, _ string) bool { return bytes.HasPrefix(h, []byte("GGUF")) }}
	NPY = &Format{ID: "npy", Name: "NumPy .npy", Noun: "a NumPy .npy array", Exts: []string{".npy"},
		match: func(h []byte, _ int64, _ string) bool { return bytes.HasPrefix(h, []byte("\x93NUMPY")) }}
	NPZ = &Format{ID: "npz", Name: "NumPy .npz", Noun: "a NumPy .npz archive", Exts: []string{".npz"},
		match: func(h []byte, _ int64, ext string) bool { return isZip(h) && ext == ".npz" }}
	PyTorch = &Format{ID: "pytorch", Name: "PyTorch", Noun: "a PyTorch checkpoint", Exts: []string{".pt", ".pth", ".bin", ".ckpt"},
		match: func(h []byte, _ int64, ext string) bool {
			return isZip(h) && slices.Contains([]string{".pt", ".pth", ".bin", ".ckpt"}, ext) ||
				len(h) >= 2 && h[0] == 0x80 && h[1] >= 2 && h[1] <= 5 // a pickle's PROTO opcode
		}}
	Zip = &Format{ID: "zip", Name: "zip", Noun: "a zip archive", Exts: []string{".zip"},
		match: func(h []byte, _ int64, _ string) bool { return isZip(h) }}
	Safetensors = &Format{ID: "safetensors", Name: "safetensors", Noun: "a safetensors file", Exts: []string{".safetensors"},
		match: func(h []byte, size int64, _ string) bool {
			if len(h) < 9 || h[8] != '{' {
				return false
			}
			n := binary.LittleEndian.Uint64(h)
			return n >= 2 && n <= uint64(size-8)
		}}
	ONNX = &Format{ID: "onnx", Name: "ONNX", Noun: "an ONNX model", Exts: []string{".onnx"},
		match: isONNX}
	JSON = &Format{ID: "json", Name: "JSON", Noun: "a JSON file", Exts: []string{".json"},
		match: func(h []byte, _ int64, _ string) bool {
			h = bytes.TrimLeft(h, " \t\r\n")
			return len(h) > 0 && (h[0] == '{' || h[0] == '[')
		}}
)

// Formats is the table Detect goes through, in order: the first row whose
// test passes wins. Add a format by adding a row.
var Formats = []*Format{GGUF, NPY, NPZ, PyTorch, Zip, Safetensors, ONNX, JSON}

func isZip(h []byte) bool { return bytes.HasPrefix(h, []byte("PK\x03\x04")) }

// onnxFields are the first bytes of the tags of ModelProto's fields other
// than ir_version; protobuf writers emit fields in number order, and an
// ONNX model starts with ir_version (field 1, a varint).
var onnxFields = []byte{
	2<<3 | 2, 3<<3 | 2, 4<<3 | 2, // producer_name, producer_version, domain
	5<<3 | 0, 6<<3 | 2, 7<<3 | 2, // model_version, doc_string, graph
	8<<3 | 2, 14<<3 | 2, // opset_import, metadata_props
	0xa2, 0xca, // training_info (20) and functions (25): two-byte tags
}

func isONNX(h []byte, size int64, _ string) bool {
	// ir_version is 1 to 127 in one varint byte, then another field.
	return len(h) >= 3 && h[0] == 1<<3|0 && h[1] >= 1 && h[1] < 0x80 && slices.Contains(onnxFields, h[2])
}

// Detection is what Detect found.
type Detection struct {
	// Format is the format, nil when neither the content nor the name
	// says.
	Format *Format
	// ByContent is true when the file's first bytes matched Format, false
	// when only its extension did.
	ByContent bool
	// Size is the file's size in bytes and Head its first bytes (at most
	// HeadLen), for messages about a file of no known format.
	Size int64
	Head []byte
}

// Detect opens the regular file at path (see Open) and says what format
// it holds: the first row of Formats that its first bytes match, or else
// the row whose extension it has. Errors name the path.
func Detect(path string) (Detection, error) {
	f, fi, err := Open(path)
	if err != nil {
		return Detection{}, err
	}
	defer f.Close()
	head := make([]byte, min(fi.Size(), HeadLen))
	if _, err := io.ReadFull(f, head); err != nil {
		return Detection{}, fmt.Errorf("%s: reading the first %d bytes: %w", path, len(head), err)
	}
	return DetectBytes(head, fi.Size(), path), nil
}

// DetectBytes is Detect for a file whose first bytes are head (HeadLen of
// them, or all of a shorter file), whose size is size and whose name is
// name.
func DetectBytes(head []byte, size int64, name string) Detection {
	head = head[:min(len(head), HeadLen)]
	d := Detection{Size: size, Head: head}
	ext := strings.ToLower(filepath.Ext(name))
	for _, f := range Formats {
		if f.match(head, size, ext) {
			d.Format, d.ByContent = f, true
			return d
		}
	}
	for _, f := range Formats {
		if slices.Contains(f.Exts, ext) {
			d.Format = f
			return d
		}
	}
	return d
}
