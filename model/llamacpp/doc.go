// Package llamacpp holds the conventions between Hugging Face checkpoints
// and llama.cpp's GGUF files for the llama architecture (LlamaForCausalLM
// and MistralForCausalLM: Llama 2 and 3, Mistral, TinyLlama, SmolLM), as
// llama.cpp's convert_hf_to_gguf.py and gguf-py apply them: tensor names,
// the Q/K row permutation, which tensors stay F32, the metadata llama.cpp's
// loader reads, and the tokenizer.
//
// # Planning
//
// Plan reads a checkpoint directory (config.json, the safetensors weights,
// tokenizer.json, tokenizer_config.json, generation_config.json) and
// returns a Conversion: for every GGUF tensor its llama.cpp name, its
// Hugging Face source, its GGUF dims, whether it stays F32, and whether its
// rows are permuted; and the metadata, in convert's order. Everything is
// checked first, and a checkpoint that cannot be converted right is refused
// with an error naming the file and the problem, before anything is
// written. FromGGUF describes an F32/F16/BF16 GGUF file in the same terms
// (metadata, tokenizer and tensors as they are), so that a quantizer
// treats both inputs alike. Conversion.Float32 gives a tensor's values in
// the GGUF layout; Write writes an unquantized GGUF file from a
// Conversion, one tensor at a time, atomically.
//
// # Tensors
//
//	model.embed_tokens                      token_embd
//	model.layers.N.input_layernorm          blk.N.attn_norm
//	model.layers.N.self_attn.q_proj         blk.N.attn_q       rows permuted, num_attention_heads
//	model.layers.N.self_attn.k_proj         blk.N.attn_k       rows permuted, num_key_value_heads
//	model.layers.N.self_attn.v_proj         blk.N.attn_v
//	model.layers.N.self_attn.o_proj         blk.N.attn_output
//	model.layers.N.post_attention_layernorm blk.N.ffn_norm
//	model.layers.N.mlp.gate_proj            blk.N.ffn_gate
//	model.layers.N.mlp.up_proj              blk.N.ffn_up
//	model.layers.N.mlp.down_proj            blk.N.ffn_down
//	model.norm                              output_norm
//	lm_head                                 output             absent when tied
//
// with ".weight" (and ".bias" where attention_bias or mlp_bias says so)
// kept. A Hugging Face [rows, cols] tensor has GGUF dims [cols, rows].
// Hugging Face keeps each head's rotary pairs in the rotate-half layout,
// llama.cpp in the interleaved one; PermuteQK is convert's
// LlamaModel.permute (see QKRow). Vectors, norms and biases stay F32
// (KeepF32). A checkpoint with tie_word_embeddings has no lm_head, and the
// GGUF file no output.weight: llama.cpp then uses token_embd, as for
// convert's files. Tensors come in convert's order: by shard, then by
// Hugging Face name. Llama 3.1's "llama3" RoPE scaling adds a computed
// rope_freqs.weight first, as convert does.
//
// # Metadata
//
// In convert's order: general.architecture = llama, general.type,
// general.sampling.* from generation_config.json, general.name,
// llama.block_count, context_length, embedding_length, feed_forward_length,
// attention.head_count, attention.head_count_kv, rope.scaling.* (linear,
// yarn), rope.freq_base, attention.layer_norm_rms_epsilon,
// attention.key_length and value_length (where config.json gives
// head_dim), general.file_type, llama.vocab_size, rope.dimension_count,
// general.quantization_version, then the tokenizer (ParseVocab). The file
// type is the caller's (Conversion.Metadata). general.name is Options.Name,
// else config.json's _name_or_path when it is a model id, else the
// directory's name; convert's further heuristics (size label, base name,
// model card fields) are not reproduced.
//
// # Differences from convert_hf_to_gguf.py
//
// A SentencePiece-style tokenizer.json (no tokenizer.model beside it) gets
// SentencePiece's token types and scores derived from the merges, where
// convert's fallback scores every token -1000 (see ParseVocab); a
// tokenizer.model is not read. A byte-level BPE's pre-tokenizer is
// recognised by its definition, not by hashing a tokenization. Checks are
// stricter: tensor shapes against config.json, unexpected tensors,
// unsupported RoPE scalings and activations are errors, not warnings.
package llamacpp
