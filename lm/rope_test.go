package lm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/gguf"
)

// The references below transcribe transformers' modeling_rope_utils.py
// (_compute_linear_scaling_rope_parameters, _compute_dynamic_ntk_parameters,
// _compute_yarn_parameters) in float64, step for step, sharing no code with
// lm/rope.go.

// defaultInvFreq is 1/base^(arange(0, dim, 2)/dim).
func defaultInvFreq(base float64, dim int) []float64 {
	out := make([]float64, dim/2)
	for i := range out {
		out[i] = 1 / math.Pow(base, float64(2*i)/float64(dim))
	}
	return out
}

// linearInvFreq is inv_freq /= factor.
func linearInvFreq(base float64, dim int, factor float64) []float64 {
	out := defaultInvFreq(base, dim)
	for i := range out {
		out[i] /= factor
	}
	return out
}

// dynamicInvFreq: seq_len defaults to max_position_embeddings, and base =
// base * ((factor * seq_len / max_position_embeddings) - (factor - 1)) **
// (dim / (dim - 2)).
func dynamicInvFreq(base float64, dim int, factor float64, maxPos, seqLen int) []float64 {
	if seqLen <= maxPos {
		seqLen = maxPos
	}
	base = base * math.Pow(factor*float64(seqLen)/float64(maxPos)-(factor-1), float64(dim)/float64(dim-2))
	return defaultInvFreq(base, dim)
}

// yarnRef holds _compute_yarn_parameters' inputs (nil pointers are keys
// absent from rope_scaling).
type yarnRef struct {
	base                 float64
	dim                  int
	factor               float64
	orig                 int
	attentionFactor      *float64
	mscale, mscaleAllDim *float64
	betaFast, betaSlow   float64 // 0: absent
	truncate             bool
}

// yarnInvFreq returns (inv_freq, attention_factor).
func yarnInvFreq(y yarnRef) ([]float64, float64) {
	getMscale := func(scale, mscale float64) float64 {
		if scale <= 1 {
			return 1
		}
		return 0.1*mscale*math.Log(scale) + 1
	}
	var attention float64
	switch {
	case y.attentionFactor != nil:
		attention = *y.attentionFactor
	case y.mscale != nil && *y.mscale != 0 && y.mscaleAllDim != nil && *y.mscaleAllDim != 0:
		attention = getMscale(y.factor, *y.mscale) / getMscale(y.factor, *y.mscaleAllDim)
	default:
		attention = getMscale(y.factor, 1)
	}
	betaFast, betaSlow := y.betaFast, y.betaSlow
	if betaFast == 0 {
		betaFast = 32
	}
	if betaSlow == 0 {
		betaSlow = 1
	}
	findCorrectionDim := func(numRotations float64) float64 {
		return (float64(y.dim) * math.Log(float64(y.orig)/(numRotations*2*math.Pi))) / (2 * math.Log(y.base))
	}
	low, high := findCorrectionDim(betaFast), findCorrectionDim(betaSlow)
	if y.truncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = math.Max(low, 0), math.Min(high, float64(y.dim-1))
	if low == high {
		high += 0.001
	}
	out := make([]float64, y.dim/2)
	for i := range out {
		posFreq := math.Pow(y.base, float64(2*i)/float64(y.dim))
		extrapolation := 1 / posFreq
		interpolation := 1 / (y.factor * posFreq)
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		extrapolationFactor := 1 - ramp
		out[i] = interpolation*(1-extrapolationFactor) + extrapolation*extrapolationFactor
	}
	return out, attention
}

func ptr(v float64) *float64 { return &v }

// compareFreqs checks got against want to a relative 1e-6 (float32 steps
// against float64 ones).
func compareFreqs(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frequencies, want %d", what, len(got), len(want))
	}
	for i := range want {
		if e := math.Abs(float64(got[i])-want[i]) / want[i]; !(e <= 1e-6) {
			t.Errorf("%s: frequency %d is %g, transformers' %g (relative error %.2g)", what, i, got[i], want[i], e)
		}
	}
}

// TestYarnFrequencies holds Config.ropeTable for yarn to the transcription,
// on Qwen2.5's long-context setting and on cases covering the defaults,
// truncate false, beta_fast/beta_slow, attention_factor and mscale /
// mscale_all_dim; each covers the three bands (pure extrapolation,
// the ramp, pure interpolation).
func TestYarnFrequencies(t *testing.T) {
	for _, y := range []yarnRef{
		{base: 1e6, dim: 128, factor: 4, orig: 32768, truncate: true},
		{base: 10000, dim: 64, factor: 8, orig: 4096, truncate: false},
		{base: 10000, dim: 16, factor: 4, orig: 64, truncate: true, betaFast: 8, betaSlow: 2},
		{base: 500000, dim: 128, factor: 16, orig: 8192, truncate: true, attentionFactor: ptr(0.8)},
		{base: 10000, dim: 128, factor: 40, orig: 4096, truncate: true, mscale: ptr(1), mscaleAllDim: ptr(0.707)},
	} {
		name := fmt.Sprintf("base%g_d%d_factor%g_orig%d_trunc%v", y.base, y.dim, y.factor, y.orig, y.truncate)
		t.Run(name, func(t *testing.T) {
			r := RopeScaling{Type: "yarn", Factor: y.factor, Context: y.orig, BetaFast: y.betaFast, BetaSlow: y.betaSlow, NoTruncate: !y.truncate}
			switch {
			case y.attentionFactor != nil:
				r.AttnFactor = *y.attentionFactor
			case y.mscale != nil:
				r.AttnFactor = yarnMscale(y.factor, *y.mscale) / yarnMscale(y.factor, *y.mscaleAllDim)
			}
			c := Config{HeadDim: y.dim, RopeTheta: y.base, Rope: r}
			got, scale, err := c.ropeTable(0)
			if err != nil {
				t.Fatal(err)
			}
			want, attention := yarnInvFreq(y)
			compareFreqs(t, "yarn", got, want)
			if e := math.Abs(float64(scale)-attention) / attention; e > 1e-7 {
				t.Errorf("attention factor %g, transformers' %g", scale, attention)
			}
			var extrap, ramp, interp bool
			for i, f := range want {
				switch q := f / defaultInvFreq(y.base, y.dim)[i]; {
				case q == 1:
					extrap = true
				case math.Abs(q*y.factor-1) < 1e-12:
					interp = true
				default:
					ramp = true
				}
			}
			if !extrap || !ramp || !interp {
				t.Errorf("bands: extrapolation %v ramp %v interpolation %v; the case means to cover all three", extrap, ramp, interp)
			}
		})
	}
}

// TestLinearDynamicFrequencies holds ropeTable for linear and dynamic NTK
// to the transcriptions, dynamic below, at and past max_position_embeddings.
func TestLinearDynamicFrequencies(t *testing.T) {
	c := Config{HeadDim: 64, RopeTheta: 10000, Rope: RopeScaling{Type: "linear", Factor: 4}}
	got, scale, err := c.ropeTable(0)
	if err != nil || scale != 0 {
		t.Fatal(err, scale)
	}
	compareFreqs(t, "linear", got, linearInvFreq(10000, 64, 4))
	c.Rope = RopeScaling{Type: "dynamic", Factor: 2, Context: 2048}
	for _, seq := range []int{1, 2048, 2049, 5000, 100000} {
		got, _, err := c.ropeTable(seq)
		if err != nil {
			t.Fatal(err)
		}
		compareFreqs(t, fmt.Sprintf("dynamic at %d", seq), got, dynamicInvFreq(10000, 64, 2, 2048, seq))
	}
}

// TestLoadRopeScalings loads random checkpoints with rope_scaling linear,
// dynamic and yarn and runs them past the trained context against the
// float64 forward with the transcribed frequencies (and YaRN's cos/sin
// scale), checking that each scaling changes the logits there. Dynamic
// NTK is checked at once (one forward pass, transformers' frequencies of
// the whole length) and token by token (each step's frequencies of its own
// length, the cache keeping earlier keys' rotations, as transformers'
// generation does).
func TestLoadRopeScalings(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 2))
	c := Config{Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 41,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
	const ctx = 24
	tokens := randomTokens(r, ctx+14, c.Vocab)
	for _, tc := range []struct {
		name    string
		scaling map[string]any
		opts    naiveOptions
		dynamic bool
	}{
		{"linear", map[string]any{"type": "linear", "factor": 3.0}, naiveOptions{freqs: constFreqs(linearInvFreq(c.RopeTheta, c.HeadDim, 3))}, false},
		{"dynamic", map[string]any{"rope_type": "dynamic", "factor": 4.0},
			naiveOptions{freqs: constFreqs(dynamicInvFreq(c.RopeTheta, c.HeadDim, 4, ctx, len(tokens)))}, true},
		{"yarn", map[string]any{"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": ctx, "beta_fast": 16.0},
			yarnOptions(yarnRef{base: c.RopeTheta, dim: c.HeadDim, factor: 8, orig: ctx, betaFast: 16, truncate: true}), false},
		{"yarn-attention-factor", map[string]any{"rope_type": "yarn", "factor": 4.0, "attention_factor": 1.5, "truncate": false},
			yarnOptions(yarnRef{base: c.RopeTheta, dim: c.HeadDim, factor: 4, orig: ctx, attentionFactor: ptr(1.5)}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := randomModel(r, c, false, false)
			cfg := hfConfig("LlamaForCausalLM", "llama", c, false)
			cfg["max_position_embeddings"] = ctx
			cfg["rope_scaling"] = tc.scaling
			m, err := LoadHF(cpu.New(), writeHF(t, cfg, c, w))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			t.Logf("Rope %+v", m.Config.Rope)
			want := naiveForwardWith(c, w, tokens, tc.opts)
			all, err := m.Forward(m.NewCache(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			checkLogits(t, "prompt at once", all, want, 0)
			if tc.dynamic {
				perStep := naiveOptions{freqs: func(pos int) []float64 {
					return dynamicInvFreq(c.RopeTheta, c.HeadDim, 4, ctx, pos+1)
				}}
				checkTokenByToken(t, m, naiveForwardWith(c, w, tokens, perStep), tokens)
			} else {
				checkAgainst(t, m, want, tokens)
			}
			if d := maxLastDiff(want, naiveForward(c, w, tokens)); d < 1e-2 {
				t.Errorf("the scaling changes the last logits by only %g: the test does not see it", d)
			}
		})
	}
}

func constFreqs(f []float64) func(int) []float64 { return func(int) []float64 { return f } }

func yarnOptions(y yarnRef) naiveOptions {
	f, a := yarnInvFreq(y)
	return naiveOptions{freqs: constFreqs(f), mscale: a}
}

// checkLogits compares logits of tokens from t0 on with want.
func checkLogits(t *testing.T, how string, got []float32, want [][]float64, t0 int) {
	t.Helper()
	V := len(want[0])
	worst, scale := 0.0, 0.0
	for i, g := range got {
		wv := want[t0+i/V][i%V]
		worst = math.Max(worst, math.Abs(float64(g)-wv))
		scale = math.Max(scale, math.Abs(wv))
	}
	t.Logf("%s: max |logit - float64| = %.3g (logits up to %.3g)", how, worst, scale)
	if worst > 1e-4*math.Max(1, scale) {
		t.Errorf("%s: max logit difference %g exceeds float32 tolerance", how, worst)
	}
}

// TestLoadGGUFRopeScaling loads GGUF files with rope.scaling.type linear
// and yarn (as convert_hf_to_gguf.py writes them) against the float64
// forward with transformers' frequencies: linear's factor, YaRN's with
// llama.cpp's attention factor get_mscale(factor)·attn_factor. longrope is
// refused.
func TestLoadGGUFRopeScaling(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 3))
	c := Config{Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 41,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: -1, EOS: -1}
	const ctx = 24
	w := randomModel(r, c, true, false)
	tokens := randomTokens(r, ctx+10, c.Vocab)
	key := func(k string, v any) gguf.KV { return gguf.KV{Key: "llama.rope.scaling." + k, Value: v} }
	yarn := yarnOptions(yarnRef{base: c.RopeTheta, dim: c.HeadDim, factor: 4, orig: ctx, truncate: true})
	yarn.mscale *= 1.25
	for _, tc := range []struct {
		name string
		meta []gguf.KV
		opts naiveOptions
	}{
		{"linear", []gguf.KV{key("type", "linear"), key("factor", float32(2))}, naiveOptions{freqs: constFreqs(linearInvFreq(c.RopeTheta, c.HeadDim, 2))}},
		{"yarn", []gguf.KV{key("type", "yarn"), key("factor", float32(4)), key("original_context_length", uint32(ctx)), key("attn_factor", float32(1.25))}, yarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadGGUF(cpu.New(), writeGGUF(t, c, w, nil, tc.meta...))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			checkAgainst(t, m, naiveForwardWith(c, w, tokens, tc.opts), tokens)
		})
	}
	_, err := LoadGGUF(cpu.New(), writeGGUF(t, c, w, nil, key("type", "longrope")))
	if err == nil || !strings.Contains(err.Error(), `"longrope"`) {
		t.Errorf("rope.scaling.type longrope: %v", err)
	}
}
