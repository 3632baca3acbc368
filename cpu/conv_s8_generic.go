//go:build !amd64 || noasm || gccgo || safe

package cpu

// Without the amd64 kernels an int8 convolution runs convS8Generic.
func convS8SIMD(cv *ConvS8, dst []int32, x []int8, n int) bool { return false }

func convS8Kernel() bool { return false }
