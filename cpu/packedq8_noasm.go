//go:build !amd64 || noasm || gccgo || safe

package cpu

// Without the assembly the integer product runs packedDotQ8Go.

var (
	packedQ8Kernels   [pkKinds][packedFusedRows]packedQ8Kernel
	packedQ8R8Kernels [pkKinds][packedFusedRows]packedQ8Kernel
)

const quantizeQ8Asm = false

func quantizeQ8ChunksAVX2(x *float32, chunks int, dst *byte)        { panic("unreachable") }
func quantizeQ8ChunksEvenOddAVX2(x *float32, chunks int, dst *byte) { panic("unreachable") }

var packedQ8VNNIKernels [2][vnniRows]func(x *byte, ldx int, w *byte, chunks int, c *float32, ldc int, groups int)

const packedQ8VNNIAsm = false

func packedQ8VNNIPack(src *byte, rowBytes int, chunks int, stride int, dst *byte, dstStride int) {
	panic("unreachable")
}

func packedQ8VNNIPackQ8_0(src *byte, rowBytes int, chunks int, dst *byte) { panic("unreachable") }
