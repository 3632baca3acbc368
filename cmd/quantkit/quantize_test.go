package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/model/synth"
)

// The pipelines' own tests are job/quantize's; these check the command
// lines: flags into options, refusals, rendering, exit codes.

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

// The flags reach the job: --json prints the report alone, --json-out
// writes the same beside the table, --dry-run prints the plan.
func TestQuantizeFlagsAndReports(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	out, side := filepath.Join(dir, "q"), filepath.Join(dir, "r.json")
	text := mustRun(t, "quantize", in, "-o", out, "--scheme", "int4", "--granularity", "group:32", "--asymmetric", "--format", "safetensors",
		"--workers", "3", "--exclude", "down_proj", "--shard-size", "1MB", "--json")
	var r quantize.Report
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatalf("--json printed more than the report: %v\n%s", err, text)
	}
	if r.Scheme != "int4-asym-group32" || r.Format != "safetensors" || r.Workers != 3 || r.Device != "cpu" || r.Totals.Quantized != 48 || r.Output != out {
		t.Errorf("report %+v, totals %+v", r, r.Totals)
	}
	if len(openCk(t, out).Files()) < 2 {
		t.Error("--shard-size 1MB did not split the output")
	}
	table := mustRun(t, "quantize", in, "-o", out, "--force", "--json-out", side)
	var r2 quantize.Report
	if b, err := os.ReadFile(side); err != nil || json.Unmarshal(b, &r2) != nil || r2.Scheme != "int8-sym-channel" || r2.Workers < 1 {
		t.Errorf("--json-out: %v %+v", err, r2)
	}
	for _, want := range []string{") on cpu, ", "SQNR: min", "kept unquantized (19)"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	plan := mustRun(t, "quantize", in, "-o", filepath.Join(dir, "dry"), "--dry-run")
	if !strings.Contains(plan, "nothing written") || !strings.Contains(plan, "memory:") || !regexp.MustCompile(`lm_head.weight +keep +lm_head`).MatchString(plan) {
		t.Errorf("dry run output:\n%s", plan)
	}
	if _, err := os.Stat(filepath.Join(dir, "dry")); err == nil {
		t.Error("--dry-run wrote its output")
	}
}

// Flags the job would ignore, or cannot honour, are refused before any
// work, naming them.
func TestCheckpointFlagRefusals(t *testing.T) {
	in := synthModel(t)
	q := filepath.Join(t.TempDir(), "q")
	mustRun(t, "quantize", in, "-o", q)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"quantize", in, "-o", out, "--format", "gguf-q8_0", "--scheme", "int4"}, []string{"--scheme", "--format gguf-q8_0"}},
		{[]string{"quantize", in, "-o", out, "--format", "gguf-q4_0", "--granularity", "tensor"}, []string{"--granularity", "--format gguf-q4_0"}},
		{[]string{"quantize", in, "-o", out, "--format", "gguf-q8_0", "--asymmetric"}, []string{"--asymmetric", "gguf-q8_0"}},
		{[]string{"quantize", in, "-o", out, "--format", "gguf-q8_0", "--symmetric"}, []string{"--symmetric", "gguf-q8_0"}},
		{[]string{"quantize", in, "-o", out, "--format", "gguf-q8_0", "--shard-size", "1GB"}, []string{"--shard-size", "gguf-q8_0"}},
		{[]string{"quantize", in, "-o", out, "--symmetric", "--asymmetric"}, []string{"exclude each other"}},
		{[]string{"quantize", in, "-o", out, "--format", "onnx"}, []string{"--format onnx"}},
		{[]string{"quantize", in, "-o", out, "--shard", "2/2"}, []string{"--shard", `"2/2"`}},
		{[]string{"quantize", in, "-o", out, "--workers", "-1"}, []string{"--workers"}},
		{[]string{"quantize", in, "-o", out, "--device", "gpu"}, []string{"--device gpu", "runs on the CPU because it is memory-bound"}},
		{[]string{"quantize", in, "-o", out, "--device", "gpu:1"}, []string{"--device gpu:1", "memory-bound"}},
		{[]string{"quantize", in, "-o", out, "--device", "tpu"}, []string{"--device tpu: not cpu or auto"}},
		{[]string{"dequantize", q, "-o", out, "--device", "gpu"}, []string{"memory-bound"}},
		{[]string{"dequantize", q, "-o", out, "--dtype", "i8"}, []string{"--dtype i8"}},
		{[]string{"merge", q, "-o", out, "--device", "gpu"}, []string{"memory-bound"}},
		{[]string{"merge", q, "-o", out, "--shard-size", "0"}, []string{"--shard-size"}},
		{[]string{"bench", "checkpoint", "--input", in, "--device", "gpu:0"}, []string{"memory-bound"}},
		{[]string{"bench", "checkpoint", "--input", in, "--format", "gguf-q8_0", "--schemes", "int4"}, []string{"--schemes", "gguf-q8_0"}},
		{[]string{"bench", "checkpoint", "--input", in, "--rounds", "0"}, []string{"--rounds"}},
		{[]string{"quantize", in, "-o", out, "--max-memory", "0"}, []string{"--max-memory"}},
		{[]string{"quantize", in, "-o", out, "--max-memory", "20MiB"}, []string{"--max-memory", "too small", "give at least"}},
		{[]string{"bench", "checkpoint", "--input", in, "--max-memory", "lots"}, []string{"--max-memory"}},
	} {
		msg, err := run(t, tc.args...)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, inputerr.ErrInput) {
				t.Errorf("%v: error %v, want a bad-input error saying %q\n%s", tc.args[3:], err, want, msg)
			}
		}
		emptyDir(t, dir)
	}
	// cpu and auto are the same.
	mustRun(t, "quantize", in, "-o", out, "--device", "auto", "--format", "gguf-q8_0")
	mustRun(t, "dequantize", q, "-o", filepath.Join(dir, "d"), "--device", "cpu")
}

// The checkpoint commands run on the CPU binary: they do not carry the
// --device of the commands that hand over to quantkit-cuda.
func TestCheckpointCommandsStayOnCPU(t *testing.T) {
	app := newApp()
	for _, args := range []string{"quantize in -o out", "dequantize q -o out", "merge parts -o out", "bench checkpoint", "gen -o g"} {
		if resolve(app, append([]string{"quantkit"}, strings.Fields(args)...), io.Discard).usesDevice() {
			t.Errorf("usesDevice(%q) is true: it would hand over to the CUDA build", args)
		}
	}
}

// Help says what is true: no default for a flag that has none to show.
func TestCheckpointHelp(t *testing.T) {
	for _, tc := range []struct {
		cmd        []string
		want, lack []string
	}{
		{[]string{"quantize"}, []string{"(default: one per core)", "zero point 0 (the default)\n", "(default: channel for int8, group:128 for int4)", "--json-out FILE"},
			[]string{"(default: 0)", "(the default) (default: false)"}},
		{[]string{"merge"}, []string{"(default: the parts' --shard-size)"}, []string{`(default: "5GB")`}},
		{[]string{"dequantize"}, []string{"(default: one per core)", "--json-out FILE"}, []string{"(default: 0)"}},
		{[]string{"bench", "checkpoint"}, []string{"(default: one per core)", "--json-out FILE"}, []string{"(default: 0)"}},
		{[]string{"gen"}, []string{"--json-out FILE"}, nil},
	} {
		out := mustRun(t, append(tc.cmd, "--help")...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v --help lacks %q:\n%s", tc.cmd, w, out)
			}
		}
		for _, l := range tc.lack {
			if strings.Contains(out, l) {
				t.Errorf("%v --help says %q:\n%s", tc.cmd, l, out)
			}
		}
	}
}

func TestQuantizeNaNReported(t *testing.T) {
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
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	if err := safetensors.WriteFile(in, []safetensors.Tensor{{Name: "layer.q_proj.weight", DType: "F32", Shape: []int{64, 64}, Data: b}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "quantize", in, "-o", filepath.Join(dir, "q"))
	if err == nil || !strings.Contains(err.Error(), `"layer.q_proj.weight"`) || !strings.Contains(err.Error(), "--allow-nonfinite") || !errors.Is(err, inputerr.ErrInput) {
		t.Fatalf("NaN weight: %v", err)
	}
	text := mustRun(t, "quantize", in, "-o", filepath.Join(dir, "q"), "--allow-nonfinite")
	if !strings.Contains(text, "layer.q_proj.weight: 2 NaN/Inf") {
		t.Errorf("non-finite values not reported:\n%s", text)
	}
}

// dequantize and merge print their line, or their JSON.
func TestDequantizeMergeReports(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	q, parts := filepath.Join(dir, "q"), filepath.Join(dir, "parts")
	mustRun(t, "quantize", in, "-o", q, "--scheme", "int4")
	out := mustRun(t, "dequantize", q, "-o", filepath.Join(dir, "d"), "--dtype", "bf16")
	if !strings.Contains(out, q+" → "+filepath.Join(dir, "d")+": 75 tensors, dequantized 56 BF16") {
		t.Errorf("dequantize printed %q", out)
	}
	var d quantize.DequantizeReport
	if err := json.Unmarshal([]byte(mustRun(t, "dequantize", q, "-o", filepath.Join(dir, "d2"), "--json")), &d); err != nil || d.Dequantized["F32"] != 56 {
		t.Errorf("dequantize --json: %v %+v", err, d)
	}
	mustRun(t, "quantize", in, "-o", parts, "--shard", "0/2")
	mustRun(t, "quantize", in, "-o", parts, "--shard", "1/2", "--workers", "1")
	out = mustRun(t, "merge", parts, "-o", filepath.Join(dir, "m"))
	if !strings.Contains(out, "merged 2 parts of plan ") || !strings.Contains(out, "from "+filepath.Join(parts, "part-0-of-2")) {
		t.Errorf("merge printed %q", out)
	}
	var m quantize.MergeReport
	if err := json.Unmarshal([]byte(mustRun(t, "merge", parts, "-o", filepath.Join(dir, "m2"), "--json", "--shard-size", "1MB")), &m); err != nil || m.ShardSize != 1e6 || m.Tensors != 131 {
		t.Errorf("merge --json: %v %+v", err, m)
	}
	if _, err := run(t, "merge", in, "-o", filepath.Join(dir, "m3")); err == nil || !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), "not a part") {
		t.Errorf("merge of a non-part: %v", err)
	}
}

// --format gguf: a GGUF file to llama-quantize's types; --dry-run prints
// each tensor's type and why, --json the report; refusals name the flag.
func TestQuantizeGGUF(t *testing.T) {
	in := "../../testdata/llm/stories260K/stories260K.gguf"
	dir := t.TempDir()
	out := filepath.Join(dir, "q.gguf")
	plan := mustRun(t, "quantize", in, "-o", out, "--format", "gguf", "--type", "q4_k_m", "--dry-run")
	for _, want := range []string{"blk.2.attn_v.weight", "use_more_bits", "172 columns", "general.file_type 15", "dry run: nothing written"} {
		if !strings.Contains(plan, want) {
			t.Errorf("dry run lacks %q:\n%s", want, plan)
		}
	}
	text := mustRun(t, "quantize", in, "-o", out, "--format", "gguf", "--type", "Q8_0", "--workers", "2", "--json")
	var r quantize.GGUFReport
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, text)
	}
	if r.Mix != "Q8_0" || r.FileType != 7 || r.Workers != 2 || r.Totals.Tensors != 48 || r.Device != "cpu" {
		t.Errorf("report %+v", r)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != 379168 {
		t.Errorf("output: %v", err)
	}
	mustRun(t, "quantize", in, "-o", out, "--format", "gguf", "--type", "Q4_0", "--pure", "--force")
	hf := "../../testdata/llm/stories260K/hf"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"quantize", in, "-o", out, "--format", "gguf"}, "--format gguf needs --type"},
		{[]string{"quantize", in, "-o", out, "--format", "gguf", "--type", "Q2_K_S"}, `--type: unknown type "Q2_K_S"`},
		{[]string{"quantize", in, "-o", out, "--format", "gguf", "--type", "Q8_0", "--scheme", "int4"}, "--scheme does not apply to --format gguf"},
		{[]string{"quantize", in, "-o", out, "--format", "gguf", "--type", "Q8_0", "--allow-nonfinite"}, "--allow-nonfinite does not apply"},
		{[]string{"quantize", in, "-o", out, "--type", "Q8_0"}, "--type applies to --format gguf only"},
		{[]string{"quantize", in, "-o", out, "--format", "gguf-q8_0"}, "is a GGUF file: quantize it with --format gguf --type"},
		{[]string{"quantize", filepath.Join(hf, "tokenizer.json"), "-o", out, "--format", "gguf", "--type", "Q8_0"}, "exists; --force replaces it"},
		{[]string{"quantize", in, "-o", out, "--format", "gguf", "--type", "Q8_0"}, "exists; --force replaces it"},
	} {
		msg, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%v: error %v, want a bad-input error saying %q\n%s", tc.args[3:], err, tc.want, msg)
		}
	}
	// A Hugging Face checkpoint converts and quantizes in one run: llama.cpp's
	// names, the mix's file type; one missing its tokenizer is refused.
	conv := filepath.Join(t.TempDir(), "stories-q8.gguf")
	mustRun(t, "quantize", hf, "-o", conv, "--format", "gguf", "--type", "Q8_0")
	f, err := gguf.Open(conv)
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := gguf.Get[string](f.Metadata(), "general.architecture")
	ft, _ := gguf.Get[uint32](f.Metadata(), "general.file_type")
	q, okq := f.Tensor("blk.0.attn_q.weight")
	_, okEmb := f.Tensor("token_embd.weight")
	f.Close()
	if arch != "llama" || ft != 7 || !okq || !okEmb || q.Type != gguf.TypeQ8_0 {
		t.Errorf("converted file: architecture %q, file type %d, attn_q %v %v, token_embd %v", arch, ft, okq, q.Type, okEmb)
	}
	bare := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(hf, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bare, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noTok := filepath.Join(t.TempDir(), "x.gguf")
	if _, err := run(t, "quantize", bare, "-o", noTok, "--format", "gguf", "--type", "Q8_0"); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("no tokenizer: %v", err)
	}
	if _, err := os.Stat(noTok); err == nil {
		t.Error("a refused conversion wrote its output")
	}

	help := mustRun(t, "quantize", "--help")
	for _, want := range []string{"--format gguf --type TYPE", "use_more_bits", "Q4_K_M", "--pure"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// quantize --format gguf --shard I/N writes parts that merge joins into
// the file one run writes, byte for byte; --json carries the shard and
// the plan hash; the gguf-q8_0 format is refused --shard.
func TestQuantizeGGUFShardMerge(t *testing.T) {
	in := "../../testdata/llm/stories260K/stories260K.gguf"
	dir := t.TempDir()
	one, parts, merged := filepath.Join(dir, "one.gguf"), filepath.Join(dir, "parts"), filepath.Join(dir, "merged.gguf")
	mustRun(t, "quantize", in, "-o", one, "--format", "gguf", "--type", "Q8_0")
	text := mustRun(t, "quantize", in, "-o", parts, "--format", "gguf", "--type", "Q8_0", "--shard", "1/2", "--json")
	var r quantize.GGUFReport
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, text)
	}
	if r.Shard == nil || r.Shard.Index != 1 || r.Shard.Count != 2 || r.PlanHash == "" || r.Output != filepath.Join(parts, "part-1-of-2") || r.Totals.Tensors >= 48 {
		t.Errorf("part report %+v", r)
	}
	table := mustRun(t, "quantize", in, "-o", parts, "--format", "gguf", "--type", "Q8_0", "--shard", "0/2")
	if want := "part 0 of 2 of plan " + r.PlanHash + "; when all are written: quantkit merge " + filepath.Join(parts, "part-*"); !strings.Contains(table, want) {
		t.Errorf("part table lacks %q:\n%s", want, table)
	}
	out := mustRun(t, "merge", filepath.Join(parts, "part-1-of-2"), filepath.Join(parts, "part-0-of-2"), "-o", merged)
	if !strings.Contains(out, "merged 2 parts of plan "+r.PlanHash+" (gguf from "+filepath.Join(parts, "part-0-of-2")) {
		t.Errorf("merge printed %q", out)
	}
	a, err1 := os.ReadFile(one)
	b, err2 := os.ReadFile(merged)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Errorf("merged file differs from one run's (%d and %d bytes): %v %v", len(b), len(a), err1, err2)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"merge", parts, "-o", filepath.Join(dir, "m2.gguf"), "--shard-size", "1MB"}, "--shard-size does not apply to GGUF parts"},
		{[]string{"merge", filepath.Join(parts, "part-0-of-2"), "-o", filepath.Join(dir, "m3.gguf")}, "part 1 of 2 (of plan " + r.PlanHash + ") is missing"},
		{[]string{"quantize", in, "-o", parts, "--format", "gguf", "--type", "Q8_0", "--shard", "2/2"}, "--shard"},
		{[]string{"quantize", "../../testdata/llm/stories260K/hf", "-o", parts, "--format", "gguf-q8_0", "--shard", "0/2"}, "--shard does not apply to --format gguf-q8_0"},
	} {
		msg, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%v: error %v, want a bad-input error saying %q\n%s", tc.args, err, tc.want, msg)
		}
	}
}

// --format gguf-q8_0 of a checkpoint --format gguf converts says once
// that llama.cpp cannot run what it writes and what would; of one it
// cannot convert (no tokenizer), it says nothing.
func TestQuantizeGGUFQ8NotesLlama(t *testing.T) {
	hf := "../../testdata/llm/stories260K/hf"
	dir := t.TempDir()
	out := mustRun(t, "quantize", hf, "-o", filepath.Join(dir, "a.gguf"), "--format", "gguf-q8_0")
	if n := strings.Count(out, "note:"); n != 1 || !strings.Contains(out, "llama.cpp cannot run") || !strings.Contains(out, "--format gguf --type Q8_0") {
		t.Errorf("%d notes:\n%s", n, out)
	}
	out = mustRun(t, "quantize", filepath.Join(hf, "model.safetensors"), "-o", filepath.Join(dir, "b.gguf"), "--format", "gguf-q4_0", "--dry-run")
	if !strings.Contains(out, "--format gguf --type Q4_0") {
		t.Errorf("gguf-q4_0 of model.safetensors, dry run:\n%s", out)
	}
	bare := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(hf, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bare, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out := mustRun(t, "quantize", bare, "-o", filepath.Join(dir, "c.gguf"), "--format", "gguf-q8_0"); strings.Contains(out, "note:") {
		t.Errorf("a note for a checkpoint --format gguf refuses:\n%s", out)
	}
	help := mustRun(t, "quantize", "--help")
	for _, want := range []string{"a tensor container for other tools, not a model llama.cpp runs", "balanced by bytes"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// --shard auto takes the part from a Kubernetes Indexed Job's or a Slurm
// array task's environment, says which on stderr, and names what is
// missing; the parts merge. GGUF parts take it too.
func TestQuantizeShardAuto(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	parts := filepath.Join(dir, "parts")
	for _, v := range []string{"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "QUANTKIT_SHARD_COUNT"} {
		t.Setenv(v, "")
	}
	if _, _, err := runSplit(t, "quantize", in, "-o", parts, "--shard", "auto"); err == nil || !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), "--shard: auto: neither SLURM_ARRAY_TASK_ID") {
		t.Errorf("--shard auto outside a job: %v", err)
	}
	t.Setenv("JOB_COMPLETION_INDEX", "1")
	if _, _, err := runSplit(t, "quantize", in, "-o", parts, "--shard", "auto"); err == nil || !strings.Contains(err.Error(), "QUANTKIT_SHARD_COUNT") {
		t.Errorf("--shard auto without the count: %v", err)
	}
	_, stderr, err := runSplit(t, "quantize", in, "-o", parts, "--shard", "auto/2")
	if err != nil || !strings.Contains(stderr, "--shard auto/2 is part 1/2 (JOB_COMPLETION_INDEX=1, 2 parts from --shard auto/2)") {
		t.Fatalf("--shard auto/2 in pod 1: %v\n%s", err, stderr)
	}
	t.Setenv("JOB_COMPLETION_INDEX", "")
	for k, v := range map[string]string{"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "1"} {
		t.Setenv(k, v)
	}
	if _, stderr, err := runSplit(t, "quantize", in, "-o", parts, "--shard", "auto"); err != nil || !strings.Contains(stderr, "is part 0/2 (SLURM_ARRAY_TASK_ID=0") {
		t.Fatalf("--shard auto in task 0: %v\n%s", err, stderr)
	}
	mustRun(t, "quantize", in, "-o", filepath.Join(dir, "one"))
	mustRun(t, "merge", parts, "-o", filepath.Join(dir, "merged"))
	for _, name := range entries(t, filepath.Join(dir, "one")) {
		a, _ := os.ReadFile(filepath.Join(dir, "one", name))
		b, err := os.ReadFile(filepath.Join(dir, "merged", name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("merged %s differs from one run's: %v", name, err)
		}
	}
	gparts := filepath.Join(dir, "gguf-parts")
	if _, stderr, err := runSplit(t, "quantize", "../../testdata/llm/stories260K/stories260K.gguf", "-o", gparts, "--format", "gguf", "--type", "Q8_0", "--shard", "auto"); err != nil ||
		!strings.Contains(stderr, "is part 0/2") {
		t.Fatalf("--format gguf --shard auto: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(gparts, "part-0-of-2", "part.gguf")); err != nil {
		t.Error(err)
	}
}

// runSplit is run with stdout and stderr apart.
func runSplit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.Run(resolve(app, append([]string{"quantkit"}, args...), &errOut).Args)
	return out.String(), errOut.String(), err
}

// --max-memory reaches the job: the dry run plans within it and says so.
func TestQuantizeMaxMemory(t *testing.T) {
	in := synthModel(t)
	out := filepath.Join(t.TempDir(), "q")
	text := mustRun(t, "quantize", in, "-o", out, "--max-memory", "48MiB", "--workers", "2", "--dry-run", "--json")
	var r quantize.Report
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatal(err)
	}
	if r.MaxMemory != 48<<20 || r.Stream == nil || r.MemoryEstimate != r.Stream.Peak || r.MemoryEstimate > 48<<20 || r.Stream.Workers != 2 {
		t.Errorf("max_memory %d, memory_estimate %d, stream %+v", r.MaxMemory, r.MemoryEstimate, r.Stream)
	}
	table := mustRun(t, "quantize", in, "-o", out, "--max-memory", "48MiB", "--dry-run")
	if !strings.Contains(table, "of the 50.3 MB budget with") {
		t.Errorf("dry run table:\n%s", table)
	}
}
