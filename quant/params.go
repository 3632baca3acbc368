package quant

import (
	"errors"
	"fmt"
	"math"
)

// Params are the quantization parameters of one tensor under one scheme:
// one scale and one zero point per parameter index (see the package
// documentation for how elements map to indices).
type Params struct {
	Scheme     Scheme
	Shape      []int
	Scales     []float32
	ZeroPoints []int32 // same length as Scales; all zero when symmetric
}

// NumElements is the product of shape, or an error when a dimension is
// negative or the product overflows.
func NumElements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("quant: negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("quant: shape %v overflows", shape)
		}
		n *= d
	}
	return n, nil
}

// layout says how a flat element index maps to a parameter index.
type layout struct {
	n        int // elements
	params   int // parameter pairs
	channels int // PerChannel: size of the axis
	inner    int // PerChannel: elements after the axis
	cols     int // PerGroup: size of the last axis
	perRow   int // PerGroup: groups per row
	group    int // PerGroup: group size
}

func newLayout(s Scheme, shape []int) (layout, error) {
	if err := s.Validate(); err != nil {
		return layout{}, err
	}
	n, err := NumElements(shape)
	if err != nil {
		return layout{}, err
	}
	l := layout{n: n, params: 1}
	switch s.Granularity {
	case PerChannel:
		if s.Axis >= len(shape) {
			return layout{}, fmt.Errorf("quant: channel axis %d out of range for shape %v", s.Axis, shape)
		}
		l.channels = shape[s.Axis]
		l.inner = 1
		for _, d := range shape[s.Axis+1:] {
			l.inner *= d
		}
		l.params = l.channels
	case PerGroup:
		if len(shape) == 0 {
			return layout{}, errors.New("quant: per-group quantization needs at least one dimension")
		}
		l.cols = shape[len(shape)-1]
		l.group = s.GroupSize
		l.perRow = (l.cols + l.group - 1) / l.group
		if l.cols == 0 {
			l.params = 0
		} else {
			l.params = n / l.cols * l.perRow
		}
	}
	return l, nil
}

// index is the parameter index of element i.
func (l layout) index(s Scheme, i int) int {
	switch s.Granularity {
	case PerChannel:
		return i / l.inner % l.channels
	case PerGroup:
		return i/l.cols*l.perRow + i%l.cols/l.group
	}
	return 0
}

// runs calls fn for each maximal run [start, end) of consecutive elements
// that share parameter index k, in order.
func (l layout) runs(s Scheme, fn func(start, end, k int)) {
	switch s.Granularity {
	case PerTensor:
		if l.n > 0 {
			fn(0, l.n, 0)
		}
	case PerChannel:
		for start := 0; start < l.n; start += l.inner {
			fn(start, start+l.inner, start/l.inner%l.channels)
		}
	case PerGroup:
		for row := 0; row*l.cols < l.n; row++ {
			base := row * l.cols
			for g := 0; g < l.perRow; g++ {
				end := min((g+1)*l.group, l.cols)
				fn(base+g*l.group, base+end, row*l.perRow+g)
			}
		}
	}
}

// NumParams is the number of (scale, zero point) pairs a tensor of the
// given shape has under s.
func NumParams(s Scheme, shape []int) (int, error) {
	l, err := newLayout(s, shape)
	return l.params, err
}

// NewParams allocates parameters for a tensor of the given shape, with
// every scale 1 and every zero point 0.
func NewParams(s Scheme, shape []int) (*Params, error) {
	l, err := newLayout(s, shape)
	if err != nil {
		return nil, err
	}
	p := &Params{Scheme: s, Shape: append([]int(nil), shape...), Scales: make([]float32, l.params), ZeroPoints: make([]int32, l.params)}
	for i := range p.Scales {
		p.Scales[i] = 1
	}
	return p, nil
}

// Len is the number of elements the parameters describe.
func (p *Params) Len() int {
	n, _ := NumElements(p.Shape)
	return n
}

// Index is the parameter index of flat element i.
func (p *Params) Index(i int) int {
	l, _ := newLayout(p.Scheme, p.Shape)
	return l.index(p.Scheme, i)
}

// Runs calls fn for each maximal run [start, end) of consecutive elements
// sharing parameter index k, in order. Backends use it to walk a tensor.
func (p *Params) Runs(fn func(start, end, k int)) {
	l, _ := newLayout(p.Scheme, p.Shape)
	l.runs(p.Scheme, fn)
}

// Check reports whether p is consistent: a valid scheme, as many scales and
// zero points as the shape needs, finite positive scales and zero points
// inside the code range.
func (p *Params) Check() error {
	l, err := newLayout(p.Scheme, p.Shape)
	if err != nil {
		return err
	}
	if len(p.Scales) != l.params || len(p.ZeroPoints) != l.params {
		return fmt.Errorf("quant: %v on shape %v needs %d scales and zero points, have %d and %d",
			p.Scheme, p.Shape, l.params, len(p.Scales), len(p.ZeroPoints))
	}
	qmin, qmax := p.Scheme.QMin(), p.Scheme.QMax()
	if paramsValid(p.Scales, p.ZeroPoints, qmin, qmax, p.Scheme.Symmetric) {
		return nil
	}
	for k, sc := range p.Scales {
		if !(sc > 0) || math.IsInf(float64(sc), 0) {
			return fmt.Errorf("quant: scale %d is %g, want finite and positive", k, sc)
		}
		zp := p.ZeroPoints[k]
		if zp < qmin || zp > qmax || (p.Scheme.Symmetric && zp != 0) {
			return fmt.Errorf("quant: zero point %d is %d, outside [%d, %d] or non-zero in a symmetric scheme", k, zp, qmin, qmax)
		}
	}
	return nil
}

// paramsValid reports whether every scale is finite and positive and
// every zero point in [qmin, qmax] (0 when symmetric). Check runs it on
// every quantize call, where a per-group scheme has a scale every 32
// values: it tests the bits without branches (a float32 is finite and
// positive iff its bits are in [1, 0x7f7fffff]), about 1 ns a scale where
// the loop that finds the culprit for the error message takes 4.
func paramsValid(scales []float32, zps []int32, qmin, qmax int32, symmetric bool) bool {
	if symmetric {
		qmin, qmax = 0, 0
	}
	span := uint64(uint32(qmax - qmin))
	zps = zps[:len(scales)]
	var bad uint64
	for k, sc := range scales {
		// Each difference wraps below 0, setting bit 63, exactly when the
		// value is in range.
		bad |= ^(uint64(math.Float32bits(sc)-1) - 0x7f7fffff) >> 63
		bad |= ^(uint64(uint32(zps[k]-qmin)) - span - 1) >> 63
	}
	return bad == 0
}

// minScale keeps scales normal: a subnormal scale would turn x/scale into
// Inf for ordinary inputs.
const minScale = 0x1p-126

// ScaleZeroPoint gives the scale and zero point that map the real range
// [lo, hi] onto the codes of s.
//
// Symmetric: scale = max(|lo|, |hi|)/qmax, zero point 0. Asymmetric: the
// range is widened to include 0 (so that 0 is exact), scale =
// (hi-lo)/(qmax-qmin) and zero point = qmin - round(lo/scale). An all-zero
// range gives scale 1, never NaN; NaN bounds count as 0 and infinite ones as
// ±MaxFloat32.
func (s Scheme) ScaleZeroPoint(lo, hi float32) (scale float32, zeroPoint int32) {
	l, h := sanitize(lo), sanitize(hi)
	if l > h {
		l, h = h, l
	}
	qmin, qmax := float64(s.QMin()), float64(s.QMax())
	if s.Symmetric {
		amax := math.Max(math.Abs(l), math.Abs(h))
		return clampScale(amax / qmax), 0
	}
	l, h = math.Min(l, 0), math.Max(h, 0)
	sc := clampScale((h - l) / (qmax - qmin))
	zp := qmin - math.RoundToEven(l/float64(sc))
	zp = math.Max(qmin, math.Min(qmax, zp))
	return sc, int32(zp)
}

func sanitize(v float32) float64 {
	switch {
	case v != v:
		return 0
	case math.IsInf(float64(v), 1):
		return math.MaxFloat32
	case math.IsInf(float64(v), -1):
		return -math.MaxFloat32
	}
	return float64(v)
}

func clampScale(sc float64) float32 {
	if sc == 0 {
		return 1
	}
	return float32(math.Max(minScale, math.Min(sc, math.MaxFloat32)))
}

// FitMinMax computes parameters for x (of the given shape) from the
// minimum and maximum of its finite values under each parameter index.
// Non-finite values are ignored; a group with no finite value gets scale 1.
func FitMinMax(s Scheme, x []float32, shape []int) (*Params, error) {
	p, err := paramsFor(s, x, shape)
	if err != nil {
		return nil, err
	}
	lo := make([]float32, len(p.Scales))
	hi := make([]float32, len(p.Scales))
	p.Runs(func(start, end, k int) {
		mn, mx := lo[k], hi[k]
		// mn ≤ 0 ≤ mx throughout (the range always holds 0), so a value
		// moves at most one bound; NaN fails every comparison and ±Inf the
		// finiteness test that follows a successful one.
		for _, v := range x[start:end] {
			if v < mn {
				if v >= -math.MaxFloat32 {
					mn = v
				}
			} else if v > mx && v <= math.MaxFloat32 {
				mx = v
			}
		}
		lo[k], hi[k] = mn, mx
	})
	for k := range p.Scales {
		p.Scales[k], p.ZeroPoints[k] = s.ScaleZeroPoint(lo[k], hi[k])
	}
	return p, nil
}

// FitAbsMax is FitMinMax for a symmetric scheme, to the bit, with the
// reductions left to absMax, which must return the largest finite |v| of
// its argument and 0 when there is none (cpu.AbsMax does, with SIMD): a
// symmetric scale depends only on that, and the generic loop of
// FitMinMax is several times slower than memory.
func FitAbsMax(s Scheme, x []float32, shape []int, absMax func([]float32) float32) (*Params, error) {
	if !s.Symmetric {
		return nil, fmt.Errorf("quant: FitAbsMax of the asymmetric scheme %v", s)
	}
	p, err := paramsFor(s, x, shape)
	if err != nil {
		return nil, err
	}
	amax := make([]float32, len(p.Scales))
	p.Runs(func(start, end, k int) { amax[k] = max(amax[k], absMax(x[start:end])) })
	copy(p.Scales, amax)
	s.AbsMaxScales(p.Scales)
	return p, nil
}

// AbsMaxScales replaces each amax[k], the largest finite |x| of a run of
// values, with the scale of the symmetric scheme s for that run:
// ScaleZeroPoint(-amax[k], amax[k])'s, as FitAbsMax and FitMinMax set it.
func (s Scheme) AbsMaxScales(amax []float32) {
	qmax := float64(s.QMax())
	for k, a := range amax {
		if !(a >= 0 && a <= math.MaxFloat32) {
			amax[k], _ = s.ScaleZeroPoint(-a, a)
			continue
		}
		// ScaleZeroPoint's symmetric branch without the checks (a
		// quarter of a per-group fit), and clampScale's bounds as
		// comparisons: sc is finite, not negative and at most
		// MaxFloat32 (qmax ≥ 1).
		sc := float64(a) / qmax
		switch {
		case sc == 0:
			amax[k] = 1
		case sc < minScale:
			amax[k] = minScale
		default:
			amax[k] = float32(sc)
		}
	}
}

// paramsFor is NewParams for x, which must hold shape's elements.
func paramsFor(s Scheme, x []float32, shape []int) (*Params, error) {
	p, err := NewParams(s, shape)
	if err != nil {
		return nil, err
	}
	if len(x) != p.Len() {
		return nil, fmt.Errorf("quant: %d values for shape %v (%d elements)", len(x), shape, p.Len())
	}
	return p, nil
}

// QuantizeValue is the reference rounding of one value:
// clamp(roundHalfEven(x/scale) + zeroPoint, qmin, qmax), with NaN mapped to
// the zero point.
func QuantizeValue(x, scale float32, zeroPoint, qmin, qmax int32) int32 {
	if x != x {
		return zeroPoint
	}
	q := math.RoundToEven(float64(x/scale)) + float64(zeroPoint)
	if q <= float64(qmin) {
		return qmin
	}
	if q >= float64(qmax) {
		return qmax
	}
	return int32(q)
}

// DequantizeValue is (q - zeroPoint) * scale in float32.
func DequantizeValue(q int32, scale float32, zeroPoint int32) float32 {
	return float32(q-zeroPoint) * scale
}

// PutCode stores code q of element i into packed codes.
func PutCode(codes []byte, bits, i int, q int32) {
	if bits == 8 {
		codes[i] = byte(q)
		return
	}
	b := &codes[i>>1]
	if i&1 == 0 {
		*b = *b&0xF0 | byte(q)&0x0F
	} else {
		*b = *b&0x0F | byte(q)<<4
	}
}

// Code reads the code of element i from packed codes.
func Code(codes []byte, bits int, signed bool, i int) int32 {
	if bits == 8 {
		if signed {
			return int32(int8(codes[i]))
		}
		return int32(codes[i])
	}
	n := codes[i>>1]
	if i&1 == 1 {
		n >>= 4
	}
	n &= 0x0F
	if signed {
		return int32(int8(n<<4) >> 4)
	}
	return int32(n)
}

// Quantize writes the codes of x into codes, which must hold
// Scheme.PackedLen(len(x)) bytes. It is the reference every backend matches
// exactly.
func Quantize(codes []byte, x []float32, p *Params) error {
	if err := p.checkLens(len(x), len(codes)); err != nil {
		return err
	}
	s := p.Scheme
	qmin, qmax := s.QMin(), s.QMax()
	if s.Bits == 4 && len(x)%2 == 1 {
		codes[len(codes)-1] = 0
	}
	p.Runs(func(start, end, k int) {
		sc, zp := p.Scales[k], p.ZeroPoints[k]
		for i := start; i < end; i++ {
			PutCode(codes, s.Bits, i, QuantizeValue(x[i], sc, zp, qmin, qmax))
		}
	})
	return nil
}

// Dequantize writes the real values of codes into x.
func Dequantize(x []float32, codes []byte, p *Params) error {
	if err := p.checkLens(len(x), len(codes)); err != nil {
		return err
	}
	s := p.Scheme
	p.Runs(func(start, end, k int) {
		sc, zp := p.Scales[k], p.ZeroPoints[k]
		for i := start; i < end; i++ {
			x[i] = DequantizeValue(Code(codes, s.Bits, s.Signed, i), sc, zp)
		}
	})
	return nil
}

func (p *Params) checkLens(values, codes int) error {
	if err := p.Check(); err != nil {
		return err
	}
	if n := p.Len(); values != n {
		return fmt.Errorf("quant: %d values for shape %v (%d elements)", values, p.Shape, n)
	}
	if want := p.Scheme.PackedLen(values); codes != want {
		return fmt.Errorf("quant: %d code bytes for %d values under %v, want %d", codes, values, p.Scheme, want)
	}
	return nil
}
