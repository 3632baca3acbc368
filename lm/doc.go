// Package lm runs Llama-family decoders (Hugging Face's LlamaForCausalLM;
// Mistral is the same network) in float32: the forward pass over a prompt or
// one token at a time through a KV cache, and greedy generation.
//
// A Model is a Config and the Weights in Hugging Face's layout (row-major
// [out, in] projections, q and k rows in the rotate-half RoPE layout, where
// row i of a head pairs with row i+d/2). Loaders read a Hugging Face
// safetensors folder (LoadHF), a llama.cpp GGUF file (LoadGGUF) and a
// llama2.c checkpoint (LoadLlama2C), converting each tensor to float32 once
// and taking the interleaved q/k rows of the last two back to Hugging Face's
// order (llamacpp.UnpermuteQK), so that one forward pass serves all three.
//
// The layer, as transformers' modeling_llama computes it:
//
//	h   = x + o(attn(rope(q(rms(x))), rope(k(rms(x))), v(rms(x))))
//	out = h + down(silu(gate(rms(h))) ⊙ up(rms(h)))
//
// with grouped-query causal attention (Heads/KVHeads query heads share each
// key/value head), a final RMSNorm and the lm_head (the embedding when the
// head is tied). The matrix products run on a backend.Backend's GemmF32; the
// other operations are small private Go loops for now.
package lm
