//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"slices"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/quant"
)

// Quantize writes the codes of x (F32) into codes (U8, packed as package
// quant stores them) under p, exactly as quant.Quantize (quantize_f32). It
// returns once the kernel is queued.
func (b *Backend) Quantize(codes, x backend.Buffer, p *quant.Params) error {
	C, err := b.typed("Quantize", "codes", codes, backend.U8)
	if err != nil {
		return err
	}
	X, err := b.typed("Quantize", "x", x, backend.F32)
	if err != nil {
		return err
	}
	l, err := newQLayout(p, X.n, C.n)
	if err != nil {
		return b.errorf("Quantize: %w", err)
	}
	s := p.Scheme
	return b.do(func() error {
		if l.n == 0 {
			return nil
		}
		sc, zp, err := b.quantParams(p)
		if err != nil {
			return err
		}
		return b.launch(&b.k.quantize, b.quantGrid(l.n), 1, quantThreads, 0, l.what(s),
			ptrArg(X.ptr()), ptrArg(C.ptr()), longArg(l.n), ptrArg(sc), ptrArg(zp),
			intArg(l.mode), longArg(l.channels), longArg(l.inner), longArg(l.cols), longArg(l.group), longArg(l.perRow),
			intArg(s.Bits), intArg(int(s.QMin())), intArg(int(s.QMax())))
	})
}

// Dequantize writes the values of codes (U8) into x (F32) under p,
// exactly as quant.Dequantize (dequantize_f32). It returns once the kernel
// is queued.
func (b *Backend) Dequantize(x, codes backend.Buffer, p *quant.Params) error {
	X, err := b.typed("Dequantize", "x", x, backend.F32)
	if err != nil {
		return err
	}
	C, err := b.typed("Dequantize", "codes", codes, backend.U8)
	if err != nil {
		return err
	}
	l, err := newQLayout(p, X.n, C.n)
	if err != nil {
		return b.errorf("Dequantize: %w", err)
	}
	s := p.Scheme
	return b.do(func() error {
		if l.n == 0 {
			return nil
		}
		sc, zp, err := b.quantParams(p)
		if err != nil {
			return err
		}
		return b.launch(&b.k.dequantize, b.quantGrid(l.n), 1, quantThreads, 0, l.what(s),
			ptrArg(C.ptr()), ptrArg(X.ptr()), longArg(l.n), ptrArg(sc), ptrArg(zp),
			intArg(l.mode), longArg(l.channels), longArg(l.inner), longArg(l.cols), longArg(l.group), longArg(l.perRow),
			intArg(s.Bits), boolArg(s.Signed))
	})
}

// quantParams uploads the scales and zero points of p (unless the scratch
// buffers hold them already) and returns their addresses; 0 for zero
// points that are all zero.
func (b *Backend) quantParams(p *quant.Params) (scales, zeroPoints cu.DevicePtr, err error) {
	sc, err := b.vector(&b.scratch.scales, asBytes(p.Scales), "the scales")
	if err != nil {
		return 0, 0, err
	}
	// All-zero zero points (every symmetric scheme) need no upload: the
	// kernels read a null pointer as zeros.
	if !slices.ContainsFunc(p.ZeroPoints, func(z int32) bool { return z != 0 }) {
		return sc, 0, nil
	}
	zp, err := b.vector(&b.scratch.zeroPoints, asBytes(p.ZeroPoints), "the zero points")
	if err != nil {
		return 0, 0, err
	}
	return sc, zp, nil
}

// qLayout is how quantize_f32 and dequantize_f32 map a flat element index
// to a parameter index, the numbers package quant's layout has: mode 0 per
// tensor (parameter 0), 1 per channel ((i/inner) % channels), 2 per group
// ((i/cols)·perRow + (i%cols)/group). Fields a mode does not use are 1, so
// that no kernel divides by zero.
type qLayout struct {
	n        int
	mode     int
	channels int
	inner    int
	cols     int
	group    int
	perRow   int
}

// newQLayout checks p and the lengths as the CPU backend does (the same
// error conditions) and computes the layout.
func newQLayout(p *quant.Params, values, codes int) (qLayout, error) {
	if p == nil {
		return qLayout{}, errors.New("nil parameters")
	}
	if err := p.Check(); err != nil {
		return qLayout{}, err
	}
	s := p.Scheme
	n, err := quant.NumElements(p.Shape)
	if err != nil {
		return qLayout{}, err
	}
	if values != n {
		return qLayout{}, fmt.Errorf("%d values for shape %v (%d elements)", values, p.Shape, n)
	}
	if want := s.PackedLen(n); codes != want {
		return qLayout{}, fmt.Errorf("%d code bytes for %d values under %v, want %d", codes, n, s, want)
	}
	l := qLayout{n: n, channels: 1, inner: 1, cols: 1, group: 1, perRow: 1}
	switch s.Granularity {
	case quant.PerTensor:
		l.mode = 0
	case quant.PerChannel:
		l.mode = 1
		// p.Check validated the axis.
		l.channels = p.Shape[s.Axis]
		l.inner = 1
		for _, d := range p.Shape[s.Axis+1:] {
			l.inner *= d
		}
	case quant.PerGroup:
		if len(p.Shape) == 0 {
			return qLayout{}, errors.New("per-group quantization needs at least one dimension")
		}
		l.mode = 2
		l.cols = p.Shape[len(p.Shape)-1]
		l.group = s.GroupSize
		l.perRow = ceilDiv(l.cols, l.group)
	default:
		return qLayout{}, fmt.Errorf("unknown granularity %v", s.Granularity)
	}
	if n > 0 && (l.channels <= 0 || l.inner <= 0 || l.cols <= 0 || l.group <= 0) {
		return qLayout{}, fmt.Errorf("shape %v: a dimension the parameters follow is empty", p.Shape)
	}
	return l, nil
}

// what names the sizes for errors.
func (l qLayout) what(s quant.Scheme) string {
	return fmt.Sprintf("n=%d scheme=%v", l.n, s)
}
