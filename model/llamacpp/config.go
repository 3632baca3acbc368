package llamacpp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Architectures are the config.json architectures llama.cpp loads as
// "llama" and this package converts, with their model_type.
var Architectures = map[string]string{
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "mistral",
}

// Hyper are the hyperparameters of a Llama-family checkpoint, read from its
// config.json. Keys that config.json may leave out take the defaults of
// transformers' LlamaConfig (MistralConfig for model_type mistral), as
// convert_hf_to_gguf.py sees them through AutoConfig.
type Hyper struct {
	Architecture string // architectures[0]: LlamaForCausalLM
	ModelType    string // llama, mistral, or qwen2 (ParseOptions.Qwen2)
	NameOrPath   string // _name_or_path, "" if absent

	Hidden       int // hidden_size
	Intermediate int // intermediate_size
	Layers       int // num_hidden_layers
	Heads        int // num_attention_heads
	KVHeads      int // num_key_value_heads (default Heads)
	HeadDim      int // head_dim (default Hidden/Heads)
	HasHeadDim   bool
	Vocab        int     // vocab_size
	Context      int     // max_position_embeddings
	RMSNormEps   float64 // rms_norm_eps
	RopeTheta    float64 // rope_theta
	Rope         RopeScaling
	Tied         bool // tie_word_embeddings
	AttnBias     bool // attention_bias: q, k, v and o projections have biases
	MLPBias      bool // mlp_bias: gate, up and down projections have biases
	// QKVBias is set for qwen2, whose q, k and v projections (not o) have
	// biases.
	QKVBias bool
	// SlidingWindow is the attention window of the layers WindowLayers
	// names, 0 for none: Mistral's sliding_window (MistralConfig's
	// default 4096 where config.json leaves it out, none where it is
	// null), Qwen2's sliding_window where use_sliding_window is true.
	// llama.cpp's llama architecture has no window: the conversion
	// ignores it, as convert_hf_to_gguf.py does.
	SlidingWindow int
	// WindowLayers says which layers use SlidingWindow; nil means all.
	// Qwen2's are layer_types' "sliding_attention" layers, by default
	// those from max_window_layers on (Qwen2Config).
	WindowLayers []bool

	// BOS, EOS and Pad are bos_token_id, eos_token_id and pad_token_id,
	// -1 where absent or not a single id.
	BOS, EOS, Pad int
}

// RopeScaling is config.json's rope_scaling (rope_parameters in newer
// transformers), reduced to what llama.cpp carries for the llama
// architecture, and what transformers' dynamic NTK and YaRN read.
type RopeScaling struct {
	// Type is "" (none, or "default"), "linear", "yarn", "llama3", or
	// "dynamic" (ParseOptions.Dynamic).
	Type string
	// Factor is factor (linear, yarn, llama3).
	Factor float64
	// OrigContext is original_max_position_embeddings (yarn, llama3);
	// for yarn, max_position_embeddings where absent, as transformers
	// reads it.
	OrigContext int
	// LowFreqFactor and HighFreqFactor are llama3's low_freq_factor and
	// high_freq_factor.
	LowFreqFactor, HighFreqFactor float64
	// Yarn's optional parameters, NaN where absent: extrapolation_factor,
	// attention_factor (or attn_factor), beta_fast, beta_slow.
	YarnExtFactor, YarnAttnFactor, YarnBetaFast, YarnBetaSlow float64
	// YaRN's mscale and mscale_all_dim, NaN where absent: with both set
	// (and no attention_factor) transformers' attention factor is
	// get_mscale(factor, mscale)/get_mscale(factor, mscale_all_dim).
	YarnMscale, YarnMscaleAllDim float64
	// YarnNoTruncate is YaRN's truncate false: the correction range is
	// not rounded to whole dimensions (transformers' default rounds).
	YarnNoTruncate bool
}

// jsonObject is a JSON object whose values are decoded on demand.
type jsonObject map[string]json.RawMessage

// parseObject parses data, the contents of file, as one JSON object.
func parseObject(file string, data []byte) (jsonObject, error) {
	var obj jsonObject
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		var typeErr *json.UnmarshalTypeError
		if err == nil || errors.As(err, &typeErr) {
			err = fmt.Errorf("not a JSON object")
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the JSON object", file)
	}
	return obj, nil
}

// present reports whether key is there and not null.
func (o jsonObject) present(key string) bool {
	v, ok := o[key]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// decode decodes key into v; ok is false where key is absent or null.
func (o jsonObject) decode(key string, v any) (ok bool, err error) {
	if !o.present(key) {
		return false, nil
	}
	if err := json.Unmarshal(o[key], v); err != nil {
		return true, fmt.Errorf("%s is %s, not a %s", key, clip(o[key]), kindOf(v))
	}
	return true, nil
}

func kindOf(v any) string {
	switch v.(type) {
	case *int:
		return "number"
	case *float64:
		return "number"
	case *bool:
		return "boolean"
	case *string:
		return "string"
	case *jsonObject:
		return "JSON object"
	}
	return "value of the expected type"
}

// clip shortens a JSON value for an error message.
func clip(v json.RawMessage) string {
	s := string(bytes.TrimSpace(v))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// intKey reads key as a positive integer (non-negative if zeroOK); def is
// returned where the key is absent, and a missing key with def < 0 is an
// error.
func (o jsonObject) intKey(key string, def int, zeroOK bool) (int, error) {
	var n float64
	ok, err := o.decode(key, &n)
	if err != nil {
		return 0, err
	}
	if !ok {
		if def < 0 {
			return 0, fmt.Errorf("%s is missing", key)
		}
		return def, nil
	}
	if n != math.Trunc(n) || n < 0 || (n == 0 && !zeroOK) || n > 1<<31-1 {
		return 0, fmt.Errorf("%s is %s, not a positive integer", key, clip(o[key]))
	}
	return int(n), nil
}

func (o jsonObject) floatKey(key string, def float64) (float64, error) {
	v := def
	if _, err := o.decode(key, &v); err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is %v", key, v)
	}
	return v, nil
}

func (o jsonObject) boolKey(key string, def bool) (bool, error) {
	v := def
	_, err := o.decode(key, &v)
	return v, err
}

// tokenID reads a single token id; -1 where absent, null or a list (some
// configs give several eos ids; the tokenizer files name the one to use).
func (o jsonObject) tokenID(key string) int {
	var n int
	if ok, err := o.decode(key, &n); !ok || err != nil || n < 0 {
		return -1
	}
	return n
}

// ParseConfig reads a config.json (data; file names it in errors) of a
// LlamaForCausalLM or MistralForCausalLM and checks that llama.cpp's llama
// architecture can carry it: the architecture, the sizes, head counts that
// divide, SiLU, a RoPE scaling llama.cpp implements for llama, no
// quantization and no nested text_config.
func ParseConfig(file string, data []byte) (*Hyper, error) {
	return ParseConfigWith(file, data, ParseOptions{})
}

// ParseOptions widen what ParseConfigWith accepts. The zero value is
// ParseConfig: what the conversion to llama.cpp's llama architecture takes.
type ParseOptions struct {
	// Qwen2 accepts Qwen2ForCausalLM (model_type qwen2), which llama.cpp
	// loads as its own qwen2 architecture, not as llama, so the conversion
	// refuses it; lm runs it. Its q, k and v projections have biases
	// (Hyper.QKVBias); with use_sliding_window, sliding_window,
	// max_window_layers and layer_types give Hyper.SlidingWindow and
	// Hyper.WindowLayers as Qwen2Config does. Defaults are Qwen2Config's: rms_norm_eps 1e-6,
	// max_position_embeddings 32768.
	Qwen2 bool
	// Dynamic accepts rope_scaling type "dynamic" (transformers' dynamic
	// NTK, whose frequencies depend on the sequence length), which
	// llama.cpp cannot carry, so the conversion refuses it; lm runs it.
	Dynamic bool
}

// ParseConfigWith is ParseConfig with options.
func ParseConfigWith(file string, data []byte, opts ParseOptions) (*Hyper, error) {
	obj, err := parseObject(file, data)
	if err != nil {
		return nil, err
	}
	h, err := parseHyper(obj, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return h, nil
}

func parseHyper(o jsonObject, opts ParseOptions) (*Hyper, error) {
	h := &Hyper{}
	var archs []string
	if ok, err := o.decode("architectures", &archs); err != nil {
		return nil, fmt.Errorf("architectures is %s, not a list of names", clip(o["architectures"]))
	} else if !ok || len(archs) == 0 {
		return nil, fmt.Errorf("architectures is missing: cannot tell which model this is (llama.cpp's llama architecture takes %s)", archList())
	}
	h.Architecture = archs[0]
	wantType, ok := Architectures[h.Architecture]
	if opts.Qwen2 && h.Architecture == "Qwen2ForCausalLM" {
		wantType, ok = "qwen2", true
	}
	if !ok {
		return nil, fmt.Errorf("architecture %s is not one this converter handles (it takes %s, which llama.cpp loads as llama)", h.Architecture, archList())
	}
	if _, err := o.decode("model_type", &h.ModelType); err != nil {
		return nil, err
	}
	if h.ModelType != wantType {
		return nil, fmt.Errorf("model_type is %q, but architecture %s has model_type %q", h.ModelType, h.Architecture, wantType)
	}
	if o.present("text_config") {
		return nil, fmt.Errorf("text_config: a multimodal checkpoint; only text-only %s checkpoints are converted", h.Architecture)
	}
	if o.present("quantization_config") {
		var q struct {
			Method string `json:"quant_method"`
		}
		json.Unmarshal(o["quantization_config"], &q)
		return nil, fmt.Errorf("quantization_config: the checkpoint is already quantized (%q); convert its unquantized (F32, F16 or BF16) weights", q.Method)
	}
	o.decode("_name_or_path", &h.NameOrPath)

	var errs []string
	need := func(p *int, key string, def int, zeroOK bool) {
		v, err := o.intKey(key, def, zeroOK)
		if err != nil {
			errs = append(errs, err.Error())
		}
		*p = v
	}
	need(&h.Hidden, "hidden_size", -1, false)
	need(&h.Intermediate, "intermediate_size", -1, false)
	need(&h.Layers, "num_hidden_layers", -1, false)
	need(&h.Heads, "num_attention_heads", -1, false)
	need(&h.Vocab, "vocab_size", -1, false)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	defContext := 2048
	switch h.ModelType {
	case "mistral":
		defContext = 4096 * 32
	case "qwen2":
		defContext = 32768
	}
	need(&h.KVHeads, "num_key_value_heads", h.Heads, false)
	h.HasHeadDim = o.present("head_dim")
	defHeadDim := 0
	if h.Hidden%h.Heads == 0 {
		defHeadDim = h.Hidden / h.Heads
	} else if !h.HasHeadDim {
		errs = append(errs, fmt.Sprintf("hidden_size %d is not a multiple of num_attention_heads %d (and head_dim is not given)", h.Hidden, h.Heads))
	}
	need(&h.HeadDim, "head_dim", defHeadDim, false)
	need(&h.Context, "max_position_embeddings", defContext, false)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if h.Heads%h.KVHeads != 0 {
		return nil, fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", h.Heads, h.KVHeads)
	}
	if h.HeadDim%2 != 0 {
		return nil, fmt.Errorf("head_dim %d is odd: RoPE rotates pairs of dimensions", h.HeadDim)
	}
	var err error
	if h.RMSNormEps, err = o.floatKey("rms_norm_eps", 1e-6); err != nil {
		return nil, err
	}
	if h.Tied, err = o.boolKey("tie_word_embeddings", false); err != nil {
		return nil, err
	}
	if h.ModelType == "qwen2" {
		// Qwen2Attention fixes the biases; attention_bias and mlp_bias
		// are not Qwen2Config keys.
		h.QKVBias = true
		if err := h.parseQwen2Window(o); err != nil {
			return nil, err
		}
	} else {
		if h.AttnBias, err = o.boolKey("attention_bias", false); err != nil {
			return nil, err
		}
		if h.MLPBias, err = o.boolKey("mlp_bias", false); err != nil {
			return nil, err
		}
	}
	act := "silu"
	if _, err := o.decode("hidden_act", &act); err != nil {
		return nil, err
	}
	if act != "silu" {
		return nil, fmt.Errorf("hidden_act is %q: llama.cpp's llama architecture computes SiLU", act)
	}
	if h.ModelType == "mistral" {
		// MistralConfig's sliding_window defaults to 4096; null is none.
		if _, ok := o["sliding_window"]; ok && !o.present("sliding_window") {
			h.SlidingWindow = 0
		} else if h.SlidingWindow, err = o.intKey("sliding_window", 4096, false); err != nil {
			return nil, err
		}
	}
	if err := h.parseRope(o, opts); err != nil {
		return nil, err
	}
	h.BOS, h.EOS, h.Pad = o.tokenID("bos_token_id"), o.tokenID("eos_token_id"), o.tokenID("pad_token_id")
	return h, nil
}

func archList() string {
	var names []string
	for a := range Architectures {
		names = append(names, a)
	}
	slices.Sort(names)
	return strings.Join(names, " and ")
}

// parseQwen2Window reads Qwen2's sliding-window keys as Qwen2Config does:
// sliding_window (default 4096) counts only with use_sliding_window, and
// the layers that use it are layer_types' "sliding_attention" ones, by
// default those from max_window_layers (default 28) on. layer_types that
// name sliding layers without a window are refused, as transformers'
// create_sliding_window_causal_mask refuses them.
func (h *Hyper) parseQwen2Window(o jsonObject) error {
	use, err := o.boolKey("use_sliding_window", false)
	if err != nil {
		return err
	}
	window := 0
	if _, set := o["sliding_window"]; use && (!set || o.present("sliding_window")) {
		if window, err = o.intKey("sliding_window", 4096, false); err != nil {
			return err
		}
	}
	maxWindow, err := o.intKey("max_window_layers", 28, true)
	if err != nil {
		return err
	}
	layers := make([]bool, h.Layers)
	var types []string
	if ok, err := o.decode("layer_types", &types); err != nil {
		return fmt.Errorf("layer_types is %s, not a list of names", clip(o["layer_types"]))
	} else if ok {
		if len(types) != h.Layers {
			return fmt.Errorf("layer_types has %d entries for %d layers", len(types), h.Layers)
		}
		for i, t := range types {
			switch t {
			case "full_attention":
			case "sliding_attention":
				layers[i] = true
			default:
				return fmt.Errorf("layer_types[%d] is %q, not full_attention or sliding_attention", i, t)
			}
		}
	} else {
		for i := range layers {
			layers[i] = window > 0 && i >= maxWindow
		}
	}
	sliding := slices.Contains(layers, true)
	if sliding && window == 0 {
		return fmt.Errorf("layer_types names sliding_attention layers, but there is no sliding_window (use_sliding_window is %v)", use)
	}
	if sliding {
		h.SlidingWindow, h.WindowLayers = window, layers
	}
	return nil
}

// parseRope reads rope_theta and rope_scaling (or rope_parameters).
func (h *Hyper) parseRope(o jsonObject, opts ParseOptions) error {
	key := "rope_scaling"
	if o.present("rope_parameters") {
		key = "rope_parameters"
	}
	var rp jsonObject
	if _, err := o.decode(key, &rp); err != nil {
		return err
	}
	var err error
	if h.RopeTheta, err = o.floatKey("rope_theta", 10000); err != nil {
		return err
	}
	if rp == nil {
		return nil
	}
	if !o.present("rope_theta") && rp.present("rope_theta") {
		if h.RopeTheta, err = rp.floatKey("rope_theta", 10000); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	var typ string
	if _, err := rp.decode("rope_type", &typ); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if typ == "" {
		if _, err := rp.decode("type", &typ); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	r := RopeScaling{YarnExtFactor: math.NaN(), YarnAttnFactor: math.NaN(), YarnBetaFast: math.NaN(), YarnBetaSlow: math.NaN(),
		YarnMscale: math.NaN(), YarnMscaleAllDim: math.NaN()}
	wrap := func(err error) error { return fmt.Errorf("%s (%s): %w", key, typ, err) }
	switch strings.ToLower(typ) {
	case "", "default":
		h.Rope = RopeScaling{}
		return nil
	case "linear":
		r.Type = "linear"
		if r.Factor, err = rp.floatKey("factor", math.NaN()); err != nil || math.IsNaN(r.Factor) {
			return wrap(fmt.Errorf("factor is missing"))
		}
	case "dynamic":
		if !opts.Dynamic {
			return fmt.Errorf("%s: RoPE scaling type \"dynamic\" (dynamic NTK, frequencies that change with the sequence length) cannot be carried into llama.cpp's llama architecture", key)
		}
		r.Type = "dynamic"
		if r.Factor, err = rp.floatKey("factor", math.NaN()); err != nil || math.IsNaN(r.Factor) {
			return wrap(fmt.Errorf("factor is missing"))
		}
	case "yarn":
		r.Type = "yarn"
		if r.Factor, err = rp.floatKey("factor", math.NaN()); err != nil || math.IsNaN(r.Factor) {
			return wrap(fmt.Errorf("factor is missing"))
		}
		if r.OrigContext, err = rp.intKey("original_max_position_embeddings", h.Context, false); err != nil {
			return wrap(err)
		}
		trunc, err := rp.boolKey("truncate", true)
		if err != nil {
			return wrap(err)
		}
		r.YarnNoTruncate = !trunc
		for _, f := range []struct {
			p    *float64
			keys []string
		}{{&r.YarnExtFactor, []string{"extrapolation_factor"}}, {&r.YarnAttnFactor, []string{"attention_factor", "attn_factor"}},
			{&r.YarnBetaFast, []string{"beta_fast"}}, {&r.YarnBetaSlow, []string{"beta_slow"}},
			{&r.YarnMscale, []string{"mscale"}}, {&r.YarnMscaleAllDim, []string{"mscale_all_dim"}}} {
			for _, k := range f.keys {
				if rp.present(k) {
					if *f.p, err = rp.floatKey(k, math.NaN()); err != nil {
						return wrap(err)
					}
					break
				}
			}
		}
	case "llama3":
		r.Type = "llama3"
		// convert_hf_to_gguf.py's defaults.
		if r.Factor, err = rp.floatKey("factor", 8); err != nil {
			return wrap(err)
		}
		if r.LowFreqFactor, err = rp.floatKey("low_freq_factor", 1); err != nil {
			return wrap(err)
		}
		if r.HighFreqFactor, err = rp.floatKey("high_freq_factor", 4); err != nil {
			return wrap(err)
		}
		if r.OrigContext, err = rp.intKey("original_max_position_embeddings", 8192, false); err != nil {
			return wrap(err)
		}
		if r.LowFreqFactor == r.HighFreqFactor {
			return wrap(fmt.Errorf("low_freq_factor equals high_freq_factor (%v)", r.LowFreqFactor))
		}
	case "longrope", "su":
		return fmt.Errorf("%s: RoPE scaling type %q (LongRoPE, Phi-3's short and long factors chosen by sequence length) is not supported (linear, yarn and llama3 are)", key, typ)
	default:
		return fmt.Errorf("%s: RoPE scaling type %q is not carried into llama.cpp's llama architecture by this converter (it carries linear, yarn and llama3)", key, typ)
	}
	h.Rope = r
	return nil
}
