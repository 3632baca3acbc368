package gguf

import (
	"encoding/binary"
	"math"
)

// Block layouts of ggml-common.h for the K-quants: super-blocks of QK_K
// weights.
const (
	// QK_K is the number of weights in a K-quant super-block.
	QK_K = 256
	// A Q4_K block is float16 d, float16 dmin, 12 bytes holding eight
	// 6-bit scales and eight 6-bit mins (get_scale_min_k4's packing), then
	// 128 bytes of nibbles: for each 64 weights, byte l holds weight l in
	// its low nibble and weight l+32 in its high one. Sub-block j (32
	// weights) is x ≈ d·sc[j]·q − dmin·m[j].
	blockQ4_KSize = 2 + 2 + 12 + QK_K/2
	// A Q5_K block is Q4_K's header, then 32 bytes qh (bit 2k of byte l
	// is the fifth bit of weight 64k+l, bit 2k+1 that of weight 64k+l+32),
	// then the low nibbles as in Q4_K.
	blockQ5_KSize = 2 + 2 + 12 + QK_K/8 + QK_K/2
	// A Q6_K block is 128 bytes ql (low 4 bits), 64 bytes qh (high 2
	// bits), sixteen int8 scales, then float16 d; sub-block j (16 weights)
	// is x ≈ d·sc[j]·(q−32).
	blockQ6_KSize = QK_K/2 + QK_K/4 + QK_K/16 + 2
)

// groupMaxEps is ggml's GROUP_MAX_EPS: a group whose largest magnitude is
// below it quantizes to zeros.
const groupMaxEps = float32(1e-15)

// nearestInt is ggml's nearest_int: adding 1.5·2^23 leaves the rounded
// value (to nearest, ties to even) in the low mantissa bits. ggml asserts
// |f| ≤ 4194303 only in debug builds; outside that range, and for NaN, the
// result is whatever the bits give, reproduced here too. The conversion
// float32(f) keeps a caller's product from fusing into the addition.
func nearestInt(f float32) int32 {
	v := float32(f) + 12582912
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

// QuantizeQ4_K quantizes x, a whole number of super-blocks of QK_K values,
// into the first len(x)/QK_K·144 bytes of dst, as ggml's
// quantize_row_q4_K_ref does (the path llama-quantize takes without an
// importance matrix), bit for bit: each sub-block of 32 gets a scale and a
// minimum from make_qkx2_quants (weights |x|+rms, 21 trial scales), those
// are quantized to 6 bits against the super-block's largest, and the
// weights are requantized to 4 bits with the rounded scales. It panics if
// len(x) is not a multiple of QK_K or dst is too short.
func QuantizeQ4_K(dst []byte, x []float32) {
	nb := blocks("QuantizeQ4_K", len(x), QK_K, len(dst), blockQ4_KSize)
	var s kScratch
	for i := range nb {
		xb := (*[QK_K]float32)(x[i*QK_K:])
		yb := dst[i*blockQ4_KSize : (i+1)*blockQ4_KSize]
		s.scalesMins(xb, yb[:16], 15, -1, 0.1, 20)
		q := yb[16:]
		for j := 0; j < QK_K; j += 64 {
			for l := range 32 {
				q[l] = s.L[j+l] | s.L[j+l+32]<<4
			}
			q = q[32:]
		}
	}
}

// QuantizeQ5_K quantizes x, a whole number of super-blocks of QK_K values,
// into the first len(x)/QK_K·176 bytes of dst, as ggml's
// quantize_row_q5_K_ref does, bit for bit: as Q4_K with 5-bit weights
// (make_qkx2_quants with 16 trial scales). It panics if len(x) is not a
// multiple of QK_K or dst is too short.
func QuantizeQ5_K(dst []byte, x []float32) {
	nb := blocks("QuantizeQ5_K", len(x), QK_K, len(dst), blockQ5_KSize)
	var s kScratch
	for i := range nb {
		xb := (*[QK_K]float32)(x[i*QK_K:])
		yb := dst[i*blockQ5_KSize : (i+1)*blockQ5_KSize]
		s.scalesMins(xb, yb[:16], 31, -0.5, 0.1, 15)
		qh := yb[16 : 16+QK_K/8]
		ql := yb[16+QK_K/8:]
		clear(qh)
		m1, m2 := uint8(1), uint8(2)
		for n := 0; n < QK_K; n += 64 {
			for j := range 32 {
				l1 := s.L[n+j]
				if l1 > 15 {
					l1 -= 16
					qh[j] |= m1
				}
				l2 := s.L[n+j+32]
				if l2 > 15 {
					l2 -= 16
					qh[j] |= m2
				}
				ql[j] = l1 | l2<<4
			}
			m1 <<= 2
			m2 <<= 2
			ql = ql[32:]
		}
	}
}

// kScratch is the per-call working memory of the Q4_K and Q5_K quantizers,
// kept off the heap.
type kScratch struct {
	L            [QK_K]uint8
	scales, mins [QK_K / 32]float32
	weights, xm  [32]float32
	iscale       [kLanes]float32 // the trials' inverse scales
	sumL, sumL2  [kLanes]float32 // and their sums,
	sumXL        [kLanes]float32
	scale, vmin  [kLanes]float32 // least-squares scales and minimums
	err          [kLanes]float32 // and errors
}

// scalesMins is the part quantize_row_q4_K_ref and quantize_row_q5_K_ref
// share: it writes d, dmin and the 12 bytes of packed scales and mins to
// hdr (16 bytes) and leaves the weights' codes, 0..nmax, in s.L.
func (s *kScratch) scalesMins(x *[QK_K]float32, hdr []byte, nmax int32, rmin, rdelta float32, nstep int) {
	var maxScale, maxMin float32 // scales and mins are never negative
	for j := range QK_K / 32 {
		xs := (*[32]float32)(x[32*j:])
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32))) // sqrtf: correctly rounded either way
		for l, v := range xs {
			s.weights[l] = avX + abs32(v)
		}
		s.scales[j], s.mins[j] = s.makeQKX2(xs, (*[32]uint8)(s.L[32*j:]), nmax, rmin, rdelta, nstep)
		if s.scales[j] > maxScale {
			maxScale = s.scales[j]
		}
		if s.mins[j] > maxMin {
			maxMin = s.mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := hdr[4:16]
	for j := range QK_K / 32 {
		ls := min(63, uint8(nearestInt(float32(invScale*s.scales[j]))))
		lm := min(63, uint8(nearestInt(float32(invMin*s.mins[j]))))
		if j < 4 {
			sc[j] = ls
			sc[j+4] = lm
		} else {
			sc[j+4] = ls&0xf | (lm&0xf)<<4
			sc[j-4] |= ls >> 4 << 6
			sc[j] |= lm >> 4 << 6
		}
	}
	dBits, dminBits := fp16(maxScale/63), fp16(maxMin/63)
	binary.LittleEndian.PutUint16(hdr[0:], dBits)
	binary.LittleEndian.PutUint16(hdr[2:], dminBits)
	s.requantize(x, hdr, nmax)
}

// requantize recomputes the codes in s.L of every sub-block whose rounded
// scale d·sc[j] is not zero from the header hdr (d, dmin, the packed
// scales and mins), as the last step of ggml's Q4_K and Q5_K quantizers.
func (s *kScratch) requantize(x *[QK_K]float32, hdr []byte, nmax int32) {
	d16 := fp32(binary.LittleEndian.Uint16(hdr[0:]))
	dmin16 := fp32(binary.LittleEndian.Uint16(hdr[2:]))
	sc := hdr[4:16]
	for j := range QK_K / 32 {
		scj, mj := scaleMinK4(j, sc)
		d := float32(d16 * float32(scj))
		if d == 0 {
			continue // keep make_qkx2_quants' codes, as ggml does
		}
		dm := float32(dmin16 * float32(mj))
		L := (*[32]uint8)(s.L[32*j:])
		for ii, v := range x[32*j : 32*j+32] {
			l := nearestInt((v + dm) / d)
			L[ii] = uint8(max(0, min(nmax, l)))
		}
	}
}

// scaleMinK4 is ggml's get_scale_min_k4: the 6-bit scale and minimum of
// sub-block j from the 12 packed bytes q.
func scaleMinK4(j int, q []byte) (d, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | q[j-4]>>6<<4, q[j+4]>>4 | q[j]>>6<<4
}

// makeQKX2 is ggml's make_qkx2_quants for n = 32 with the weights in
// s.weights and use_mad false: it returns the scale and the negated
// minimum (ggml's *the_min) and leaves the codes in L. It computes what
// ggml computes, each sum in ggml's float32 order, but not in ggml's
// sequence: ggml's trial scales depend on each other only through the
// minimum, which changes when a trial wins, so the trials from the next
// one on are evaluated at once (kTrials, kErrs: on AVX2 one trial in each
// lane) and the first that improves on the best error wins; the trials
// after it are evaluated again with its minimum. The codes are computed
// once, for the winner.
func (s *kScratch) makeQKX2(x *[32]float32, L *[32]uint8, nmax int32, rmin, rdelta float32, nstep int) (scale, theMin float32) {
	w := &s.weights
	vmin, vmax := x[0], x[0]
	sumW := w[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < 32; i++ {
		if x[i] < vmin {
			vmin = x[i]
		}
		if x[i] > vmax {
			vmax = x[i]
		}
		sumW += w[i]
		sumX += float32(w[i] * x[i])
	}
	if vmin > 0 {
		vmin = 0
	}
	if vmax == vmin {
		*L = [32]uint8{}
		return 0, -vmin
	}
	fmax := float32(nmax)
	hi := math.Float32bits(12582912 + fmax)
	rng := vmax - vmin
	iscale := fmax / rng
	scale = 1 / iscale
	xm := &s.xm
	maxXm := kShift(xm, x, vmin)
	var bestError float32
	for i := range 32 {
		l := max(0, min(nmax, nearestInt(float32(iscale*xm[i]))))
		diff := float32(float32(scale*float32(l))+vmin) - x[i]
		diff = float32(diff * diff)
		bestError += float32(w[i] * diff)
	}
	// The winner's codes are those of bestIscale·(x − bestShift).
	bestIscale, bestShift := iscale, vmin
	for from := 0; from <= nstep; {
		// At most kLanes trials at a time (make_qkx3_quants tries 37).
		n := min(kLanes, nstep+1-from)
		var maxIs float32
		for k := range s.iscale {
			var v float32
			if k < n {
				v = (float32(rmin+float32(rdelta*float32(from+k))) + fmax) / rng
			}
			s.iscale[k] = v
			maxIs = max(maxIs, abs32(v)) // NaN stays NaN
		}
		ok := kBitsOK(maxIs, maxXm)
		kTrials(ok, n, xm, x, w, &s.iscale, hi, &s.sumL, &s.sumL2, &s.sumXL)
		var valid uint32
		for k := range n {
			var good bool
			s.scale[k], s.vmin[k], good = kScaleMin(sumW, sumX, s.sumL[k], s.sumL2[k], s.sumXL[k])
			if good {
				valid |= 1 << k
			}
		}
		win := -1
		if valid != 0 {
			kErrs(ok, n, xm, x, w, &s.iscale, &s.scale, &s.vmin, hi, &s.err)
			for k := range n {
				if valid>>k&1 != 0 && s.err[k] < bestError {
					win = k
					break
				}
			}
		}
		if win < 0 {
			from += n // none of these won: the next ones, with the same minimum
			continue
		}
		bestError = s.err[win]
		scale = s.scale[win]
		bestIscale, bestShift = s.iscale[win], vmin
		// ggml's later trials use the new min, in x[i]−min and in the
		// range max−min.
		vmin = s.vmin[win]
		rng = vmax - vmin
		maxXm = kShift(xm, x, vmin)
		from += win + 1
	}
	for i, v := range x {
		L[i] = uint8(max(0, min(nmax, nearestInt(float32(bestIscale*float32(v-bestShift))))))
	}
	return scale, -vmin
}

// kShift sets xm[i] = x[i] − vmin and returns the largest |xm[i]|, or NaN
// if any is NaN.
func kShift(xm, x *[32]float32, vmin float32) float32 {
	var m float32
	for i, v := range x {
		d := v - vmin
		xm[i] = d
		m = max(m, abs32(d)) // NaN stays NaN
	}
	return m
}

// kScaleMin is make_qkx2_quants' least-squares scale and minimum of one
// trial from its sums; ok is false where ggml skips the trial (D ≤ 0).
func kScaleMin(sumW, sumX, sumL, sumL2, sumXL float32) (scale, vmin float32, ok bool) {
	D := float32(sumW*sumL2) - float32(sumL*sumL)
	if !(D > 0) {
		return 0, 0, false
	}
	scale = (float32(sumW*sumXL) - float32(sumX*sumL)) / D
	vmin = (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
	if vmin > 0 {
		vmin = 0
		scale = sumXL / sumL2
	}
	return scale, vmin, true
}

// QuantizeQ6_K quantizes x, a whole number of super-blocks of QK_K values,
// into the first len(x)/QK_K·210 bytes of dst, as ggml's
// quantize_row_q6_K_ref does, bit for bit: each sub-block of 16 gets a
// signed scale from make_qx_quants (weights x², 19 trial scales), the
// scales are quantized to int8 against the super-block's largest
// magnitude (which maps to −128, clamped to 127), and the weights are
// requantized to 6 bits with the rounded scales. It panics if len(x) is
// not a multiple of QK_K or dst is too short.
func QuantizeQ6_K(dst []byte, x []float32) {
	nb := blocks("QuantizeQ6_K", len(x), QK_K, len(dst), blockQ6_KSize)
	var s q6Scratch
	for i := range nb {
		xb := (*[QK_K]float32)(x[i*QK_K:])
		yb := dst[i*blockQ6_KSize : (i+1)*blockQ6_KSize]
		s.quantize(xb, yb, nil)
	}
}

// q6Scratch is the working memory of QuantizeQ6_K.
type q6Scratch struct {
	L                    [QK_K]int8
	scales               [QK_K / 16]float32
	w, wx                [16]float32
	iscale, sumLX, sumL2 [kLanes]float32 // the trials of makeQX
}

// quantize quantizes one super-block x into y; qw, nil or QK_K importance
// weights, is quantize_row_q6_K_impl's quant_weights (make_qx_quants
// weighs element i by qw[i] instead of x[i]²).
func (s *q6Scratch) quantize(x *[QK_K]float32, y []byte, qw []float32) {
	var maxScale, maxAbsScale float32
	for ib := range QK_K / 16 {
		var w *[16]float32
		if qw != nil {
			w = (*[16]float32)(qw[16*ib:])
		}
		scale := s.makeQX((*[16]float32)(x[16*ib:]), (*[16]int8)(s.L[16*ib:]), w)
		s.scales[ib] = scale
		if a := abs32(scale); a > maxAbsScale {
			maxAbsScale = a
			maxScale = scale
		}
	}
	if maxAbsScale < groupMaxEps {
		clear(y[:blockQ6_KSize])
		binary.LittleEndian.PutUint16(y[blockQ6_KSize-2:], fp16(0))
		return
	}
	iscale := -128 / maxScale
	dBits := fp16(1 / iscale)
	binary.LittleEndian.PutUint16(y[blockQ6_KSize-2:], dBits)
	sc := y[QK_K/2+QK_K/4 : QK_K/2+QK_K/4+QK_K/16]
	for ib := range QK_K / 16 {
		sc[ib] = byte(int8(min(127, nearestInt(float32(iscale*s.scales[ib])))))
	}
	d16 := fp32(dBits)
	for j := range QK_K / 16 {
		d := float32(d16 * float32(int8(sc[j])))
		if d == 0 {
			continue
		}
		for ii, v := range x[16*j : 16*j+16] {
			l := nearestInt(v / d)
			s.L[16*j+ii] = int8(max(-32, min(31, l)) + 32)
		}
	}
	ql := y[:QK_K/2]
	qh := y[QK_K/2 : QK_K/2+QK_K/4]
	L := &s.L
	for j := 0; j < QK_K; j += 128 {
		for l := range 32 {
			q1 := uint8(L[j+l]) & 0xf
			q2 := uint8(L[j+l+32]) & 0xf
			q3 := uint8(L[j+l+64]) & 0xf
			q4 := uint8(L[j+l+96]) & 0xf
			ql[l] = q1 | q3<<4
			ql[l+32] = q2 | q4<<4
			qh[l] = uint8(L[j+l]>>4) | uint8(L[j+l+32]>>4)<<2 | uint8(L[j+l+64]>>4)<<4 | uint8(L[j+l+96]>>4)<<6
		}
		ql = ql[64:]
		qh = qh[32:]
	}
}

// makeQX is ggml's make_qx_quants(16, 32, x, L, 1, qw), the Q6_K case:
// weights x² (or qw[i] where qw is not nil), 19 trial scales around
// −32/max. It returns the scale and
// leaves the codes (0..63) in L. It computes what ggml computes, each sum
// in ggml's float32 order, with x²·x precomputed per element (ggml's
// w*x[i]*l groups as (w·x)·l): the trials' sums do not depend on each
// other, so all 19 are evaluated at once (q6TrialsAll: on AVX2 one trial
// in each lane) and compared in ggml's order, and the codes are computed
// once, for the winner (each acceptance overwrites them in ggml).
func (s *q6Scratch) makeQX(x *[16]float32, L *[16]int8, qw *[16]float32) float32 {
	const nmax = 32
	var vmax, amax float32
	finite := true
	for _, v := range x {
		ax := abs32(v)
		if ax > amax {
			amax = ax
			vmax = v
		}
		if !(ax <= math.MaxFloat32) {
			finite = false
		}
	}
	if amax < groupMaxEps {
		*L = [16]int8{}
		return 0
	}
	w, wx := &s.w, &s.wx
	for i, v := range x {
		if qw != nil {
			w[i] = qw[i]
		} else {
			w[i] = float32(v * v)
		}
		wx[i] = float32(w[i] * v)
	}
	// Lane 0 is the first guess, lanes 1..18 the trials, in ggml's order.
	is := &s.iscale
	is[0] = -nmax / vmax
	for k, t := range q6Trials {
		is[k+1] = -(nmax + float32(0.1*float32(t))) / vmax
	}
	q6TrialsAll(finite, len(q6Trials)+1, x, w, wx, is, &s.sumLX, &s.sumL2)
	sumLX, sumL2 := s.sumLX[0], s.sumL2[0]
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := float32(scale * sumLX)
	bestIscale := is[0]
	for k := 1; k <= len(q6Trials); k++ {
		sumLX, sumL2 := s.sumLX[k], s.sumL2[k]
		if sumL2 > 0 && float32(sumLX*sumLX) > float32(best*sumL2) {
			bestIscale = is[k]
			scale = sumLX / sumL2
			best = float32(scale * sumLX)
		}
	}
	for i, v := range x {
		l := max(-nmax, min(nmax-1, nearestInt(float32(bestIscale*v))))
		L[i] = int8(l + nmax)
	}
	return scale
}

// q6Trials are make_qx_quants' trials is = −9..9 but 0.
var q6Trials = [18]int{-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9}

// q6SumsAny returns make_qx_quants' sums Σ(w·x)·l and Σ(w·l)·l for the
// codes l = clamp(nearest_int(iscale·x)) of one trial, for any input.
func q6SumsAny(x, w, wx *[16]float32, iscale float32) (sumLX, sumL2 float32) {
	const nmax = 32
	for i, v := range x {
		fl := float32(max(-nmax, min(nmax-1, nearestInt(float32(iscale*v)))))
		sumLX += float32(wx[i] * fl)
		sumL2 += float32(float32(w[i]*fl) * fl)
	}
	return sumLX, sumL2
}

// DequantizeQ4_K converts len(dst) values, a whole number of super-blocks,
// from Q4_K blocks in src, as ggml's dequantize_row_q4_K: weight l of
// sub-block j is (d·sc[j])·q − dmin·m[j]. It panics if len(dst) is not a
// multiple of QK_K or src is too short.
func DequantizeQ4_K(dst []float32, src []byte) {
	nb := blocks("DequantizeQ4_K", len(dst), QK_K, len(src), blockQ4_KSize)
	if useAVX2 {
		dequantizeQ4_KAVX2(dst, src, nb)
		return
	}
	dequantizeQ4_KGo(dst, src, nb)
}

// dequantizeQ4_KGo is DequantizeQ4_K for nb blocks in pure Go, the scalar
// transcription of ggml's loop and the reference of the AVX2 kernel.
func dequantizeQ4_KGo(dst []float32, src []byte, nb int) {
	for i := range nb {
		b := src[i*blockQ4_KSize : (i+1)*blockQ4_KSize]
		d := fp32(binary.LittleEndian.Uint16(b[0:]))
		dmin := fp32(binary.LittleEndian.Uint16(b[2:]))
		sc := b[4:16]
		q := b[16:]
		y := dst[i*QK_K : (i+1)*QK_K]
		for j, is := 0, 0; j < QK_K; j, is = j+64, is+2 {
			s1, m1 := scaleMinK4(is, sc)
			d1, dm1 := float32(d*float32(s1)), float32(dmin*float32(m1))
			s2, m2 := scaleMinK4(is+1, sc)
			d2, dm2 := float32(d*float32(s2)), float32(dmin*float32(m2))
			for l := range 32 {
				y[j+l] = float32(d1*float32(q[l]&0xf)) - dm1
				y[j+32+l] = float32(d2*float32(q[l]>>4)) - dm2
			}
			q = q[32:]
		}
	}
}

// DequantizeQ5_K converts len(dst) values, a whole number of super-blocks,
// from Q5_K blocks in src, as ggml's dequantize_row_q5_K: as Q4_K with the
// fifth bits from qh. It panics if len(dst) is not a multiple of QK_K or
// src is too short.
func DequantizeQ5_K(dst []float32, src []byte) {
	nb := blocks("DequantizeQ5_K", len(dst), QK_K, len(src), blockQ5_KSize)
	if useAVX2 {
		dequantizeQ5_KAVX2(dst, src, nb)
		return
	}
	dequantizeQ5_KGo(dst, src, nb)
}

// dequantizeQ5_KGo is DequantizeQ5_K for nb blocks in pure Go, the scalar
// transcription of ggml's loop and the reference of the AVX2 kernel.
func dequantizeQ5_KGo(dst []float32, src []byte, nb int) {
	for i := range nb {
		b := src[i*blockQ5_KSize : (i+1)*blockQ5_KSize]
		d := fp32(binary.LittleEndian.Uint16(b[0:]))
		dmin := fp32(binary.LittleEndian.Uint16(b[2:]))
		sc := b[4:16]
		qh := b[16 : 16+QK_K/8]
		ql := b[16+QK_K/8:]
		y := dst[i*QK_K : (i+1)*QK_K]
		u1, u2 := uint8(1), uint8(2)
		for j, is := 0, 0; j < QK_K; j, is = j+64, is+2 {
			s1, m1 := scaleMinK4(is, sc)
			d1, dm1 := float32(d*float32(s1)), float32(dmin*float32(m1))
			s2, m2 := scaleMinK4(is+1, sc)
			d2, dm2 := float32(d*float32(s2)), float32(dmin*float32(m2))
			for l := range 32 {
				q1, q2 := ql[l]&0xf, ql[l]>>4
				if qh[l]&u1 != 0 {
					q1 += 16
				}
				if qh[l]&u2 != 0 {
					q2 += 16
				}
				y[j+l] = float32(d1*float32(q1)) - dm1
				y[j+32+l] = float32(d2*float32(q2)) - dm2
			}
			ql = ql[32:]
			u1 <<= 2
			u2 <<= 2
		}
	}
}

// DequantizeQ6_K converts len(dst) values, a whole number of super-blocks,
// from Q6_K blocks in src, as ggml's dequantize_row_q6_K: weight l of
// sub-block j is (d·sc[j])·(q−32). It panics if len(dst) is not a multiple
// of QK_K or src is too short.
func DequantizeQ6_K(dst []float32, src []byte) {
	nb := blocks("DequantizeQ6_K", len(dst), QK_K, len(src), blockQ6_KSize)
	if useAVX2 {
		dequantizeQ6_KAVX2(dst, src, nb)
		return
	}
	dequantizeQ6_KGo(dst, src, nb)
}

// dequantizeQ6_KGo is DequantizeQ6_K for nb blocks in pure Go, the scalar
// transcription of ggml's loop and the reference of the AVX2 kernel.
func dequantizeQ6_KGo(dst []float32, src []byte, nb int) {
	for i := range nb {
		b := src[i*blockQ6_KSize : (i+1)*blockQ6_KSize]
		d := fp32(binary.LittleEndian.Uint16(b[blockQ6_KSize-2:]))
		ql := b[:QK_K/2]
		qh := b[QK_K/2 : QK_K/2+QK_K/4]
		sc := b[QK_K/2+QK_K/4 : QK_K/2+QK_K/4+QK_K/16]
		y := dst[i*QK_K : (i+1)*QK_K]
		for n := 0; n < QK_K; n += 128 {
			for l := range 32 {
				is := l / 16
				q1 := int8(ql[l]&0xf|(qh[l]>>0&3)<<4) - 32
				q2 := int8(ql[l+32]&0xf|(qh[l]>>2&3)<<4) - 32
				q3 := int8(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int8(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				y[n+l] = float32(d*float32(int8(sc[is]))) * float32(q1)
				y[n+l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
				y[n+l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
				y[n+l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
			}
			ql = ql[64:]
			qh = qh[32:]
			sc = sc[8:]
		}
	}
}
