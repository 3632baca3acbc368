//go:build !amd64 || noasm || gccgo || safe

package cpu

// Without the assembly the fused product runs packedDotGo.

const hasF16C = false

var packedKernels [pkKinds][packedFusedRows]packedKernel
