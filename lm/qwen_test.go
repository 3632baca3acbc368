package lm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/llamacpp"
	"github.com/quantkit/quantkit/model/safetensors"
)

// llama3InvFreq transcribes transformers' _compute_llama3_parameters
// (modeling_rope_utils.py) in float64, step for step: the default inverse
// frequencies θ^(-2i/d), divided by factor where the wavelength exceeds
// original_max_position_embeddings/low_freq_factor, and smoothed between
// that and the unscaled frequency where it lies between the two bounds.
func llama3InvFreq(theta float64, d int, factor, low, high float64, orig int) []float64 {
	old := float64(orig)
	lowWavelen, highWavelen := old/low, old/high
	out := make([]float64, d/2)
	for i := range out {
		invFreq := 1 / math.Pow(theta, float64(2*i)/float64(d))
		wavelen := 2 * math.Pi / invFreq
		llama := invFreq
		if wavelen > lowWavelen {
			llama = invFreq / factor
		}
		smooth := (old/wavelen - low) / (high - low)
		smoothed := (1-smooth)*llama/factor + smooth*llama
		if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
			llama = smoothed
		}
		out[i] = llama
	}
	return out
}

// TestLlama3Frequencies holds llamacpp.Llama3RopeFactors through
// backend.RoPEFreqs to transformers' llama3 frequencies, for Llama 3.1's
// own parameters and for the small ones the forward test uses.
func TestLlama3Frequencies(t *testing.T) {
	for _, tc := range []struct {
		theta                      float64
		d                          int
		factor, low, high          float64
		orig                       int
		wantLow, wantMid, wantHigh bool
	}{
		{500000, 128, 8, 1, 4, 8192, true, true, true},
		{10000, 16, 8, 1, 4, 32, true, true, true},
		{1e6, 64, 32, 1, 32, 4096, true, true, true},
	} {
		h := &llamacpp.Hyper{HeadDim: tc.d, RopeTheta: tc.theta, Rope: llamacpp.RopeScaling{
			Type: "llama3", Factor: tc.factor, LowFreqFactor: tc.low, HighFreqFactor: tc.high, OrigContext: tc.orig}}
		got, err := backend.RoPEFreqs(float32(tc.theta), tc.d, llamacpp.Llama3RopeFactors(h))
		if err != nil {
			t.Fatal(err)
		}
		want := llama3InvFreq(tc.theta, tc.d, tc.factor, tc.low, tc.high, tc.orig)
		var low, mid, high bool
		for i := range want {
			plain := math.Pow(tc.theta, -float64(2*i)/float64(tc.d))
			switch r := want[i] / plain; {
			case r == 1:
				high = true
			case math.Abs(r-1/tc.factor) < 1e-12:
				low = true
			default:
				mid = true
			}
			if e := math.Abs(float64(got[i])-want[i]) / want[i]; e > 4e-7 {
				t.Errorf("θ %g d %d: frequency %d is %g, transformers' %g (relative error %.2g)", tc.theta, tc.d, i, got[i], want[i], e)
			}
		}
		if low != tc.wantLow || mid != tc.wantMid || high != tc.wantHigh {
			t.Errorf("θ %g d %d: bands low %v mid %v high %v, the test means to cover all three", tc.theta, tc.d, low, mid, high)
		}
	}
}

// writeHF writes config (as config.json) and w as a float32 safetensors
// checkpoint in Hugging Face's names into a new directory. o_proj gets no
// bias when oBias is false even if w has one.
func writeHF(t *testing.T, config map[string]any, c Config, w *Weights) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	add := func(name string, x []float32, shape ...int) {
		if x == nil {
			return
		}
		data := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: "F32", Shape: shape, Data: data})
	}
	H, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	add("model.embed_tokens.weight", w.Embed, c.Vocab, H)
	add("model.norm.weight", w.Norm, H)
	add("lm_head.weight", w.LMHead, c.Vocab, H)
	for i, l := range w.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", l.AttnNorm, H)
		add(p+"post_attention_layernorm.weight", l.MLPNorm, H)
		add(p+"self_attn.q_proj.weight", l.Q, q, H)
		add(p+"self_attn.k_proj.weight", l.K, kv, H)
		add(p+"self_attn.v_proj.weight", l.V, kv, H)
		add(p+"self_attn.o_proj.weight", l.O, H, q)
		add(p+"self_attn.q_proj.bias", l.QBias, q)
		add(p+"self_attn.k_proj.bias", l.KBias, kv)
		add(p+"self_attn.v_proj.bias", l.VBias, kv)
		add(p+"self_attn.o_proj.bias", l.OBias, H)
		add(p+"mlp.gate_proj.weight", l.Gate, ff, H)
		add(p+"mlp.up_proj.weight", l.Up, ff, H)
		add(p+"mlp.down_proj.weight", l.Down, H, ff)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hfConfig is a config.json for c.
func hfConfig(arch, modelType string, c Config, tied bool) map[string]any {
	return map[string]any{
		"architectures": []string{arch}, "model_type": modelType,
		"hidden_size": c.Hidden, "intermediate_size": c.Intermediate, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "head_dim": c.HeadDim,
		"vocab_size": c.Vocab, "rms_norm_eps": c.RMSNormEps, "rope_theta": c.RopeTheta,
		"tie_word_embeddings": tied, "hidden_act": "silu", "bos_token_id": c.BOS, "eos_token_id": c.EOS,
	}
}

// checkAgainst runs tokens through m at once and in two pieces through the
// cache and compares every logit with naiveForwardFreqs' float64 logits.
func checkAgainst(t *testing.T, m *Model, want [][]float64, tokens []int) {
	t.Helper()
	V := m.Config.Vocab
	check := func(how string, t0 int, got []float32) {
		t.Helper()
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
	all, err := m.Forward(m.NewCache(), tokens)
	if err != nil {
		t.Fatal(err)
	}
	check("prompt at once", 0, all)
	c := m.NewCache()
	split := len(tokens) - 3
	l, err := m.Forward(c, tokens[:split])
	if err != nil {
		t.Fatal(err)
	}
	check("first part", 0, l)
	l, err = m.Forward(c, tokens[split:])
	if err != nil {
		t.Fatal(err)
	}
	check("rest through the cache", split, l)
}

func randomTokens(r *rand.Rand, n, vocab int) []int {
	tokens := make([]int, n)
	for i := range tokens {
		tokens[i] = r.IntN(vocab)
	}
	return tokens
}

// TestLoadQwen2 writes random Qwen2ForCausalLM checkpoints (q, k and v
// biases, no o bias, a large rope_theta, the sliding-window keys with the
// window off; tied and untied) and checks LoadHF's logits against the
// float64 reference.
func TestLoadQwen2(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 1))
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprintf("tied%v", tied), func(t *testing.T) {
			c := Config{Hidden: 24, Intermediate: 40, Layers: 2, Heads: 6, KVHeads: 2, HeadDim: 4, Vocab: 45,
				RMSNormEps: 1e-6, RopeTheta: 1e6, BOS: -1, EOS: 7}
			w := randomModel(r, c, tied, true)
			for i := range w.Layers {
				w.Layers[i].OBias = nil
			}
			cfg := hfConfig("Qwen2ForCausalLM", "qwen2", c, tied)
			cfg["bos_token_id"] = nil
			cfg["use_sliding_window"], cfg["sliding_window"], cfg["max_window_layers"] = false, 4, 1
			cfg["max_position_embeddings"] = 32
			m, err := LoadHF(cpu.New(), writeHF(t, cfg, c, w))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := m.Config; got.Vocab != c.Vocab || got.RopeTheta != 1e6 || got.BOS != -1 || got.EOS != 7 || got.RopeFactors != nil {
				t.Errorf("config %+v", got)
			}
			if l := m.Weights.Layers[0]; l.QBias == nil || l.KBias == nil || l.VBias == nil || l.OBias != nil {
				t.Error("biases: want q, k and v, and no o")
			}
			if (m.Weights.LMHead == nil) != tied {
				t.Errorf("tied %v but lm_head loaded: %v", tied, m.Weights.LMHead != nil)
			}
			tokens := randomTokens(r, 11, c.Vocab)
			checkAgainst(t, m, naiveForward(c, w, tokens), tokens)
		})
	}
}

// TestLoadLlama3RopeScaling loads a random Llama-3-style checkpoint with
// rope_scaling llama3 whose three frequency bands are all populated and
// runs it past original_max_position_embeddings, against the float64
// reference with transformers' llama3 frequencies. It also checks that
// the scaling matters there: the unscaled reference differs.
func TestLoadLlama3RopeScaling(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 2))
	c := Config{Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 41,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
	const orig = 32
	w := randomModel(r, c, false, false)
	cfg := hfConfig("LlamaForCausalLM", "llama", c, false)
	cfg["max_position_embeddings"] = 8 * orig
	cfg["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
		"high_freq_factor": 4.0, "original_max_position_embeddings": orig}
	m, err := LoadHF(cpu.New(), writeHF(t, cfg, c, w))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Config.RopeFactors) != c.HeadDim/2 {
		t.Fatalf("RopeFactors %v", m.Config.RopeFactors)
	}
	tokens := randomTokens(r, orig+12, c.Vocab)
	inv := llama3InvFreq(c.RopeTheta, c.HeadDim, 8, 1, 4, orig)
	want := naiveForwardFreqs(c, w, tokens, inv)
	checkAgainst(t, m, want, tokens)

	plain := naiveForward(c, w, tokens)
	diff := 0.0
	for i := range plain[len(plain)-1] {
		diff = math.Max(diff, math.Abs(plain[len(plain)-1][i]-want[len(want)-1][i]))
	}
	t.Logf("unscaled RoPE moves the last logits by up to %.3g", diff)
	if diff < 1e-2 {
		t.Errorf("the llama3 scaling changes the last logits by only %g: the test does not see it", diff)
	}
}

// TestLoadHFRefuses checks the refusals: sliding_attention layers without
// a window, LongRoPE, an unknown rope_type, a model_type mismatch.
// ParseConfig, which the GGUF conversion uses, still refuses qwen2 and
// dynamic RoPE.
func TestLoadHFRefuses(t *testing.T) {
	c := Config{Hidden: 8, Intermediate: 8, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 4, Vocab: 5,
		RMSNormEps: 1e-6, RopeTheta: 1e6, BOS: -1, EOS: -1}
	w := randomModel(rand.New(rand.NewPCG(16, 3)), c, true, true)
	w.Layers[0].OBias = nil
	for _, tc := range []struct {
		name, arch, typ string
		edit            func(map[string]any)
		want            string
	}{
		{"sliding layers without a window", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) {
			m["use_sliding_window"], m["layer_types"] = false, []string{"sliding_attention"}
		}, "no sliding_window"},
		{"unknown layer type", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) {
			m["use_sliding_window"], m["layer_types"] = true, []string{"chunked_attention"}
		}, `"chunked_attention"`},
		{"unknown rope_type", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "ntk-by-parts", "factor": 2.0}
		}, `"ntk-by-parts"`},
		{"longrope", "LlamaForCausalLM", "llama", func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "longrope", "short_factor": []float64{1, 1}, "long_factor": []float64{2, 2}}
		}, `"longrope" (LongRoPE`},
		{"su", "LlamaForCausalLM", "llama", func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"type": "su", "short_factor": []float64{1, 1}, "long_factor": []float64{2, 2}}
		}, `"su" (LongRoPE`},
		{"dynamic on head_dim 2", "LlamaForCausalLM", "llama", func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "dynamic", "factor": 2.0}
			m["head_dim"] = 2
		}, "head_dim > 2"},
		{"qwen2 model_type mismatch", "Qwen2ForCausalLM", "llama", func(map[string]any) {}, "model_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hfConfig(tc.arch, tc.typ, c, true)
			tc.edit(cfg)
			m, err := LoadHF(cpu.New(), writeHF(t, cfg, c, w))
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %s", err, tc.want)
			}
		})
	}
	data, _ := json.Marshal(hfConfig("Qwen2ForCausalLM", "qwen2", c, true))
	if _, err := llamacpp.ParseConfig("config.json", data); err == nil {
		t.Error("ParseConfig (the GGUF conversion's) accepts qwen2")
	}
	if h, err := llamacpp.ParseConfigWith("config.json", data, llamacpp.ParseOptions{Qwen2: true}); err != nil || !h.QKVBias || h.AttnBias || h.Context != 32768 {
		t.Errorf("ParseConfigWith qwen2: %+v, %v", h, err)
	}
	cfg := hfConfig("LlamaForCausalLM", "llama", c, true)
	cfg["rope_scaling"] = map[string]any{"rope_type": "dynamic", "factor": 2.0}
	data, _ = json.Marshal(cfg)
	if _, err := llamacpp.ParseConfig("config.json", data); err == nil || !strings.Contains(err.Error(), `"dynamic"`) {
		t.Errorf("ParseConfig (the GGUF conversion's) on dynamic RoPE: %v", err)
	}
}

// TestSlidingWindowConfig checks which layers get which window from
// config.json, as transformers' MistralConfig and Qwen2Config decide.
func TestSlidingWindowConfig(t *testing.T) {
	c := Config{Hidden: 8, Intermediate: 8, Layers: 4, Heads: 2, KVHeads: 2, HeadDim: 4, Vocab: 5,
		RMSNormEps: 1e-6, RopeTheta: 1e6, BOS: -1, EOS: -1}
	for _, tc := range []struct {
		name, arch, typ string
		edit            func(map[string]any)
		want            []int // per layer
	}{
		{"mistral default 4096", "MistralForCausalLM", "mistral", func(map[string]any) {}, []int{4096, 4096, 4096, 4096}},
		{"mistral null", "MistralForCausalLM", "mistral", func(m map[string]any) { m["sliding_window"] = nil }, []int{0, 0, 0, 0}},
		{"mistral 3", "MistralForCausalLM", "mistral", func(m map[string]any) { m["sliding_window"] = 3 }, []int{3, 3, 3, 3}},
		{"llama none", "LlamaForCausalLM", "llama", func(m map[string]any) { m["sliding_window"] = 3 }, []int{0, 0, 0, 0}},
		{"qwen2 off", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) { m["sliding_window"], m["max_window_layers"] = 3, 1 }, []int{0, 0, 0, 0}},
		{"qwen2 max_window_layers", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) {
			m["use_sliding_window"], m["sliding_window"], m["max_window_layers"] = true, 3, 1
		}, []int{0, 3, 3, 3}},
		{"qwen2 default 28 layers", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) { m["use_sliding_window"] = true }, []int{0, 0, 0, 0}},
		{"qwen2 default window", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) {
			m["use_sliding_window"], m["max_window_layers"] = true, 2
		}, []int{0, 0, 4096, 4096}},
		{"qwen2 layer_types", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) {
			m["use_sliding_window"], m["sliding_window"], m["max_window_layers"] = true, 5, 0
			m["layer_types"] = []string{"sliding_attention", "full_attention", "sliding_attention", "full_attention"}
		}, []int{5, 0, 5, 0}},
		{"qwen2 null window", "Qwen2ForCausalLM", "qwen2", func(m map[string]any) {
			m["use_sliding_window"], m["sliding_window"], m["max_window_layers"] = true, nil, 0
		}, []int{0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hfConfig(tc.arch, tc.typ, c, true)
			tc.edit(cfg)
			dir := t.TempDir()
			data, _ := json.Marshal(cfg)
			if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			got, _, err := ReadHFConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			for li, want := range tc.want {
				if w := got.window(li); w != want {
					t.Errorf("layer %d: window %d, want %d", li, w, want)
				}
			}
		})
	}
}

// writeGGUF writes c and w as an F32 GGUF file of architecture llama, q and
// k rows permuted to llama.cpp's layout, with factors as rope_freqs.weight
// when not nil and extra metadata appended.
func writeGGUF(t *testing.T, c Config, w *Weights, factors []float32, extra ...gguf.KV) string {
	return writeGGUFArch(t, "llama", c, w, factors, extra...)
}

// writeGGUFArch is writeGGUF for architecture arch, llama or qwen2 (whose
// q and k rows llama.cpp keeps in Hugging Face's order, its rope type
// being NEOX), with w's biases as blk.N.attn_{q,k,v,output}.bias (q and k
// permuted for llama, as convert_hf_to_gguf.py permutes them).
func writeGGUFArch(t *testing.T, arch string, c Config, w *Weights, factors []float32, extra ...gguf.KV) string {
	t.Helper()
	a := arch + "."
	meta := []gguf.KV{
		{Key: gguf.KeyArchitecture, Value: arch},
		{Key: a + "embedding_length", Value: uint32(c.Hidden)},
		{Key: a + "feed_forward_length", Value: uint32(c.Intermediate)},
		{Key: a + "block_count", Value: uint32(c.Layers)},
		{Key: a + "attention.head_count", Value: uint32(c.Heads)},
		{Key: a + "attention.head_count_kv", Value: uint32(c.KVHeads)},
		{Key: a + "attention.key_length", Value: uint32(c.HeadDim)},
		{Key: a + "rope.dimension_count", Value: uint32(c.HeadDim)},
		{Key: a + "attention.layer_norm_rms_epsilon", Value: float32(c.RMSNormEps)},
		{Key: a + "rope.freq_base", Value: float32(c.RopeTheta)},
	}
	meta = append(meta, extra...)
	var ts []gguf.Tensor
	add := func(name string, x []float32, shape ...int) {
		if x == nil {
			return
		}
		data := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		dims := make([]int, len(shape))
		for i := range shape {
			dims[i] = shape[len(shape)-1-i]
		}
		ts = append(ts, gguf.Tensor{Name: name, Type: gguf.TypeF32, Dims: dims, Data: data})
	}
	permute := func(x []float32, heads int) []float32 {
		if x == nil || arch != "llama" {
			return x
		}
		dst := make([]float32, len(x))
		llamacpp.PermuteQK(dst, x, heads*c.HeadDim, heads)
		return dst
	}
	H, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	add("token_embd.weight", w.Embed, c.Vocab, H)
	add("output_norm.weight", w.Norm, H)
	add("output.weight", w.LMHead, c.Vocab, H)
	add("rope_freqs.weight", factors, c.HeadDim/2)
	for i, l := range w.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		add(p+"attn_norm.weight", l.AttnNorm, H)
		add(p+"ffn_norm.weight", l.MLPNorm, H)
		add(p+"attn_q.weight", permute(l.Q, c.Heads), q, H)
		add(p+"attn_k.weight", permute(l.K, c.KVHeads), kv, H)
		add(p+"attn_v.weight", l.V, kv, H)
		add(p+"attn_output.weight", l.O, H, q)
		add(p+"ffn_gate.weight", l.Gate, ff, H)
		add(p+"ffn_up.weight", l.Up, ff, H)
		add(p+"ffn_down.weight", l.Down, H, ff)
		add(p+"attn_q.bias", permute(l.QBias, c.Heads), q)
		add(p+"attn_k.bias", permute(l.KBias, c.KVHeads), kv)
		add(p+"attn_v.bias", l.VBias, kv)
		add(p+"attn_output.bias", l.OBias, H)
	}
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := gguf.WriteFile(path, meta, ts); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadGGUFRopeFreqs loads a GGUF file with rope_freqs.weight (as
// convert_hf_to_gguf.py writes Llama 3.1's scaling, here from
// llamacpp.Llama3RopeFactors) past original_max_position_embeddings,
// against the float64 reference with transformers' llama3 frequencies
// (rope.scaling.type linear and yarn: TestLoadGGUFRopeScaling).
func TestLoadGGUFRopeFreqs(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 4))
	c := Config{Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 41,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: -1, EOS: -1}
	const orig = 32
	w := randomModel(r, c, true, false)
	h := &llamacpp.Hyper{HeadDim: c.HeadDim, RopeTheta: c.RopeTheta, Rope: llamacpp.RopeScaling{
		Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigContext: orig}}
	m, err := LoadGGUF(cpu.New(), writeGGUF(t, c, w, llamacpp.Llama3RopeFactors(h)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Config.RopeFactors) != c.HeadDim/2 {
		t.Fatalf("RopeFactors %v", m.Config.RopeFactors)
	}
	tokens := randomTokens(r, orig+12, c.Vocab)
	checkAgainst(t, m, naiveForwardFreqs(c, w, tokens, llama3InvFreq(c.RopeTheta, c.HeadDim, 8, 1, 4, orig)), tokens)
}

// TestLoadGGUFQwen2 writes a random Qwen2 checkpoint both as a Hugging
// Face folder and as a GGUF file of llama.cpp's qwen2 architecture (q, k
// and v biases, rows not permuted) and checks that LoadGGUF gives LoadHF's
// logits and the float64 reference's; and that a llama GGUF with biases
// (permuted as llama.cpp keeps them) loads them in Hugging Face's order.
func TestLoadGGUFQwen2(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 4))
	c := Config{Hidden: 24, Intermediate: 40, Layers: 2, Heads: 6, KVHeads: 2, HeadDim: 4, Vocab: 45,
		RMSNormEps: 1e-6, RopeTheta: 1e6, BOS: -1, EOS: -1}
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprintf("tied%v", tied), func(t *testing.T) {
			w := randomModel(r, c, tied, true)
			for i := range w.Layers {
				w.Layers[i].OBias = nil
			}
			hf, err := LoadHF(cpu.New(), writeHF(t, hfConfig("Qwen2ForCausalLM", "qwen2", c, tied), c, w))
			if err != nil {
				t.Fatal(err)
			}
			defer hf.Close()
			g, err := LoadGGUF(cpu.New(), writeGGUFArch(t, "qwen2", c, w, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if l := g.Weights.Layers[0]; l.QBias == nil || l.KBias == nil || l.VBias == nil || l.OBias != nil {
				t.Error("biases: want q, k and v, and no o")
			}
			tokens := randomTokens(r, 11, c.Vocab)
			checkAgainst(t, g, naiveForward(c, w, tokens), tokens)
			a, err := hf.Forward(hf.NewCache(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			b, err := g.Forward(g.NewCache(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("logit %d: HF %g, GGUF %g", i, a[i], b[i])
				}
			}
		})
	}
	t.Run("llama-biases", func(t *testing.T) {
		w := randomModel(r, c, false, true)
		m, err := LoadGGUF(cpu.New(), writeGGUF(t, c, w, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		tokens := randomTokens(r, 9, c.Vocab)
		checkAgainst(t, m, naiveForward(c, w, tokens), tokens)
	})
}
