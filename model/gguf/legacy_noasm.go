//go:build !amd64 || noasm || gccgo || safe

package gguf

// Builds without legacy_amd64.s: legacyKernels is false, and the kernels'
// names run their pure-Go twins (never called, but they keep one set of
// callers).

var hasF16C = false

// noasmBuild says the kernels' names run their pure-Go twins.
const noasmBuild = true

func quantizeQ8_0AVX2(dst []byte, x []float32) int { return quantizeQ8_0Go(dst, x) }

func quantizeQ4_0AVX2(dst []byte, x []float32) int { return quantizeQ4_0Go(dst, x) }

func encodeF16AVX2(dst []byte, src []float32) { encodeF16Go(dst, src[:len(src)&^7]) }

func encodeBF16AVX2(dst []byte, src []float32) { encodeBF16Go(dst, src[:len(src)&^15]) }
