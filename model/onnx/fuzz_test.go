package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/quantkit/quantkit/internal/alloctest"
)

// Read is held to allocating at most readAllocFactor times the file's
// size plus readAllocSlack bytes, whatever sizes, lengths and counts the
// file declares. The factor is what the smallest messages cost once
// decoded: an attribute of a one-byte name holding an empty tensor is 11
// bytes of protobuf and 368 bytes in memory (a 144-byte Attribute, a
// 208-byte Tensor, its dims and a pointer), 33 times as many;
// TestReadAllocation measures each kind of message.
const (
	readAllocFactor = 40
	readAllocSlack  = 64 << 10
)

// FuzzRead writes each input to a file and reads it: Read must never
// panic, must allocate within the bound above, its errors must name the
// file, and what it accepts must encode to bytes that decode to a model
// encoding to the same bytes, with every tensor's data convertible. The
// seed corpus in testdata/fuzz/FuzzRead holds the MNIST model and small
// valid and broken models; the seeds added here hold models that use a
// name twice and messages that are small on the wire and large in memory.
func FuzzRead(f *testing.F) {
	if data, err := os.ReadFile(mnistPath); err == nil {
		f.Add(data)
	}
	if b, err := Encode(fullModel()); err == nil {
		f.Add(b)
	}
	for _, c := range duplicateNameModels() {
		f.Add(encodeUnchecked(c.m))
	}
	for _, c := range allocModels(64) {
		f.Add(c.data)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.onnx")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var m *Model
		var err error
		if e := alloctest.Check("onnx.Read", len(data), readAllocFactor, readAllocSlack, func() { m, err = Read(path) }); e != nil {
			t.Fatal(e)
		}
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

// allocModels are files of about n repetitions of the smallest message of
// each kind (and of packed numbers), the inputs that cost Read the most
// memory per byte: valid ones (distinct names of one or two bytes, every
// node an op_type) and ones that fail only at the end.
func allocModels(n int) []struct {
	name string
	data []byte
} {
	msg := func(num protowire.Number, inner []byte) []byte { return appendMessage(nil, num, inner) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rep := bytes.Repeat
	model := func(graph []byte) []byte {
		return cat(appendInt(nil, 1, 7), msg(7, graph), msg(8, appendInt(nil, 2, 13)))
	}
	// short is the i-th shortest name.
	short := func(i int) string {
		switch {
		case i < 1<<8:
			return string([]byte{byte(i)})
		case i < 1<<16:
			return string([]byte{byte(i), byte(i >> 8)})
		}
		return string([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	}
	each := func(k int, f func(i int) []byte) []byte {
		var b []byte
		for i := range k {
			b = append(b, f(i)...)
		}
		return b
	}
	op := appendString(nil, 4, "A")
	node := func(parts ...[]byte) []byte { return msg(1, cat(append([][]byte{op}, parts...)...)) }
	items := min(n, MaxNodeItems)
	nodes := max(n/MaxNodeItems, 1)
	ones := rep([]byte{1}, n)
	// FLOAT [0], dims unpacked: the smallest tensor.
	emptyTensor := cat(appendInt(nil, 2, 1), protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 0))
	return []struct {
		name string
		data []byte
	}{
		{"empty nodes", model(rep(msg(1, nil), n))},
		{"nodes", model(rep(node(), n))},
		{"empty node inputs", model(rep(node(rep([]byte{0x0a, 0}, items)), nodes))},
		{"empty node outputs", model(rep(node(rep([]byte{0x12, 0}, items)), nodes))},
		{"node outputs", model(each(nodes, func(j int) []byte {
			return node(each(items, func(i int) []byte { return appendString(nil, 2, short(j*items+i)) }))
		}))},
		{"empty value_infos", model(rep(msg(11, nil), n))},
		{"value_infos", model(each(n, func(i int) []byte { return msg(11, appendString(nil, 1, short(i))) }))},
		{"value_info dims", model(each(max(n/MaxRank, 1), func(i int) []byte {
			return msg(13, cat(appendString(nil, 1, short(i)), msg(2, msg(1, msg(2, rep(msg(1, nil), MaxRank))))))
		}))},
		{"packed ints", model(node(msg(5, cat(appendString(nil, 1, "a"), msg(8, ones)))))},
		{"unpacked ints", model(node(msg(5, cat(appendString(nil, 1, "a"), rep([]byte{0x40, 1}, n)))))},
		{"packed floats", model(node(msg(5, cat(appendString(nil, 1, "a"), msg(7, rep([]byte{0}, 4*n))))))},
		{"empty strings", model(node(msg(5, cat(appendString(nil, 1, "a"), rep([]byte{0x4a, 0}, n)))))},
		{"one-byte strings", model(node(msg(5, cat(appendString(nil, 1, "a"), rep([]byte{0x4a, 1, 'x'}, n)))))},
		{"packed dims", model(msg(5, msg(1, ones)))},
		{"packed int64_data", model(msg(5, cat(appendInt(nil, 2, 7), msg(7, ones))))},
		{"packed int32_data", model(msg(5, cat(appendInt(nil, 2, 6), msg(5, ones))))},
		{"packed uint64_data", model(msg(5, cat(appendInt(nil, 2, 13), msg(11, ones))))},
		{"unpacked float_data", model(msg(5, cat(appendInt(nil, 2, 1), rep([]byte{0x25, 0, 0, 0, 0}, n))))},
		{"attributes", model(each(nodes, func(int) []byte {
			return node(each(items, func(i int) []byte { return msg(5, appendString(nil, 1, short(i))) }))
		}))},
		{"attributes, one name", model(rep(node(rep(msg(5, appendString(nil, 1, "a")), items)), nodes))},
		{"tensor attributes", model(each(nodes, func(int) []byte {
			return node(each(items, func(i int) []byte { return msg(5, cat(appendString(nil, 1, short(i)), msg(5, emptyTensor))) }))
		}))},
		{"nameless initializers", model(rep(msg(5, emptyTensor), n))},
		{"initializers", model(each(n, func(i int) []byte { return msg(5, cat(appendString(nil, 8, short(i)), emptyTensor)) }))},
		{"initializers, one name", model(rep(msg(5, cat(appendString(nil, 8, "w"), emptyTensor)), n))},
		{"metadata", cat(model(nil), rep(msg(14, nil), min(n, MaxOpsets)))},
		{"opsets", cat(model(nil), rep(msg(8, nil), min(n, MaxOpsets)))},
	}
}

// TestReadAllocation reads files of each kind allocModels makes, large
// enough that fixed costs do not matter, within FuzzRead's bound.
func TestReadAllocation(t *testing.T) {
	dir := t.TempDir()
	for _, c := range allocModels(50000) {
		path := filepath.Join(dir, "alloc.onnx")
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		var err error
		got := alloctest.Bytes(func() { _, err = Read(path) })
		t.Logf("%-24s %8d bytes: %9d allocated (%.1f×), %v", c.name, len(c.data), got, float64(got)/float64(len(c.data)), err)
		if lim := alloctest.Limit(len(c.data), readAllocFactor, readAllocSlack); got > lim {
			t.Errorf("%s: %d bytes allocated reading %d; the bound is %d", c.name, got, len(c.data), lim)
		}
	}
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
