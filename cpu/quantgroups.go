package cpu

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/quant"
)

// spanBytes is about how many bytes of x one span of groups covers: the
// groups are read once from memory to find their largest |x|, and again
// from the level-1 cache to quantize them.
const spanBytes = 16 << 10

// FitQuantizeGroups fits, quantizes and measures x, rows of cols values,
// under the symmetric per-group scheme s, one span of groups at a time
// (each group read from memory once). Its codes and scales are, bit for
// bit, those of
//
//	p, _ := quant.FitAbsMax(s, x, []int{len(x) / cols, cols}, AbsMax)
//	round(p.Scales) // when round is not nil: the scales as they are stored
//	quant.Quantize(codes, x, p)
//	copy(scales, p.Scales)
//
// and sig and noise are quant.SQNR's sums of x and its dequantized x̂,
// Σx² and Σ(x−x̂)², in float32 within a group (the values and errors
// first multiplied by a power of two near 1/scale, which is exact) and
// float64 across groups: within about 1e-6 of the float64 sums,
// relatively. They are NaN or +Inf when x holds NaN or ±Inf, and may be
// +Inf when a scale was rounded to far below its group's largest |x| (a
// caller then measures again).
// codes must hold s.PackedLen(len(x)) bytes and scales the scheme's
// number of parameters for that shape.
func FitQuantizeGroups(codes []byte, scales, x []float32, s quant.Scheme, cols int, round func([]float32) error) (sig, noise float64, err error) {
	return fitQuantizeGroupsOn(Threads(), codes, scales, x, s, cols, round)
}

// groupFit is one call of FitQuantizeGroups.
type groupFit struct {
	codes      []byte
	scales, x  []float32
	s          quant.Scheme
	cols       int
	perRow     int
	group      int
	qmin, qmax int32
	round      func([]float32) error
}

func fitQuantizeGroupsOn(threads int, codes []byte, scales, x []float32, s quant.Scheme, cols int, round func([]float32) error) (sig, noise float64, err error) {
	if err := s.Validate(); err != nil {
		return 0, 0, fmt.Errorf("cpu: FitQuantizeGroups: %w", err)
	}
	if s.Granularity != quant.PerGroup || !s.Symmetric {
		return 0, 0, fmt.Errorf("cpu: FitQuantizeGroups: scheme %v is not symmetric per group", s)
	}
	if cols <= 0 || len(x)%cols != 0 {
		return 0, 0, fmt.Errorf("cpu: FitQuantizeGroups: %d values are not rows of %d", len(x), cols)
	}
	rows := len(x) / cols
	perRow := ceilDiv(cols, s.GroupSize)
	if len(scales) != rows*perRow {
		return 0, 0, fmt.Errorf("cpu: FitQuantizeGroups: %d scales for %d rows of %d groups", len(scales), rows, perRow)
	}
	if want := s.PackedLen(len(x)); len(codes) != want {
		return 0, 0, fmt.Errorf("cpu: FitQuantizeGroups: %d code bytes for %d values under %v, want %d", len(codes), len(x), s, want)
	}
	f := &groupFit{codes: codes, scales: scales, x: x, s: s, cols: cols, perRow: perRow,
		group: s.GroupSize, qmin: s.QMin(), qmax: s.QMax(), round: round}
	if s.Bits == 4 && len(x)%2 == 1 {
		codes[len(codes)-1] = 0 // as quant.Quantize: the unused high nibble
	}
	// Workers take whole rows, an even number of them when a row of
	// 4-bit codes may end inside a byte.
	align := 1
	if s.Bits == 4 && cols%2 == 1 {
		align = 2
	}
	w := workersOf(threads, rows, len(x), quantMinWork)
	if w <= 1 {
		return f.rows(0, rows)
	}
	type part struct {
		sig, noise float64
		err        error
	}
	parts := make([]part, w)
	parallelRange(w, rows, align, func(worker, lo, hi int) {
		p := &parts[worker]
		p.sig, p.noise, p.err = f.rows(lo, hi)
	})
	for _, p := range parts {
		if p.err != nil {
			return 0, 0, p.err
		}
		sig += p.sig
		noise += p.noise
	}
	return sig, noise, nil
}

// rows does rows [lo, hi) in spans: runs of about spanBytes of whole
// groups where the rows are whole groups, else one row at a time.
func (f *groupFit) rows(lo, hi int) (sig, noise float64, err error) {
	add := func(s, n float64, e error) {
		sig, noise = sig+s, noise+n
		if err == nil {
			err = e
		}
	}
	// The kernels' sums of up to 64 groups at a time: one buffer a call
	// (an array on the stack would escape through the kernels'
	// arguments, once a span).
	buf := make([]float32, 2*64)
	if f.cols%f.group == 0 {
		per := max(1, spanBytes/(4*f.group))
		for k := lo * f.perRow; k < hi*f.perRow && err == nil; k += per {
			add(f.span(k, min(k+per, hi*f.perRow), buf))
		}
		return sig, noise, err
	}
	for r := lo; r < hi && err == nil; r++ {
		add(f.span(r*f.perRow, (r+1)*f.perRow, buf))
	}
	return sig, noise, err
}

// bounds are the elements [i, e) of group k.
func (f *groupFit) bounds(k int) (i, e int) {
	row, g := k/f.perRow, k%f.perRow
	i = row*f.cols + g*f.group
	return i, i + min(f.group, f.cols-g*f.group)
}

// kernels are the assembly kernels for groups of n elements: none
// (nil), AVX2 or AVX-512.
func (f *groupFit) kernels(n int) (absMax func(amax, x []float32, group int), sums func(dst []byte, x, sc []float32, group int, qmin, qmax int32, sums []float32)) {
	switch {
	case n == 0:
	case use.AVX512 && n%64 == 0:
		if f.s.Bits == 8 {
			return absMaxGroupsAVX512, quant8GroupsSumsAVX512
		}
		return absMaxGroupsAVX512, quant4GroupsSumsAVX512
	case use.AVX2FMA && n%32 == 0:
		if f.s.Bits == 8 {
			return absMaxGroupsAVX2, quant8GroupsSumsAVX2
		}
		return absMaxGroupsAVX2, quant4GroupsSumsAVX2
	}
	return nil, nil
}

// span does groups [k0, k1), which lie in one row or are all whole: their
// scales, rounded all at once, then their codes and sums (through buf, of
// 128 floats).
func (f *groupFit) span(k0, k1 int, buf []float32) (sig, noise float64, err error) {
	absMax, sumsAsm := f.kernels(f.group)
	sc := f.scales[k0:k1]
	// Whole groups of the span that the kernels take: [k0, kw).
	kw := k0
	if absMax != nil {
		for kw < k1 {
			if i, e := f.bounds(kw); e-i != f.group || f.s.Bits == 4 && i&1 == 1 {
				break
			}
			kw++
		}
	}
	if kw > k0 {
		i, _ := f.bounds(k0)
		absMax(sc[:kw-k0], f.x[i:i+(kw-k0)*f.group], f.group)
	}
	for k := kw; k < k1; k++ {
		i, e := f.bounds(k)
		sc[k-k0] = math.Float32frombits(absMaxBits(f.x[i:e]))
	}
	f.s.AbsMaxScales(sc)
	if f.round != nil {
		if err := f.round(sc); err != nil {
			return 0, 0, err
		}
	}
	for k := k0; k < kw; {
		m := min(kw-k, len(buf)/2)
		i, _ := f.bounds(k)
		e := i + m*f.group
		sumsAsm(f.dst(i, e), f.x[i:e], f.scales[k:k+m], f.group, f.qmin, f.qmax, buf[:2*m])
		sig, noise = f.add(sig, noise, f.scales[k:k+m], buf[:2*m])
		k += m
	}
	// The rest (a row's last, partial group; groups of other sizes; 4-bit
	// codes that start inside a byte): one at a time, through the
	// kernels where its length suits them.
	for k := kw; k < k1; k++ {
		i, e := f.bounds(k)
		if _, one := f.kernels(e - i); one != nil && (f.s.Bits == 8 || i&1 == 0) {
			one(f.dst(i, e), f.x[i:e], f.scales[k:k+1], e-i, f.qmin, f.qmax, buf[:2])
			sig, noise = f.add(sig, noise, f.scales[k:k+1], buf[:2])
			continue
		}
		sv, sn := quantSumsGo(f.codes, f.x, i, e, f.scales[k], f.s.Bits, float64(f.qmin), float64(f.qmax))
		sig += sv
		noise += sn
	}
	return sig, noise, nil
}

// dst are the code bytes of elements [i, e), i even for 4-bit codes.
func (f *groupFit) dst(i, e int) []byte {
	if f.s.Bits == 4 {
		return f.codes[i>>1 : (e+1)>>1]
	}
	return f.codes[i:e]
}

// add adds the kernels' sums of the groups of scales sc to sig and noise.
func (f *groupFit) add(sig, noise float64, sc, sums []float32) (float64, float64) {
	for j, s := range sc {
		_, back := groupPower(s)
		sig += float64(sums[2*j]) * back
		noise += float64(sums[2*j+1]) * back
	}
	return sig, noise
}

// groupPower is the power of two m = 2^−min(e, 126), e the exponent of
// the positive normal scale sc, by which the kernels multiply a group's
// values and errors before squaring them, and back = 1/m², which brings
// their sums back.
func groupPower(sc float32) (m float32, back float64) {
	f := min(math.Float32bits(sc)>>23, 253)
	return math.Float32frombits((254 - f) << 23), math.Ldexp(1, 2*(int(f)-127))
}

// quantSumsGo writes the codes of elements [i, e) of x under scale sc and
// zero point 0 into codes (packed, element t at byte t>>1 of 4-bit codes,
// as quant.PutCode writes it), and returns Σx² and Σ(x−x̂)² in float64,
// x̂ the dequantized value of x's code.
func quantSumsGo(codes []byte, x []float32, i, e int, sc float32, bits int, qmin, qmax float64) (sig, noise float64) {
	for t := i; t < e; t++ {
		q := quantizeValue(x[t], sc, 0, qmin, qmax)
		a := float64(x[t])
		d := a - float64(float32(q)*sc)
		sig += a * a
		noise += d * d
		switch {
		case bits == 8:
			codes[t] = byte(q)
		case t&1 == 0:
			codes[t>>1] = codes[t>>1]&0xF0 | byte(q)&0x0F
		default:
			codes[t>>1] = codes[t>>1]&0x0F | byte(q)<<4
		}
	}
	return sig, noise
}
