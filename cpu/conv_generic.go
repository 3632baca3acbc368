//go:build !amd64 || noasm || gccgo || safe

package cpu

// Without the amd64 kernels a convolution runs convF32Generic.
func convF32SIMD(cv *ConvF32, dst, x []float32, n int) bool { return false }
