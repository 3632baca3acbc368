// Package gguf reads and writes GGUF files, the model format of ggml,
// llama.cpp and ollama.
//
// Open refuses a path that is not a regular file (a named pipe, a device)
// at once.
//
// A file is, all little-endian:
//
//	"GGUF"  version uint32  tensor_count uint64  metadata_kv_count uint64
//	metadata_kv_count × (key string, value type uint32, value)
//	tensor_count × (name string, n_dims uint32, dims uint64[n_dims],
//	                type uint32, offset uint64)
//	zero padding to the alignment
//	data section: each tensor at its offset, zero padding between tensors
//
// where a string is a uint64 length and that many bytes, and an array
// value is an element type uint32, a count uint64 and the elements. dims
// are in ggml order: dims[0] (ne[0]) is the innermost, contiguous
// dimension, so a [rows][cols] matrix has dims [cols, rows]; TensorInfo
// keeps this order in Dims and gives the row-major shape with Shape.
// Offsets are relative to the start of the data section and multiples of
// the alignment, the uint32 "general.alignment" metadata value (default
// 32), which must be a power of two.
//
// # Types
//
// Tensor types are ggml's (enum ggml_type), described by one table with a
// row per type: name, elements per block, bytes per block and, where this
// package implements them, conversions to and from float32 (F32, F16,
// BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K
// both ways; I8, I16, I32, I64 and F64 to float32). Every type ggml still
// writes to files has a row, so files of any of them open and their raw
// bytes can be read and copied; ids ggml has removed (4, 5, 31–33,
// 36–38) and unknown ids are rejected.
//
// The quantizers (QuantizeQ4_0 … QuantizeQ6_K, and EncodeFloat32) give the
// bytes of ggml's reference quantizers (quantize_row_*_ref, what
// ggml_quantize_chunk and llama-quantize use without an importance
// matrix), bit for bit: float32 arithmetic in C's order with every product
// rounded before it is added (no fused multiply-adds on any platform),
// roundf's ties away from zero for Q8_0, the (int8_t)(x·id + 8.5f)-style
// truncations of Q4_0/Q4_1/Q5_0/Q5_1, nearest_int's round-to-even trick
// and make_qkx2_quants/make_qx_quants/make_q3_quants' trial scales and
// refinements for the K-quants, and
// scales rounded to float16 to nearest, ties to even. F16 and BF16 round
// to nearest even as ggml does; NaNs become ggml's quiet NaNs (F16: 0x7e00
// with the sign; BF16: the top bits with the quiet bit set). The
// dequantizers are ggml's dequantize_row_* in the same float32 order.
// Inputs with NaN or ±Inf give ggml's codes too (meaningless, but the
// same bytes), and blocks whose largest magnitude is so small (below
// about 1e-36) that a scale is a float32 subnormal quantize poorly, as in
// ggml. integration/refquant and the integration-tagged tests check all
// of this against llama.cpp's own libggml-base.so.
//
// # Reading
//
// Open maps the file read-only (or reads it into memory where mapping
// fails) and validates all of the header before returning, with explicit
// limits: strings of at most MaxStringLen bytes, arrays of at most
// MaxArrayLen elements nested at most MaxArrayDepth deep, at most MaxKVs
// metadata pairs and MaxTensors tensors (and no count larger than the rest
// of the file could hold, so a small file cannot make Open allocate much),
// tensors of at most MaxDims dimensions and names of at most
// MaxTensorNameLen bytes (ggml's limit). Keys and tensor names are unique,
// bools are 0 or 1, the padding before the data section is in the file,
// rows of block types are whole blocks, element counts and sizes do not
// overflow, and every tensor's data is aligned, inside the file and
// overlaps no other tensor's. Unlike ggml, which wants the tensors
// contiguous in header order with every tensor padded, gaps and any order
// are accepted, and the file may end right after the last tensor's data.
// Versions 2 and 3 are read (they differ only in that version 3 may be
// big-endian, which this package rejects); version 1 is not.
//
// Metadata returns the key/value pairs in file order with Go-typed values
// (see KV); String, Uint32 and friends look one up. Bytes returns a view
// of a tensor's data without copying; Float32 converts it. A File's
// methods may be called concurrently, except Close; slices from Bytes must
// not be used after Close, nor written to (the mapping is read-only: a
// write faults). A file truncated by another process while mapped makes
// reads fault (SIGBUS).
//
// # Writing
//
// Create returns a streaming Writer: the header is computed from the
// metadata and the tensor descriptions alone and written at once, then the
// data follows tensor by tensor (WriteTensor) or in chunks of any size
// (Write), with the padding inserted by the Writer. Tensors are laid out
// as ggml lays them out: contiguous in the order given, each padded to the
// alignment, the data section too, so that a file ggml wrote and this
// package read comes out byte for byte the same. The file is written to a
// temporary file in the same directory and renamed into place only when
// all the data has been written. WriteFile and Write do the same for
// tensors held in memory.
package gguf
