package llmq

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
	"github.com/quantkit/quantkit/quant/clip"
	"github.com/quantkit/quantkit/tokenizer"
)

const stories = "../../testdata/llm/stories260K/hf"

func int4g32(t *testing.T) quant.Scheme {
	s, err := quant.ParseScheme("int4-sym-group32")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRTNMatchesQuantize checks that the pipeline's rtn writes what
// `quantkit quantize` writes: the same tensors byte for byte (in layer
// order rather than the input's) and the same config.json.
func TestRTNMatchesQuantize(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []quant.Scheme{int4g32(t), quant.Int8PerChannel} {
		a, b := filepath.Join(dir, "pipeline-"+s.String()), filepath.Join(dir, "quantize-"+s.String())
		if _, err := Run(context.Background(), Options{Input: stories, Output: a, Format: plan.CompressedTensors, Scheme: s, Method: RTN}); err != nil {
			t.Fatal(err)
		}
		if _, err := quantize.Run(context.Background(), quantize.Options{Input: stories, Output: b, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: s}}); err != nil {
			t.Fatal(err)
		}
		ca, err := checkpoint.Open(a)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := checkpoint.Open(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(ca.Tensors()) != len(cb.Tensors()) {
			t.Fatalf("%v: %d tensors, quantize wrote %d", s, len(ca.Tensors()), len(cb.Tensors()))
		}
		for _, ti := range cb.Tensors() {
			x, err := ca.Bytes(ti.Name)
			if err != nil {
				t.Fatalf("%v: %v", s, err)
			}
			y, _ := cb.Bytes(ti.Name)
			if !bytes.Equal(x, y) {
				t.Errorf("%v: %s differs from quantize's", s, ti.Name)
			}
		}
		ra, _ := os.ReadFile(filepath.Join(a, "config.json"))
		rb, _ := os.ReadFile(filepath.Join(b, "config.json"))
		if !bytes.Equal(ra, rb) {
			t.Errorf("%v: config.json differs:\n%s\n%s", s, ra, rb)
		}
		ca.Close()
		cb.Close()
	}
}

func storiesTokenizer(t *testing.T) *tokenizer.Tokenizer {
	tok, err := lmeval.LoadTokenizer(stories)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestCalibration checks the calibration sets: text windows are seeded
// slices of the BOS text EOS stream, JSONL documents, .npy rows and
// streams of int32 and int64, and the refusals.
func TestCalibration(t *testing.T) {
	dir := t.TempDir()
	tok := storiesTokenizer(t)
	text := strings.Repeat("Once upon a time there was a little girl named Lily. She liked to play. ", 20)
	txt := filepath.Join(dir, "calib.txt")
	os.WriteFile(txt, []byte(text), 0o666)
	c, err := LoadCalibration(CalibOptions{Path: txt, Samples: 6, SeqLen: 32, Seed: 3}, tok, 1, 2, 512)
	if err != nil {
		t.Fatal(err)
	}
	stream := append(append([]int{1}, tok.EncodeWith(text, false)...), 2)
	if c.Tokens != len(stream) || len(c.IDs) != 6*32 || c.Documents != 1 {
		t.Fatalf("calibration %+v", c)
	}
	offsets := map[int]bool{}
	for s := range 6 {
		w := c.IDs[s*32 : (s+1)*32]
		found := -1
		for off := 0; off+32 <= len(stream); off++ {
			if slices.Equal(stream[off:off+32], w) {
				found = off
				break
			}
		}
		if found < 0 {
			t.Fatalf("window %d is not a slice of the stream", s)
		}
		offsets[found] = true
	}
	if len(offsets) < 2 {
		t.Errorf("every window at one offset: %v", offsets)
	}
	again, _ := LoadCalibration(CalibOptions{Path: txt, Samples: 6, SeqLen: 32, Seed: 3}, tok, 1, 2, 512)
	other, _ := LoadCalibration(CalibOptions{Path: txt, Samples: 6, SeqLen: 32, Seed: 4}, tok, 1, 2, 512)
	if !slices.Equal(again.IDs, c.IDs) || slices.Equal(other.IDs, c.IDs) {
		t.Error("the windows do not follow the seed")
	}
	// Too short.
	if _, err := LoadCalibration(CalibOptions{Path: txt, Samples: 1, SeqLen: len(stream) + 1}, tok, 1, 2, 512); err == nil ||
		!strings.Contains(err.Error(), "fewer than one sequence") {
		t.Errorf("a text shorter than one sequence: %v", err)
	}
	// JSONL: one document per line, each between BOS and EOS.
	jl := filepath.Join(dir, "calib.jsonl")
	os.WriteFile(jl, []byte("{\"text\": \"Lily liked the sun.\"}\n\n{\"text\": \"Tom had a red ball.\", \"id\": 7}\n"), 0o666)
	c, err = LoadCalibration(CalibOptions{Path: jl, Samples: 1, SeqLen: 5}, tok, 1, 2, 512)
	if err != nil {
		t.Fatal(err)
	}
	want := len(tok.EncodeWith("Lily liked the sun.", false)) + len(tok.EncodeWith("Tom had a red ball.", false)) + 4
	if c.Documents != 2 || c.Tokens != want {
		t.Errorf("JSONL: %d documents of %d tokens, want 2 of %d", c.Documents, c.Tokens, want)
	}
	os.WriteFile(jl, []byte("{\"txt\": \"no\"}\n"), 0o666)
	if _, err := LoadCalibration(CalibOptions{Path: jl, Samples: 1, SeqLen: 5}, tok, 1, 2, 512); err == nil || !strings.Contains(err.Error(), "calib.jsonl:1") {
		t.Errorf("JSONL without text: %v", err)
	}
	// npy: rows [4, 10] of int64, and a stream of int32.
	ids := make([]byte, 8*40)
	for i := range 40 {
		binary.LittleEndian.PutUint64(ids[8*i:], uint64(i+3))
	}
	np := filepath.Join(dir, "ids.npy")
	if err := npy.WriteArray(np, &npy.Array{Shape: []int{4, 10}, DType: "<i8", Data: ids}); err != nil {
		t.Fatal(err)
	}
	c, err = LoadCalibration(CalibOptions{Path: np, Samples: 3, SeqLen: 8, Seed: 1}, nil, 1, 2, 512)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int]bool{}
	for s := range 3 {
		w := c.IDs[s*8 : (s+1)*8]
		r := (w[0] - 3) / 10
		if w[0] != 3+10*r || !slices.Equal(w, []int{w[0], w[0] + 1, w[0] + 2, w[0] + 3, w[0] + 4, w[0] + 5, w[0] + 6, w[0] + 7}) {
			t.Fatalf("npy sequence %d is %v, not a row's first 8 ids", s, w)
		}
		rows[r] = true
	}
	if len(rows) != 3 {
		t.Errorf("npy rows drawn twice: %v", rows)
	}
	if _, err := LoadCalibration(CalibOptions{Path: np, Samples: 5, SeqLen: 8}, nil, 1, 2, 512); err == nil {
		t.Error("5 samples from 4 rows")
	}
	if _, err := LoadCalibration(CalibOptions{Path: np, Samples: 1, SeqLen: 8}, nil, 1, 2, 20); err == nil {
		t.Error("ids past the vocabulary taken")
	}
	ids32 := make([]byte, 4*40)
	for i := range 40 {
		binary.LittleEndian.PutUint32(ids32[4*i:], uint32(i))
	}
	if err := npy.WriteArray(np, &npy.Array{Shape: []int{40}, DType: "<i4", Data: ids32}); err != nil {
		t.Fatal(err)
	}
	c, err = LoadCalibration(CalibOptions{Path: np, Samples: 2, SeqLen: 16, Seed: 9}, nil, 1, 2, 512)
	if err != nil || c.Tokens != 40 || c.IDs[1] != c.IDs[0]+1 {
		t.Errorf("npy stream: %v %+v", err, c)
	}
}

// TestRefusals checks the refusals made before any work.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	s := int4g32(t)
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		{Options{Method: "awq+mse", Format: plan.CompressedTensors, Scheme: s}, "not one of"},
		{Options{Method: RTN, Format: plan.CompressedTensors, Scheme: s, W8A8: true}, "int8 symmetric per-channel"},
		{Options{Method: SmoothQuant, Format: plan.CompressedTensors, Scheme: quant.Int8PerChannel, Alpha: 1.5, Calib: CalibOptions{Path: "x.txt"}}, "alpha"},
		{Options{Method: AWQ, Format: plan.CompressedTensors, Scheme: s}, "needs calibration data"},
		{Options{Method: GPTQ, Format: plan.GGUFQ4_0, Scheme: s, Calib: CalibOptions{Path: "x.txt"}}, "writes compressed-tensors"},
		{Options{Method: GPTQ, Format: plan.Safetensors, Scheme: s, Calib: CalibOptions{Path: "x.txt"}}, "writes compressed-tensors"},
		{Options{Method: GPTQ, Format: plan.CompressedTensors, Scheme: s}, "needs calibration data"},
		{Options{Method: MSE, Format: plan.CompressedTensors, Scheme: s, Calib: CalibOptions{Path: "x.txt"}}, "data-free"},
		{Options{Method: GPTQ, Format: plan.CompressedTensors, Scheme: quant.Int8PerTensor, Calib: CalibOptions{Path: "x.txt"}}, "per output channel or per group"},
	} {
		tc.opt.Input, tc.opt.Output = stories, filepath.Join(dir, "out")
		if _, err := Run(context.Background(), tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.opt, err, tc.want)
		}
	}
	// A model lm cannot run.
	gpt := filepath.Join(dir, "gpt")
	os.MkdirAll(gpt, 0o777)
	data, _ := os.ReadFile(filepath.Join(stories, "model.safetensors"))
	os.WriteFile(filepath.Join(gpt, "model.safetensors"), data, 0o666)
	os.WriteFile(filepath.Join(gpt, "config.json"), []byte(`{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}`), 0o666)
	if _, err := Run(context.Background(), Options{Input: gpt, Output: filepath.Join(dir, "o"), Method: MSE, Format: plan.CompressedTensors, Scheme: s}); err == nil {
		t.Error("a GPT-2 checkpoint was taken")
	}
	// Text shorter than one sequence.
	short := filepath.Join(dir, "short.txt")
	os.WriteFile(short, []byte("Once upon a time"), 0o666)
	_, err := Run(context.Background(), Options{Input: stories, Output: filepath.Join(dir, "o"), Method: GPTQ, Format: plan.CompressedTensors, Scheme: s,
		Calib: CalibOptions{Path: short, Samples: 2, SeqLen: 64}})
	if err == nil || !strings.Contains(err.Error(), "fewer than one sequence of 64") {
		t.Errorf("short calibration text: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); err == nil {
		t.Error("a refused run left an output")
	}
}

// generated is text stories260K writes itself: sampled stories from a few
// prompts (temperature 1, top-p 0.95), seeds from seed on.
func generated(t *testing.T, m *lm.Model, tok *tokenizer.Tokenizer, seed uint64, n int) string {
	var b strings.Builder
	for i := range n {
		rep, err := lmeval.Generate(context.Background(), lmeval.GenerateOptions{Model: m, Tokenizer: tok,
			Prompt: "Once upon a time", N: 300, Temp: 1, TopP: 0.95, Seed: seed + uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("Once upon a time" + rep.Text + "\n")
	}
	return b.String()
}

// storiesText opens stories260K (closed when the test ends), writes n
// stories it generates from seed on to dir/calib.txt, and returns the
// model, that file's path and held stories generated from heldSeed on
// (see generated).
func storiesText(t *testing.T, dir string, seed uint64, n int, heldSeed uint64, held int) (*lmeval.Loaded, string, string) {
	t.Helper()
	ref, err := lmeval.Open(cpu.New(), stories, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	calib := filepath.Join(dir, "calib.txt")
	if err := os.WriteFile(calib, []byte(generated(t, ref.Model, ref.Tokenizer, seed, n)), 0o666); err != nil {
		t.Fatal(err)
	}
	return ref, calib, generated(t, ref.Model, ref.Tokenizer, heldSeed, held)
}

// TestGPTQBeatsRTNOnStories quantizes stories260K to int4 group 32 with
// rtn, mse and gptq, calibrating gptq on text the model generated (seeds
// 100…), and compares each with the float model on other generated text
// (seeds 200…) as lm eval --ref does: gptq's mean KL (scales by the
// clipping search, the default; and with the sequential update) must be
// below 0.75 of rtn's, and mse's below rtn's. (Measured: gptq 0.61,
// sequential 0.54, mse 0.78 of rtn's.)
func TestGPTQBeatsRTNOnStories(t *testing.T) {
	b := cpu.New()
	dir := t.TempDir()
	ref, calib, heldout := storiesText(t, dir, 100, 3, 200, 3)
	models := []lmeval.NamedModel{}
	for _, name := range []string{"rtn", "mse", "gptq", "gptq-sequential"} {
		m, seq := Method(name), false
		if name == "gptq-sequential" {
			m, seq = GPTQ, true
		}
		opt := Options{Input: stories, Output: filepath.Join(dir, name), Format: plan.CompressedTensors, Scheme: int4g32(t), Method: m, Sequential: seq}
		if m == GPTQ {
			opt.Calib = CalibOptions{Path: calib, Samples: 16, SeqLen: 128, Seed: 1}
			opt.GPTQ.ActOrder = true
		}
		rep, err := Run(context.Background(), opt)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if len(rep.Tensors) != 35 || len(rep.Warnings) != 0 {
			t.Errorf("%s: %d tensors quantized, warnings %v", m, len(rep.Tensors), rep.Warnings)
		}
		models = append(models, openNamed(t, b, name, opt.Output))
	}
	kl := meanKLs(t, ref, models, heldout)
	for name, v := range kl {
		t.Logf("%s: mean KL %.3f of rtn's", name, v/kl["rtn"])
	}
	if !(kl["gptq"] < 0.75*kl["rtn"]) || !(kl["gptq-sequential"] < 0.75*kl["rtn"]) || !(kl["mse"] < kl["rtn"]) {
		t.Errorf("mean KL: gptq %g, sequential %g, mse %g, rtn %g: want gptq below 0.75 rtn and mse below rtn", kl["gptq"], kl["gptq-sequential"], kl["mse"], kl["rtn"])
	}
	if kl["gptq"] == kl["gptq-sequential"] {
		t.Error("the sequential update changed nothing")
	}
}

// TestGPTQDefaultOnStories quantizes stories260K to int4 group 32 with
// rtn, gptq by default (Options.Asymmetric Auto: on this calibration set
// the asymmetric correction, GPTAQ) and gptq sequential without it
// (Asymmetric Off), calibrated on 24 stories the model generated (seeds
// 300…, about 7,000 tokens, 32 windows of 128 covering about 3,900
// distinct) and compared with the float model on 12 others (seeds 400…):
// the default's mean KL must be at most half of rtn's (the issue's
// target) and below sequential gptq's. (Measured: 0.480 and 0.639;
// 0.479 with the quantized hidden states in float32. With a calibration stream of
// under 1,000 tokens the correction overfits and loses to plain gptq,
// which Auto then runs: see the package documentation.)
func TestGPTQDefaultOnStories(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: about 10 s")
	}
	kl := storiesKL(t, []string{"rtn", "gptq-sequential", "gptq"}, func(name string, opt *Options) bool {
		opt.Method, opt.Sequential = GPTQ, true
		if name == "gptq-sequential" {
			opt.Asymmetric = Off
		}
		return name == "gptq"
	})
	if a := kl["gptq"]; !(a <= 0.5*kl["rtn"]) || !(a < kl["gptq-sequential"]) {
		t.Errorf("mean KL: gptq %g, sequential %g, rtn %g: want gptq at most half of rtn and below sequential", a, kl["gptq-sequential"], kl["rtn"])
	}
}

// TestFitRows checks that fitRows (the fit split across the cores by
// rows) gives the parameters of the fit on the whole weight, per group
// and per channel, asymmetric, with rows that do not split evenly.
func TestFitRows(t *testing.T) {
	for _, name := range []string{"int4-sym-group32", "uint4-asym-group16", "int8-sym-channel"} {
		s, err := quant.ParseScheme(name)
		if err != nil {
			t.Fatal(err)
		}
		rows, cols := 301, 256
		x := make([]float32, rows*cols)
		for i := range x {
			x[i] = float32((i*7919)%1000-480) / 997 * float32(1+i%13)
		}
		fit := func(x []float32, shape []int) (*quant.Params, error) {
			return clip.FitMSE(s, x, shape, clip.Options{})
		}
		want, err := fit(x, []int{rows, cols})
		if err != nil {
			t.Fatal(err)
		}
		got, err := fitRows(x, []int{rows, cols}, fit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Scales, want.Scales) || !slices.Equal(got.ZeroPoints, want.ZeroPoints) || !slices.Equal(got.Shape, want.Shape) {
			t.Errorf("%s: fitRows's parameters differ from the whole weight's", name)
		}
		if err := got.Check(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCovered checks covered (the positions windows cover) against a
// bitmap of the positions, on random windows of a short stream.
func TestCovered(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 5))
	for range 50 {
		n, T := 1+rng.IntN(8), 1+rng.IntN(20)
		offs := make([]int, n)
		seen := map[int]bool{}
		for i := range offs {
			offs[i] = rng.IntN(40)
			for p := offs[i]; p < offs[i]+T; p++ {
				seen[p] = true
			}
		}
		if got := covered(slices.Clone(offs), T); got != len(seen) {
			t.Fatalf("windows of %d at %v: covered %d, want %d", T, offs, got, len(seen))
		}
	}
}

// TestFloatTargetWarnsOnLittleData checks that the float target asked
// for (On) on fewer distinct calibration tokens than MinFloatTargetTokens
// warns (4 windows of 64 tokens), and that plain GPTQ (Off) on the same
// data does not, nor the default (Auto), which runs plain GPTQ there.
func TestFloatTargetWarnsOnLittleData(t *testing.T) {
	dir := t.TempDir()
	_, calib, _ := storiesText(t, dir, 100, 1, 0, 0)
	for _, asym := range []Toggle{On, Off, Auto} {
		opt := Options{Input: stories, Output: filepath.Join(dir, fmt.Sprint(asym)), Format: plan.CompressedTensors, Scheme: int4g32(t), Method: GPTQ,
			Calib: CalibOptions{Path: calib, Samples: 4, SeqLen: 64, Seed: 1}, Asymmetric: asym}
		rep, err := Run(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		if d := rep.Calibration.Distinct; d <= 0 || d > 4*64 {
			t.Errorf("%d distinct tokens in 4 windows of 64", d)
		}
		warned := slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "distinct tokens") })
		if warned != (asym == On) || rep.Asymmetric != (asym == On) {
			t.Errorf("asymmetric %v: warnings %q, float target %v", asym, rep.Warnings, rep.Asymmetric)
		}
	}
}

// TestResolveTarget: Auto is On for gptq and awq from MinFloatTargetTokens
// distinct calibration tokens, Off below and for every other method; On
// and Off stay as given; the report follows (sequential with the float
// target).
func TestResolveTarget(t *testing.T) {
	for _, c := range []struct {
		m        Method
		asym     Toggle
		distinct int
		want     bool
	}{
		{GPTQ, Auto, MinFloatTargetTokens, true},
		{GPTQ, Auto, MinFloatTargetTokens - 1, false},
		{AWQ, Auto, 1 << 20, true},
		{AWQ, Auto, 10, false},
		{AWQGPTQ, Auto, 1 << 20, false},
		{SmoothQuantGPTQ, Auto, 1 << 20, false},
		{SmoothQuant, Auto, 1 << 20, false},
		{GPTQ, Off, 1 << 20, false},
		{GPTQ, On, 10, true},
		{AWQGPTQ, On, 10, true},
		{SmoothQuant, On, 1 << 20, false},
	} {
		su := &setup{rep: &Report{}}
		opt := Options{Method: c.m, Asymmetric: c.asym}
		su.resolveTarget(&opt, c.distinct)
		if opt.Asymmetric == Auto || opt.floatTarget() != c.want || su.rep.Asymmetric != c.want || c.want && c.m.usesGPTQ() && !su.rep.Sequential {
			t.Errorf("%s %v with %d distinct: %v, report asymmetric %v sequential %v; want %v", c.m, c.asym, c.distinct, opt.Asymmetric, su.rep.Asymmetric, su.rep.Sequential, c.want)
		}
	}
}
