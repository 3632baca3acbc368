// Package float runs an nn.Net in float32 on a backend: Engine, with
// im2col and backend GEMMs, and for a quantized Net the fake
// quantization of its QDQ graph (the reference the integer engine is
// compared with).
package float
