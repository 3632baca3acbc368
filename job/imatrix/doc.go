// Package imatrix computes llama.cpp importance matrices with quantkit's
// engine: Run runs a language model that package lm runs (a Hugging Face
// folder, a GGUF file or a llama2.c checkpoint) over calibration text and
// accumulates, for every projection of every decoder layer, the float32
// sum of x² of its input per input column and the number of tokens
// summed (model/imatrix.Accumulator), under the names llama.cpp gives the
// GGUF tensors (blk.N.attn_q.weight, …): what llama-imatrix computes, in a
// model/imatrix.File that Write saves in llama-imatrix's GGUF or legacy
// .dat format, and that `quantkit quantize --format gguf` quantizes with.
//
// q, k and v read one input (the attention norm's output) and so get equal
// entries; gate and up likewise (the MLP norm's); o reads the attention
// output, down silu(gate)·up. With Options.ProcessOutput (llama-imatrix's
// --process-output) output.weight gets the final norm's output too, where
// the model has an lm_head of its own (a tied one is token_embd.weight in
// llama.cpp, which llama-imatrix never collects).
//
// # How the text is cut
//
// By default as llama-imatrix (tools/imatrix/imatrix.cpp of the llama.cpp
// release quantkit is checked against) cuts it, so that the same text gives
// the same statistics:
//
//   - the file is read whole as one text, one trailing newline dropped (as
//     llama.cpp's -f does), and tokenized with the tokenizer's special
//     tokens: BOS first where the tokenizer adds one (llama.cpp's
//     common_tokenize with add_special);
//   - the ids are cut into consecutive chunks of Ctx tokens (llama-imatrix's
//     --ctx-size, default 512), the last partial chunk dropped, at most
//     Chunks of them (--chunks) after skipping Skip (--chunk); the first
//     token of every chunk is replaced by BOS where the tokenizer adds one;
//   - fewer than 2·Ctx tokens (after the skip) are refused, as
//     llama-imatrix refuses them;
//   - every chunk runs from position 0, and every token of it is
//     collected (llama-imatrix's perplexity uses the second half of each
//     chunk; its statistics use all of it), so each entry counts
//     chunks·Ctx tokens and the file records chunk_size Ctx and
//     chunk_count chunks;
//   - sums are float32 and added token by token in chunk order, as
//     llama-imatrix adds them.
//
// llama-imatrix ignores matrix multiplications of fewer than 16 rows (a
// micro-batch of fewer than 16 tokens, which only happens with --ctx-size
// below 16); Run collects every token. Special-token text in the
// calibration file is matched as special tokens by quantkit's tokenizers;
// llama-imatrix reads it as text unless --parse-special is given.
//
// Alternatively (Options.Samples > 0) the calibration set is job/llmq's:
// Samples windows of SeqLen tokens at seeded random offsets of the
// documents (text, JSONL or .npy ids; llmq.LoadCalibration), every token
// collected; chunk_size is SeqLen and chunk_count Samples.
//
// # Memory
//
// The model is loaded whole (lm's loaders: packed GGUF tensors stay
// packed, on the host), then run layer by layer as lm.Block on
// Options.Backend over the hidden states of every chunk at once: memory is
// the model, the hidden states [chunks, Ctx, Hidden] in float32, one
// block's activations (lm.MaxBlockRows rows at a time) and the sums.
package imatrix
