// Package ggufmix chooses each tensor's type in a GGUF file quantized to
// one of llama-quantize's mixes (Q4_K_M, Q3_K_M, Q2_K, Q6_K, Q8_0, Q4_0…): a
// port of llama.cpp's llama_tensor_get_type and the rules around it in
// src/llama-quant.cpp, as bundled with node-llama-cpp 3.21.1 (llama.cpp
// release v0.4.0), so that a file quantkit writes has the types
// llama-quantize would give it, tensor for tensor.
//
// The rules, in the order llama-quantize applies them:
//
//   - Which tensors are quantized at all (tensor_allows_quantization):
//     tensors of two or more dimensions (ggml_n_dims: trailing 1s do not
//     count) whose names end in "weight", except norms ("_norm.weight"),
//     the expert router (ffn_gate_inp), position_embd.weight,
//     token_types.weight and a list of small tensors of other
//     architectures. The rest are copied as they are.
//   - A mix whose base type is not a quantized one (F32, F16, BF16)
//     gives every quantized tensor that type, nothing else.
//   - Unless pure, llama_tensor_get_type_impl refines the base type:
//     output.weight (and token_embd.weight when the embeddings are tied,
//     that is when there is no output.weight) becomes Q6_K, or Q8_0 in the
//     Q8_0 mix, for Falcon, or where its rows are not whole blocks of the
//     base type; attn_v (and attn_qkv, attn_kv_b) and ffn_down get Q6_K in
//     Q4_K_M and Q5_K_M in the layers use_more_bits picks (the first and
//     last eighth and every third layer between); Q4_K_S gives Q5_K to the
//     first four attn_v and the first eighth of ffn_down; Q2_K gives Q3_K
//     to attn_output, ffn_down and attn_v (Q4_K where there are 4 or more
//     query heads per KV head); Q3_K_M gives Q5_K to the first two attn_v
//     and the first sixteenth of ffn_down, Q4_K to the other attn_v,
//     ffn_down (Falcon: use_more_bits layers only) and attn_output;
//     Q3_K_L gives Q5_K to attn_v, attn_output and ffn_down (Falcon: Q4_K
//     to ffn_down and attn_output); a 70B model's
//     attn_v is at least Q5_K; an 8-expert model's attn_v and attn_k are
//     Q8_0 and its attn_output Q5_K in Q2_K, Q3_K_S, Q3_K_M, Q4_K_S and
//     Q4_K_M.
//   - Then tensor_type_fallback: a type whose block does not divide the
//     row length (ne[0]) falls back, Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to
//     Q8_0 (and Q2_K/Q3_K to Q4_0), and to F16 where that does not divide
//     it either; a 32-block type (Q8_0, Q4_0…) goes straight to F16.
//
// llama-quantize walks the tensors sorted by layer, then by name (its
// weight_name_comparer; tensors outside blk.N come first), counting the
// attn_v and ffn_down tensors it has seen: Order gives that order, which
// Choose follows whatever the order it is given, and which a writer must
// follow to produce llama-quantize's bytes.
//
// Two corners are ported as they are: a name of exactly five bytes counts
// as ending in "weight" (the std::string::rfind comparison underflows),
// and llama.cpp pads tensor data to 32 bytes whatever general.alignment
// says (that is a writer's concern, not this package's).
//
// testdata holds the types that llama.cpp's own code gives (its
// llama_quant_compute_types, exported by the prebuilt libllama of
// node-llama-cpp 3.21.1) for model shapes of several kinds, each mix,
// plain and pure; testdata/mixref has the program that wrote them.
package ggufmix
