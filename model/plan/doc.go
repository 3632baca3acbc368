// Package plan decides what batch quantization does to each tensor of a
// checkpoint and then does it, streaming.
//
// # The plan
//
// Build turns a checkpoint's tensor list and Options into a Plan: one Item
// per input tensor, in the checkpoint's order, saying whether it is
// quantized or kept (and why), under which scheme, which tensors it becomes
// in the output (names, dtypes, shapes) and how many bytes go in and come
// out. Nothing is read but the headers, so the plan is what --dry-run
// prints, what the progress bar counts against, what a streaming writer
// lays its files out from, and what --shard I/N splits (Part).
//
// Which tensors are quantized follows llm-compressor's default recipe
// (quantize Linear layers, ignore lm_head): KeepReason is the rule, shared
// with `quantkit inspect`. Include and Exclude regular expressions override
// it: with Include, exactly the 2-D floating-point tensors it matches are
// quantized; Exclude then keeps any tensor it matches.
//
// # Output formats
//
// The formats are rows of one table (formats), each saying which tensors a
// quantized weight becomes and how it is encoded:
//
//   - compressed-tensors: package ctensors' layout (W, or W_packed and
//     W_shape, W_scale, W_zero_point when asymmetric), scales in the
//     weight's own dtype when it is F16 or BF16 (rounded with
//     ctensors.RoundScales before quantizing, so they are stored exactly),
//     F32 otherwise.
//   - safetensors: quant's own layout, which `quantkit dequantize` reads:
//     W holds the codes as quant stores them (I8 [out, in] for signed 8-bit
//     schemes, U8 [PackedLen] otherwise: 4-bit codes two a byte, low nibble
//     first, over the flattened tensor), W.scale F32 [P] and, for
//     asymmetric schemes only, W.zero_point I32 [P], where P is the number
//     of parameter pairs in quant's order (row-major, groups along the last
//     axis). The safetensors __metadata__ holds "quantkit.format":
//     "quantkit-raw", "quantkit.scheme" (quant.Scheme's text, such as
//     "int4-sym-group128") and "quantkit.tensors", a JSON object mapping
//     each quantized W to {"shape": [out, in], "dtype": original dtype}.
//   - gguf-q8_0 and gguf-q4_0: one GGUF file; quantized weights are ggml
//     Q8_0 or Q4_0 blocks of 32 along each row (gguf.QuantizeQ8_0/Q4_0), so
//     a weight whose rows are not a multiple of 32 long is kept as F32,
//     with that reason. Kept tensors are copied in their dtype (F32, F16,
//     BF16, integers) or converted to F32 when GGUF has no such type.
//     Tensor names stay Hugging Face's.
//
// # Running it
//
// Run processes the items of a plan with N workers and hands the results
// to a Sink in plan order (an ordered writer). The loops over whole
// tensors (abs-max, quantize, dequantize) are RunOptions.Kernels, which
// the job picks (the cpu package's, SIMD on every core) and which must
// equal ReferenceKernels, package quant's loops, bit for bit: plan
// imports no backend. Every item is read on its
// own (one tensor as float32), fitted (quant.FitMinMax), quantized,
// encoded and measured (SQNR of its dequantized values against the
// input). At most N+1 items are in flight at once, from being read to
// being written, so memory is bounded by N+1 of the largest tensors (each
// as 4-byte floats plus its encoded output), not by the model:
// MemoryEstimate computes that bound.
//
// Weights with NaN or ±Inf are an error naming the tensor, unless
// RunOptions.AllowNonFinite: then NaN becomes 0 and ±Inf the tensor's
// largest finite magnitude (saturating) before fitting, and the count is
// reported.
package plan
