//go:build !noasm && !gccgo && !safe

package cpu

// packedQ8Kernels are the integer kernels of packedq8_amd64.s, by format
// and number of rows of A (1 to packedFusedRows).
var packedQ8Kernels = [pkKinds][packedFusedRows]packedQ8Kernel{
	pkRF8S:  {packedQ8RF8Sx1AVX2, packedQ8RF8Sx2AVX2, packedQ8RF8Sx3AVX2, packedQ8RF8Sx4AVX2},
	pkRF8U:  {packedQ8RF8Ux1AVX2, packedQ8RF8Ux2AVX2, packedQ8RF8Ux3AVX2, packedQ8RF8Ux4AVX2},
	pkRF8SZ: {packedQ8RF8SZx1AVX2, packedQ8RF8SZx2AVX2, packedQ8RF8SZx3AVX2, packedQ8RF8SZx4AVX2},
	pkRF8UZ: {packedQ8RF8UZx1AVX2, packedQ8RF8UZx2AVX2, packedQ8RF8UZx3AVX2, packedQ8RF8UZx4AVX2},
	pkRF4S:  {packedQ8RF4Sx1AVX2, packedQ8RF4Sx2AVX2, packedQ8RF4Sx3AVX2, packedQ8RF4Sx4AVX2},
	pkRF4U:  {packedQ8RF4Ux1AVX2, packedQ8RF4Ux2AVX2, packedQ8RF4Ux3AVX2, packedQ8RF4Ux4AVX2},
	pkRF4SZ: {packedQ8RF4SZx1AVX2, packedQ8RF4SZx2AVX2, packedQ8RF4SZx3AVX2, packedQ8RF4SZx4AVX2},
	pkRF4UZ: {packedQ8RF4UZx1AVX2, packedQ8RF4UZx2AVX2, packedQ8RF4UZx3AVX2, packedQ8RF4UZx4AVX2},
	pkQ8_0:  {packedQ8Q8_0x1AVX2, packedQ8Q8_0x2AVX2, packedQ8Q8_0x3AVX2, packedQ8Q8_0x4AVX2},
	pkQ4_0:  {packedQ8Q4_0x1AVX2, packedQ8Q4_0x2AVX2, packedQ8Q4_0x3AVX2, packedQ8Q4_0x4AVX2},
	pkQ6_K:  {packedQ8Q6_Kx1AVX2, packedQ8Q6_Kx2AVX2, packedQ8Q6_Kx3AVX2, packedQ8Q6_Kx4AVX2},
	pkQ4_K:  {packedQ8Q4_Kx1AVX2, packedQ8Q4_Kx2AVX2, packedQ8Q4_Kx3AVX2, packedQ8Q4_Kx4AVX2},
}

// packedQ8R8Kernels are the integer kernels of packedq8_amd64.s on rows
// interleaved in groups of eight (packedq8_rows8.go), by format and
// number of rows of A.
var packedQ8R8Kernels = [pkKinds][packedFusedRows]packedQ8Kernel{
	pkRF4S:  {packedQ8RF4SR8x1AVX2, packedQ8RF4SR8x2AVX2, packedQ8RF4SR8x3AVX2, packedQ8RF4SR8x4AVX2},
	pkRF4U:  {packedQ8RF4UR8x1AVX2, packedQ8RF4UR8x2AVX2, packedQ8RF4UR8x3AVX2, packedQ8RF4UR8x4AVX2},
	pkRF4SZ: {packedQ8RF4SZR8x1AVX2, packedQ8RF4SZR8x2AVX2, packedQ8RF4SZR8x3AVX2, packedQ8RF4SZR8x4AVX2},
	pkRF4UZ: {packedQ8RF4UZR8x1AVX2, packedQ8RF4UZR8x2AVX2, packedQ8RF4UZR8x3AVX2, packedQ8RF4UZR8x4AVX2},
	pkQ4_0:  {packedQ8Q4_0R8x1AVX2, packedQ8Q4_0R8x2AVX2, packedQ8Q4_0R8x3AVX2, packedQ8Q4_0R8x4AVX2},
}

// quantizeQ8Asm says the assembly quantizes the activations' whole chunks
// (where use.AVX2FMA).
const quantizeQ8Asm = true

// packedQ8VNNIKernels are the AVX-512 VNNI tile kernels of
// packedq8vnni_amd64.s, with a scale per block, then per channel, by
// number of rows of A (1 to vnniRows).
var packedQ8VNNIKernels = [2][vnniRows]func(x *byte, ldx int, w *byte, chunks int, c *float32, ldc int, groups int){
	{packedQ8VNNIx1, packedQ8VNNIx2, packedQ8VNNIx3, packedQ8VNNIx4, packedQ8VNNIx5, packedQ8VNNIx6},
	{packedQ8VNNICx1, packedQ8VNNICx2, packedQ8VNNICx3, packedQ8VNNICx4, packedQ8VNNICx5, packedQ8VNNICx6},
}

// packedQ8VNNIAsm says the assembly has the VNNI tile kernels (where
// use.AVX512VNNI).
const packedQ8VNNIAsm = true
