//go:build !amd64 || noasm || gccgo || safe

package cpu

// Without the amd64 assembly every GEMM runs the generic kernels.

func gemmF32SIMD(thr, m, n, k int, a, b, c []float32) bool { return false }

func gemmS8SIMD(m, n, k int, a, b []int8, out *s8Out) bool { return false }

func gemmS8Thin(m, n, k int, a, b []int8, out *s8Out) bool { return false }

func gemmKernels() string { return "f32 generic 1x7, int8 generic 1x14" }

func epilogueF32SIMD(dst []float32, acc []int32, rowScale float32, colScales []float32, colScale float32, bias []float32) bool {
	return false
}

func epilogueS8SIMD(dst []int8, acc []int32, rowScale float32, colScales []float32, colScale float32, bias []float32, lastScale, biasAll float32, relu bool, outScale float32, zeroPoint int32) bool {
	return false
}

// gemmF32PackWeights is the amd64 benchmarks' switch; it has no effect here.
var gemmF32PackWeights = false
