// Package lm runs Llama-family decoders (Hugging Face's LlamaForCausalLM;
// Mistral is the same network, and Qwen2ForCausalLM adds biases to q, k and
// v) in float32: the forward pass over a prompt or
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
// LoadHF also reads quantkit's own outputs: compressed-tensors checkpoints
// (int-quantized int8, pack-quantized int4 and int8) and quantkit's raw
// safetensors format.
//
// Weights stay in memory in the form the file has them: quantized
// matrices as rows of codes with their scales (PackedWeight in
// quant.RowFormat), a GGUF file's matrices in their own block types (Q8_0,
// Q4_K, F16, …, used in place in the file's mapping), F16/BF16 matrices in
// 16 bits. backend.GemmPacked multiplies by them, decoding a tile of rows
// at a time on the CPU, so no float32 copy of a weight is ever made and a
// decode step reads each packed byte once; the result is what the float
// model on the dequantized weights computes, up to the order of float32
// sums. LoadOptions.Float32 widens everything to float32 at load instead,
// and LoadOptions.Int8 runs an int8 per-channel checkpoint as W8A8
// (activations quantized per token, integer GEMMs). On a backend of host
// memory (cpu) the model uses the loaded slices in place
// (backend.HostWrapper): every weight is in memory once. A backend that
// multiplies some formats faster in a row order of its own (the cpu
// backend: Q4_0 and the 4-bit quant.RowFormat, rows interleaved in groups
// of eight) gets the projections and the lm_head repacked at load, in the
// memory they take (a GGUF file's mapped tensor is copied in the new order
// and its pages released).
//
// The layer, as transformers' modeling_llama computes it:
//
//	h   = x + o(attn(rope(q(rms(x))), rope(k(rms(x))), v(rms(x))))
//	out = h + down(silu(gate(rms(h))) ⊙ up(rms(h)))
//
// with RoPE frequencies θ^(-2i/d), divided per frequency by
// Config.RopeFactors where Llama 3's "llama3" rope_scaling (or a GGUF
// file's rope_freqs.weight) sets them, grouped-query causal attention
// (Heads/KVHeads query heads share each key/value head), a final RMSNorm
// and the lm_head (the embedding when the head is tied).
//
// The whole pass runs on a backend.Backend: New places every tensor once,
// a Cache holds the KV cache ([capacity, KVHeads, HeadDim] per layer, as
// backend.Attention reads it) and the activations in the backend's buffers,
// and each operation is one backend call: GemmF32, GemmPacked or GemmS8
// for the matrix products,
// backend.Embed, RMSNorm, RoPE (rotate-half, frequencies from
// backend.RoPEFreqs), Attend and SwiGLU for the rest, backend.Add for the
// biases and the residual connections. The token ids go in as Embed's host
// argument and the logits come out with one Download; nothing else crosses
// between host and device. ForwardLast computes the logits of the last
// token only, as generation needs.
package lm
