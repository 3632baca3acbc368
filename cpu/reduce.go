package cpu

import (
	"math"
	"sync"

	"github.com/quantkit/quantkit/backend"
)

const (
	// reduceMinWork is the number of elements below which a reduction
	// runs on one goroutine.
	reduceMinWork = 1 << 16

	expMask = 0x7f800000 // exponent bits of a float32: all set for Inf and NaN
)

// AbsMax is the largest |x| over the finite values of x, 0 when there are
// none. It is
//
//	var m float32
//	for _, v := range x {
//		if a := abs(v); a <= math.MaxFloat32 && a > m { // skips NaN and ±Inf
//			m = a
//		}
//	}
//	return m
//
// exactly (the maximum does not depend on the order). It compares the bit
// patterns of |v| as integers, which order as the values do, in AVX2
// assembly where the processor has it.
func AbsMax(x []float32) float32 {
	return absMaxOn(Threads(), x)
}

// absMaxOn is AbsMax on threads goroutines at most.
func absMaxOn(threads int, x []float32) float32 {
	w := workersOf(threads, len(x), len(x), reduceMinWork)
	if w == 1 { // a group's scale: no goroutines, nothing allocated
		return math.Float32frombits(absMaxBits(x))
	}
	part := make([]uint32, w)
	parallelRange(w, len(x), 64, func(worker, lo, hi int) {
		part[worker] = absMaxBits(x[lo:hi])
	})
	var m uint32
	for _, p := range part {
		m = max(m, p)
	}
	return math.Float32frombits(m)
}

// absMaxBits is the largest bit pattern of |v| below that of +Inf.
// The assembly kernel, where there is one, does the whole blocks of 32.
func absMaxBits(x []float32) uint32 {
	var m0, m1, m2, m3 uint32
	if n := len(x) &^ 31; use.AVX2FMA && n > 0 {
		m0 = absMaxAVX2(x[:n])
		x = x[n:]
	}
	for len(x) >= 4 {
		b0 := math.Float32bits(x[0]) &^ (1 << 31)
		b1 := math.Float32bits(x[1]) &^ (1 << 31)
		b2 := math.Float32bits(x[2]) &^ (1 << 31)
		b3 := math.Float32bits(x[3]) &^ (1 << 31)
		if b0 >= expMask {
			b0 = 0
		}
		if b1 >= expMask {
			b1 = 0
		}
		if b2 >= expMask {
			b2 = 0
		}
		if b3 >= expMask {
			b3 = 0
		}
		m0, m1, m2, m3 = max(m0, b0), max(m1, b1), max(m2, b2), max(m3, b3)
		x = x[4:]
	}
	for _, v := range x {
		if b := math.Float32bits(v) &^ (1 << 31); b < expMask {
			m0 = max(m0, b)
		}
	}
	return max(m0, m1, m2, m3)
}

// HistogramAbs adds to counts the number of finite values of x in each
// bin of width width over |x|, clamping bins past the end to the last one,
// and returns the number of non-finite values it skipped. It is
//
//	for _, v := range x {
//		if math.IsNaN(v) || math.IsInf(v, 0) {
//			nonFinite++
//			continue
//		}
//		bin := math.Floor(abs(v) / width)
//		counts[int(min(bin, len(counts)-1))]++
//	}
//
// with abs(v)/width computed as abs(v)·(1/width) in float32. width must be a
// power of two in [2^-126, 2^127], so that 1/width is exact and so is the
// product (a scaling by a power of two, rounded as the division would be
// where it underflows or overflows): every backend bins identically.
// HistogramAbs panics when width is not such a power of two or counts is
// empty.
//
// Each worker counts into private histograms (four interleaved ones, so
// that a run of equal values, such as many zeros, does not serialise on one
// counter) merged at the end. Where the processor has AVX2, assembly bins
// and counts blocks of 128 values (histogramAbsAVX2) for up to 2^14 bins.
func HistogramAbs(x []float32, width float32, counts []int64) (nonFinite int64) {
	if err := backend.CheckHistogram(width, len(counts)); err != nil {
		panic("cpu: HistogramAbs: " + err.Error())
	}
	nb := len(counts)
	inv := 1 / width
	w := workers(len(x), len(x), reduceMinWork)
	if w == 1 {
		return histogramAbs(x, inv, counts)
	}
	type part struct {
		counts    []int64
		nonFinite int64
	}
	parts := make([]part, w)
	parallelRange(w, len(x), 64, func(worker, lo, hi int) {
		c := make([]int64, nb)
		parts[worker] = part{c, histogramAbs(x[lo:hi], inv, c)}
	})
	for _, p := range parts {
		nonFinite += p.nonFinite
		for i, v := range p.counts {
			counts[i] += v
		}
	}
	return nonFinite
}

// histogramAbs adds the counts of x in len(c) bins of width 1/inv to c and
// returns the number of non-finite values.
func histogramAbs(x []float32, inv float32, c []int64) int64 {
	nb := len(c)
	last, limit := nb-1, float64(nb)
	binOf := func(b uint32) int {
		v := float64(math.Float32frombits(b) * inv)
		if v >= limit { // also +Inf, where the product overflows
			return last
		}
		return int(v)
	}
	var nonFinite int64
	if use.AVX2FMA && nb <= 1<<14 && len(x) >= max(4*nb, 128) {
		return histogramAbsAVX2(x, inv, c)
	}
	if nb > 1<<14 || len(x) < 4*nb {
		// Few values per bin: one histogram.
		for _, v := range x {
			b := math.Float32bits(v) &^ (1 << 31)
			if b >= expMask {
				nonFinite++
				continue
			}
			c[binOf(b)]++
		}
		return nonFinite
	}
	more := make([]int64, 3*nb)
	c0, c1, c2, c3 := c, more[:nb], more[nb:2*nb], more[2*nb:]
	for len(x) >= 4 {
		b0 := math.Float32bits(x[0]) &^ (1 << 31)
		b1 := math.Float32bits(x[1]) &^ (1 << 31)
		b2 := math.Float32bits(x[2]) &^ (1 << 31)
		b3 := math.Float32bits(x[3]) &^ (1 << 31)
		x = x[4:]
		if b0|b1|b2|b3 >= expMask && (b0 >= expMask || b1 >= expMask || b2 >= expMask || b3 >= expMask) {
			for _, b := range [4]uint32{b0, b1, b2, b3} {
				if b >= expMask {
					nonFinite++
				} else {
					c0[binOf(b)]++
				}
			}
			continue
		}
		c0[binOf(b0)]++
		c1[binOf(b1)]++
		c2[binOf(b2)]++
		c3[binOf(b3)]++
	}
	for _, v := range x {
		b := math.Float32bits(v) &^ (1 << 31)
		if b >= expMask {
			nonFinite++
			continue
		}
		c0[binOf(b)]++
	}
	for i := range c0 {
		c0[i] += c1[i] + c2[i] + c3[i]
	}
	return nonFinite
}

// histogramAbsAVX2 is histogramAbs with the whole blocks of 128 elements
// binned and counted by the assembly kernel, into four interleaved 32-bit
// histograms with a bin past the last for the non-finite values, reused
// through subHistograms. nb is at most 2^14, so that nb and nb-1 are exact
// in float32.
func histogramAbsAVX2(x []float32, inv float32, c []int64) int64 {
	nb := len(c)
	sp := subHistograms.Get().(*[]uint32)
	if cap(*sp) < 4*(nb+1) {
		*sp = make([]uint32, 4*(nb+1))
	}
	sub := (*sp)[:4*(nb+1)]
	var nonFinite int64
	n := len(x) &^ 127
	for lo := 0; lo < n; {
		hi := lo + min(n-lo, histCallMax)
		clear(sub)
		histogramAVX2(x[lo:hi], inv, float32(nb-1), int32(nb), sub)
		for i := range c {
			s := sub[4*i : 4*i+4]
			c[i] += int64(s[0]) + int64(s[1]) + int64(s[2]) + int64(s[3])
		}
		for _, v := range sub[4*nb:] {
			nonFinite += int64(v)
		}
		lo = hi
	}
	subHistograms.Put(sp)
	for _, v := range x[n:] {
		b := math.Float32bits(v) &^ (1 << 31)
		if b >= expMask {
			nonFinite++
			continue
		}
		c[int(min(float64(math.Float32frombits(b)*inv), float64(nb-1)))]++
	}
	return nonFinite
}

// histCallMax is the most elements one histogramAVX2 call counts, all of
// which one 32-bit counter may see.
const histCallMax = int(min(1<<32-128, uint64(math.MaxInt)))

// subHistograms holds the counters of histogramAbsAVX2 between calls.
var subHistograms = sync.Pool{New: func() any { return new([]uint32) }}

// SQNRSums is Σx[i]² and Σ(x[i]−y[i])² over the elements of x (y holds
// at least as many), each term in float64 from the float32 values exactly;
// in AVX2 assembly where the processor has it, which adds them up in
// another order than
//
//	for i, v := range x {
//		a := float64(v)
//		d := a - float64(y[i])
//		sig += a * a
//		noise += d * d
//	}
//
// so that the sums agree with that loop's to rounding (a relative 1e-12
// or so), not to the bit.
func SQNRSums(x, y []float32) (sig, noise float64) {
	y = y[:len(x)]
	if n := len(x) &^ 15; use.AVX2FMA && n > 0 {
		sig, noise = sqnrSumsAVX2(x[:n], y[:n])
		x, y = x[n:], y[n:]
	}
	for i, v := range x {
		a := float64(v)
		d := a - float64(y[i])
		sig += a * a
		noise += d * d
	}
	return sig, noise
}
