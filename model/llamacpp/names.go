package llamacpp

import (
	"strconv"
	"strings"
)

// Tensor names of llama.cpp's llama architecture (gguf-py's TENSOR_NAMES),
// without the ".weight"/".bias" suffix; "blk.N." prefixes the per-layer
// ones.
const (
	NameTokenEmbd  = "token_embd"
	NameOutputNorm = "output_norm"
	NameOutput     = "output"
	NameRopeFreqs  = "rope_freqs"
	NameAttnNorm   = "attn_norm"
	NameAttnQ      = "attn_q"
	NameAttnK      = "attn_k"
	NameAttnV      = "attn_v"
	NameAttnOutput = "attn_output"
	NameFFNNorm    = "ffn_norm"
	NameFFNGate    = "ffn_gate"
	NameFFNUp      = "ffn_up"
	NameFFNDown    = "ffn_down"
)

// hfLayerNames maps the Hugging Face names inside model.layers.N. to
// llama.cpp's inside blk.N. (gguf-py's tensor_mapping for LLAMA).
var hfLayerNames = map[string]string{
	"input_layernorm":          NameAttnNorm,
	"self_attn.q_proj":         NameAttnQ,
	"self_attn.k_proj":         NameAttnK,
	"self_attn.v_proj":         NameAttnV,
	"self_attn.o_proj":         NameAttnOutput,
	"post_attention_layernorm": NameFFNNorm,
	"mlp.gate_proj":            NameFFNGate,
	"mlp.up_proj":              NameFFNUp,
	"mlp.down_proj":            NameFFNDown,
}

// hfGlobalNames maps the Hugging Face names outside the layers.
var hfGlobalNames = map[string]string{
	"model.embed_tokens": NameTokenEmbd,
	"model.norm":         NameOutputNorm,
	"lm_head":            NameOutput,
}

// GGUFName returns llama.cpp's name for a Hugging Face tensor name of a
// LlamaForCausalLM ("model.layers.3.mlp.up_proj.weight" →
// "blk.3.ffn_up.weight"), the layer number (-1 outside the layers), and
// false for a name llama.cpp's llama architecture has no tensor for.
func GGUFName(hf string) (name string, layer int, ok bool) {
	base, suffix, ok := cutSuffix(hf)
	if !ok {
		return "", -1, false
	}
	if g, ok := hfGlobalNames[base]; ok {
		return g + suffix, -1, true
	}
	rest, ok := strings.CutPrefix(base, "model.layers.")
	if !ok {
		return "", -1, false
	}
	num, part, ok := strings.Cut(rest, ".")
	if !ok {
		return "", -1, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || strconv.Itoa(n) != num {
		return "", -1, false
	}
	g, ok := hfLayerNames[part]
	if !ok {
		return "", -1, false
	}
	return "blk." + num + "." + g + suffix, n, true
}

func cutSuffix(name string) (base, suffix string, ok bool) {
	for _, s := range []string{".weight", ".bias"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			return b, s, true
		}
	}
	return "", "", false
}

// KeepF32 reports whether convert_hf_to_gguf.py stores the GGUF tensor
// name of n dimensions as F32 whatever the file type: vectors and norms,
// and anything not a ".weight" (biases).
func KeepF32(name string, dims int) bool {
	return dims <= 1 || strings.HasSuffix(name, "_norm.weight") || !strings.HasSuffix(name, ".weight")
}
