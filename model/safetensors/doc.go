// Package safetensors reads and writes the safetensors format of Hugging
// Face checkpoints.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
// header, then the data buffer:
//
//	{"__metadata__": {"format": "pt"},
//	 "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
//
// where data_offsets are [begin, end) byte offsets into the data buffer and
// tensor data is little-endian in C (row-major) order.
//
// # Reading
//
// Open refuses a path that is not a regular file (a named pipe, a device)
// at once. It maps the file read-only (or reads it into memory where mapping
// fails) and validates the whole header before returning, with explicit
// limits: the header is at most MaxHeaderLen bytes and lies inside the
// file; it is valid UTF-8 JSON holding one object, with no duplicate keys
// at any level that is read (a JSON parser of its own walks the header,
// as strict as encoding/json, whose maps would keep the last duplicate
// silently); every
// dtype is one of F64 F32 F16 BF16 I8 U8 I16 I32 I64 BOOL; shapes have at
// most MaxDims non-negative dimensions; each tensor's byte range lies in
// the data buffer, has begin ≤ end, is exactly dtype size × elements long
// and overlaps no other tensor's. Unknown fields in a tensor entry are
// ignored, as the reference Rust implementation does. Gaps between tensors
// and unused bytes at the end of the buffer are allowed (the Rust crate
// rejects them), since they cannot make a read go wrong.
//
// Bytes returns a view into the mapping without copying; Float32 converts
// any supported dtype to a new []float32. A File's methods may be called
// concurrently, except Close; slices from Bytes must not be used after
// Close, nor written to (the mapping is read-only: a write faults). A file
// truncated by another process while mapped makes reads fault (SIGBUS).
//
// # Writing
//
// WriteFile writes tensors in the order given, laid out contiguously, with
// the header padded with spaces to a multiple of 8 bytes as the Rust crate
// does, so that 8-byte dtypes are aligned in a mapping. Create returns a
// streaming Writer for checkpoints larger than memory: the header is
// computed from the tensor descriptions alone, then the data is written
// tensor by tensor (or in arbitrary chunks). Both write a temporary file
// in the same directory and rename it into place only when all the data
// has been written, so path never holds a half-written file.
package safetensors
