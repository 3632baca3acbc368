package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
