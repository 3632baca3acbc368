package quantize

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/model/synth"
)

// dropTensor rewrites the checkpoint file path without the named tensor.
func dropTensor(t *testing.T, path, name string) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep []safetensors.Tensor
	for _, ti := range f.Tensors() {
		if ti.Name == name {
			continue
		}
		b, err := f.Bytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, safetensors.Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: bytes.Clone(b)})
	}
	meta := f.Metadata()
	f.Close()
	if err := safetensors.WriteFile(path, keep, meta); err != nil {
		t.Fatal(err)
	}
}

// Every quantized weight is dequantized, or the run fails naming it: a
// weight whose scale is missing is never copied as its codes.
func TestDequantizeIncompleteRefused(t *testing.T) {
	in := synthModel(t)
	const w = "model.layers.1.mlp.up_proj.weight"
	for _, tc := range []struct {
		format plan.Format
		scheme string
		drop   string
	}{
		{plan.CompressedTensors, "int8-sym-channel", w + "_scale"},
		{plan.CompressedTensors, "int4-sym-group128", w + "_scale"},
		{plan.CompressedTensors, "int4-sym-group128", w + "_packed"},
		{plan.Safetensors, "int8-sym-channel", w + ".scale"},
		{plan.Safetensors, "int4-asym-group128", w + ".zero_point"},
	} {
		q := filepath.Join(t.TempDir(), "q")
		mustRun(t, Options{Input: in, Output: q, Plan: plan.Options{Format: tc.format, Scheme: scheme(t, tc.scheme)}})
		dropTensor(t, filepath.Join(q, "model.safetensors"), tc.drop)
		dir := t.TempDir()
		_, err := Dequantize(context.Background(), DequantizeOptions{Input: q, Output: filepath.Join(dir, "back")})
		if err == nil || !inputerr.Is(err) || !strings.Contains(err.Error(), w) {
			t.Errorf("%s %s without %s: error %v, want one naming the weight", tc.format, tc.scheme, tc.drop, err)
		}
		if got := entries(t, dir); len(got) != 0 {
			t.Errorf("left %v", got)
		}
	}
}

// Dequantize gives back float tensors only, in the dtype the weights had
// (raw format: recorded per weight; compressed-tensors: torch_dtype), or
// the one asked for.
func TestDequantizeDTypes(t *testing.T) {
	for _, dtype := range []string{"BF16", "F16", "F32"} {
		in := filepath.Join(t.TempDir(), "in")
		cfg := synth.LlamaLike(1e6)
		cfg.DType = dtype
		if _, err := synth.Write(in, cfg, synth.Options{ShardSize: 1e6}); err != nil {
			t.Fatal(err)
		}
		orig := openCk(t, in)
		for _, c := range []struct {
			format plan.Format
			scheme string
		}{
			{plan.CompressedTensors, "int8-sym-channel"}, {plan.CompressedTensors, "int4-sym-group128"},
			{plan.CompressedTensorsPacked, "int8-sym-channel"}, {plan.Safetensors, "int8-sym-channel"}, {plan.Safetensors, "int4-asym-group128"},
		} {
			q := filepath.Join(t.TempDir(), "q")
			mustRun(t, Options{Input: in, Output: q, ShardSize: 1e6, Plan: plan.Options{Format: c.format, Scheme: scheme(t, c.scheme)}})
			for _, want := range []string{"", "F32"} {
				back := filepath.Join(t.TempDir(), "back")
				rep, err := Dequantize(context.Background(), DequantizeOptions{Input: q, Output: back, DType: want})
				if err != nil {
					t.Fatal(err)
				}
				got := openCk(t, back)
				if len(got.Tensors()) != len(orig.Tensors()) || rep.Tensors != len(orig.Tensors()) {
					t.Errorf("%s %s %s: %d tensors back, %d in", dtype, c.format, c.scheme, len(got.Tensors()), len(orig.Tensors()))
				}
				var size int64
				for _, ti := range got.Tensors() {
					o, ok := orig.Tensor(ti.Name)
					wantDT := dtype
					if want != "" && plan.KeepReason(ti.Name, o.DType, o.Shape) == "" {
						wantDT = want
					}
					if !ok || ti.DType != wantDT || o.DType != dtype {
						t.Errorf("%s %s %s → %q: tensor %s %s back (in the input: %v %s)", dtype, c.format, c.scheme, want, ti.Name, ti.DType, ok, o.DType)
					}
					size += ti.End - ti.Begin
				}
				if rep.BytesOut != size || rep.Dequantized[cmpOr(want, dtype)] != 56 {
					t.Errorf("%s %s → %q: report %+v, %d bytes written", dtype, c.format, want, rep, size)
				}
				if got.Metadata()[plan.MetaFormat] != "" {
					t.Errorf("%s %s: raw metadata kept: %v", dtype, c.format, got.Metadata())
				}
			}
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Dequantize refuses what is not quantized, and dtypes it does not write.
func TestDequantizeRefusals(t *testing.T) {
	in := synthModel(t)
	for _, opt := range []DequantizeOptions{
		{Input: in, Output: filepath.Join(t.TempDir(), "x")},
		{Input: in, Output: filepath.Join(t.TempDir(), "x"), DType: "I8"},
	} {
		if _, err := Dequantize(context.Background(), opt); err == nil || !inputerr.Is(err) {
			t.Errorf("%+v: %v, want an input error", opt, err)
		}
	}
}
