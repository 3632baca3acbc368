package cpu

import (
	"math"

	"github.com/quantkit/quantkit/backend"
)

// Attention on the CPU, flash-attention style: each task takes the
// queries of one KV head (its group of Heads/KVHeads query heads) for a
// block of tokens, and walks the keys in blocks of attnKeyBlock rows so
// that a block of K and V rows stays in cache while every query of the
// task goes over it. Each query keeps a running maximum m, a running sum
// l of exp(score−m) and an unnormalized output o (in out itself):
//
//	for each key block:
//		s[j] = scale·q·k_j                  (attnDots, which returns max s)
//		if max s > m: f = exp(m − max s), m = max s, else f = 1
//		s[j] = exp(s[j] − m); l = f·l + Σ s  (attnExp)
//		o = f·o + Σ_j s[j]·v_j               (attnAccum)
//	out = o / l
//
// This is backend.AttentionF32's function in float32 with the same kinds
// of rounding (float32 dot products, exp in float32 to a few units in the
// last place, float32 sums of at most the visible positions, one rounded
// factor per key block that raises the maximum), within the error bound
// that the conformance suite (backendtest) allows the twin. Key blocks
// start at multiples of attnKeyBlock whatever the task, so each query's
// result does not depend on the thread count.

// attnKeyBlock is the number of key positions a block of queries goes
// over at once: K and V rows of the block together about 64 KiB (L2, and
// L1 for the rows being read), at least 16 positions.
func attnKeyBlock(d int) int {
	return min(max(8192/d, 16), 512)
}

// attnScratch is one worker's scratch space.
type attnScratch struct {
	s, m, l []float32
}

// attendF32 is backend.AttentionF32 (within its error bound) on Threads()
// goroutines. It does not check its operands (Attention.Check does).
func attendF32(out, q, k, v []float32, a *backend.Attention) {
	T, H, KVH, d := a.Tokens, a.Heads, a.KVHeads, a.Dim
	if T == 0 {
		return
	}
	G := H / KVH
	thr := Threads()
	// Tokens per task: enough tasks to balance the causal triangle's
	// uneven rows over the threads, at most 16 tokens so that the
	// group's queries and outputs stay in cache with the key block.
	tq := min(max(T*KVH/(4*thr), 1), 16)
	nb := (T + tq - 1) / tq
	tasks := KVH * nb
	ctx := a.Start + T
	work := 4 * T * H * min(ctx, windowOr(a.Window, ctx)) * d
	w := workers(tasks, work, 1<<15)
	bk := attnKeyBlock(d)
	scratch := make([]attnScratch, w)
	for i := range scratch {
		scratch[i] = attnScratch{s: make([]float32, bk), m: make([]float32, tq*G), l: make([]float32, tq*G)}
	}
	scale := a.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	parallelTasks(w, tasks, func(worker, task int) {
		// The last token blocks, which see the most keys, go first.
		b, kh := nb-1-task/KVH, task%KVH
		t0 := b * tq
		attendBlock(out, q, k, v, a, scale, kh, t0, min(t0+tq, T), bk, &scratch[worker])
	})
}

// windowOr is w when positive, else or.
func windowOr(w, or int) int {
	if w > 0 {
		return w
	}
	return or
}

// firstKey is the first cache position the query at position p reads.
func firstKey(a *backend.Attention, p int) int {
	if a.Window > 0 && p >= a.Window {
		return p - a.Window + 1
	}
	return 0
}

// attendBlock computes the outputs of tokens [t0, t1) for the query heads
// of KV head kh.
func attendBlock(out, q, k, v []float32, a *backend.Attention, scale float32, kh, t0, t1, bk int, sc *attnScratch) {
	H, d := a.Heads, a.Dim
	G := H / a.KVHeads
	stride := a.KVHeads * d
	nq := (t1 - t0) * G
	m, l := sc.m[:nq], sc.l[:nq]
	negInf := float32(math.Inf(-1))
	for i := range m {
		m[i], l[i] = negInf, 0
	}
	for t := t0; t < t1; t++ {
		clear(out[(t*H+kh*G)*d : (t*H+kh*G+G)*d])
	}
	lo, hi := firstKey(a, a.Start+t0), a.Start+t1
	for kb := lo / bk * bk; kb < hi; kb += bk {
		ke := min(kb+bk, hi)
		for t := t0; t < t1; t++ {
			p := a.Start + t
			j0, j1 := max(kb, firstKey(a, p)), min(ke, p+1)
			if j0 >= j1 {
				continue
			}
			n := j1 - j0
			off := j0*stride + kh*d
			end := off + (n-1)*stride + d
			kr, vr := k[off:end], v[off:end]
			s := sc.s[:n]
			for g := range G {
				qi := t*H + kh*G + g
				st := (t-t0)*G + g
				mb := attnDots(s, q[qi*d:(qi+1)*d], kr, stride, scale)
				f := float32(1)
				if mb > m[st] {
					f = expF32(m[st] - mb)
					m[st] = mb
				}
				l[st] = l[st]*f + attnExp(s, m[st])
				attnAccum(out[qi*d:(qi+1)*d], s, vr, stride, f)
			}
		}
	}
	for t := t0; t < t1; t++ {
		for g := range G {
			sum := l[(t-t0)*G+g]
			os := out[(t*H+kh*G+g)*d : (t*H+kh*G+g+1)*d]
			for i := range os {
				os[i] /= sum
			}
		}
	}
}

// attnDots is
//
//	for j := range s {
//		s[j] = scale * Σ_i q[i]·k[j*stride+i]    // i < len(q)
//	}
//
// and returns the largest s[j] (-Inf for an empty s; NaNs may be passed
// over). It panics when k is too short for the rows.
func attnDots(s, q, k []float32, stride int, scale float32) float32 {
	if len(s) > 0 && (len(s)-1)*stride+len(q) > len(k) {
		panic("cpu: attnDots: k is shorter than its rows")
	}
	if use.AVX2FMA && len(s) > 0 {
		return attnDotsAVX2(s, q, k, stride, scale)
	}
	return attnDotsGo(s, q, k, stride, scale)
}

// attnDotsGo is attnDots in Go: dot products left to right.
func attnDotsGo(s, q, k []float32, stride int, scale float32) float32 {
	mx := float32(math.Inf(-1))
	for j := range s {
		ks := k[j*stride : j*stride+len(q)]
		var dot float32
		for i, qv := range q {
			dot += qv * ks[i]
		}
		s[j] = scale * dot
		if s[j] > mx {
			mx = s[j]
		}
	}
	return mx
}

// attnExp is
//
//	for j := range s {
//		s[j] = expF32(s[j] - m)
//	}
//
// and returns Σ_j s[j].
func attnExp(s []float32, m float32) float32 {
	if use.AVX2FMA && len(s) > 0 {
		return attnExpAVX2(s, m)
	}
	return attnExpGo(s, m)
}

// attnExpGo is attnExp in Go.
func attnExpGo(s []float32, m float32) float32 {
	var sum float32
	for j, x := range s {
		e := expF32(x - m)
		s[j] = e
		sum += e
	}
	return sum
}

// attnAccum is
//
//	for i := range o {
//		o[i] = f*o[i] + Σ_j p[j]·v[j*stride+i]   // j ascending
//	}
//
// It panics when v is too short for the rows.
func attnAccum(o, p, v []float32, stride int, f float32) {
	if len(p) > 0 && (len(p)-1)*stride+len(o) > len(v) {
		panic("cpu: attnAccum: v is shorter than its rows")
	}
	if use.AVX2FMA && len(o) > 0 {
		attnAccumAVX2(o, p, v, stride, f)
		return
	}
	attnAccumGo(o, p, v, stride, f)
}

// attnAccumGo is attnAccum in Go.
func attnAccumGo(o, p, v []float32, stride int, f float32) {
	for i := range o {
		o[i] *= f
	}
	for j, w := range p {
		vs := v[j*stride : j*stride+len(o)]
		for i, x := range vs {
			o[i] += w * x
		}
	}
}

// The constants of expF32 (Cephes expf), as cpu/_gen/attn has them.
const (
	expLo = -88.3762626647949
	expHi = 88.3762626647949
	expC1 = 0.693359375
	expC2 = -2.12194440e-4
)

var expP = [6]float32{1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1}

// fma32 is a·b+c rounded once to float32 (the product of two float32s is
// exact in float64; the sum rounds to float64, then to float32).
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// expF32 is e^x in float32 as Cephes expf computes it, the algorithm of
// the assembly kernel attnExpAVX2: n = ⌊x·log2e + ½⌋, r = x − n·C1 − n·C2
// (C1 + C2 = ln 2), e^r by a polynomial of degree 7, times 2ⁿ. It is
// within 2 units in the last place of e^x for x in [-87, 88]; below about
// -88 it is 0 (no subnormals), NaN gives NaN and -Inf 0.
func expF32(x float32) float32 {
	if x != x {
		return x
	}
	x = min(max(x, expLo), expHi)
	fx := float32(math.Floor(float64(fma32(x, math.Log2E, 0.5))))
	x = fma32(-fx, expC1, x)
	x = fma32(-fx, expC2, x)
	y := expP[0]
	for _, c := range expP[1:] {
		y = fma32(y, x, c)
	}
	y = fma32(y, x*x, x) + 1
	return y * math.Float32frombits(uint32(int32(fx)+127)<<23)
}
