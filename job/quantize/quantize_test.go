package quantize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/plan"
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

func openCk(t *testing.T, path string) *checkpoint.Checkpoint {
	t.Helper()
	ck, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func mustRun(t *testing.T, opt Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatalf("Run(%+v): %v", opt, err)
	}
	return rep
}

func scheme(t *testing.T, name string) quant.Scheme {
	t.Helper()
	s, err := quant.ParseScheme(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Quantize, dequantize: every kept tensor comes back byte for byte, every
// quantized one with the SQNR the report says, above a floor per scheme.
func TestRunRoundTrip(t *testing.T) {
	in := synthModel(t)
	src := openCk(t, in)
	const w = "model.layers.0.mlp.down_proj.weight"
	for _, c := range []struct {
		name    string
		format  plan.Format
		scheme  string
		tensors []string // beside w: the tensors w becomes
		minSQNR float64  // of every dequantized weight, dB
	}{
		{"int8-channel", plan.CompressedTensors, "int8-sym-channel", []string{w, w + "_scale"}, 28},
		{"int4-group32", plan.CompressedTensors, "int4-sym-group32", []string{w + "_packed", w + "_shape", w + "_scale"}, 13},
		{"int8-channel-packed", plan.CompressedTensorsPacked, "int8-sym-channel", []string{w + "_packed", w + "_shape", w + "_scale"}, 28},
		{"int8-asym-tensor-raw", plan.Safetensors, "int8-asym-tensor", []string{w, w + ".scale", w + ".zero_point"}, 15},
		{"int4-group128-raw", plan.Safetensors, "int4-sym-group128", []string{w, w + ".scale"}, 9},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out, deq := filepath.Join(dir, "q"), filepath.Join(dir, "d")
			r := mustRun(t, Options{Input: in, Output: out, Plan: plan.Options{Format: c.format, Scheme: scheme(t, c.scheme)}})
			if r.Device != "cpu" || r.Totals.Quantized != 56 || r.Totals.Kept != 19 || r.SQNR == nil || r.DryRun || r.Workers != cpu.Threads() {
				t.Fatalf("report: device %q, workers %d, totals %+v", r.Device, r.Workers, r.Totals)
			}
			q := openCk(t, out)
			for _, name := range c.tensors {
				if _, ok := q.Tensor(name); !ok {
					t.Errorf("no tensor %s in the output", name)
				}
			}
			if _, ok := q.Tensor(w + "_zero_point"); ok {
				t.Errorf("symmetric scheme wrote a zero point")
			}
			if c.format != plan.Safetensors {
				cfg, ok, err := ctensors.ReadConfig(q.Config())
				if err != nil || !ok || cfg.Ignore[0] != "lm_head" || len(cfg.Ignore) != 1 {
					t.Fatalf("quantization_config: %+v %v %v", cfg, ok, err)
				}
				want := ctensors.IntQuantized
				if c.format == plan.CompressedTensorsPacked || strings.HasPrefix(c.name, "int4") {
					want = ctensors.PackQuantized
				}
				if cfg.Format != want {
					t.Errorf("quantization_config format %s, want %s", cfg.Format, want)
				}
			}
			d, err := Dequantize(context.Background(), DequantizeOptions{Input: out, Output: deq})
			if err != nil {
				t.Fatal(err)
			}
			if d.Tensors != len(src.Tensors()) || d.Copied != 19 || d.Dequantized["F32"] != 56 || d.Device != "cpu" {
				t.Fatalf("dequantize report %+v", d)
			}
			back := openCk(t, deq)
			if len(back.Tensors()) != len(src.Tensors()) {
				t.Fatalf("%d tensors dequantized, want %d", len(back.Tensors()), len(src.Tensors()))
			}
			if _, ok, _ := ctensors.ReadConfig(back.Config()); ok {
				t.Error("dequantized config.json keeps quantization_config")
			}
			worst := math.Inf(1)
			for i, st := range r.Tensors {
				ti := src.Tensors()[i]
				if st.Name != ti.Name {
					t.Fatalf("report tensor %d is %s, want %s", i, st.Name, ti.Name)
				}
				if st.Action == plan.Keep {
					a, _ := src.Bytes(ti.Name)
					b, _ := back.Bytes(ti.Name)
					if !bytes.Equal(a, b) || st.SQNR != nil {
						t.Errorf("kept %s changed, or has an SQNR", ti.Name)
					}
					continue
				}
				x, _ := src.Float32(ti.Name)
				y, err := back.Float32(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				s := quant.SQNR(x, y)
				if math.Abs(s-*st.SQNR) > 1e-6 {
					t.Errorf("%s: SQNR %.3f after dequantize, %.3f reported", ti.Name, s, *st.SQNR)
				}
				worst = min(worst, s)
			}
			if worst < c.minSQNR || math.Abs(worst-r.SQNR.MinDB) > 1e-6 {
				t.Errorf("worst SQNR %.1f dB (reported %.1f), want at least %.0f", worst, r.SQNR.MinDB, c.minSQNR)
			}
		})
	}
}

// memSink keeps what plan.Run writes.
type memSink struct {
	names []string
	data  [][]byte
}

func (m *memSink) WriteTensor(name string, b []byte) error {
	m.names = append(m.names, name)
	m.data = append(m.data, bytes.Clone(b))
	return nil
}

var _ plan.Kernels = cpu.QuantKernels{}

// The cpu package's kernels, which Run uses, write exactly what the
// reference loops of package quant write, for every format and scheme;
// the SQNR agrees to rounding (cpu.SQNRSums adds in another order, and
// cpu.FitQuantizeGroups, for symmetric per-group schemes, adds each
// group's squares in float32: within 1e-5 dB).
func TestCPUKernelsMatchReference(t *testing.T) {
	ck := openCk(t, synthModel(t))
	for _, c := range []struct {
		format plan.Format
		scheme string
	}{
		{plan.CompressedTensors, "int8-sym-channel"}, {plan.CompressedTensors, "int4-sym-group128"},
		{plan.CompressedTensors, "int4-asym-group32"}, {plan.CompressedTensorsPacked, "int8-sym-channel"},
		{plan.Safetensors, "int8-asym-tensor"}, {plan.Safetensors, "int4-sym-group64"}, {plan.Safetensors, "int8-sym-group32"},
	} {
		p, err := plan.Build(ck.Tensors(), plan.Options{Format: c.format, Scheme: scheme(t, c.scheme)})
		if err != nil {
			t.Fatal(err)
		}
		var ref memSink
		refStats, err := plan.Run(context.Background(), p, p.All(), ck, &ref, plan.RunOptions{Kernels: plan.ReferenceKernels{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []cpu.QuantKernels{{}, {Serial: true}} {
			checkKernels(t, fmt.Sprintf("%s %s serial=%v", c.format, c.scheme, k.Serial), k, p, ck, &ref, refStats)
		}
	}
}

// checkKernels runs plan p on ck with kernels k, on two workers, and
// compares the tensors and stats with those of the reference kernels.
func checkKernels(t *testing.T, name string, k cpu.QuantKernels, p *plan.Plan, ck *checkpoint.Checkpoint, ref *memSink, refStats []plan.Stats) {
	t.Helper()
	var fast memSink
	fastStats, err := plan.Run(context.Background(), p, p.All(), ck, &fast, plan.RunOptions{Kernels: k, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ref.names, fast.names) || len(ref.data) != len(fast.data) {
		t.Fatalf("%s: tensors %v, want %v", name, fast.names, ref.names)
	}
	for i := range ref.data {
		if !bytes.Equal(ref.data[i], fast.data[i]) {
			t.Errorf("%s: %s differs from the reference kernels'", name, ref.names[i])
		}
	}
	for i := range refStats {
		want, got := refStats[i].SQNR, fastStats[i].SQNR
		if math.Abs(got-want) > 1e-5 && !(math.IsInf(want, 1) && math.IsInf(got, 1)) {
			t.Errorf("%s: item %d SQNR %v, reference %v", name, i, got, want)
		}
	}
}

// DryRun writes nothing and gives the report a run gives, less the
// measurements; Progress counts every tensor, up to the totals.
func TestDryRunAndProgress(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	opt := Options{Input: in, Output: filepath.Join(dir, "sub", "q"), Plan: plan.Options{Format: plan.CompressedTensors, Scheme: quant.Int4PerGroup128}, Workers: 3}
	dry, err := DryRun(opt)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("DryRun wrote %v", ents)
	}
	var calls []Progress
	opt.Progress = func(p Progress) { calls = append(calls, p) }
	rep := mustRun(t, opt)
	if !dry.DryRun || rep.DryRun || dry.Totals != rep.Totals || dry.PlanHash != rep.PlanHash || dry.MemoryEstimate != rep.MemoryEstimate ||
		dry.Device != "" || dry.SQNR != nil || rep.Workers != 3 || len(dry.Tensors) != len(rep.Tensors) {
		t.Errorf("dry run %+v\nrun %+v", dry.Totals, rep.Totals)
	}
	if len(calls) != rep.Totals.Tensors {
		t.Fatalf("%d progress calls for %d tensors", len(calls), rep.Totals.Tensors)
	}
	for i, p := range calls {
		if p.TensorsDone != i+1 || p.TensorsTotal != rep.Totals.Tensors || p.BytesTotal != rep.Totals.BytesIn || p.Output != opt.Output ||
			p.Tensor != rep.Tensors[i].Name || (i > 0 && p.BytesDone <= calls[i-1].BytesDone) {
			t.Errorf("progress %d: %+v", i, p)
		}
	}
	if last := calls[len(calls)-1]; last.BytesDone != rep.Totals.BytesIn {
		t.Errorf("progress ends at %d bytes of %d", last.BytesDone, rep.Totals.BytesIn)
	}
}

// An existing output needs Force; Force replaces it; input errors are
// marked; a truncated input names its file and leaves nothing.
func TestRunRefusals(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "q")
	int8 := plan.Options{Format: plan.CompressedTensors, Scheme: quant.Int8PerChannel}
	mustRun(t, Options{Input: in, Output: out, Plan: int8})
	if _, err := Run(context.Background(), Options{Input: in, Output: out, Plan: int8}); err == nil || !strings.Contains(err.Error(), "--force") || !inputerr.Is(err) {
		t.Errorf("existing output: %v", err)
	}
	mustRun(t, Options{Input: in, Output: out, Force: true, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: quant.Int4PerGroup128}})
	if cfg, _, _ := ctensors.ReadConfig(openCk(t, out).Config()); cfg.Scheme != quant.Int4PerGroup128 {
		t.Errorf("Force did not replace the output: %+v", cfg)
	}
	bad := filepath.Join(dir, "bad")
	os.Mkdir(bad, 0o755)
	data, _ := os.ReadFile(filepath.Join(in, "model.safetensors"))
	os.WriteFile(filepath.Join(bad, "model.safetensors"), data[:len(data)/2], 0o644)
	_, err := Run(context.Background(), Options{Input: bad, Output: filepath.Join(dir, "q2"), Plan: int8})
	if err == nil || !strings.Contains(err.Error(), "model.safetensors") || !inputerr.Is(err) {
		t.Errorf("truncated input: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 { // bad and q
		t.Errorf("left behind: %v", ents)
	}
	for _, opt := range []Options{
		{Input: in, Output: filepath.Join(dir, "x.gguf"), Plan: plan.Options{Format: plan.GGUFQ8_0}, Shard: &ShardSpec{0, 2}},
		{Input: in, Output: filepath.Join(dir, "x"), Plan: int8, Shard: &ShardSpec{2, 2}},
		{Input: in, Output: filepath.Join(dir, "x"), Plan: int8, Workers: -1},
		{Input: in, Output: filepath.Join(dir, "x"), Plan: plan.Options{Format: "onnx", Scheme: quant.Int8PerChannel}},
		{Input: in, Output: filepath.Join(dir, "x"), Plan: plan.Options{Format: plan.CompressedTensors, Scheme: quant.Scheme{Bits: 3, Signed: true}}},
	} {
		if _, err := Run(context.Background(), opt); err == nil || !inputerr.Is(err) {
			t.Errorf("%+v: %v, want an input error", opt, err)
		}
	}
	// A quantized checkpoint is refused, whatever the output format.
	for _, f := range []plan.Format{plan.CompressedTensors, plan.GGUFQ8_0} {
		_, err := Run(context.Background(), Options{Input: out, Output: filepath.Join(t.TempDir(), "again"), Plan: plan.Options{Format: f, Scheme: quant.Int8PerChannel}})
		if err == nil || !inputerr.Is(err) || !strings.Contains(err.Error(), out+" is quantized already") {
			t.Errorf("requantize to %s: %v", f, err)
		}
	}
}

func TestRunNonFinite(t *testing.T) {
	dir := t.TempDir()
	x := make([]float32, 64*64)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	x[100] = float32(math.NaN())
	x[200] = float32(math.Inf(1))
	in := filepath.Join(dir, "in.safetensors")
	if err := safetensors.WriteFile(in, []safetensors.Tensor{{Name: "layer.q_proj.weight", DType: "F32", Shape: []int{64, 64}, Data: encodeFloats(x, "F32")}}, nil); err != nil {
		t.Fatal(err)
	}
	opt := Options{Input: in, Output: filepath.Join(dir, "q"), Plan: plan.Options{Format: plan.CompressedTensors, Scheme: quant.Int8PerChannel}}
	_, err := Run(context.Background(), opt)
	if err == nil || !errors.Is(err, plan.ErrNonFinite) || !inputerr.Is(err) || !strings.Contains(err.Error(), `"layer.q_proj.weight"`) {
		t.Fatalf("NaN weight: %v", err)
	}
	if _, err := os.Stat(opt.Output); err == nil {
		t.Error("failed run left its output")
	}
	opt.AllowNonFinite = true
	if rep := mustRun(t, opt); rep.Tensors[0].NonFinite != 2 {
		t.Errorf("%d non-finite values reported, want 2", rep.Tensors[0].NonFinite)
	}
}

func TestRunGGUF(t *testing.T) {
	in := synthModel(t)
	src := openCk(t, in)
	out := filepath.Join(t.TempDir(), "m.gguf")
	rep := mustRun(t, Options{Input: in, Output: out, Plan: plan.Options{Format: plan.GGUFQ8_0}})
	if rep.Scheme != "" || rep.Device != "cpu" {
		t.Errorf("report scheme %q, device %q", rep.Scheme, rep.Device)
	}
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
		if plan.KeepReason(ti.Name, ti.DType, ti.Shape) != "" {
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

// Two parts merged equal one unsharded run, file for file and tensor for
// tensor.
func TestShardMerge(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	one, parts, merged := filepath.Join(dir, "one"), filepath.Join(dir, "parts"), filepath.Join(dir, "merged")
	opt := Options{Input: in, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: scheme(t, "int4-sym-group32")}, ShardSize: 1e6}
	mustRun(t, withOutput(opt, one, nil))
	r1 := mustRun(t, withOutput(opt, parts, &ShardSpec{1, 2}))
	if r1.Output != filepath.Join(parts, "part-1-of-2") || r1.Shard.Index != 1 || r1.Totals.Tensors != 37 {
		t.Errorf("part 1: output %s, shard %+v, %d tensors", r1.Output, r1.Shard, r1.Totals.Tensors)
	}
	ctx := context.Background()
	if _, err := Merge(ctx, MergeOptions{Parts: []string{parts}, Output: merged}); err == nil || !strings.Contains(err.Error(), "part 0 of 2") || !inputerr.Is(err) {
		t.Errorf("merge without part 0: %v", err)
	}
	other := filepath.Join(dir, "other")
	mustRun(t, Options{Input: in, Output: other, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: quant.Int8PerChannel}, Shard: &ShardSpec{0, 2}})
	if _, err := Merge(ctx, MergeOptions{Parts: []string{filepath.Join(parts, "part-1-of-2"), filepath.Join(other, "part-0-of-2")}, Output: merged}); err == nil || !strings.Contains(err.Error(), "plan") {
		t.Errorf("merge of two plans: %v", err)
	}
	mustRun(t, withOutput(opt, parts, &ShardSpec{0, 2}))
	rep, err := Merge(ctx, MergeOptions{Parts: []string{parts}, Output: merged})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ShardSize != 1e6 || len(rep.Parts) != 2 || rep.Parts[0] != filepath.Join(parts, "part-0-of-2") || rep.PlanHash != r1.PlanHash {
		t.Errorf("merge report %+v", rep)
	}
	a, b := openCk(t, one), openCk(t, merged)
	if len(a.Files()) < 2 || !slices.Equal(a.Files(), b.Files()) {
		t.Errorf("files %v, merged %v", a.Files(), b.Files())
	}
	at, bt := a.Tensors(), b.Tensors()
	if len(at) != len(bt) || len(at) != rep.Tensors {
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
	// A shard size given to Merge is used.
	small := filepath.Join(dir, "small")
	if rep, err := Merge(ctx, MergeOptions{Parts: []string{parts}, Output: small, ShardSize: 1e5}); err != nil || rep.ShardSize != 1e5 {
		t.Errorf("merge with a smaller shard size: %v, %+v", err, rep)
	}
	if got, want := len(openCk(t, small).Files()), len(a.Files()); got <= want {
		t.Errorf("merge with a tenth of the shard size wrote %d files, one run %d", got, want)
	}
}

func withOutput(opt Options, out string, s *ShardSpec) Options {
	opt.Output, opt.Shard = out, s
	return opt
}

// entries lists dir's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestParseShard(t *testing.T) {
	for text, want := range map[string]ShardSpec{"0/1": {0, 1}, "2/3": {2, 3}, "0/16": {0, 16}} {
		if s, err := ParseShard(text); err != nil || *s != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", text, s, err, want)
		}
	}
	for _, text := range []string{"", "1", "2/2", "3/2", "-1/2", "0/0", "a/2", "1/b", "1/2/3", " 1/2"} {
		if s, err := ParseShard(text); err == nil || !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), "I/N") {
			t.Errorf("ParseShard(%q) = %v, %v; want an input error", text, s, err)
		}
	}
}
