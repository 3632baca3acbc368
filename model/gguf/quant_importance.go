package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// importanceQuantizers is the table of the types whose quantizer takes an
// importance matrix, indexed by Type: each entry quantizes one row x of
// whole blocks into dst with the row's importance weights qw (len(qw) ==
// len(x)), as ggml's quantize_row_<type>_impl does with quant_weights.
// Types with an encoder and no entry ignore importance, as ggml does
// (F32, F16, BF16, Q8_0).
var importanceQuantizers = [...]func(dst []byte, x, qw []float32){
	TypeQ4_0: quantizeQ4_0Importance,
	TypeQ4_1: quantizeQ4_1Importance,
	TypeQ5_0: quantizeQ5_0Importance,
	TypeQ5_1: quantizeQ5_1Importance,
	TypeQ2_K: quantizeQ2_KImportance,
	TypeQ3_K: quantizeQ3_KImportance,
	TypeQ4_K: quantizeQ4_KImportance,
	TypeQ5_K: quantizeQ5_KImportance,
	TypeQ6_K: quantizeQ6_KImportance,
}

// UsesImportance reports whether EncodeRowsImportance's result depends on
// the importance values for type t; false for types that ignore them (F32,
// F16, BF16, Q8_0, as ggml's quantizers do) and for types that have no
// encoder.
func (t Type) UsesImportance() bool {
	return int(t) < len(importanceQuantizers) && importanceQuantizers[t] != nil
}

// EncodeRowsImportance converts src, rows of cols values, to type t in dst
// (the first RowSize(len(src)) bytes of it), guided by importance: one
// non-negative weight per column, the same for every row (llama.cpp's
// importance matrix entry for the tensor: the mean of x² of the input
// that column multiplies). It is ggml_quantize_chunk(t, src, dst, 0,
// len(src)/cols, cols, importance), byte for byte. With importance nil it
// is EncodeFloat32; for types that ignore importance (UsesImportance
// false) importance only has to have the right length.
//
// For each row, the types weigh element j of the row by
//
//	Q4_0, Q4_1, Q5_0, Q5_1:  importance[j]·√(σ² + x[j]²), σ² = Σx²/cols over the row
//	Q2_K:                    importance[j]·√(σ² + x[j]²), σ² = Σx²/256 over the super-block
//	Q3_K, Q4_K, Q5_K:        importance[j]·√(σ² + x[j]²), σ² = 2·Σx²/256 over the super-block
//	Q6_K:                    importance[j]
//
// in their searches for the scales (make_qx_quants, make_qkx3_quants and
// make_qp_quants for the K-quants' sub-block scales, in place of the
// unweighted quantizers' x², |x| and |x|+rms weights).
//
// It fails if t has no encoder, cols is not a positive multiple of t's
// block size, len(src) is not a whole number of rows, len(importance) is
// not cols, or dst is too short.
func EncodeRowsImportance(dst []byte, src []float32, t Type, cols int, importance []float32) error {
	if importance == nil {
		return EncodeFloat32(dst, src, t)
	}
	tt := t.traits()
	if tt == nil || tt.fromFloat == nil {
		return fmt.Errorf("gguf: conversion of float32 to %v not supported (supported: %s)", t, typeNames(func(tt *typeTraits) bool { return tt.fromFloat != nil }))
	}
	if cols <= 0 || cols%tt.blockSize != 0 {
		return fmt.Errorf("gguf: %v rows of %d values: not a positive multiple of the block size %d", t, cols, tt.blockSize)
	}
	if len(src)%cols != 0 {
		return fmt.Errorf("gguf: %d values are not whole rows of %d", len(src), cols)
	}
	if len(importance) != cols {
		return fmt.Errorf("gguf: %d importance values for rows of %d", len(importance), cols)
	}
	size, err := t.RowSize(int64(len(src)))
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if int64(len(dst)) < size {
		return fmt.Errorf("gguf: %d elements of %s need %d bytes, dst has %d", len(src), t, size, len(dst))
	}
	if !t.UsesImportance() {
		tt.fromFloat(dst[:size], src)
		return nil
	}
	q := importanceQuantizers[t]
	rowBytes := cols / tt.blockSize * tt.typeSize
	for r := 0; r < len(src); r += cols {
		q(dst[:rowBytes], src[r:r+cols], importance)
		dst = dst[rowBytes:]
	}
	return nil
}

// sqrt32 is C's sqrtf: the square root rounded once to float32 (rounding
// the float64 root again gives the same float32).
func sqrt32(v float32) float32 { return float32(math.Sqrt(float64(v))) }

// rowSigma2 is Σx²/n over a whole row, summed in order in float32, as the
// legacy types' _impl quantizers compute it.
func rowSigma2(x []float32) float32 {
	var sum float32
	for _, v := range x {
		sum += float32(v * v)
	}
	return sum / float32(len(x))
}

// legacyWeights sets w[j] = qw[j]·√(σ² + x[j]²) for one 32-value block.
func legacyWeights(w *[32]float32, x, qw []float32, sigma2 float32) {
	x, qw = x[:32], qw[:32]
	for j, v := range x {
		w[j] = float32(qw[j] * sqrt32(sigma2+float32(v*v)))
	}
}

// quantizeQ4_0Importance is quantize_row_q4_0_impl with quant_weights:
// each block's scale from make_qx_quants(32, 8, …, weights).
func quantizeQ4_0Importance(dst []byte, x, qw []float32) {
	sigma2 := rowSigma2(x)
	var w [32]float32
	var L [32]int8
	for ib := range len(x) / QK4_0 {
		xb := x[ib*QK4_0 : (ib+1)*QK4_0]
		yb := dst[ib*blockQ4_0Size : (ib+1)*blockQ4_0Size]
		legacyWeights(&w, xb, qw[ib*QK4_0:], sigma2)
		d := makeQXWeighted(xb, 8, L[:], w[:])
		binary.LittleEndian.PutUint16(yb, fp16(d))
		for j := range QK4_0 / 2 {
			yb[2+j] = uint8(L[j]) | uint8(L[j+16])<<4
		}
	}
}

// quantizeQ5_0Importance is quantize_row_q5_0_impl with quant_weights:
// make_qx_quants(32, 16, …, weights).
func quantizeQ5_0Importance(dst []byte, x, qw []float32) {
	sigma2 := rowSigma2(x)
	var w [32]float32
	var L [32]int8
	for ib := range len(x) / QK5_0 {
		xb := x[ib*QK5_0 : (ib+1)*QK5_0]
		yb := dst[ib*blockQ5_0Size : (ib+1)*blockQ5_0Size]
		legacyWeights(&w, xb, qw[ib*QK5_0:], sigma2)
		d := makeQXWeighted(xb, 16, L[:], w[:])
		binary.LittleEndian.PutUint16(yb, fp16(d))
		putQ5Codes(yb[2:], &L)
	}
}

// putQ5Codes writes 32 five-bit codes as Q5_0 and Q5_1 store them: the
// uint32 qh of fifth bits, then the low nibbles.
func putQ5Codes(b []byte, L *[32]int8) {
	var qh uint32
	for j := range 16 {
		xi0, xi1 := uint8(L[j]), uint8(L[j+16])
		b[4+j] = xi0&0x0f | (xi1&0x0f)<<4
		qh |= uint32(xi0&0x10) >> 4 << j
		qh |= uint32(xi1&0x10) >> 4 << (j + 16)
	}
	binary.LittleEndian.PutUint32(b, qh)
}

// quantizeQ4_1Importance is quantize_row_q4_1_impl with quant_weights:
// each block's scale and minimum from make_qkx3_quants(32, 15, …,
// weights, −0.9, 0.05, 36).
func quantizeQ4_1Importance(dst []byte, x, qw []float32) {
	sigma2 := rowSigma2(x)
	var s kScratch
	L := (*[32]uint8)(s.L[:32])
	for ib := range len(x) / QK4_1 {
		xb := (*[32]float32)(x[ib*QK4_1:])
		yb := dst[ib*blockQ4_1Size : (ib+1)*blockQ4_1Size]
		legacyWeights(&s.weights, xb[:], qw[ib*QK4_1:], sigma2)
		d, theMin := s.makeQKX2(xb, L, 15, -0.9, 0.05, 36)
		binary.LittleEndian.PutUint16(yb[0:], fp16(d))
		binary.LittleEndian.PutUint16(yb[2:], fp16(-theMin))
		for j := range QK4_1 / 2 {
			yb[4+j] = L[j] | L[j+16]<<4
		}
	}
}

// quantizeQ5_1Importance is quantize_row_q5_1_impl with quant_weights:
// make_qkx3_quants(32, 31, …, weights, −0.9, 0.05, 36).
func quantizeQ5_1Importance(dst []byte, x, qw []float32) {
	sigma2 := rowSigma2(x)
	var s kScratch
	L := (*[32]uint8)(s.L[:32])
	var codes [32]int8
	for ib := range len(x) / QK5_1 {
		xb := (*[32]float32)(x[ib*QK5_1:])
		yb := dst[ib*blockQ5_1Size : (ib+1)*blockQ5_1Size]
		legacyWeights(&s.weights, xb[:], qw[ib*QK5_1:], sigma2)
		d, theMin := s.makeQKX2(xb, L, 31, -0.9, 0.05, 36)
		binary.LittleEndian.PutUint16(yb[0:], fp16(d))
		binary.LittleEndian.PutUint16(yb[2:], fp16(-theMin))
		for j, l := range L {
			codes[j] = int8(l)
		}
		putQ5Codes(yb[4:], &codes)
	}
}

// makeQXWeighted is ggml's make_qx_quants(len(x), nmax, x, L, 1, w) with
// weights w: the scale of the codes L[i] = nmax + clamp(round(x[i]/scale),
// −nmax, nmax−1) that maximises (Σw·x·l)²/Σw·l² over the first guess
// −nmax/max and 18 trial scales around it, each sum in ggml's float32
// order. It returns the least-squares scale of the winner.
func makeQXWeighted(x []float32, nmax int32, L []int8, w []float32) float32 {
	var vmax, amax float32
	for _, v := range x {
		if ax := abs32(v); ax > amax {
			amax, vmax = ax, v
		}
	}
	if amax < groupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	sums := func(iscale float32) (sumLX, sumL2 float32) {
		for i, v := range x {
			fl := float32(max(-nmax, min(nmax-1, nearestInt(float32(iscale*v)))))
			sumLX += float32(float32(w[i]*v) * fl)
			sumL2 += float32(float32(w[i]*fl) * fl)
		}
		return sumLX, sumL2
	}
	codes := func(iscale float32) {
		for i, v := range x {
			L[i] = int8(nmax + max(-nmax, min(nmax-1, nearestInt(float32(iscale*v)))))
		}
	}
	iscale := float32(-nmax) / vmax
	codes(iscale)
	sumLX, sumL2 := sums(iscale)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := float32(scale * sumLX)
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + float32(0.1*float32(is))) / vmax
		sumLX, sumL2 = sums(iscale)
		if sumL2 > 0 && float32(sumLX*sumLX) > float32(best*sumL2) {
			codes(iscale)
			scale = sumLX / sumL2
			best = float32(scale * sumLX)
		}
	}
	return scale
}

// quantizeQ6_KImportance is quantize_row_q6_K_impl with quant_weights: as
// QuantizeQ6_K with make_qx_quants weighing element i by qw[i].
func quantizeQ6_KImportance(dst []byte, x, qw []float32) {
	var s q6Scratch
	for i := range len(x) / QK_K {
		s.quantize((*[QK_K]float32)(x[i*QK_K:]), dst[i*blockQ6_KSize:(i+1)*blockQ6_KSize], qw[i*QK_K:(i+1)*QK_K])
	}
}

// quantizeQ4_KImportance is quantize_row_q4_K_impl with quant_weights.
func quantizeQ4_KImportance(dst []byte, x, qw []float32) {
	var s kScratch
	for i := range len(x) / QK_K {
		xb := (*[QK_K]float32)(x[i*QK_K:])
		yb := dst[i*blockQ4_KSize : (i+1)*blockQ4_KSize]
		s.scalesMinsImportance(xb, yb[:16], qw[i*QK_K:], 15, false)
		q := yb[16:]
		for j := 0; j < QK_K; j += 64 {
			for l := range 32 {
				q[l] = s.L[j+l] | s.L[j+l+32]<<4
			}
			q = q[32:]
		}
	}
}

// quantizeQ5_KImportance is quantize_row_q5_K_impl with quant_weights.
func quantizeQ5_KImportance(dst []byte, x, qw []float32) {
	var s kScratch
	for i := range len(x) / QK_K {
		xb := (*[QK_K]float32)(x[i*QK_K:])
		yb := dst[i*blockQ5_KSize : (i+1)*blockQ5_KSize]
		s.scalesMinsImportance(xb, yb[:16], qw[i*QK_K:], 31, true)
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

// scalesMinsImportance is the part quantize_row_q4_K_impl and
// quantize_row_q5_K_impl share: each sub-block's scale and minimum from
// make_qkx3_quants (weights qw·√(σ² + x²), 37 trial scales), the eight
// scales and the eight minimums quantized to 6 bits by make_qp_quants
// weighted by the sub-blocks' total weights; it writes d, dmin and the 12
// bytes of packed scales and mins to hdr and leaves the codes in s.L.
// clamp63 is Q5_K's MIN(63, ·) on the 6-bit values (Q4_K packs them as
// they come).
func (s *kScratch) scalesMinsImportance(x *[QK_K]float32, hdr []byte, qw []float32, nmax int32, clamp63 bool) {
	var sumX2 float32
	for _, v := range x {
		sumX2 += float32(v * v)
	}
	sigma2 := float32(2*sumX2) / QK_K
	var sw [QK_K / 32]float32
	for j := range QK_K / 32 {
		xs := (*[32]float32)(x[32*j:])
		legacyWeights(&s.weights, xs[:], qw[32*j:], sigma2)
		var sumW float32
		for _, w := range s.weights {
			sumW += w
		}
		sw[j] = sumW
		s.scales[j], s.mins[j] = s.makeQKX2(xs, (*[32]uint8)(s.L[32*j:]), nmax, -0.9, 0.05, 36)
	}
	var ls, lm [QK_K / 32]uint8
	dBlock := makeQP(&s.scales, &ls, &sw)
	mBlock := makeQP(&s.mins, &lm, &sw)
	sc := hdr[4:16]
	clear(sc)
	for j := range QK_K / 32 {
		l, m := ls[j], lm[j]
		if clamp63 {
			l, m = min(63, l), min(63, m)
		}
		if j < 4 {
			sc[j] = l
			sc[j+4] = m
		} else {
			sc[j+4] = l&0xf | (m&0xf)<<4
			sc[j-4] |= l >> 4 << 6
			sc[j] |= m >> 4 << 6
		}
	}
	binary.LittleEndian.PutUint16(hdr[0:], fp16(dBlock))
	binary.LittleEndian.PutUint16(hdr[2:], fp16(mBlock))
	s.requantize(x, hdr, nmax)
}

// makeQP is ggml's make_qp_quants(8, 63, x, L, w), Q4_K's and Q5_K's
// quantizer of a super-block's scales or minimums (makeQPN).
func makeQP(x *[QK_K / 32]float32, L *[QK_K / 32]uint8, w *[QK_K / 32]float32) float32 {
	return makeQPN(x[:], L[:], w[:], 63)
}

// makeQPN is ggml's make_qp_quants(len(x), nmax, x, L, w): codes 0..nmax
// in L for the non-negative values x (a super-block's scales or minimums)
// and their scale, chosen by weighted squared error over nine trial
// scales, then refined a code at a time (up to five passes) for the
// least-squares fit. L is uint8 as in ggml: a negative code wraps, and the
// sums use the wrapped value where ggml does.
func makeQPN(x []float32, L []uint8, w []float32, nmax int32) float32 {
	L, w = L[:len(x)], w[:len(x)]
	var vmax float32
	for _, v := range x {
		if !(vmax > v) { // MAX(max, x[i])
			vmax = v
		}
	}
	if vmax < groupMaxEps {
		clear(L)
		return 0
	}
	iscale := float32(nmax) / vmax
	for i, v := range x {
		L[i] = uint8(nearestInt(float32(iscale * v)))
	}
	scale := 1 / iscale
	var bestMSE float32
	for i, v := range x {
		diff := v - float32(scale*float32(L[i]))
		bestMSE += float32(float32(w[i]*diff) * diff)
	}
	for is := -4; is <= 4; is++ {
		if is == 0 {
			continue
		}
		iscaleIs := (float32(0.1*float32(is)) + float32(nmax)) / vmax
		scaleIs := 1 / iscaleIs
		var mse float32
		for i, v := range x {
			l := min(nmax, nearestInt(float32(iscaleIs*v)))
			diff := v - float32(scaleIs*float32(l))
			mse += float32(float32(w[i]*diff) * diff)
		}
		if mse < bestMSE {
			bestMSE = mse
			iscale = iscaleIs
		}
	}
	var sumLX, sumL2 float32
	for i, v := range x {
		l := min(nmax, nearestInt(float32(iscale*v)))
		L[i] = uint8(l)
		fl := float32(l)
		sumLX += float32(float32(w[i]*v) * fl)
		sumL2 += float32(float32(w[i]*fl) * fl)
	}
	for range 5 {
		changed := 0
		for i, v := range x {
			wi, li := w[i], float32(L[i])
			slx := sumLX - float32(float32(wi*v)*li)
			sl2 := sumL2 - float32(float32(wi*li)*li)
			if slx > 0 && sl2 > 0 {
				newL := min(nmax, nearestInt(float32(v*sl2)/slx))
				if newL != int32(L[i]) {
					fl := float32(newL)
					slx += float32(float32(wi*v) * fl)
					sl2 += float32(float32(wi*fl) * fl)
					if float32(float32(slx*slx)*sumL2) > float32(float32(sumLX*sumLX)*sl2) {
						L[i] = uint8(newL)
						sumLX, sumL2 = slx, sl2
						changed++
					}
				}
			}
		}
		if changed == 0 {
			break
		}
	}
	if sumL2 > 0 {
		return sumLX / sumL2
	}
	return 0
}
