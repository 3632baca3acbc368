// Package cpu is the pure-Go compute backend of quantkit: slice-level
// kernels (GEMM in float32 and int8, |x| reductions, quantize and
// dequantize) that run in parallel over the cores, and a Backend that
// exposes them as a backend.Backend, registered as "cpu".
//
// # Kernels
//
// Every exported kernel states in its doc comment the loop it replaces;
// the tests hold it to that loop, and the Backend to the conformance suite
// in backend/backendtest.
//
// The GEMMs block over rows of A and k, and run a register-blocked
// micro-kernel, one row of A against several rows of B (kernels.go):
// gemmF32Kernel1x7 for float32, gemmS8Kernel1x14 for int8. Those are the
// functions a SIMD version replaces; the drivers around them (blocking,
// packing, epilogue, threading) stay.
//
// The int8 GEMM is exact. It packs two rows of B into one float64
// (b0 + b1·2^26), so that one float64 multiply and add accumulate two
// products: every partial sum is an integer below 2^53 in magnitude, hence
// exact whatever the order or fusion of the operations, and the 26-bit
// lanes are separated into int32 sums every gemmS8KC steps, before either
// can overflow into the other. GEMMs with at most four rows on one side
// skip the packing and multiply int8 by int8 in int32.
//
// Quantize and Dequantize reproduce package quant bit for bit: the same
// float32 division and round-half-even, the same packing of 4-bit codes.
//
// # Threads
//
// Kernels split their work over Threads() goroutines (GOMAXPROCS unless
// SetThreads says otherwise), in blocks large enough that no goroutine is
// started for a tiny task; small inputs run on the calling goroutine.
package cpu
