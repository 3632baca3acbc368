package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzRead writes each input to a file and reads it: Read must never
// panic, its errors must name the file, and what it accepts must encode to
// bytes that decode to a model encoding to the same bytes, with every
// tensor's data convertible. The seed corpus in testdata/fuzz/FuzzRead
// holds the MNIST model and small valid and broken models.
func FuzzRead(f *testing.F) {
	if data, err := os.ReadFile(mnistPath); err == nil {
		f.Add(data)
	}
	if b, err := Encode(fullModel()); err == nil {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.onnx")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Read(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "onnx: "+path+": ") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("encoding what Read accepted: %v", err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("decoding what was encoded: %v", err)
		}
		if b2, _ := Encode(again); !bytes.Equal(b, b2) {
			t.Fatal("encode(decode(encode(m))) differs from encode(m)")
		}
		for _, init := range m.Graph.Initializer {
			switch init.DataType {
			case DataComplex64, DataComplex128, DataString, 17, 18, 19, 20, 23:
				continue
			}
			if v, err := init.Float32(); err != nil || len(v) != init.Len() {
				t.Fatalf("initializer %q: %d values, %v", init.Name, len(v), err)
			}
		}
	})
}

// The committed seed corpus says what each file is by its name: valid_*
// files must read and invalid_* files must not.
func TestSeedCorpus(t *testing.T) {
	dir := "testdata/fuzz/FuzzRead"
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
		_, err = Decode([]byte(s))
		switch {
		case strings.HasPrefix(e.Name(), "valid_") && err != nil:
			t.Errorf("%s: %v", e.Name(), err)
		case strings.HasPrefix(e.Name(), "invalid_") && err == nil:
			t.Errorf("%s: read without error", e.Name())
		}
	}
}
