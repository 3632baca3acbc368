// Package half converts between float32 and the two 16-bit floating-point
// formats found in model files: IEEE 754 binary16 ("float16", numpy's
// '<f2', safetensors' F16) and bfloat16 (safetensors' BF16, the upper half
// of a float32).
//
// Widening (16 → 32 bits) is exact for every input. Narrowing (32 → 16
// bits) rounds to nearest, ties to even, as IEEE 754 requires and as
// numpy, PyTorch and the F16C/AVX-512 BF16 instructions do: values beyond
// the largest finite value round to ±Inf, values below half the smallest
// subnormal round to ±0, and subnormals are produced, never flushed.
//
// NaNs stay NaNs with their sign and the top bits of their payload, so a
// 16-bit NaN survives a round trip through float32 bit for bit; when the
// kept payload bits would all be zero (which would turn the NaN into an
// Inf), the quiet bit is set instead.
//
// The tests check every one of the 65536 values of each format against a
// float64 formula, and narrowing against a brute-force nearest-value search.
package half
