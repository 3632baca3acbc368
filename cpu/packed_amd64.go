//go:build !noasm && !gccgo && !safe

package cpu

import "golang.org/x/sys/cpu"

// hasF16C says the processor widens float16 (VCVTPH2PS), which the ggml
// kernels of packed_amd64.s use for their block scales.
var hasF16C = cpu.X86.HasF16C

// packedKernels are the fused kernels of packed_amd64.s, by format and
// number of rows of A (1 to packedFusedRows).
var packedKernels = [pkKinds][packedFusedRows]packedKernel{
	pkRF8S:  {packedDotRF8Sx1AVX2, packedDotRF8Sx2AVX2, packedDotRF8Sx3AVX2, packedDotRF8Sx4AVX2},
	pkRF8U:  {packedDotRF8Ux1AVX2, packedDotRF8Ux2AVX2, packedDotRF8Ux3AVX2, packedDotRF8Ux4AVX2},
	pkRF8SZ: {packedDotRF8SZx1AVX2, packedDotRF8SZx2AVX2, packedDotRF8SZx3AVX2, packedDotRF8SZx4AVX2},
	pkRF8UZ: {packedDotRF8UZx1AVX2, packedDotRF8UZx2AVX2, packedDotRF8UZx3AVX2, packedDotRF8UZx4AVX2},
	pkRF4S:  {packedDotRF4Sx1AVX2, packedDotRF4Sx2AVX2, packedDotRF4Sx3AVX2, packedDotRF4Sx4AVX2},
	pkRF4U:  {packedDotRF4Ux1AVX2, packedDotRF4Ux2AVX2, packedDotRF4Ux3AVX2, packedDotRF4Ux4AVX2},
	pkRF4SZ: {packedDotRF4SZx1AVX2, packedDotRF4SZx2AVX2, packedDotRF4SZx3AVX2, packedDotRF4SZx4AVX2},
	pkRF4UZ: {packedDotRF4UZx1AVX2, packedDotRF4UZx2AVX2, packedDotRF4UZx3AVX2, packedDotRF4UZx4AVX2},
	pkQ8_0:  {packedDotQ8_0x1AVX2, packedDotQ8_0x2AVX2, packedDotQ8_0x3AVX2, packedDotQ8_0x4AVX2},
	pkQ4_0:  {packedDotQ4_0x1AVX2, packedDotQ4_0x2AVX2, packedDotQ4_0x3AVX2, packedDotQ4_0x4AVX2},
	pkF16:   {packedDotF16x1AVX2, packedDotF16x2AVX2, packedDotF16x3AVX2, packedDotF16x4AVX2},
	pkBF16:  {packedDotBF16x1AVX2, packedDotBF16x2AVX2, packedDotBF16x3AVX2, packedDotBF16x4AVX2},
	pkF32:   {packedDotF32x1AVX2, packedDotF32x2AVX2, packedDotF32x3AVX2, packedDotF32x4AVX2},
}
