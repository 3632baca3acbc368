package lmeval

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// quantizeStories writes stories260K quantized with scheme as a
// compressed-tensors checkpoint and returns its folder.
func quantizeStories(t *testing.T, scheme quant.Scheme) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "q")
	if _, err := quantize.Run(context.Background(), quantize.Options{Input: stories + "hf", Output: out,
		Plan: plan.Options{Format: plan.CompressedTensors, Scheme: scheme}}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenW8A8 opens stories260K quantized int8 per channel with each
// W8A8Mode: W8A8 keeps the projections int8 (Loaded.W8A8) and computes
// other logits than the dequantized model, within the bounds lm's
// TestW8A8Stories states against float; greedy generation and Eval run on
// it. W8A8Required refuses the float, int4, GGUF and llama2.c versions of
// the model with ErrNoInt8, naming the file, as bad input; W8A8WhereInt8
// opens them as they are.
func TestOpenW8A8(t *testing.T) {
	b := cpu.New()
	q8 := quantizeStories(t, quant.Int8PerChannel)
	open := func(path string, w W8A8Mode) *Loaded {
		t.Helper()
		l, err := OpenWith(b, path, OpenOptions{W8A8: w, Tokenizer: stories + "hf"})
		if err != nil {
			t.Fatalf("%s (W8A8 mode %d): %v", path, w, err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	deq, w8, f32 := open(q8, W8A8Off), open(q8, W8A8Required), open(stories+"hf", W8A8Off)
	if deq.W8A8 || !w8.W8A8 || !hasInt8(w8.Model) || hasInt8(deq.Model) {
		t.Fatalf("Loaded.W8A8 off %v, required %v", deq.W8A8, w8.W8A8)
	}
	if w := open(q8, W8A8WhereInt8); !w.W8A8 {
		t.Error("W8A8WhereInt8 did not run the int8 checkpoint as W8A8")
	}
	toks := w8.Tokenizer.EncodeWith(storiesText, false)
	ld, err := deq.Model.Forward(deq.Model.NewCache(), toks[:64])
	if err != nil {
		t.Fatal(err)
	}
	l8, err := w8.Model.Forward(w8.Model.NewCache(), toks[:64])
	if err != nil {
		t.Fatal(err)
	}
	maxd := 0.0
	for i := range ld {
		maxd = math.Max(maxd, math.Abs(float64(l8[i]-ld[i])))
	}
	// lm's TestW8A8Stories measured 0.43 against the float model.
	if maxd == 0 || maxd > 1 {
		t.Errorf("W8A8 logits differ from the dequantized model's by %g: want some difference, below 1", maxd)
	}

	gen := func(l *Loaded) *GenerateReport {
		rep, err := Generate(context.Background(), GenerateOptions{Model: l.Model, Tokenizer: l.Tokenizer, N: 24})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if g8, gf := gen(w8), gen(f32); !strings.HasPrefix(g8.Text, "Once upon a time") || g8.Text != gf.Text {
		t.Errorf("W8A8 greedy generation %q, float %q", g8.Text, gf.Text)
	}
	rep, err := Eval(context.Background(), EvalOptions{Models: []NamedModel{{"w8a8", w8.Model}, {"dequantized", deq.Model}},
		Ref: &NamedModel{"f32", f32.Model}, Tokens: toks, Ctx: 128})
	if err != nil {
		t.Fatal(err)
	}
	kw, kd := rep.Models[0].KL, rep.Models[1].KL
	t.Logf("KL from float32: W8A8 mean %.3g max %.3g top-1 %.3f; dequantized int8 mean %.3g max %.3g top-1 %.3f", kw.Mean, kw.Max, kw.Top1, kd.Mean, kd.Max, kd.Top1)
	// Bound: lm's TestW8A8Stories (mean KL 0.00166 measured, 0.005 allowed);
	// W8A8 adds the activation rounding to the weights', so it is no closer.
	if kw.Mean > 0.005 || kw.Mean <= kd.Mean {
		t.Errorf("W8A8 mean KL %g (dequantized weights %g)", kw.Mean, kd.Mean)
	}

	q4 := quantizeStories(t, quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 32})
	for _, p := range []string{stories + "hf", q4, stories + "stories260K.gguf", stories + "stories260K.bin"} {
		_, err := OpenWith(b, p, OpenOptions{W8A8: W8A8Required, Tokenizer: stories + "hf"})
		if !errors.Is(err, ErrNoInt8) || !inputerr.Is(err) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want a bad-input ErrNoInt8 naming the model", p, err)
		} else {
			t.Log(err)
		}
		if l := open(p, W8A8WhereInt8); l.W8A8 {
			t.Errorf("%s: W8A8WhereInt8 says it runs as W8A8", p)
		}
	}
	// other refusals are Open's
	if _, err := OpenWith(b, stories+"README.md", OpenOptions{W8A8: W8A8Required}); err == nil || !strings.Contains(err.Error(), "unknown model format") {
		t.Errorf("README.md: %v", err)
	}
}

// TestOpenFloat32 opens stories260K quantized int8 per channel packed (the
// default) and widened to float32 (OpenOptions.Float32): the weights are
// kept as they are asked, the logits agree (the packed ones multiplied
// exactly, cpu.SetExactPacked), and Float32 with W8A8 is
// refused as bad input.
func TestOpenFloat32(t *testing.T) {
	b := cpu.New()
	defer cpu.SetExactPacked(cpu.SetExactPacked(true)) // packed, exactly as widened
	q8 := quantizeStories(t, quant.Int8PerChannel)
	packed, err := OpenWith(b, q8, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer packed.Close()
	wide, err := OpenWith(b, q8, OpenOptions{Float32: true})
	if err != nil {
		t.Fatal(err)
	}
	defer wide.Close()
	if l := packed.Model.Weights.Layers[0]; l.Packed == nil || l.Q != nil {
		t.Error("the default did not keep the int8 weights packed")
	}
	if l := wide.Model.Weights.Layers[0]; l.Packed != nil || l.Q == nil {
		t.Error("Float32 did not widen the weights")
	}
	toks := packed.Tokenizer.EncodeWith(storiesText, false)[:48]
	lp, err := packed.Model.Forward(packed.Model.NewCache(), toks)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := wide.Model.Forward(wide.Model.NewCache(), toks)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range lp {
		worst = math.Max(worst, math.Abs(float64(lp[i]-lw[i])))
	}
	if worst > 1e-4 {
		t.Errorf("packed and widened logits differ by %g", worst)
	}
	_, err = OpenWith(b, q8, OpenOptions{Float32: true, W8A8: W8A8Required})
	if err == nil || !inputerr.Is(err) {
		t.Errorf("Float32 with W8A8: %v, want a bad-input refusal", err)
	}
}
