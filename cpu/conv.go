package cpu

import "math"

// ConvF32 is a float32 2-D convolution (groups 1, dilation 1) over
// channel-major planes: the input of n images is InC planes of n images
// each, x[((c·n)+i)·H·W + h·W + w], with any padding already written into
// the planes (H and W count it), and the output is OutC planes of n
// images, dst[((o·n)+i)·OH·OW + oh·OW + ow], where
//
//	dst[o,i,oh,ow] = Bias[o] + Σ_c Σ_u Σ_v Weight[o,c,u,v] · x[c,i,oh·StrideH+u, ow·StrideW+v]
//
// followed by max(·, 0) when ReLU is set. OH and OW must not reach past
// the planes: (OH−1)·StrideH+KH ≤ H, (OW−1)·StrideW+KW ≤ W.
//
// With the amd64 kernels it never materialises the im2col matrix: the
// window values of each run of the GEMM kernel's columns (output pixels,
// across the n images) are gathered straight into the kernel's packed
// panel, and the kernel's tiles, channels by pixels, are the output planes
// with the bias added. A ConvF32 keeps scratch memory between calls and
// is not safe for concurrent use.
type ConvF32 struct {
	InC, OutC, KH, KW int
	StrideH, StrideW  int
	H, W              int       // input planes, padding included
	OH, OW            int       // output planes
	Weight            []float32 // [OutC][InC][KH][KW]
	Bias              []float32 // [OutC]
	ReLU              bool
	Threads           int // goroutines at most; 0: Threads()

	packed  []float32   // Weight with rows padded to the kernel's tile
	scratch [][]float32 // a panel per worker
	panelQ  []int       // the offset of each weight step's row in a panel
	steps   []int       // the offset of each weight step's window cell, for stepsN images
	stepsN  int
}

// convInPlace lets ConvF32 read window rows where they lie, where the
// kernels can (benchmarks and tests turn it off).
var convInPlace = true

// Run computes the convolution of the n images in x into dst.
func (cv *ConvF32) Run(dst, x []float32, n int) {
	P := n * cv.OH * cv.OW
	dst = dst[:cv.OutC*P]
	_ = x[:cv.InC*n*cv.H*cv.W]
	if P == 0 {
		return
	}
	if convF32SIMD(cv, dst, x, n) {
		return
	}
	convF32Generic(cv, dst, x, n)
}

// convF32Generic is Run in plain Go, one output value at a time.
func convF32Generic(cv *ConvF32, dst, x []float32, n int) {
	P, plane, K := n*cv.OH*cv.OW, cv.H*cv.W, cv.InC*cv.KH*cv.KW
	for o := range cv.OutC {
		w := cv.Weight[o*K : (o+1)*K]
		for p := range P {
			i, r := p/(cv.OH*cv.OW), p%(cv.OH*cv.OW)
			base := i*plane + r/cv.OW*cv.StrideH*cv.W + r%cv.OW*cv.StrideW
			s := cv.Bias[o]
			q := 0
			for c := range cv.InC {
				xc := x[c*n*plane+base:]
				for u := range cv.KH {
					for v := range cv.KW {
						s += w[q] * xc[u*cv.W+v]
						q++
					}
				}
			}
			if cv.ReLU {
				s = max(s, 0)
			}
			dst[o*P+p] = s
		}
	}
}

// relu is max(v, 0) without branches (a tile's signs are random, and a
// branch on them mispredicts half the time): the bits of v where its sign
// is clear or it is a NaN, else +0.
func relu(v float32) float32 {
	u := math.Float32bits(v)
	keep := uint32(int32(^u)>>31) | uint32(int32(0x7f800000-(u&0x7fffffff))>>31)
	return math.Float32frombits(u & keep)
}
