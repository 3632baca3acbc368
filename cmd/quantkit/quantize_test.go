package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/model/synth"
	"github.com/quantkit/quantkit/quant"
)

// synthModel writes the 1M-parameter Llama-like checkpoint once per test.
func synthModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "in")
	if _, err := synth.Write(dir, synth.LlamaLike(1_000_000), synth.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

func openCk(t *testing.T, path string) *checkpoint.Checkpoint {
	t.Helper()
	ck, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func TestQuantizeRoundTrip(t *testing.T) {
	in := synthModel(t)
	src := openCk(t, in)
	const w = "model.layers.0.mlp.down_proj.weight"
	for _, c := range []struct {
		name    string
		args    []string
		tensors []string // beside w: the tensors w becomes
		minSQNR float64  // of every dequantized weight, dB
	}{
		{"int8-channel", []string{"--scheme", "int8"}, []string{w, w + "_scale"}, 28},
		{"int4-group32", []string{"--scheme", "int4", "--granularity", "group:32"}, []string{w + "_packed", w + "_shape", w + "_scale"}, 13},
		{"int8-channel-packed", []string{"--format", "compressed-tensors-packed"}, []string{w + "_packed", w + "_shape", w + "_scale"}, 28},
		{"int8-asym-tensor-raw", []string{"--format", "safetensors", "--asymmetric", "--granularity", "tensor"}, []string{w, w + ".scale", w + ".zero_point"}, 15},
		{"int4-group128-raw", []string{"--format", "safetensors", "--scheme", "int4"}, []string{w, w + ".scale"}, 9},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out, deq, rep := filepath.Join(dir, "q"), filepath.Join(dir, "d"), filepath.Join(dir, "r.json")
			mustRun(t, append([]string{"quantize", in, "-o", out, "--json-out", rep}, c.args...)...)
			q := openCk(t, out)
			for _, name := range c.tensors {
				if _, ok := q.Tensor(name); !ok {
					t.Errorf("no tensor %s in the output", name)
				}
			}
			if _, ok := q.Tensor(w + "_zero_point"); ok {
				t.Errorf("symmetric scheme wrote a zero point")
			}
			if !strings.HasSuffix(c.name, "raw") {
				cfg, ok, err := ctensors.ReadConfig(q.Config())
				if err != nil || !ok || cfg.Ignore[0] != "lm_head" || len(cfg.Ignore) != 1 {
					t.Fatalf("quantization_config: %+v %v %v", cfg, ok, err)
				}
				want := ctensors.IntQuantized
				if strings.Contains(c.name, "packed") || strings.HasPrefix(c.name, "int4") {
					want = ctensors.PackQuantized
				}
				if cfg.Format != want {
					t.Errorf("quantization_config format %s, want %s", cfg.Format, want)
				}
			}
			var r quantize.Report
			b, _ := os.ReadFile(rep)
			if err := json.Unmarshal(b, &r); err != nil || r.Totals.Quantized != 56 || r.Totals.Kept != 19 || r.SQNR == nil {
				t.Fatalf("report: %v %+v", err, r.Totals)
			}
			mustRun(t, "dequantize", out, "-o", deq)
			d := openCk(t, deq)
			if len(d.Tensors()) != len(src.Tensors()) {
				t.Fatalf("%d tensors dequantized, want %d", len(d.Tensors()), len(src.Tensors()))
			}
			if _, ok, _ := ctensors.ReadConfig(d.Config()); ok {
				t.Error("dequantized config.json keeps quantization_config")
			}
			worst := math.Inf(1)
			for i, st := range r.Tensors {
				ti := src.Tensors()[i]
				if st.Name != ti.Name {
					t.Fatalf("report tensor %d is %s, want %s", i, st.Name, ti.Name)
				}
				if st.Action == "keep" {
					a, _ := src.Bytes(ti.Name)
					b, _ := d.Bytes(ti.Name)
					if !bytes.Equal(a, b) {
						t.Errorf("kept %s changed", ti.Name)
					}
					continue
				}
				x, _ := src.Float32(ti.Name)
				y, err := d.Float32(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				s := quant.SQNR(x, y)
				if math.Abs(s-*st.SQNR) > 1e-6 {
					t.Errorf("%s: SQNR %.3f after dequantize, %.3f reported", ti.Name, s, *st.SQNR)
				}
				worst = min(worst, s)
			}
			t.Logf("%s: worst SQNR %.1f dB, mean %.1f dB, %d → %d bytes", c.name, worst, r.SQNR.MeanDB, r.Totals.BytesIn, r.Totals.BytesOut)
			if worst < c.minSQNR {
				t.Errorf("worst SQNR %.1f dB < %.0f", worst, c.minSQNR)
			}
		})
	}
}

func TestQuantizeRefusals(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "q")
	// --dry-run writes nothing, not even the parent.
	text := mustRun(t, "quantize", in, "-o", filepath.Join(dir, "sub", "q"), "--dry-run")
	if !strings.Contains(text, "nothing written") || !strings.Contains(text, "memory:") {
		t.Errorf("dry run output:\n%s", text)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("--dry-run wrote %v", entries)
	}
	// An existing OUT needs --force.
	mustRun(t, "quantize", in, "-o", out)
	if _, err := run(t, "quantize", in, "-o", out); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("existing OUT: %v", err)
	}
	mustRun(t, "quantize", in, "-o", out, "--force", "--scheme", "int4")
	if cfg, _, _ := ctensors.ReadConfig(openCk(t, out).Config()); cfg.Scheme != quant.Int4PerGroup128 {
		t.Errorf("--force did not replace OUT: %+v", cfg)
	}
	// A truncated input is an error naming the file, leaving nothing.
	bad := filepath.Join(dir, "bad")
	os.Mkdir(bad, 0o755)
	data, _ := os.ReadFile(filepath.Join(in, "model.safetensors"))
	os.WriteFile(filepath.Join(bad, "model.safetensors"), data[:len(data)/2], 0o644)
	_, err := run(t, "quantize", bad, "-o", filepath.Join(dir, "q2"))
	if err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("truncated input: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 { // bad and q
		t.Errorf("left behind: %v", entries)
	}
}

func TestQuantizeNaN(t *testing.T) {
	dir := t.TempDir()
	x := make([]float32, 64*64)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	x[100] = float32(math.NaN())
	x[200] = float32(math.Inf(1))
	in := filepath.Join(dir, "in.safetensors")
	b := make([]byte, 4*len(x))
	for i, v := range x {
		putF32(b[4*i:], v)
	}
	if err := safetensors.WriteFile(in, []safetensors.Tensor{{Name: "layer.q_proj.weight", DType: "F32", Shape: []int{64, 64}, Data: b}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "quantize", in, "-o", filepath.Join(dir, "q"))
	if err == nil || !strings.Contains(err.Error(), `"layer.q_proj.weight"`) || !strings.Contains(err.Error(), "--allow-nonfinite") {
		t.Fatalf("NaN weight: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "q")); err == nil {
		t.Error("failed run left OUT")
	}
	text := mustRun(t, "quantize", in, "-o", filepath.Join(dir, "q"), "--allow-nonfinite")
	if !strings.Contains(text, "layer.q_proj.weight: 2 NaN/Inf") {
		t.Errorf("non-finite values not reported:\n%s", text)
	}
}

func putF32(b []byte, v float32) {
	u := math.Float32bits(v)
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
}

func TestQuantizeGGUF(t *testing.T) {
	in := synthModel(t)
	src := openCk(t, in)
	out := filepath.Join(t.TempDir(), "m.gguf")
	mustRun(t, "quantize", in, "-o", out, "--format", "gguf-q8_0")
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if a, _ := f.String("general.architecture"); a != "llama" {
		t.Errorf("general.architecture %q", a)
	}
	if len(f.Tensors()) != len(src.Tensors()) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors()), len(src.Tensors()))
	}
	var quantized int
	for _, ti := range src.Tensors() {
		g, ok := f.Tensor(ti.Name)
		if !ok {
			t.Fatalf("no %s", ti.Name)
		}
		got, _ := f.Bytes(ti.Name)
		if keepReason(ti.Name, ti.DType, ti.Shape) != "" {
			want, _ := src.Bytes(ti.Name)
			if g.Type != gguf.TypeF32 || !bytes.Equal(got, want) {
				t.Errorf("kept %s: %s, changed %v", ti.Name, g.Type, !bytes.Equal(got, want))
			}
			continue
		}
		quantized++
		x, _ := src.Float32(ti.Name)
		want := make([]byte, len(x)/32*34)
		gguf.QuantizeQ8_0(want, x)
		if g.Type != gguf.TypeQ8_0 || !bytes.Equal(got, want) || g.Dims[0] != ti.Shape[1] {
			t.Errorf("%s: %s %v, blocks equal %v", ti.Name, g.Type, g.Dims, bytes.Equal(got, want))
		}
	}
	if quantized != 56 {
		t.Errorf("%d quantized", quantized)
	}
}

func TestQuantizeShardMerge(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	one, parts, merged := filepath.Join(dir, "one"), filepath.Join(dir, "parts"), filepath.Join(dir, "merged")
	args := []string{"--scheme", "int4", "--granularity", "group:32", "--shard-size", "1MB"}
	mustRun(t, append([]string{"quantize", in, "-o", one}, args...)...)
	mustRun(t, append([]string{"quantize", in, "-o", parts, "--shard", "1/2"}, args...)...)
	if _, err := run(t, "merge", parts, "-o", merged); err == nil || !strings.Contains(err.Error(), "part 0 of 2") {
		t.Errorf("merge without part 0: %v", err)
	}
	// A part of another plan is refused.
	other := filepath.Join(dir, "other")
	mustRun(t, "quantize", in, "-o", other, "--shard", "0/2")
	if _, err := run(t, "merge", filepath.Join(parts, "part-1-of-2"), filepath.Join(other, "part-0-of-2"), "-o", merged); err == nil || !strings.Contains(err.Error(), "plan") {
		t.Errorf("merge of two plans: %v", err)
	}
	mustRun(t, append([]string{"quantize", in, "-o", parts, "--shard", "0/2"}, args...)...)
	mustRun(t, "merge", parts, "-o", merged)
	a, b := openCk(t, one), openCk(t, merged)
	if len(a.Files()) < 2 || !slicesEqual(a.Files(), b.Files()) {
		t.Errorf("files %v, merged %v", a.Files(), b.Files())
	}
	at, bt := a.Tensors(), b.Tensors()
	if len(at) != len(bt) {
		t.Fatalf("%d tensors, merged %d", len(at), len(bt))
	}
	for i := range at {
		x, _ := a.Bytes(at[i].Name)
		y, _ := b.Bytes(bt[i].Name)
		if at[i].Name != bt[i].Name || at[i].DType != bt[i].DType || !bytes.Equal(x, y) {
			t.Errorf("tensor %d: %s, merged %s", i, at[i].Name, bt[i].Name)
		}
	}
	if !bytes.Equal(a.Config(), b.Config()) {
		t.Error("config.json differs")
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
