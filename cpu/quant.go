package cpu

import (
	"errors"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/quant"
)

// quantMinWork is the number of elements below which quantize and
// dequantize run on one goroutine.
const quantMinWork = 1 << 15

// Quantize writes the codes of x into codes under p, exactly as
// quant.Quantize does: it is
//
//	p.Runs(func(start, end, k int) {
//		for i := start; i < end; i++ {
//			q := quant.QuantizeValue(x[i], p.Scales[k], p.ZeroPoints[k], qmin, qmax)
//			quant.PutCode(codes, p.Scheme.Bits, i, q)
//		}
//	})
//
// (with the high nibble of the last byte of an odd count of 4-bit codes
// zeroed), split over the cores in chunks of whole bytes, with the long
// runs in AVX-512 or AVX2 assembly where the processor has it (the same
// codes: see elem_asm_test.go). codes must hold
// p.Scheme.PackedLen(len(x)) bytes. It returns an error when p is invalid
// or the lengths disagree with it.
func Quantize(codes []byte, x []float32, p *quant.Params) error {
	return quantizeOn(Threads(), codes, x, p)
}

// quantizeOn is Quantize on threads goroutines at most.
func quantizeOn(threads int, codes []byte, x []float32, p *quant.Params) error {
	l, err := newQLayout("Quantize", p, len(x), len(codes))
	if err != nil {
		return err
	}
	w := workersOf(threads, l.n, l.n, quantMinWork)
	parallelRange(w, l.n, 64, func(_, lo, hi int) {
		l.quantize(codes, x, lo, hi)
	})
	return nil
}

// Dequantize writes the values of codes under p into x, exactly as
// quant.Dequantize does: it is
//
//	p.Runs(func(start, end, k int) {
//		for i := start; i < end; i++ {
//			q := quant.Code(codes, p.Scheme.Bits, p.Scheme.Signed, i)
//			x[i] = float32(q-p.ZeroPoints[k]) * p.Scales[k]
//		}
//	})
//
// split over the cores, with the long runs of 8-bit codes and of 4-bit
// codes per tensor, channel or group in AVX2 assembly where the processor
// has it (bit-identical). It returns an error when p is invalid or the
// lengths disagree with it.
func Dequantize(x []float32, codes []byte, p *quant.Params) error {
	return dequantizeOn(Threads(), x, codes, p)
}

// dequantizeOn is Dequantize on threads goroutines at most.
func dequantizeOn(threads int, x []float32, codes []byte, p *quant.Params) error {
	l, err := newQLayout("Dequantize", p, len(x), len(codes))
	if err != nil {
		return err
	}
	w := workersOf(threads, l.n, l.n, quantMinWork)
	parallelRange(w, l.n, 64, func(_, lo, hi int) {
		l.dequantize(x, codes, lo, hi)
	})
	return nil
}

// qLayout is how flat element indices map to parameter indices, as
// quant's package documentation states.
type qLayout struct {
	n          int
	bits       int
	signed     bool
	qmin, qmax float64
	scales     []float32
	zeroPoints []int32

	gran     quant.Granularity
	channels int // PerChannel: size of the axis
	inner    int // PerChannel: elements after the axis
	cols     int // PerGroup: size of the last axis
	group    int // PerGroup: group size
	perRow   int // PerGroup: groups per row
}

func newQLayout(fn string, p *quant.Params, values, codes int) (*qLayout, error) {
	if p == nil {
		return nil, fmt.Errorf("cpu: %s: nil parameters", fn)
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", fn, err)
	}
	s := p.Scheme
	n := p.Len()
	if values != n {
		return nil, fmt.Errorf("cpu: %s: %d values for shape %v (%d elements)", fn, values, p.Shape, n)
	}
	if want := s.PackedLen(n); codes != want {
		return nil, fmt.Errorf("cpu: %s: %d code bytes for %d values under %v, want %d", fn, codes, n, s, want)
	}
	l := &qLayout{
		n: n, bits: s.Bits, signed: s.Signed,
		qmin: float64(s.QMin()), qmax: float64(s.QMax()),
		scales: p.Scales, zeroPoints: p.ZeroPoints,
		gran: s.Granularity,
	}
	switch s.Granularity {
	case quant.PerChannel:
		l.channels = p.Shape[s.Axis]
		l.inner = 1
		for _, d := range p.Shape[s.Axis+1:] {
			l.inner *= d
		}
	case quant.PerGroup:
		if len(p.Shape) == 0 {
			return nil, errors.New("cpu: " + fn + ": per-group quantization needs at least one dimension")
		}
		l.cols = p.Shape[len(p.Shape)-1]
		l.group = s.GroupSize
		l.perRow = ceilDiv(l.cols, l.group)
	}
	return l, nil
}

// run gives the end (at most hi) of the run of elements that starts at i
// and shares its parameter index k.
func (l *qLayout) run(i, hi int) (end, k int) {
	switch l.gran {
	case quant.PerChannel:
		o := i / l.inner
		return min((o+1)*l.inner, hi), o % l.channels
	case quant.PerGroup:
		row := i / l.cols
		g := (i - row*l.cols) / l.group
		return min(row*l.cols+min((g+1)*l.group, l.cols), hi), row*l.perRow + g
	}
	return hi, 0
}

// elementwise reports whether every element has its own parameters in
// turn: per-channel along the last axis (or one followed by unit axes).
func (l *qLayout) elementwise() bool {
	return l.gran == quant.PerChannel && l.inner == 1
}

// quantizeValue is quant.QuantizeValue with the range as float64s, stated
// again so that the compiler inlines it into the loops below.
func quantizeValue(x, scale float32, zeroPoint int32, qmin, qmax float64) int32 {
	if x != x {
		return zeroPoint
	}
	q := math.RoundToEven(float64(x/scale)) + float64(zeroPoint)
	if q <= qmin {
		return int32(qmin)
	}
	if q >= qmax {
		return int32(qmax)
	}
	return int32(q)
}

// quantize codes elements [lo, hi); lo is even.
func (l *qLayout) quantize(codes []byte, x []float32, lo, hi int) {
	if l.elementwise() {
		if l.bits == 8 {
			l.quantize8Elementwise(codes, x, lo, hi)
		} else {
			l.quantize4Elementwise(codes, x, lo, hi)
		}
		return
	}
	for i := lo; i < hi; {
		if n := l.wholeGroups(i, hi); n > 0 {
			l.quantizeGroups(codes, x, i, i+n)
			i += n
			continue
		}
		end, k := l.run(i, hi)
		sc, zp := l.scales[k], l.zeroPoints[k]
		if l.bits == 8 {
			quantize8(codes[i:end], x[i:end], sc, zp, l.qmin, l.qmax)
		} else {
			quantize4(codes, x, i, end, sc, zp, l.qmin, l.qmax)
		}
		i = end
	}
}

// wholeGroups is the number of elements from i (at most hi) that make
// whole groups of one row for the assembly group kernels (quantize and
// dequantize): 0 unless the kernels run, groups are whole blocks of 32 and
// i starts a group (and a byte, for 4-bit codes).
func (l *qLayout) wholeGroups(i, hi int) int {
	if !use.AVX2FMA || l.gran != quant.PerGroup || l.group%32 != 0 || (l.bits == 4 && i&1 == 1) {
		return 0
	}
	c := i % l.cols
	if c%l.group != 0 {
		return 0
	}
	return min(l.cols-c, hi-i) / l.group * l.group
}

// quantizeGroups codes the whole groups [s, e) of one row.
func (l *qLayout) quantizeGroups(codes []byte, x []float32, s, e int) {
	k := s/l.cols*l.perRow + s%l.cols/l.group
	m := (e - s) / l.group
	scs, zps := l.scales[k:k+m], l.zeroPoints[k:k+m]
	if l.bits == 8 {
		quantizeGroupsAsm(8, codes[s:e], x[s:e], scs, zps, l.group, int32(l.qmin), int32(l.qmax))
	} else {
		quantizeGroupsAsm(4, codes[s>>1:e>>1], x[s:e], scs, zps, l.group, int32(l.qmin), int32(l.qmax))
	}
}

// dequantizeGroups writes the whole groups [s, e) of one row.
func (l *qLayout) dequantizeGroups(x []float32, codes []byte, s, e int) {
	k := s/l.cols*l.perRow + s%l.cols/l.group
	m := (e - s) / l.group
	scs, zps := l.scales[k:k+m], l.zeroPoints[k:k+m]
	switch {
	case l.bits == 8 && l.signed:
		dequantize8SGroupsAVX2(x[s:e], codes[s:e], scs, zps, l.group)
	case l.bits == 8:
		dequantize8UGroupsAVX2(x[s:e], codes[s:e], scs, zps, l.group)
	case l.signed:
		// Signed nibbles are (n^8) - 8, as in dequantize4.
		dequantize4GroupsAVX2(x[s:e], codes[s>>1:e>>1], scs, zps, l.group, 8, 0x88888888)
	default:
		dequantize4GroupsAVX2(x[s:e], codes[s>>1:e>>1], scs, zps, l.group, 0, 0)
	}
}

// quantize8 is
//
//	for i, v := range x {
//		dst[i] = byte(quant.QuantizeValue(v, sc, zp, qmin, qmax))
//	}
//
// The assembly kernels, where there are some, do the whole blocks of 32.
func quantize8(dst []byte, x []float32, sc float32, zp int32, qmin, qmax float64) {
	dst = dst[:len(x)]
	n := quantize8Asm(dst, x, sc, zp, int32(qmin), int32(qmax))
	dst, x = dst[n:], x[n:]
	for i, v := range x {
		dst[i] = byte(quantizeValue(v, sc, zp, qmin, qmax))
	}
}

// quantize4 packs the 4-bit codes of elements [s, e) of x into codes. A
// high nibble written alone keeps the low one (written before, by this
// goroutine, since chunks start on whole bytes); a low nibble written alone
// clears the high one, which is what the last byte of an odd count needs
// and what a following run overwrites.
func quantize4(codes []byte, x []float32, s, e int, sc float32, zp int32, qmin, qmax float64) {
	i := s
	if i&1 == 1 {
		q := quantizeValue(x[i], sc, zp, qmin, qmax)
		codes[i>>1] = codes[i>>1]&0x0F | byte(q)<<4
		i++
	}
	pairs := codes[i>>1 : e>>1]
	xs := x[i : i+2*len(pairs)]
	n := quantize4Asm(pairs, xs, sc, zp, int32(qmin), int32(qmax))
	pairs, xs = pairs[n/2:], xs[n:]
	for p := range pairs {
		q0 := quantizeValue(xs[2*p], sc, zp, qmin, qmax)
		q1 := quantizeValue(xs[2*p+1], sc, zp, qmin, qmax)
		pairs[p] = byte(q0)&0x0F | byte(q1)<<4
	}
	if e&1 == 1 {
		q := quantizeValue(x[e-1], sc, zp, qmin, qmax)
		codes[e>>1] = byte(q) & 0x0F
	}
}

func (l *qLayout) quantize8Elementwise(codes []byte, x []float32, lo, hi int) {
	c := l.channels
	for i := lo; i < hi; {
		j := i % c
		end := min(i+c-j, hi)
		scs, zps := l.scales[j:j+end-i], l.zeroPoints[j:j+end-i]
		xs, dst := x[i:end], codes[i:end]
		n := quantize8VecAsm(dst, xs, scs, zps, int32(l.qmin), int32(l.qmax))
		scs, zps, xs, dst = scs[n:], zps[n:], xs[n:], dst[n:]
		for t, v := range xs {
			dst[t] = byte(quantizeValue(v, scs[t], zps[t], l.qmin, l.qmax))
		}
		i = end
	}
}

func (l *qLayout) quantize4Elementwise(codes []byte, x []float32, lo, hi int) {
	if lo >= hi {
		return // also no channels: a zero-length last axis
	}
	c := l.channels
	j := lo % c
	next := func() (float32, int32) {
		sc, zp := l.scales[j], l.zeroPoints[j]
		if j++; j == c {
			j = 0
		}
		return sc, zp
	}
	i := lo
	for i+1 < hi {
		// Whole blocks of 32 inside one row of channels go to the
		// assembly kernels; i stays even.
		if m := min(c-j, hi-i) &^ 1; m >= 32 {
			n := quantize4VecAsm(codes[i>>1:], x[i:i+m], l.scales[j:j+m], l.zeroPoints[j:j+m], int32(l.qmin), int32(l.qmax))
			if n > 0 {
				i, j = i+n, j+n
				if j == c {
					j = 0
				}
				continue
			}
		}
		sc0, zp0 := next()
		sc1, zp1 := next()
		q0 := quantizeValue(x[i], sc0, zp0, l.qmin, l.qmax)
		q1 := quantizeValue(x[i+1], sc1, zp1, l.qmin, l.qmax)
		codes[i>>1] = byte(q0)&0x0F | byte(q1)<<4
		i += 2
	}
	if i < hi {
		sc, zp := next()
		codes[i>>1] = byte(quantizeValue(x[i], sc, zp, l.qmin, l.qmax)) & 0x0F
	}
}

// dequantize writes elements [lo, hi); lo is even.
func (l *qLayout) dequantize(x []float32, codes []byte, lo, hi int) {
	if l.elementwise() {
		l.dequantizeElementwise(x, codes, lo, hi)
		return
	}
	for i := lo; i < hi; {
		if n := l.wholeGroups(i, hi); n > 0 {
			l.dequantizeGroups(x, codes, i, i+n)
			i += n
			continue
		}
		end, k := l.run(i, hi)
		sc, zp := l.scales[k], l.zeroPoints[k]
		if l.bits == 8 {
			dequantize8(x[i:end], codes[i:end], l.signed, sc, zp)
		} else {
			dequantize4(x, codes, i, end, l.signed, sc, zp)
		}
		i = end
	}
}

// dequantize8 is
//
//	for i, c := range codes {
//		x[i] = float32(code(c)-zp) * sc
//	}
//
// with code(c) = int32(int8(c)) when signed and int32(c) otherwise. Long
// runs go through a table of the 256 values, computed by the same formula.
//
// The assembly kernel, where there is one, does the whole blocks of 32.
func dequantize8(x []float32, codes []byte, signed bool, sc float32, zp int32) {
	codes = codes[:len(x)]
	if n := len(x) &^ 31; use.AVX2FMA && n > 0 {
		if signed {
			dequantize8SAVX2(x[:n], codes[:n], sc, zp)
		} else {
			dequantize8UAVX2(x[:n], codes[:n], sc, zp)
		}
		x, codes = x[n:], codes[n:]
	}
	if len(x) >= 1024 {
		var t [256]float32
		for c := range t {
			t[c] = float32(code8(byte(c), signed)-zp) * sc
		}
		for i, c := range codes {
			x[i] = t[c]
		}
		return
	}
	if signed {
		for i, c := range codes {
			x[i] = float32(int32(int8(c))-zp) * sc
		}
		return
	}
	for i, c := range codes {
		x[i] = float32(int32(c)-zp) * sc
	}
}

func code8(c byte, signed bool) int32 {
	if signed {
		return int32(int8(c))
	}
	return int32(c)
}

// nibbles are the codes of the low and high nibble of c.
func nibbles(c byte, signed bool) (lo, hi int32) {
	if signed {
		return int32(int8(c<<4) >> 4), int32(int8(c) >> 4)
	}
	return int32(c & 0x0F), int32(c >> 4)
}

// dequantize4 writes elements [s, e) of x from packed 4-bit codes, through
// a table of the 16 values (long runs: of the value pairs of all 256
// bytes) computed by the same formula.
func dequantize4(x []float32, codes []byte, s, e int, signed bool, sc float32, zp int32) {
	var v [16]float32
	for c := range v {
		q := int32(c)
		if signed && c >= 8 {
			q -= 16
		}
		v[c] = float32(q-zp) * sc
	}
	i := s
	if i&1 == 1 {
		x[i] = v[codes[i>>1]>>4]
		i++
	}
	pairs := codes[i>>1 : e>>1]
	xs := x[i : i+2*len(pairs)]
	if n := len(xs) &^ 31; use.AVX2FMA && n > 0 {
		// Signed nibbles are (n^8) - 8; flip is xored into every byte.
		sub, flip := zp, uint32(0)
		if signed {
			sub, flip = zp+8, 0x88888888
		}
		dequantize4AVX2(xs[:n], pairs[:n/2], sc, sub, flip)
		pairs, xs = pairs[n/2:], xs[n:]
	}
	if len(pairs) >= 1024 {
		var t [256][2]float32
		for c := range t {
			t[c] = [2]float32{v[c&0x0F], v[c>>4]}
		}
		for p, c := range pairs {
			*(*[2]float32)(xs[2*p:]) = t[c]
		}
	} else {
		for p, c := range pairs {
			xs[2*p] = v[c&0x0F]
			xs[2*p+1] = v[c>>4]
		}
	}
	if e&1 == 1 {
		x[e-1] = v[codes[e>>1]&0x0F]
	}
}

func (l *qLayout) dequantizeElementwise(x []float32, codes []byte, lo, hi int) {
	c := l.channels
	for i := lo; i < hi; {
		j := i % c
		end := min(i+c-j, hi)
		scs, zps := l.scales[j:j+end-i], l.zeroPoints[j:j+end-i]
		xs := x[i:end]
		if n := len(xs) &^ 31; use.AVX2FMA && l.bits == 8 && n > 0 {
			if l.signed {
				dequantize8SVecAVX2(xs[:n], codes[i:i+n], scs[:n], zps[:n])
			} else {
				dequantize8UVecAVX2(xs[:n], codes[i:i+n], scs[:n], zps[:n])
			}
			i += n
			scs, zps, xs = scs[n:], zps[n:], xs[n:]
		}
		switch {
		case l.bits == 8 && l.signed:
			cs := codes[i:end][:len(xs)]
			for t := range xs {
				xs[t] = float32(int32(int8(cs[t]))-zps[t]) * scs[t]
			}
		case l.bits == 8:
			cs := codes[i:end][:len(xs)]
			for t := range xs {
				xs[t] = float32(int32(cs[t])-zps[t]) * scs[t]
			}
		default:
			for t := range xs {
				lo4, hi4 := nibbles(codes[(i+t)>>1], l.signed)
				q := lo4
				if (i+t)&1 == 1 {
					q = hi4
				}
				xs[t] = float32(q-zps[t]) * scs[t]
			}
		}
		i = end
	}
}
