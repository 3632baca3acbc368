package lm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/llamacpp"
)

// LoadHF reads a Hugging Face LlamaForCausalLM, MistralForCausalLM or
// Qwen2ForCausalLM checkpoint (a folder of safetensors in F32, F16 or BF16
// with its config.json, or the path checkpoint.Open takes) and uploads it
// to b. Qwen2's q, k and v biases are read; Mistral's and Qwen2's
// sliding windows are applied per layer as transformers applies them
// (Config.SlidingWindow). rope_scaling "llama3" (Llama 3.1 and later) is
// applied as per-frequency factors (Config.RopeFactors); linear, dynamic
// and yarn as Config.Rope; longrope is refused.
//
// It also reads what `quantkit quantize` writes: compressed-tensors
// checkpoints (int-quantized and pack-quantized) and quantkit's raw
// safetensors format. Their quantized weights are dequantized to float32
// at load (quant.Dequantize), so the model computes exactly what the float
// model computes on the dequantized weights, with float32 memory and
// GEMMs. LoadHFWith with LoadOptions.Int8 keeps int8 per-channel
// projections quantized instead (W8A8).
func LoadHF(b backend.Backend, path string) (*Model, error) {
	return LoadHFWith(b, path, LoadOptions{})
}

// ReadHFConfig reads the config.json of the Hugging Face checkpoint in dir
// as LoadHF does (the architectures and options it accepts; a
// quantization_config aside), without reading any weight. context is
// max_position_embeddings.
func ReadHFConfig(dir string) (c Config, context int, err error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return Config{}, 0, fmt.Errorf("lm: %s: no config.json: %w", dir, err)
	}
	c, h, err := parseHFConfig(dir, raw)
	if err != nil {
		return Config{}, 0, err
	}
	return c, h.Context, nil
}

// parseHFConfig turns the config.json raw of the checkpoint in dir into a
// Config, refusing what LoadHF cannot run.
func parseHFConfig(dir string, raw json.RawMessage) (Config, *llamacpp.Hyper, error) {
	if raw == nil {
		return Config{}, nil, fmt.Errorf("lm: %s: no config.json", dir)
	}
	if _, quant, err := ctensors.ReadConfig(raw); err == nil && quant {
		// The quantization_config says how the weights are stored, which
		// quantizedWeights reads; the hyperparameters are the rest.
		var err error
		if raw, err = ctensors.UpdateConfig(raw, nil); err != nil {
			return Config{}, nil, fmt.Errorf("lm: %s: %w", dir, err)
		}
	}
	h, err := llamacpp.ParseConfigWith("config.json", raw, llamacpp.ParseOptions{Qwen2: true, Dynamic: true})
	if err != nil {
		return Config{}, nil, fmt.Errorf("lm: %s: %w", dir, err)
	}
	factors, rope, err := ropeFromHyper(h)
	if err != nil {
		return Config{}, nil, fmt.Errorf("lm: %s: %w", dir, err)
	}
	if h.MLPBias {
		return Config{}, nil, fmt.Errorf("lm: %s: mlp_bias is not supported yet", dir)
	}
	return Config{
		Hidden: h.Hidden, Intermediate: h.Intermediate, Layers: h.Layers,
		Heads: h.Heads, KVHeads: h.KVHeads, HeadDim: h.HeadDim, Vocab: h.Vocab,
		RMSNormEps: h.RMSNormEps, RopeTheta: h.RopeTheta, BOS: h.BOS, EOS: h.EOS,
		RopeFactors: factors,
		Rope:        rope, SlidingWindow: h.SlidingWindow, WindowLayers: h.WindowLayers,
	}, h, nil
}

// LoadHFWith is LoadHF with options: with opt.Int8, the projections
// (q, k, v, o, gate, up, down) of an int8 symmetric per-channel checkpoint
// stay int8 on the backend (S8 buffers) and run as W8A8 (Int8Layer).
func LoadHFWith(b backend.Backend, path string, opt LoadOptions) (*Model, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	c, h, err := parseHFConfig(ck.Dir(), ck.Config())
	if err != nil {
		return nil, err
	}
	quantized, err := quantizedWeights(ck)
	if err != nil {
		return nil, fmt.Errorf("lm: %s: %w", ck.Dir(), err)
	}
	var errs []error
	get := func(name string) []float32 {
		read := func() ([]float32, error) { return ck.Float32(name) }
		if dec, ok := quantized[name]; ok {
			read = func() ([]float32, error) {
				codes, p, err := dec()
				if err != nil {
					return nil, err
				}
				return dequantize(codes, p)
			}
		}
		x, err := read()
		if err != nil {
			errs = append(errs, err)
		}
		return x
	}
	// proj reads a projection into *f, or into *i8 when it stays int8.
	proj := func(name string, f *[]float32, i8 **Int8Weight) {
		if dec, ok := quantized[name]; ok && opt.Int8 {
			codes, p, err := dec()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if w := asInt8(codes, p); w != nil {
				*i8 = w
				return
			}
			if *f, err = dequantize(codes, p); err != nil {
				errs = append(errs, err)
			}
			return
		}
		*f = get(name)
	}
	w := &Weights{Embed: get("model.embed_tokens.weight"), Norm: get("model.norm.weight")}
	if !h.Tied {
		w.LMHead = get("lm_head.weight")
	}
	for i := range h.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := Layer{
			AttnNorm: get(p + "input_layernorm.weight"),
			MLPNorm:  get(p + "post_attention_layernorm.weight"),
		}
		i8 := &Int8Layer{}
		proj(p+"self_attn.q_proj.weight", &l.Q, &i8.Q)
		proj(p+"self_attn.k_proj.weight", &l.K, &i8.K)
		proj(p+"self_attn.v_proj.weight", &l.V, &i8.V)
		proj(p+"self_attn.o_proj.weight", &l.O, &i8.O)
		proj(p+"mlp.gate_proj.weight", &l.Gate, &i8.Gate)
		proj(p+"mlp.up_proj.weight", &l.Up, &i8.Up)
		proj(p+"mlp.down_proj.weight", &l.Down, &i8.Down)
		if *i8 != (Int8Layer{}) {
			l.Int8 = i8
		}
		if h.AttnBias || h.QKVBias {
			l.QBias, l.KBias = get(p+"self_attn.q_proj.bias"), get(p+"self_attn.k_proj.bias")
			l.VBias = get(p + "self_attn.v_proj.bias")
		}
		if h.AttnBias {
			l.OBias = get(p + "self_attn.o_proj.bias")
		}
		w.Layers = append(w.Layers, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	return New(b, c, w)
}

// LoadGGUF reads a llama.cpp GGUF file of architecture llama (Llama and
// Mistral) or qwen2 whose tensors gguf.DecodeFloat32 converts (F32, F16,
// BF16, Q8_0, Q4_0, K-quants, …), dequantized to float32, and uploads it
// to b. For llama, the q and k rows (and biases), which llama.cpp keeps in
// the interleaved RoPE layout, are put back in Hugging Face's order
// (llamacpp.UnpermuteQK); qwen2 (llama.cpp's NEOX rope type) keeps Hugging
// Face's order already. The q, k, v and o biases are read where present
// (Qwen2's q, k and v). A rope_freqs.weight tensor (Llama 3's "llama3"
// RoPE scaling) becomes Config.RopeFactors; rope.scaling.type linear and
// yarn become Config.Rope (ggufRope).
func LoadGGUF(b backend.Backend, path string) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	if arch != "llama" && arch != "qwen2" {
		return nil, fmt.Errorf("lm: %s: architecture %q, want llama or qwen2", path, arch)
	}
	md := f.Metadata()
	num := func(key string, def int) int {
		if v, ok := f.Int(arch + "." + key); ok {
			return int(v)
		}
		return def
	}
	flt := func(key string, def float64) float64 {
		if v, ok := md.Float32(arch + "." + key); ok {
			return float64(v)
		}
		return def
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return nil, fmt.Errorf("lm: %s: no 2-D token_embd.weight", path)
	}
	c := Config{
		Hidden: num("embedding_length", 0), Intermediate: num("feed_forward_length", 0),
		Layers: num("block_count", 0), Heads: num("attention.head_count", 0),
		Vocab:      emb.Dims[1],
		RMSNormEps: flt("attention.layer_norm_rms_epsilon", 1e-5),
		RopeTheta:  flt("rope.freq_base", 10000),
		BOS:        -1, EOS: -1,
	}
	c.KVHeads = num("attention.head_count_kv", c.Heads)
	if c.Heads > 0 {
		c.HeadDim = num("attention.key_length", c.Hidden/c.Heads)
	}
	if v, ok := f.Int("tokenizer.ggml.bos_token_id"); ok {
		c.BOS = int(v)
	}
	if v, ok := f.Int("tokenizer.ggml.eos_token_id"); ok {
		c.EOS = int(v)
	}
	if rd := num("rope.dimension_count", c.HeadDim); rd != c.HeadDim {
		return nil, fmt.Errorf("lm: %s: partial RoPE (%d of %d) is not supported", path, rd, c.HeadDim)
	}
	if c.Rope, err = ggufRope(f, arch, path, num("context_length", 0)); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	var errs []error
	get := func(name string) []float32 {
		info, ok := f.Tensor(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no tensor %s", path, name))
			return nil
		}
		src, err := f.Bytes(name)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		dst := make([]float32, info.Len())
		if err := gguf.DecodeFloat32(dst, src, info.Type); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", path, name, err))
		}
		return dst
	}
	unpermute := func(x []float32, heads int) []float32 {
		if x == nil || arch != "llama" {
			return x
		}
		rows := heads * c.HeadDim
		if err := llamacpp.CheckQK(rows, heads); err != nil || len(x)%rows != 0 {
			errs = append(errs, fmt.Errorf("%s: q/k of %d elements in %d heads: %v", path, len(x), heads, err))
			return x
		}
		dst := make([]float32, len(x))
		llamacpp.UnpermuteQK(dst, x, rows, heads)
		return dst
	}
	w := &Weights{Embed: get("token_embd.weight"), Norm: get("output_norm.weight")}
	if _, ok := f.Tensor("output.weight"); ok {
		w.LMHead = get("output.weight")
	}
	if _, ok := f.Tensor(llamacpp.NameRopeFreqs + ".weight"); ok {
		c.RopeFactors = get(llamacpp.NameRopeFreqs + ".weight")
	}
	if _, ok := f.Tensor("blk.0.attn_qkv.weight"); ok {
		return nil, fmt.Errorf("lm: %s: fused blk.N.attn_qkv tensors are not supported (separate attn_q, attn_k and attn_v are)", path)
	}
	if _, ok := f.Tensor("output.bias"); ok {
		return nil, fmt.Errorf("lm: %s: output.bias (an lm_head bias) is not supported", path)
	}
	// optional reads a tensor that may be absent (a bias).
	optional := func(name string) []float32 {
		if _, ok := f.Tensor(name); !ok {
			return nil
		}
		return get(name)
	}
	for i := range c.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		w.Layers = append(w.Layers, Layer{
			QBias:    unpermute(optional(p+"attn_q.bias"), c.Heads),
			KBias:    unpermute(optional(p+"attn_k.bias"), c.KVHeads),
			VBias:    optional(p + "attn_v.bias"),
			OBias:    optional(p + "attn_output.bias"),
			AttnNorm: get(p + "attn_norm.weight"),
			Q:        unpermute(get(p+"attn_q.weight"), c.Heads),
			K:        unpermute(get(p+"attn_k.weight"), c.KVHeads),
			V:        get(p + "attn_v.weight"),
			O:        get(p + "attn_output.weight"),
			MLPNorm:  get(p + "ffn_norm.weight"),
			Gate:     get(p + "ffn_gate.weight"),
			Up:       get(p + "ffn_up.weight"),
			Down:     get(p + "ffn_down.weight"),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	return New(b, c, w)
}

// LoadLlama2C reads a llama2.c checkpoint (run.c's format: a header of 7
// int32, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative
// for an untied classifier) and seq_len, then the float32 weights in run.c's
// order) and uploads it to b. llama2.c fixes rms_norm_eps 1e-5, rope_theta
// 10000, BOS 1 and EOS 2. Its q and k rows are in the interleaved RoPE
// layout, as llama.cpp's, and are put back in Hugging Face's order.
func LoadLlama2C(b backend.Backend, path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	if len(data) < 28 {
		return nil, fmt.Errorf("lm: %s: %d bytes, shorter than the llama2.c header", path, len(data))
	}
	var hd [7]int
	for i := range hd {
		hd[i] = int(int32(binary.LittleEndian.Uint32(data[4*i:])))
	}
	for i, v := range hd {
		if v < -1<<20 || v > 1<<20 {
			return nil, fmt.Errorf("lm: %s: header value %d (%d) out of range: not a llama2.c checkpoint", path, i, v)
		}
	}
	tied := hd[5] > 0
	c := Config{
		Hidden: hd[0], Intermediate: hd[1], Layers: hd[2], Heads: hd[3], KVHeads: hd[4],
		Vocab: hd[5], RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2,
	}
	if !tied {
		c.Vocab = -c.Vocab
	}
	seqLen := hd[6]
	if c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	if c.HeadDim*c.Heads != c.Hidden || seqLen < 0 {
		return nil, fmt.Errorf("lm: %s: dim %d is not %d heads of a whole size, or seq_len %d", path, c.Hidden, c.Heads, seqLen)
	}
	L, H, q, kv, ff := c.Layers, c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	need := int64(c.Vocab)*int64(H) + int64(L)*int64(2*H+q*H+2*kv*H+H*q+3*ff*H) + int64(H) + int64(seqLen)*int64(c.HeadDim)
	if !tied {
		need += int64(c.Vocab) * int64(H)
	}
	if have := int64(len(data)-28) / 4; have < need {
		return nil, fmt.Errorf("lm: %s: %d floats of weights, the header asks for %d", path, have, need)
	}
	off := 28
	next := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off+4*i:]))
		}
		off += 4 * n
		return x
	}
	perLayer := func(n int, fix func([]float32) []float32) [][]float32 {
		out := make([][]float32, L)
		for i := range out {
			out[i] = next(n)
			if fix != nil {
				out[i] = fix(out[i])
			}
		}
		return out
	}
	unpermute := func(heads int) func([]float32) []float32 {
		return func(x []float32) []float32 {
			dst := make([]float32, len(x))
			llamacpp.UnpermuteQK(dst, x, heads*c.HeadDim, heads)
			return dst
		}
	}
	w := &Weights{Embed: next(c.Vocab * H)}
	attnNorm := perLayer(H, nil)
	wq := perLayer(q*H, unpermute(c.Heads))
	wk := perLayer(kv*H, unpermute(c.KVHeads))
	wv := perLayer(kv*H, nil)
	wo := perLayer(H*q, nil)
	mlpNorm := perLayer(H, nil)
	w1 := perLayer(ff*H, nil)
	w2 := perLayer(H*ff, nil)
	w3 := perLayer(ff*H, nil)
	w.Norm = next(H)
	off += 4 * seqLen * c.HeadDim // freq_cis_real and freq_cis_imag, seq_len × head_size/2 each
	if !tied {
		w.LMHead = next(c.Vocab * H)
	}
	for i := range L {
		w.Layers = append(w.Layers, Layer{
			AttnNorm: attnNorm[i], Q: wq[i], K: wk[i], V: wv[i], O: wo[i],
			MLPNorm: mlpNorm[i], Gate: w1[i], Down: w2[i], Up: w3[i],
		})
	}
	return New(b, c, w)
}
