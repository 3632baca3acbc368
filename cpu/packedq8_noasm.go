//go:build !amd64 || noasm || gccgo || safe

package cpu

// Without the assembly the integer product runs packedDotQ8Go.

var packedQ8Kernels [pkF16][packedFusedRows]packedQ8Kernel
