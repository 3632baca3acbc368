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
// the planes: (OH−1)·StrideH+KH ≤ H, (OW−1)·StrideW+KW ≤ W. The kernels'
// last tiles run past the planes (their values there are dropped): they
// read x's capacity past its length where it has some (a few rows' worth
// lets them read in place), else they copy those tiles' windows.
//
// With the amd64 kernels it never materialises the im2col matrix: the
// window values of each run of the GEMM kernel's columns (output pixels,
// across the n images) are read where they lie or gathered straight into
// the kernel's packed panel, and the kernel's tiles, channels by pixels,
// are the output planes with the bias added. With Wide set, the output
// planes are laid out as OutStrides says, which lets the kernels store
// their tiles where they lie. A ConvF32 keeps scratch memory between
// calls and is not safe for concurrent use.
type ConvF32 struct {
	InC, OutC, KH, KW int
	StrideH, StrideW  int
	H, W              int       // input planes, padding included
	OH, OW            int       // output planes
	Weight            []float32 // [OutC][InC][KH][KW]
	Bias              []float32 // [OutC]
	ReLU              bool
	Wide              bool // output at the strides OutStrides gives
	Threads           int  // goroutines at most; 0: Threads()

	packed  []float32   // Weight with rows padded to the kernel's tile
	bias    []float32   // Bias padded likewise
	scratch [][]float32 // a panel per worker
	panelQ  []int       // the offset of each weight step's row in a panel
	steps   []int       // the offset of each weight step's window cell, for stepsN images
	stepsN  int
}

// convInPlace lets ConvF32 read window rows where they lie, where the
// kernels can (benchmarks and tests turn it off).
var convInPlace = true

// OutStrides returns the layout of the output planes Run writes for n
// images: output (o, i, oh, ow) is dst[(o·n + i)·img + oh·row + ow], and
// dst holds OutC·n·img values. Without Wide, or without kernels that
// store in place, row is OW and img OH·OW. With Wide, at strides of 1 on
// the amd64 kernels, row is W (the rows of the input planes: columns OW
// to W−1 hold no outputs) and img the OH·W positions of an image rounded
// up to whole tiles; the values outside OH×OW are then unspecified.
func (cv *ConvF32) OutStrides(n int) (row, img int) {
	if cv.Wide {
		if row, img, ok := convWideStrides(cv, n); ok {
			return row, img
		}
	}
	return cv.OW, cv.OH * cv.OW
}

// Run computes the convolution of the n images in x into dst.
func (cv *ConvF32) Run(dst, x []float32, n int) {
	row, img := cv.OutStrides(n)
	dst = dst[:cv.OutC*n*img]
	_ = x[:cv.InC*n*cv.H*cv.W]
	if n*cv.OH*cv.OW == 0 {
		return
	}
	if convF32SIMD(cv, dst, x, n) {
		return
	}
	convF32Generic(cv, dst, x, n, row, img)
}

// convF32Generic is Run in plain Go, one output value at a time, into
// planes of rows row apart and images img apart.
func convF32Generic(cv *ConvF32, dst, x []float32, n, row, img int) {
	P, plane, K := n*cv.OH*cv.OW, cv.H*cv.W, cv.InC*cv.KH*cv.KW
	for o := range cv.OutC {
		w := cv.Weight[o*K : (o+1)*K]
		for p := range P {
			i, r := p/(cv.OH*cv.OW), p%(cv.OH*cv.OW)
			oh, ow := r/cv.OW, r%cv.OW
			base := i*plane + oh*cv.StrideH*cv.W + ow*cv.StrideW
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
			dst[(o*n+i)*img+oh*row+ow] = s
		}
	}
}

// convReLU is max(v, 0) without branches (a tile's signs are random, and a
// branch on them mispredicts half the time): the bits of v where its sign
// is clear or it is a NaN, else +0.
func convReLU(v float32) float32 {
	u := math.Float32bits(v)
	keep := uint32(int32(^u)>>31) | uint32(int32(0x7f800000-(u&0x7fffffff))>>31)
	return math.Float32frombits(u & keep)
}
