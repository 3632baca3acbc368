package lm

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/llamacpp"
)

// RopeScaling is a rope_scaling that stretches the rotary frequencies past
// the context a model was trained on, beyond what Config.RopeFactors
// expresses (Llama 3's "llama3", llama.cpp's rope_freqs). The zero value is
// none. Each type computes what transformers' modeling_rope_utils computes
// for it (rope_init_fn, then cos and sin multiplied by attention_scaling):
//
//   - "linear" (position interpolation): every frequency divided by Factor,
//     in float32 as `inv_freq /= factor`.
//   - "dynamic" (dynamic NTK): for a sequence of seqLen > Context positions
//     the base becomes θ·(Factor·seqLen/Context − (Factor−1))^(d/(d−2)),
//     and the frequencies are the default ones of that base; up to Context
//     they are the default ones. See Model.Forward for the KV cache.
//   - "yarn": each frequency blends θ^(-2i/d) (extrapolation) and
//     θ^(-2i/d)/Factor (interpolation) by a linear ramp over the dimension
//     range whose wavelengths turn BetaFast to BetaSlow times within
//     Context (original_max_position_embeddings), and cos and sin are
//     multiplied by the attention factor (Rotary.Scale).
//
// "longrope" (or "su") is refused where it is read.
type RopeScaling struct {
	Type   string  // "", "linear", "dynamic" or "yarn"
	Factor float64 // factor
	// Context is, for dynamic, max_position_embeddings, the length past
	// which the base grows; for yarn, original_max_position_embeddings.
	Context int
	// YaRN's beta_fast and beta_slow; 0 means transformers' defaults, 32
	// and 1.
	BetaFast, BetaSlow float64
	// AttnFactor is YaRN's attention factor, multiplying cos and sin; 0
	// means transformers' default 0.1·ln(Factor)+1 (1 when Factor ≤ 1).
	AttnFactor float64
	// NoTruncate is YaRN's truncate false: the correction range keeps its
	// fractional ends instead of being widened to whole dimensions.
	NoTruncate bool
}

// validate checks r against c.
func (r RopeScaling) validate(c Config) error {
	if r.Type == "" {
		return nil
	}
	if c.RopeFactors != nil {
		return fmt.Errorf("lm: rope scaling %q together with RoPE frequency factors (llama3 / rope_freqs) is not supported", r.Type)
	}
	if !(r.Factor > 0) || math.IsInf(r.Factor, 0) {
		return fmt.Errorf("lm: rope scaling %q: factor %g is not positive and finite", r.Type, r.Factor)
	}
	switch r.Type {
	case "linear":
	case "dynamic":
		if c.HeadDim <= 2 {
			return fmt.Errorf("lm: dynamic rope scaling needs head_dim > 2 (its exponent is d/(d-2)); head_dim is %d", c.HeadDim)
		}
		if r.Context <= 0 {
			return fmt.Errorf("lm: dynamic rope scaling without max_position_embeddings")
		}
	case "yarn":
		if r.Context <= 1 {
			return fmt.Errorf("lm: yarn rope scaling: original_max_position_embeddings %d is not above 1", r.Context)
		}
		for _, v := range []float64{r.BetaFast, r.BetaSlow, r.AttnFactor} {
			if v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return fmt.Errorf("lm: yarn rope scaling: beta_fast %g, beta_slow %g or attention factor %g is not positive and finite", r.BetaFast, r.BetaSlow, r.AttnFactor)
			}
		}
	default:
		return fmt.Errorf("lm: rope scaling %q is not supported (linear, dynamic, yarn and llama3 are)", r.Type)
	}
	return nil
}

// validateExtensions checks the fields of Config beyond the base Llama:
// the rope scaling and the sliding window.
func (c Config) validateExtensions() error {
	if err := c.Rope.validate(c); err != nil {
		return err
	}
	switch {
	case c.SlidingWindow < 0:
		return fmt.Errorf("lm: sliding window %d is negative", c.SlidingWindow)
	case c.WindowLayers != nil && len(c.WindowLayers) != c.Layers:
		return fmt.Errorf("lm: %d sliding-window layer flags for %d layers", len(c.WindowLayers), c.Layers)
	}
	return nil
}

// window is the attention window of layer li, 0 for none.
func (c Config) window(li int) int {
	if c.SlidingWindow > 0 && (c.WindowLayers == nil || c.WindowLayers[li]) {
		return c.SlidingWindow
	}
	return 0
}

// ropeTable returns the inverse frequencies and the cos/sin scale of a
// forward pass whose sequence reaches seqLen positions (only dynamic NTK
// depends on seqLen).
func (c Config) ropeTable(seqLen int) (freqs []float32, scale float32, err error) {
	d, theta := c.HeadDim, float32(c.RopeTheta)
	r := c.Rope
	switch r.Type {
	case "":
		freqs, err = backend.RoPEFreqs(theta, d, c.RopeFactors)
	case "linear":
		f := make([]float32, d/2)
		for i := range f {
			f[i] = float32(r.Factor)
		}
		freqs, err = backend.RoPEFreqs(theta, d, f)
	case "dynamic":
		if seqLen > r.Context {
			theta = float32(dynamicBase(c.RopeTheta, r.Factor, seqLen, r.Context, d))
		}
		freqs, err = backend.RoPEFreqs(theta, d, nil)
	case "yarn":
		freqs, scale = yarnFreqs(theta, d, r)
	default:
		err = fmt.Errorf("rope scaling %q is not supported", r.Type)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("lm: %w", err)
	}
	return freqs, scale, nil
}

// dynamicBase is dynamic NTK's base for seqLen positions, in float64 as
// transformers' _compute_dynamic_ntk_parameters computes it in Python.
func dynamicBase(theta, factor float64, seqLen, maxPos, d int) float64 {
	return theta * math.Pow(factor*float64(seqLen)/float64(maxPos)-(factor-1), float64(d)/float64(d-2))
}

// yarnMscale is transformers' get_mscale(scale, mscale).
func yarnMscale(scale, mscale float64) float64 {
	if scale <= 1 {
		return 1
	}
	return 0.1*mscale*math.Log(scale) + 1
}

// yarnFreqs is transformers' _compute_yarn_parameters in its precisions:
// the correction range in float64 (Python), the frequencies, the ramp and
// the blend in float32 (torch), and the attention factor.
func yarnFreqs(theta float32, d int, r RopeScaling) ([]float32, float32) {
	betaFast, betaSlow := r.BetaFast, r.BetaSlow
	if betaFast == 0 {
		betaFast = 32
	}
	if betaSlow == 0 {
		betaSlow = 1
	}
	base := float64(theta)
	corr := func(rot float64) float64 {
		return float64(d) * math.Log(float64(r.Context)/(rot*2*math.Pi)) / (2 * math.Log(base))
	}
	low, high := corr(betaFast), corr(betaSlow)
	if !r.NoTruncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = max(low, 0), min(high, float64(d-1))
	if low == high {
		high += 0.001
	}
	span := float32(high - low)
	factor := float32(r.Factor)
	freqs := make([]float32, d/2)
	for i := range freqs {
		pos := float32(math.Pow(float64(theta), float64(float32(2*i)/float32(d))))
		extrap := 1 / pos
		interp := 1 / (factor * pos)
		ramp := (float32(i) - float32(low)) / span
		ramp = min(max(ramp, 0), 1)
		extrapFactor := 1 - ramp
		freqs[i] = float32(interp*(1-extrapFactor)) + float32(extrap*extrapFactor)
	}
	attn := r.AttnFactor
	if attn == 0 {
		attn = yarnMscale(r.Factor, 1)
	}
	return freqs, float32(attn)
}

// ropeFromHyper turns a config.json's rope_scaling into RopeFactors (for
// llama3) or a RopeScaling, refusing what lm cannot run.
func ropeFromHyper(h *llamacpp.Hyper) ([]float32, RopeScaling, error) {
	r := h.Rope
	switch r.Type {
	case "":
		return nil, RopeScaling{}, nil
	case "llama3":
		return llamacpp.Llama3RopeFactors(h), RopeScaling{}, nil
	case "linear":
		return nil, RopeScaling{Type: "linear", Factor: r.Factor}, nil
	case "dynamic":
		return nil, RopeScaling{Type: "dynamic", Factor: r.Factor, Context: h.Context}, nil
	case "yarn":
		s := RopeScaling{Type: "yarn", Factor: r.Factor, Context: r.OrigContext, NoTruncate: r.YarnNoTruncate}
		// transformers reads beta_fast/beta_slow with `or`: 0 is the default.
		if !math.IsNaN(r.YarnBetaFast) {
			s.BetaFast = r.YarnBetaFast
		}
		if !math.IsNaN(r.YarnBetaSlow) {
			s.BetaSlow = r.YarnBetaSlow
		}
		ms, msAll := r.YarnMscale, r.YarnMscaleAllDim
		switch {
		case !math.IsNaN(r.YarnAttnFactor):
			s.AttnFactor = r.YarnAttnFactor
		case !math.IsNaN(ms) && ms != 0 && !math.IsNaN(msAll) && msAll != 0:
			s.AttnFactor = yarnMscale(r.Factor, ms) / yarnMscale(r.Factor, msAll)
		}
		if !math.IsNaN(r.YarnExtFactor) && r.YarnExtFactor != 1 {
			return nil, RopeScaling{}, fmt.Errorf("yarn extrapolation_factor %g: transformers does not read it, llama.cpp does; refusing rather than guessing", r.YarnExtFactor)
		}
		return nil, s, nil
	}
	return nil, RopeScaling{}, fmt.Errorf("rope_scaling %q is not supported (linear, dynamic, yarn and llama3 are)", r.Type)
}

// ggufRope reads a GGUF file's rope scaling keys of architecture arch
// (ARCH.rope.scaling.type, .factor, .original_context_length, .attn_factor,
// .yarn_beta_fast, .yarn_beta_slow) as llama.cpp's llama and qwen2 load
// them: linear divides every frequency by factor; yarn blends as
// transformers does, with the original context (default context, the
// file's context_length) and cos and sin multiplied by get_mscale(factor)
// times attn_factor (default 1), which is what llama.cpp's ggml_rope_yarn
// ends up applying. llama.cpp itself reads the yarn_beta keys only for some
// architectures and uses 32 and 1 for llama and qwen2; they are read here
// because a converter that writes them means them (transformers reads
// beta_fast and beta_slow). longrope and unknown types are refused.
func ggufRope(f *gguf.File, arch, path string, context int) (RopeScaling, error) {
	typ, _ := f.String(arch + ".rope.scaling.type")
	md := f.Metadata()
	flt := func(key string, def float64) float64 {
		if v, ok := md.Float32(arch + ".rope.scaling." + key); ok {
			return float64(v)
		}
		return def
	}
	factor := flt("factor", 0)
	if factor == 0 {
		// llama.cpp's older key.
		if v, ok := md.Float32(arch + ".rope.scale_linear"); ok {
			factor = float64(v)
		}
	}
	switch typ {
	case "", "none":
		return RopeScaling{}, nil
	case "linear":
		if factor == 0 || factor == 1 {
			return RopeScaling{}, nil // llama.cpp: no factor is scale 1
		}
		return RopeScaling{Type: "linear", Factor: factor}, nil
	case "yarn":
		if factor == 0 {
			return RopeScaling{}, fmt.Errorf("lm: %s: rope scaling yarn without %s.rope.scaling.factor", path, arch)
		}
		orig := context
		if v, ok := f.Int(arch + ".rope.scaling.original_context_length"); ok {
			orig = int(v)
		}
		if _, ok := md.Float32(arch + ".rope.scaling.yarn_log_multiplier"); ok {
			return RopeScaling{}, fmt.Errorf("lm: %s: yarn_log_multiplier (DeepSeek's mscale_all_dim) is not supported", path)
		}
		return RopeScaling{Type: "yarn", Factor: factor, Context: orig,
			BetaFast: flt("yarn_beta_fast", 32), BetaSlow: flt("yarn_beta_slow", 1),
			AttnFactor: yarnMscale(factor, 1) * flt("attn_factor", 1)}, nil
	}
	return RopeScaling{}, fmt.Errorf("lm: %s: rope scaling %q is not supported (linear, yarn and rope_freqs are)", path, typ)
}
