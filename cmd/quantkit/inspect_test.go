package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/filetest"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
)

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	if out, err := run(t, "gen", "--params", "1M", "-o", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The directory and the file give the same report but for the path.
	var reps [2]InspectReport
	for i, path := range []string{dir, filepath.Join(dir, "model.safetensors")} {
		out, err := run(t, "inspect", "--json", path)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &reps[i]); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if reps[i].Path != path {
			t.Errorf("path %q, want %q", reps[i].Path, path)
		}
	}
	r := reps[0]
	if len(reps[1].Tensors) != len(r.Tensors) || reps[1].Estimates[2] != r.Estimates[2] {
		t.Error("the file and its directory give different reports")
	}
	if len(r.Files) != 1 || r.Total.Tensors != 75 || r.Total.Params != 1016896 || r.Total.Bytes != 4*1016896 ||
		len(r.DTypes) != 1 || r.DTypes[0] != (DTypeTotal{"F32", 75, 1016896, 4 * 1016896}) {
		t.Errorf("totals: files %v, %+v, %+v", r.Files, r.Total, r.DTypes)
	}
	// The rule: every linear layer of the 8 decoder layers, nothing else.
	var quantized int
	var want [2]int64 // int8, int4 sizes computed here from the shapes
	var kept int64
	for _, tt := range r.Tensors {
		linear := strings.Contains(tt.Name, "_proj.")
		if tt.Quantize != linear {
			t.Errorf("%s: quantize %v (%s)", tt.Name, tt.Quantize, tt.KeepReason)
		}
		if !linear {
			kept += tt.Bytes
			continue
		}
		quantized++
		rows, cols := int64(tt.Shape[0]), int64(tt.Shape[1])
		want[0] += rows*cols + 4*rows
		want[1] += rows*cols/2 + 4*rows*((cols+127)/128)
	}
	if quantized != 7*8 {
		t.Errorf("%d tensors quantized, want 56", quantized)
	}
	for _, tt := range r.Tensors {
		switch tt.Name {
		case "model.embed_tokens.weight":
			if tt.KeepReason != "embedding" {
				t.Errorf("embedding kept because %q", tt.KeepReason)
			}
		case "lm_head.weight":
			if tt.KeepReason != "lm_head" {
				t.Errorf("lm_head kept because %q", tt.KeepReason)
			}
		}
	}
	if len(r.Estimates) != 3 {
		t.Fatalf("estimates %+v", r.Estimates)
	}
	for i, e := range r.Estimates[1:] {
		if e.Bytes != want[i]+kept || e.KeptBytes != kept || e.QuantizedTensors != 56 || e.QuantizedParams != 491520 {
			t.Errorf("%s: %+v, want %d bytes", e.Format, e, want[i]+kept)
		}
		if e.Ratio >= 1 || e.Ratio <= 0.25 {
			t.Errorf("%s: ratio %g", e.Format, e.Ratio)
		}
	}

	out, err := run(t, "inspect", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"75 tensors in 1 file", "model.layers.7.mlp.down_proj.weight", "[64, 256]", "no: embedding", "no: 1-D",
		"int8-per-channel", "int4-group128", "dtype  tensors"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

func TestKeepReason(t *testing.T) {
	for _, tc := range []struct {
		name, dtype string
		shape       []int
		want        string
	}{
		{"model.layers.0.mlp.up_proj.weight", "BF16", []int{8, 4}, ""},
		{"model.layers.0.mlp.up_proj.bias", "F32", []int{8}, "1-D"},
		{"model.layers.0.mlp.up_proj.bias", "F32", []int{8, 1}, "not a .weight"},
		{"model.layers.0.mlp.up_proj.weight", "I8", []int{8, 4}, "not floating-point"},
		{"model.embed_tokens.weight", "F16", []int{8, 4}, "embedding"},
		{"transformer.wte.weight", "F16", []int{8, 4}, "embedding"},
		{"lm_head.weight", "F16", []int{8, 4}, "lm_head"},
		{"vision.conv.weight", "F32", []int{8, 4, 3, 3}, "4-D"},
		{"scalar", "F32", nil, "0-D"},
	} {
		if got := keepReason(tc.name, tc.dtype, tc.shape); got != tc.want {
			t.Errorf("keepReason(%s, %s, %v) = %q, want %q", tc.name, tc.dtype, tc.shape, got, tc.want)
		}
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	idx := write("sharded/model.safetensors.index.json", `{"weight_map": {"w": "model-00001-of-00001.safetensors"}}`)
	badIdx := write("badidx/model.safetensors.index.json", `{"weight_map": {"w": "../../etc/passwd"}}`)
	// A shard that lacks a tensor the index puts in it.
	lacking := filepath.Join(dir, "lacking")
	write("lacking/model.safetensors.index.json", `{"weight_map": {"a": "s.safetensors", "b": "s.safetensors"}}`)
	if err := safetensors.WriteFile(filepath.Join(lacking, "s.safetensors"), []safetensors.Tensor{{Name: "a", DType: "F32", Shape: []int{1}, Data: make([]byte, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{bad, "bad.safetensors"},
		{filepath.Join(dir, "missing.safetensors"), "missing.safetensors"},
		{empty, "neither model.safetensors"},
		{filepath.Dir(idx), "model-00001-of-00001.safetensors"},
		{filepath.Dir(badIdx), "model.safetensors.index.json"},
		{lacking, `tensor "b"`},
	} {
		out, err := run(t, "inspect", tc.path)
		if err == nil {
			t.Errorf("%s: no error\n%s", tc.path, out)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "inspect: ") {
			t.Errorf("%s: error %q, want one saying %q", tc.path, err, tc.want)
		}
	}
	if _, err := run(t, "inspect"); err == nil {
		t.Error("no PATH accepted")
	}
}

// writeTinyGGUF writes a small GGUF model: metadata of every kind inspect summarises, tensors of
// three types.
func writeTinyGGUF(t *testing.T, path string) {
	t.Helper()
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = string(rune('a' + i%26))
	}
	meta := []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: "tiny"},
		{Key: "llama.block_count", Value: uint32(2)},
		{Key: "llama.rope.freq_base", Value: float32(math.Inf(1))},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.merges", Value: []any{[]uint8{1, 2}, []uint8{}}},
	}
	q8 := make([]byte, 2*34) // two Q8_0 blocks
	tensors := []gguf.Tensor{
		{Name: "token_embd.weight", Type: gguf.TypeF16, Dims: []int{4, 3}, Data: make([]byte, 24)},
		{Name: "blk.0.attn_q.weight", Type: gguf.TypeQ8_0, Dims: []int{32, 2}, Data: q8},
		{Name: "output_norm.weight", Type: gguf.TypeF32, Dims: []int{4}, Data: make([]byte, 16)},
	}
	if err := gguf.WriteFile(path, meta, tensors); err != nil {
		t.Fatal(err)
	}
}

func TestInspectGGUF(t *testing.T) {
	// Named .safetensors: the content says what it is.
	for _, name := range []string{"tiny.gguf", "misnamed.safetensors"} {
		path := filepath.Join(t.TempDir(), name)
		writeTinyGGUF(t, path)
		out, err := run(t, "inspect", "--json", path)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		var r GGUFReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if r.Format != "gguf" || r.Path != path || r.Version != 3 || r.Alignment != 32 || len(r.Tensors) != 3 || len(r.Metadata) != 6 {
			t.Fatalf("%s: %+v", name, r)
		}
		q := r.Tensors[1]
		if q.Name != "blk.0.attn_q.weight" || q.Type != "Q8_0" || !slices.Equal(q.Shape, []int{2, 32}) || !slices.Equal(q.Dims, []int{32, 2}) || q.Params != 64 || q.Bytes != 68 {
			t.Errorf("tensor %+v", q)
		}
		if r.Total != (GGUFTotal{"", 3, 12 + 64 + 4, 24 + 68 + 16}) || len(r.Types) != 3 || r.Types[0] != (GGUFTotal{"F16", 1, 12, 24}) {
			t.Errorf("totals %+v %+v", r.Total, r.Types)
		}
		md := map[string]GGUFMetadata{}
		for _, m := range r.Metadata {
			md[m.Key] = m
		}
		if m := md["general.architecture"]; m.Type != "string" || m.Value != "llama" || m.Count != nil {
			t.Errorf("general.architecture: %+v", m)
		}
		if m := md["llama.block_count"]; m.Type != "uint32" || m.Value != float64(2) {
			t.Errorf("llama.block_count: %+v", m)
		}
		if m := md["llama.rope.freq_base"]; m.Value != "+Inf" {
			t.Errorf("a float JSON cannot hold: %+v", m)
		}
		if m := md["tokenizer.ggml.tokens"]; m.Type != "array of string" || m.Count == nil || *m.Count != 100 || len(m.Value.([]any)) != ggufArrayHead {
			t.Errorf("tokens: %+v", m)
		}
		if m := md["tokenizer.ggml.merges"]; m.Type != "array of array" || *m.Count != 2 || m.Value != nil {
			t.Errorf("array of arrays: %+v", m)
		}
		out, err = run(t, "inspect", path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"GGUF v3, 3 tensors", "general.architecture", "llama", `array of string  100 elements: "a", "b"`,
			"blk.0.attn_q.weight", "Q8_0", "[2, 32]", "type  tensors"} {
			if !strings.Contains(out, s) {
				t.Errorf("table lacks %q:\n%s", s, out)
			}
		}
	}
}

func TestInspectNPY(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acts.npy")
	if err := npy.WriteFile(path, make([]float32, 6), []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "inspect", "--json", path)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r NPYReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Format != "npy" || r.Path != path || r.Version != 1 || r.DType != "<f4" || r.Type != "float32" || !slices.Equal(r.Shape, []int{2, 3}) || r.Elements != 6 || r.Bytes != 24 || r.DataOffset != 128 {
		t.Errorf("%+v", r)
	}
	out, err = run(t, "inspect", path)
	if err != nil || !strings.Contains(out, "<f4 (float32), shape (2, 3), 6 elements, 24 B") {
		t.Errorf("%v\n%s", err, out)
	}
	// A damaged .npy gives npy's own error.
	bad := filepath.Join(t.TempDir(), "bad.npy")
	os.WriteFile(bad, []byte("\x93NUMPY\x01\x00\xff\xff{}"), 0o644)
	if _, err := run(t, "inspect", bad); err == nil || !strings.Contains(err.Error(), "npy: "+bad+": header length 65535 exceeds file size") {
		t.Errorf("damaged .npy: %v", err)
	}
}

// Files of formats inspect does not read, or of none, get an error that
// says what they are, not one from the safetensors reader.
func TestInspectOtherFormats(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	onnx, err := os.ReadFile("../../model/onnx/testdata/mnist-cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{write("model.onnx", onnx), "model.onnx is an ONNX model; inspect reads safetensors, GGUF and .npy"},
		{write("model", onnx), "model is an ONNX model; inspect reads"},
		{write("pytorch_model.bin", []byte("PK\x03\x04\x14\x00\x00\x00")), "pytorch_model.bin is a PyTorch checkpoint; inspect reads"},
		{write("config", []byte(`{"model_type": "llama"}`)), "config is a JSON file; inspect reads"},
		{write("notes.txt", []byte("hello, world")), `notes.txt is not a safetensors, GGUF or .npy file (it starts with "hello, world")`},
		{write("empty", nil), "empty is empty"},
	} {
		out, err := run(t, "inspect", tc.path)
		if err == nil || !strings.HasPrefix(err.Error(), "inspect: "+filepath.Join(dir, tc.want)) {
			t.Errorf("%s: %v, want %q\n%s", tc.path, err, tc.want, out)
		}
	}
}

// TestInspectSpecialFiles: a named pipe (whose plain open would block
// until a writer came) and a device are refused at once.
func TestInspectSpecialFiles(t *testing.T) {
	special := map[string]string{filetest.NamedPipe(t, "x.gguf"): "a named pipe"}
	if _, err := os.Stat("/dev/zero"); err == nil {
		special["/dev/zero"] = "a character device"
	}
	for path, what := range special {
		err := filetest.Within(t, path, func() error { _, err := run(t, "inspect", path); return err })
		if want := path + ": not a regular file (" + what + ")"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}
