package lmbench

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/synth"
	"github.com/quantkit/quantkit/quant"
)

// TestMain hands the child processes Run starts (this test binary run
// again, with ChildEnv set) over to ChildMain, as quantkit's main does.
func TestMain(m *testing.M) {
	if IsChild() {
		os.Exit(ChildMain())
	}
	os.Exit(m.Run())
}

const stories = "../../testdata/llm/stories260K"

// tiny is the synthetic model of the tests: widths that make int4 groups
// of 128 whole in the hidden dimension and ragged (one of 64) in none.
var tiny = synth.Config{Layers: 2, Hidden: 128, Intermediate: 320, Heads: 4, KVHeads: 2, Vocab: 96, DType: "F32", Seed: 7}

func writeTiny(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := synth.Write(dir, tiny, synth.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantWeightBytes is, by independent arithmetic, what the weights of a
// Llama of c take at precision p: the norms always float32; the
// embedding and lm_head float32 (2 bytes each value in bf16); each
// projection [out, in] 4 bytes a value (fp32), 2 (bf16), a row of in
// int8 codes and a float32 scale (w8a16, w8a8), or ⌈in/g⌉ blocks of a
// float32 scale and ⌈n/2⌉ bytes of int4 codes (w4a16).
func wantWeightBytes(c synth.Config, tied bool, p string, g int) int64 {
	h, ff, v := int64(c.Hidden), int64(c.Intermediate), int64(c.Vocab)
	q, kv := h, int64(c.KVDim())
	norms := 4 * (2*int64(c.Layers) + 1) * h
	tables := v * h
	if !tied {
		tables *= 2
	}
	proj := [][2]int64{{q, h}, {kv, h}, {kv, h}, {h, q}, {ff, h}, {ff, h}, {h, ff}}
	var n int64
	for _, s := range proj {
		out, in := s[0], s[1]
		switch p {
		case "fp32":
			n += 4 * out * in
		case "bf16":
			n += 2 * out * in
		case "w8a16", "w8a8":
			n += out * (in + 4)
		case "w4a16":
			var row int64
			for left := in; left > 0; left -= int64(g) {
				k := min(left, int64(g))
				row += 4 + (k+1)/2
			}
			n += out * row
		}
	}
	n *= int64(c.Layers)
	if p == "bf16" {
		return n + 2*tables + norms
	}
	return n + 4*tables + norms
}

// checkRow checks the fields of a row that every measurement must have.
func checkRow(t *testing.T, r Row, o Options) {
	t.Helper()
	if r.PrefillTokens != o.PromptLen || r.DecodeTokens != o.Gen {
		t.Errorf("%s: %d prefill and %d decode tokens, want %d and %d", r.Label, r.PrefillTokens, r.DecodeTokens, o.PromptLen, o.Gen)
	}
	if o.Batch > 1 && (r.BatchDecodeTokens != o.Batch*o.Gen || r.BatchDecodeTokensPerSecond == nil) {
		t.Errorf("%s: %d batch decode tokens (%v), want %d", r.Label, r.BatchDecodeTokens, r.BatchDecodeTokensPerSecond, o.Batch*o.Gen)
	}
	for name, s := range map[string]Stat{"prefill": r.PrefillTokensPerSecond, "decode": r.DecodeTokensPerSecond, "ttft": r.TTFTSeconds} {
		if len(s.Rounds) != o.Rounds || !(s.Median > 0) || s.Min > s.Median || s.Median > s.Max || math.IsInf(s.Max, 0) {
			t.Errorf("%s: %s %+v: want %d positive finite rounds, min ≤ median ≤ max", r.Label, name, s, o.Rounds)
		}
	}
	if r.Params <= 0 || r.WeightBytes <= 0 {
		t.Errorf("%s: %d params, %d weight bytes", r.Label, r.Params, r.WeightBytes)
	}
}

// TestTinyEveryPrecision runs every precision of the synthetic model, each
// in a child process (this binary, TestMain), and checks the report.
func TestTinyEveryPrecision(t *testing.T) {
	dir := writeTiny(t)
	o := Options{Models: []string{dir}, PromptLen: 9, Gen: 5, Batch: 3, Rounds: 2, Seed: 1, GroupSize: 64}
	var steps []int
	o.Progress = func(done, total int, _ string) { steps = append(steps, done) }
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != len(Precisions) {
		t.Fatalf("%d rows, want one per precision %v", len(rep.Rows), Precisions)
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !equal(steps, want) {
		t.Errorf("progress %v, want %v", steps, want)
	}
	kv := int64(tiny.Layers) * int64(o.PromptLen+o.Gen) * 2 * int64(tiny.KVDim()) * 4
	for i, r := range rep.Rows {
		if r.Precision != Precisions[i] {
			t.Errorf("row %d is %s, want %s", i, r.Precision, Precisions[i])
		}
		checkRow(t, r, o)
		if want := wantWeightBytes(tiny, false, r.Precision, o.GroupSize); r.WeightBytes != want {
			t.Errorf("%s: %d weight bytes, want %d", r.Label, r.WeightBytes, want)
		}
		if r.KVCacheBytes != kv || r.BatchKVCacheBytes != 3*kv {
			t.Errorf("%s: KV cache %d and %d bytes, want %d and %d", r.Label, r.KVCacheBytes, r.BatchKVCacheBytes, kv, 3*kv)
		}
		// A child's peak RSS holds at least its weights (and the Go runtime).
		if r.PeakRSSBytes < r.WeightBytes {
			t.Errorf("%s: peak RSS %d below the %d bytes of weights", r.Label, r.PeakRSSBytes, r.WeightBytes)
		}
		if r.Energy != nil {
			t.Errorf("%s: energy without --energy", r.Label)
		}
	}
	if ref := rep.Rows[0]; ref.DecodeVsRef != 1 || ref.PrefillVsRef != 1 || !strings.HasSuffix(rep.Reference, " fp32") {
		t.Errorf("reference %q: ratios %g, %g, want the fp32 row at 1", rep.Reference, ref.PrefillVsRef, ref.DecodeVsRef)
	}
	r := rep.Rows[3]
	if want := r.DecodeTokensPerSecond.Median / rep.Rows[0].DecodeTokensPerSecond.Median; r.DecodeVsRef != want {
		t.Errorf("w4a16 decode ratio %g, want %g", r.DecodeVsRef, want)
	}
	if !strings.Contains(rep.Isolation, "child process") || !strings.Contains(rep.BatchDecode, "ForwardBatch") {
		t.Errorf("isolation %q, batch decode %q", rep.Isolation, rep.BatchDecode)
	}
	checkRenderings(t, rep)
}

// checkRenderings checks that the table names every row, that the CSV has
// a row per report row under its header and that the JSON reads back.
func checkRenderings(t *testing.T, rep *Report) {
	t.Helper()
	var tab, c, j bytes.Buffer
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rows {
		if !strings.Contains(tab.String(), r.Label) {
			t.Errorf("the table lacks %q:\n%s", r.Label, tab.String())
		}
	}
	if err := rep.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(recs) != len(rep.Rows)+1 || len(recs[0]) != len(CSVHeader) {
		t.Errorf("CSV: %d records (%v), want %d of %d columns", len(recs), err, len(rep.Rows)+1, len(CSVHeader))
	}
	if err := rep.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(j.Bytes(), &back); err != nil || len(back.Rows) != len(rep.Rows) {
		t.Errorf("JSON: %v, %d rows", err, len(back.Rows))
	}
	plot := filepath.Join(t.TempDir(), "lm.svg")
	if err := rep.Plot(plot); err != nil {
		t.Error(err)
	} else if st, err := os.Stat(plot); err != nil || st.Size() == 0 {
		t.Errorf("plot: %v", err)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStories runs the real stories260K, its Hugging Face folder at every
// precision beside its GGUF file and llama2.c checkpoint as they are, in
// one report (in this process).
func TestStories(t *testing.T) {
	hf, gg, bin := filepath.Join(stories, "hf"), filepath.Join(stories, "stories260K.gguf"), filepath.Join(stories, "stories260K.bin")
	o := Options{Models: []string{hf, gg, bin}, PromptLen: 16, Gen: 4, Batch: 1, Rounds: 1, Seed: 3, InProcess: true}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != len(Precisions)+2 {
		t.Fatalf("%d rows, want %d", len(rep.Rows), len(Precisions)+2)
	}
	// stories260K: 5 layers, hidden 64, intermediate 172, 4 of 8 heads for
	// keys and values, head dim 8, vocabulary 512, embedding tied.
	c := synth.Config{Layers: 5, Hidden: 64, Intermediate: 172, Heads: 8, KVHeads: 4, Vocab: 512}
	for _, r := range rep.Rows[:len(Precisions)] {
		checkRow(t, r, o)
		if want := wantWeightBytes(c, true, r.Precision, DefaultGroupSize); r.WeightBytes != want {
			t.Errorf("%s: %d weight bytes, want %d", r.Label, r.WeightBytes, want)
		}
	}
	// llama.cpp's converter wrote the tied embedding again as output.weight.
	for i, want := range []struct {
		label string
		tied  bool
	}{{"gguf F32", false}, {"fp32 (llama2.c)", true}} {
		r := rep.Rows[len(Precisions)+i]
		checkRow(t, r, o)
		if r.Label != want.label || r.WeightBytes != wantWeightBytes(c, want.tied, "fp32", 0) {
			t.Errorf("row %q (%d weight bytes), want %q of %d", r.Label, r.WeightBytes, want.label, wantWeightBytes(c, want.tied, "fp32", 0))
		}
	}
	// The rows hold the same parameters, the GGUF's output.weight aside.
	pf, pg, pb := rep.Rows[0].Params, rep.Rows[len(Precisions)].Params, rep.Rows[len(Precisions)+1].Params
	if pg != pf+512*64 || pb != pf {
		t.Errorf("fp32 %d params, GGUF %d, llama2.c %d", pf, pg, pb)
	}
}

func TestRefusals(t *testing.T) {
	hf, gg := filepath.Join(stories, "hf"), filepath.Join(stories, "stories260K.gguf")
	base := Options{Models: []string{hf}, PromptLen: 8, Gen: 4, Batch: 1, Rounds: 1}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"unknown precision", func(o *Options) { o.Precisions = []string{"fp32", "int3"} }, `unknown precision "int3"`},
		{"twice", func(o *Options) { o.Precisions = []string{"w8a8", "w8a8"} }, "w8a8 given twice"},
		{"past the context", func(o *Options) { o.PromptLen = 600 }, "past the model's context of 512"},
		{"prompt and gen past the context", func(o *Options) { o.PromptLen, o.Gen = 500, 20 }, "520 positions"},
		{"precision on a GGUF", func(o *Options) { o.Models, o.Precisions = []string{gg}, []string{"w8a16", "w4a16"} },
			"holds gguf F32 and runs as fp32: none of --precisions w8a16,w4a16 applies"},
		{"no model", func(o *Options) { o.Models = nil }, "no model"},
		{"unknown format", func(o *Options) { o.Models = []string{filepath.Join(stories, "README.md")} }, "unknown model format"},
		{"device", func(o *Options) { o.Device = "tpu" }, `device "tpu"`},
		{"odd group", func(o *Options) { o.GroupSize = 33 }, "group size 33"},
	} {
		o := base
		c.edit(&o)
		o.Progress = func(int, int, string) { t.Errorf("%s: measured before refusing", c.name) }
		_, err := Run(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s: %v, want an input error with %q", c.name, err, c.want)
		}
	}
	// A GGUF with a precision it holds runs.
	o := base
	o.Models, o.Precisions, o.InProcess = []string{gg, hf}, []string{"fp32", "w8a8"}, true
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || rep.Rows[0].Label != "gguf F32" || rep.Rows[2].Precision != "w8a8" {
		t.Errorf("rows %+v, want gguf F32, then fp32 and w8a8 of the folder", rep.Rows)
	}
}

// TestPerToken checks the energy per token by hand: a window of 2 s
// holding 4 calls of 5 tokens, 12 J by the counter, idle 3 W, is
// 12/(4·5) = 0.6 J a token gross and (12 − 3·2)/(4·5) = 0.3 net.
func TestPerToken(t *testing.T) {
	w := energy.Window{EnergyJ: 12, Seconds: 2, Calls: 4, IdleW: 3, NetEnergyJ: 12 - 3*2}
	g, n := PerToken(w, 5)
	if g != 0.6 || math.Abs(n-0.3) > 1e-15 {
		t.Errorf("PerToken = %g, %g, want 0.6, 0.3", g, n)
	}
}

// TestEnergyFake measures on a fake counter that draws 50 W against an
// idle of 20 W: each phase's net energy is 30/50 of its gross, and gross
// J/token is 50 W times the window's seconds over its tokens.
func TestEnergyFake(t *testing.T) {
	src := energy.NewFakeSource("fake package").Constant(50)
	o := Options{Models: []string{filepath.Join(stories, "hf")}, Precisions: []string{"fp32", "w8a16"}, PromptLen: 8, Gen: 3,
		Batch: 1, Rounds: 1, Energy: &EnergySetup{Source: src, IdleW: 20,
			Window: energy.Options{MinWindow: 30 * time.Millisecond, Interval: 5 * time.Millisecond}}}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.EnergyNote != "" {
		t.Errorf("energy note %q", rep.EnergyNote)
	}
	for _, r := range rep.Rows {
		e := r.Energy
		if e == nil {
			t.Fatalf("%s: no energy", r.Label)
		}
		if e.Source != "fake package" || e.Method != energy.Counter || e.IdleW != 20 || e.WindowSeconds < 0.03 {
			t.Errorf("%s: energy %+v", r.Label, e)
		}
		for _, p := range [][2]float64{{e.PrefillJPerToken, e.PrefillNetJPerToken}, {e.DecodeJPerToken, e.DecodeNetJPerToken}} {
			if !(p[0] > 0) || math.Abs(p[1]/p[0]-0.6) > 0.02 {
				t.Errorf("%s: gross %g, net %g J/token: want net/gross 0.6", r.Label, p[0], p[1])
			}
		}
		if math.Abs(e.PrefillAvgPowerW-50) > 1 || math.Abs(e.DecodeAvgPowerW-50) > 1 {
			t.Errorf("%s: average power %g, %g W, want 50", r.Label, e.PrefillAvgPowerW, e.DecodeAvgPowerW)
		}
	}
	if w := rep.Rows[1]; w.DecodeJVsRef != w.Energy.DecodeJPerToken/rep.Rows[0].Energy.DecodeJPerToken {
		t.Errorf("J ratio %g", w.DecodeJVsRef)
	}
	checkRenderings(t, rep)

	// No counter and no power: the report says so and measures the rest.
	o.Energy = &EnergySetup{Source: energy.NewFakeSource("dark")}
	rep, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.EnergyNote, "dark") || rep.Rows[0].Energy != nil || !(rep.Rows[0].DecodeTokensPerSecond.Median > 0) {
		t.Errorf("note %q, energy %+v", rep.EnergyNote, rep.Rows[0].Energy)
	}
	var tab bytes.Buffer
	rep.WriteTable(&tab)
	if !strings.Contains(tab.String(), "energy not measured: dark") {
		t.Errorf("the table does not say energy was not measured:\n%s", tab.String())
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Models: []string{filepath.Join(stories, "hf")}, PromptLen: 8, Gen: 4, Batch: 1, Rounds: 3}
	o.Progress = func(done, _ int, _ string) {
		if done == 1 {
			cancel()
		}
	}
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v, want context.Canceled", err)
	}
}

func TestPrompt(t *testing.T) {
	a, b := Prompt(5, 0, 100, 7), Prompt(5, 0, 100, 7)
	c := Prompt(5, 1, 100, 7)
	same := true
	for i := range a {
		if a[i] != b[i] || a[i] < 0 || a[i] >= 7 {
			t.Fatalf("token %d: %d, %d", i, a[i], b[i])
		}
		same = same && a[i] == c[i]
	}
	if same {
		t.Error("sequences 0 and 1 have the same prompt")
	}
}

// TestQuantizedInput runs a checkpoint `quantkit quantize` wrote (int8 per
// channel, compressed-tensors) as it is, and as W8A8: labelled by what it
// holds, its projections int8 codes with a scale a row as the float
// model's w8a16 has them.
func TestQuantizedInput(t *testing.T) {
	dir := writeTiny(t)
	q := filepath.Join(t.TempDir(), "int8")
	if _, err := quantize.Run(context.Background(), quantize.Options{Input: dir, Output: q,
		Plan: plan.Options{Format: plan.CompressedTensors, Scheme: quant.Int8PerChannel}}); err != nil {
		t.Fatal(err)
	}
	o := Options{Models: []string{q}, PromptLen: 6, Gen: 2, Batch: 1, Rounds: 1, InProcess: true}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Label != "int8 per channel (w8a16)" || rep.Rows[0].Precision != "w8a16" {
		t.Fatalf("rows %+v, want one int8 per channel (w8a16)", rep.Rows)
	}
	o.Precisions = []string{"fp32", "w8a8"}
	rep, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Label != "int8 per channel (w8a8)" {
		t.Fatalf("rows %+v, want one int8 per channel (w8a8)", rep.Rows)
	}
	checkRow(t, rep.Rows[0], o)
	if want := wantWeightBytes(tiny, false, "w8a8", 0); rep.Rows[0].WeightBytes != want {
		t.Errorf("%d weight bytes, want %d", rep.Rows[0].WeightBytes, want)
	}
	o.Precisions = []string{"w4a16"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "runs as w8a16 or w8a8") {
		t.Errorf("w4a16 of an int8 checkpoint: %v", err)
	}
}
