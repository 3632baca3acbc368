// Package tokenizer turns text into the token ids of a language model and
// back, for the two byte-pair-encoding forms that Llama-family models ship
// in Hugging Face's tokenizer.json, and for llama2.c's tokenizer.bin:
//
//   - SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): a normalizer
//     or Metaspace pre-tokenizer turns " " into "▁" and prepends one; merges
//     apply by rank over the whole normalized text; characters outside the
//     vocabulary become "<0xNN>" byte tokens (byte_fallback).
//   - Byte-level BPE (GPT-2, Llama 3, Qwen2): the text is split by the
//     GPT-2 or Llama-3 pre-tokenizer regex, each piece's bytes are mapped
//     to printable characters as GPT-2 does, and merges apply per piece.
//   - llama2.c's tokenizer.bin: pieces with scores, merged greedily by the
//     highest score, as llama2.c's encode does.
//   - A GGUF file's tokenizer.ggml.* keys (FromGGUF): "llama" vocabularies
//     merged by score as llama.cpp's SPM tokenizer does, "gpt2" ones as
//     byte-level BPE with the pre-tokenizer tokenizer.ggml.pre names.
//
// Added tokens (such as "<s>" or "<|endoftext|>") are matched in the raw
// text before anything else, as the Hugging Face library does. Encode adds
// the BOS/EOS tokens that the post-processor's template (or
// tokenizer_config.json's add_bos_token/add_eos_token, which override it as
// transformers does) asks for; Decode inverts the decoder chain, including
// byte fallback, byte-level bytes and the SentencePiece leading space.
//
// The reference is @huggingface/tokenizers (npm); the tests carry ids it
// produced, and an integration test compares against it directly.
//
// The regex pre-tokenizers are scanners written by hand for the patterns
// they recognise (GPT-2's, Llama 3's and Qwen2's); Go's regexp has no
// lookahead, which those patterns need. Any other pattern, model type,
// normalizer or decoder is refused with an error naming the file.
package tokenizer
