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
// Run processes the items of a plan a block of rows at a time with N
// workers and hands the pieces to a Sink in plan order (an ordered
// writer; a Sink with WriteTensorAt takes each tensor in pieces, as the
// checkpoint and GGUF writers do). Plan.Stream sizes the blocks to a
// memory budget (RunOptions.MaxMemory, DefaultMaxMemory by default): at
// most Streaming.InFlight blocks (N+1, or more when the budget holds
// them) are in flight, from being read (pread into a recycled
// buffer, so that no page of the input stays resident) to being written,
// each its rows as float32, read and dequantized, with their raw bytes,
// codes and encoding; besides them only the scales of the item being
// written are held (they follow its codes in the file). Memory is then
// bounded by the budget, not by the largest tensor; Streaming.Peak is
// what --dry-run reports. Per-channel and per-group blocks are fitted on
// their own; a per-tensor scale (or one per column) takes a pass over the
// whole tensor first, and kept tensors are copied in blocks too. The
// output is byte for byte what quantizing each tensor whole gives (the
// tests keep that quantizer as their reference); the SQNR sums are added
// block by block, so the reported SQNR may differ from the whole
// tensor's in its last digits.
//
// The loops over a block (abs-max, quantize, dequantize) are
// RunOptions.Kernels, which the job picks (the cpu package's, SIMD on
// every core) and which must equal ReferenceKernels, package quant's
// loops, bit for bit: plan imports no backend. Kernels that also fit,
// quantize and measure a symmetric per-group block in one pass over each
// group (FitQuantizeGroups, as the cpu package's do) are asked to: the
// same codes and scales, the SQNR sums to rounding.
//
// Weights with NaN or ±Inf are an error naming the tensor, unless
// RunOptions.AllowNonFinite: then NaN becomes 0 and ±Inf the tensor's
// largest finite magnitude (saturating) before fitting, and the count is
// reported.
package plan
