package llmq

import (
	"context"
	"github.com/quantkit/quantkit/backend"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// TestSmoothingBeatsRTNOnStories quantizes stories260K, calibrated on
// stories it generated (seeds 100…, sampled) and compared with the float
// model on others (seeds 200…) as lm eval --ref does: int4 group 32 awq
// on AutoAWQ's schedule (Options.Asymmetric false: this 900-token stream
// is too short for the float target, TestAWQOnStories has that) must stay
// below 0.7 of rtn's mean KL. rtn W8A8 and smoothquant W8A8 are measured too:
// smoothquant (its α searched per layer and input) must have a lower
// mean KL than plain W8A8, and both must load as W8A8 (int8 projections)
// from their config alone.
func TestSmoothingBeatsRTNOnStories(t *testing.T) {
	b := cpu.New()
	dir := t.TempDir()
	ref, calib, heldout := storiesText(t, dir, 100, 3, 200, 3)
	cal := CalibOptions{Path: calib, Samples: 16, SeqLen: 128, Seed: 1}
	runs := []struct {
		name   string
		method Method
		scheme quant.Scheme
		w8a8   bool
	}{
		{"rtn", RTN, int4g32(t), false},
		{"awq", AWQ, int4g32(t), false},
		{"rtn-w8a8", RTN, quant.Int8PerChannel, true},
		{"smoothquant-w8a8", SmoothQuant, quant.Int8PerChannel, true},
	}
	models := []lmeval.NamedModel{}
	for _, r := range runs {
		opt := Options{Input: stories, Output: filepath.Join(dir, r.name), Format: plan.CompressedTensors, Scheme: r.scheme, Method: r.method, W8A8: r.w8a8}
		if r.method.NeedsData() {
			opt.Calib = cal
		}
		rep, err := Run(context.Background(), opt)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		for _, s := range rep.Smoothing {
			t.Logf("%s: layer %d %s: ratio %.2f x-only %v loss %.3g (rtn %.3g)", r.name, s.Layer, s.Input, s.Ratio, s.XOnly, s.Loss, s.RTNLoss)
		}
		m, err := lm.LoadHF(b, opt.Output)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if got := m.Weights.Layers[0].Int8 != nil; got != r.w8a8 {
			t.Errorf("%s: runs as W8A8 %v, want %v", r.name, got, r.w8a8)
		}
		models = append(models, lmeval.NamedModel{Name: r.name, Model: m})
	}
	kl := meanKLs(t, ref, models, heldout)
	// Measured on cpu: awq 0.63 of rtn's mean KL (0.0755 vs 0.120; 0.66
	// before o's scales under grouped attention); smoothquant (α
	// searched) 0.00105 vs plain W8A8's 0.00109.
	if !(kl["awq"] < 0.7*kl["rtn"]) {
		t.Errorf("int4 g32 mean KL: awq %g, rtn %g: want awq below 0.7·rtn", kl["awq"], kl["rtn"])
	}
	if !(kl["smoothquant-w8a8"] < kl["rtn-w8a8"]) {
		t.Errorf("W8A8 mean KL: smoothquant %g, rtn %g: want smoothquant below", kl["smoothquant-w8a8"], kl["rtn-w8a8"])
	}
}

// TestAWQOnStories quantizes stories260K to int4 group 32 with rtn, awq
// by default (Options.Asymmetric Auto: on this calibration set the float
// model as the target, GPTAQ's correction before each stage's clip and
// rounding) and awq on AutoAWQ's schedule (Asymmetric Off: each layer
// from its float inputs), calibrated on 24 stories it generated (32
// windows of 128 tokens, about 3,900 distinct) and compared with the
// float model on 12 others as lm eval --ref does: the default must stay
// below 0.6 of rtn's mean KL and beat AutoAWQ's schedule, which must
// stay below 0.7. (Measured: 0.544 and 0.640, the default 0.510 with the
// quantized hidden states in float32 rather than float16; on
// bench/RESULTS.md's held-out sets, from a 56,000-character calibration
// stream, 0.46–0.48 and 0.61–0.66 over calibration seeds. On these
// stories GPTQ's default measures 0.48, TestGPTQDefaultOnStories.)
func TestAWQOnStories(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: about 10 s")
	}
	kl := storiesKL(t, []string{"rtn", "awq", "awq-autoawq"}, func(name string, opt *Options) bool {
		opt.Method = AWQ
		if name == "awq-autoawq" {
			opt.Asymmetric = Off
		}
		return name == "awq"
	})
	if a := kl["awq"]; !(a < 0.6*kl["rtn"]) || !(a < kl["awq-autoawq"]) || !(kl["awq-autoawq"] < 0.7*kl["rtn"]) {
		t.Errorf("mean KL: awq %g, on AutoAWQ's schedule %g, rtn %g: want awq below 0.6·rtn and below AutoAWQ's schedule, that below 0.7·rtn", a, kl["awq-autoawq"], kl["rtn"])
	}
}

// storiesKL quantizes stories260K at int4 group 32 once per name (rtn
// for "rtn"; otherwise as set, on 32 × 128 tokens of 24 stories the
// model generated from seeds 300…) and returns each one's mean KL from
// the float model on 12 other stories (seeds 400…), as lm eval --ref
// computes it. Each run must report no warnings and the float target
// as set says it should run.
func storiesKL(t *testing.T, names []string, set func(name string, opt *Options) (floatTarget bool)) map[string]float64 {
	t.Helper()
	b := cpu.New()
	dir := t.TempDir()
	ref, calib, heldout := storiesText(t, dir, 300, 24, 400, 12)
	var models []lmeval.NamedModel
	for _, name := range names {
		opt := Options{Input: stories, Output: filepath.Join(dir, name), Format: plan.CompressedTensors, Scheme: int4g32(t), Method: RTN}
		want := false
		if name != "rtn" {
			want = set(name, &opt)
			opt.Calib = CalibOptions{Path: calib, Samples: 32, SeqLen: 128, Seed: 1}
		}
		rep, err := Run(context.Background(), opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rep.Calibration != nil {
			t.Logf("%s: calibration windows cover %d distinct tokens", name, rep.Calibration.Distinct)
		}
		if len(rep.Warnings) != 0 || rep.Asymmetric != want {
			t.Errorf("%s: warnings %v, asymmetric %v", name, rep.Warnings, rep.Asymmetric)
		}
		models = append(models, openNamed(t, b, name, opt.Output))
	}
	kl := meanKLs(t, ref, models, heldout)
	for name, v := range kl {
		t.Logf("%s: mean KL %.3f of rtn's", name, v/kl["rtn"])
	}
	return kl
}

// openNamed opens the checkpoint at path on b as the model called name
// (closed when the test ends).
func openNamed(t *testing.T, b backend.Backend, name, path string) lmeval.NamedModel {
	t.Helper()
	q, err := lmeval.Open(b, path, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return lmeval.NamedModel{Name: name, Model: q.Model}
}

// meanKLs scores models on text against ref (as lm eval --ref does, at a
// context of 128) and returns each one's mean KL from ref, logging its
// perplexity and top-1 agreement.
func meanKLs(t *testing.T, ref *lmeval.Loaded, models []lmeval.NamedModel, text string) map[string]float64 {
	t.Helper()
	er, err := lmeval.Eval(context.Background(), lmeval.EvalOptions{Models: models, Ref: &lmeval.NamedModel{Name: "float", Model: ref.Model},
		Text: text, Tokenizer: ref.Tokenizer, Ctx: 128})
	if err != nil {
		t.Fatal(err)
	}
	kl := map[string]float64{}
	for _, m := range er.Models {
		if m.KL != nil {
			kl[m.Name] = m.KL.Mean
			t.Logf("%s: perplexity %.4f, mean KL %.5f, top-1 %.3f", m.Name, m.Perplexity, m.KL.Mean, m.KL.Top1)
		}
	}
	return kl
}
