package cpu

import "unsafe"

// ConvS8 is an int8 convolution (groups 1, dilation 1) of NHWC images
// whose padding is already written into them (H and W count it, the
// cells holding whatever code stands for zero), with exact int32 sums
// (wrapping, as the GEMMs): for n images x[((i·H+h)·W+w)·InC+c],
//
//	dst[((i·OH+oh)·OW+ow)·OutC+o] = Offset[o] + Σ_u Σ_v Σ_c Weight[o,u,v,c] · x[i, oh·StrideH+u, ow·StrideW+v, c]
//
// (Offset nil: 0). The weight is in (u, v, c) order, [OutC][KH][KW][InC].
// OH and OW must not reach past the images: (OH−1)·StrideH+KH ≤ H,
// (OW−1)·StrideW+KW ≤ W.
//
// With an int8 dot-product kernel (ConvS8Fast) it never materialises the
// im2col matrix: each window row (KW·InC codes, contiguous in NHWC) is
// read in words of four codes straight into the kernel's packed panel. A
// ConvS8 keeps scratch memory between calls and is not safe for
// concurrent use.
type ConvS8 struct {
	InC, OutC, KH, KW int
	StrideH, StrideW  int
	H, W              int // input images, padding included
	OH, OW            int
	Weight            []int8  // [OutC][KH][KW][InC]
	Offset            []int32 // [OutC] or nil
	Threads           int     // goroutines at most; 0: Threads()

	packed  []int8  // Weight, rows of KH runs padded to words, rows padded to the kernel's tile
	init    []int32 // per packed row: the kernel's start value
	scratch [][]uint32
}

// ConvS8Fast reports whether ConvS8 runs on an int8 dot-product kernel
// on this processor (elsewhere it is plain Go, one output at a time).
func ConvS8Fast() bool { return convS8Kernel() }

// Run computes the convolution of the n images in x into dst.
func (cv *ConvS8) Run(dst []int32, x []int8, n int) {
	P := n * cv.OH * cv.OW
	dst = dst[:P*cv.OutC]
	_ = x[:n*cv.H*cv.W*cv.InC]
	if P == 0 {
		return
	}
	if convS8SIMD(cv, dst, x, n) {
		return
	}
	convS8Generic(cv, dst, x, n)
}

// convS8Generic is Run in plain Go.
func convS8Generic(cv *ConvS8, dst []int32, x []int8, n int) {
	C, K := cv.InC, cv.KH*cv.KW*cv.InC
	for i := range n {
		for oh := range cv.OH {
			for ow := range cv.OW {
				y := dst[((i*cv.OH+oh)*cv.OW+ow)*cv.OutC:][:cv.OutC]
				for o := range y {
					var s int32
					if cv.Offset != nil {
						s = cv.Offset[o]
					}
					w := cv.Weight[o*K : (o+1)*K]
					for u := range cv.KH {
						row := x[((i*cv.H+oh*cv.StrideH+u)*cv.W+ow*cv.StrideW)*C:][:cv.KW*C]
						for j, v := range row {
							s += int32(w[u*cv.KW*C+j]) * int32(v)
						}
					}
					y[o] = s
				}
			}
		}
	}
}

// QuantizeS8 writes the int8 codes of x under a scale and a zero point,
// exactly as quant.QuantizeValue does:
//
//	for i, v := range x {
//		dst[i] = int8(quant.QuantizeValue(v, scale, zp, -128, 127))
//	}
//
// with the SIMD quantize kernels where the processor has them (the
// requantization of an integer CNN's activations, one call a pass).
func QuantizeS8(dst []int8, x []float32, scale float32, zp int32) {
	dst = dst[:len(x)]
	quantize8(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)), x, scale, zp, -128, 127)
}
