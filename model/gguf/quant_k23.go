package gguf

import "encoding/binary"

// Block layouts of ggml-common.h for the 2- and 3-bit K-quants: super-blocks
// of QK_K weights in sixteen sub-blocks of 16.
const (
	// A Q2_K block is sixteen bytes of scales (sub-block j's 4-bit scale
	// in the low nibble of byte j, its 4-bit minimum in the high one), 64
	// bytes of 2-bit codes (for each 128 weights, byte l holds weights l,
	// l+32, l+64 and l+96 in bits 0-1, 2-3, 4-5 and 6-7), then float16 d
	// and dmin: x ≈ d·sc[j]·q − dmin·m[j].
	blockQ2_KSize = QK_K/16 + QK_K/4 + 2 + 2
	// A Q3_K block is 32 bytes hmask (bit k of byte l is the third bit of
	// weight 32k+l), 64 bytes of low 2-bit codes laid out as Q2_K's, 12
	// bytes holding sixteen 6-bit scales (low nibbles in bytes 0..7, the
	// 2-bit high parts in bytes 8..11), then float16 d:
	// x ≈ d·(sc[j]−32)·(q−4).
	blockQ3_KSize = QK_K/8 + QK_K/4 + 12 + 2
)

// QuantizeQ2_K quantizes x, a whole number of super-blocks of QK_K values,
// into the first len(x)/QK_K·84 bytes of dst, as ggml's
// quantize_row_q2_K_ref does (the path llama-quantize takes without an
// importance matrix), bit for bit: each sub-block of 16 gets a scale and a
// minimum from make_qkx2_quants (weights |x|, 16 trial scales, weighted
// absolute error), those are quantized to 4 bits against the super-block's
// largest, and the weights are requantized to 2 bits with the rounded
// scales. It panics if len(x) is not a multiple of QK_K or dst is too
// short.
func QuantizeQ2_K(dst []byte, x []float32) {
	nb := blocks("QuantizeQ2_K", len(x), QK_K, len(dst), blockQ2_KSize)
	var s k23Scratch
	for i := range nb {
		s.quantizeQ2_K((*[QK_K]float32)(x[i*QK_K:]), dst[i*blockQ2_KSize:(i+1)*blockQ2_KSize], nil)
	}
}

// quantizeQ2_KImportance is quantize_row_q2_K_impl with quant_weights, a
// row at a time.
func quantizeQ2_KImportance(dst []byte, x, qw []float32) {
	var s k23Scratch
	for i := range len(x) / QK_K {
		s.quantizeQ2_K((*[QK_K]float32)(x[i*QK_K:]), dst[i*blockQ2_KSize:(i+1)*blockQ2_KSize], qw[i*QK_K:(i+1)*QK_K])
	}
}

// QuantizeQ3_K quantizes x, a whole number of super-blocks of QK_K values,
// into the first len(x)/QK_K·110 bytes of dst, as ggml's
// quantize_row_q3_K_ref does, bit for bit: each sub-block of 16 gets a
// signed scale from make_q3_quants (weights x², then up to five passes
// refining one code at a time), the scales are quantized to 6 bits against
// the super-block's largest magnitude (which maps to −32), and the weights
// are requantized to 3 bits with the rounded scales. It panics if len(x) is
// not a multiple of QK_K or dst is too short.
func QuantizeQ3_K(dst []byte, x []float32) {
	nb := blocks("QuantizeQ3_K", len(x), QK_K, len(dst), blockQ3_KSize)
	var s k23Scratch
	for i := range nb {
		s.quantizeQ3_K((*[QK_K]float32)(x[i*QK_K:]), dst[i*blockQ3_KSize:(i+1)*blockQ3_KSize], nil)
	}
}

// quantizeQ3_KImportance is quantize_row_q3_K_impl with quant_weights, a
// row at a time.
func quantizeQ3_KImportance(dst []byte, x, qw []float32) {
	var s k23Scratch
	for i := range len(x) / QK_K {
		s.quantizeQ3_K((*[QK_K]float32)(x[i*QK_K:]), dst[i*blockQ3_KSize:(i+1)*blockQ3_KSize], qw[i*QK_K:(i+1)*QK_K])
	}
}

// k23Scratch is the working memory of the Q2_K and Q3_K quantizers.
type k23Scratch struct {
	L            [QK_K]uint8
	scales, mins [QK_K / 16]float32
	sw           [QK_K / 16]float32
	weight       [16]float32
	Ls, Lm       [QK_K / 16]uint8
	L8           [QK_K]int8
	Ls8          [QK_K / 16]int8
	laux         [16]uint8
}

// quantizeQ2_K quantizes one super-block x into y: quantize_row_q2_K_ref
// when qw is nil, else quantize_row_q2_K_impl with the QK_K importance
// weights qw.
func (s *k23Scratch) quantizeQ2_K(x *[QK_K]float32, y []byte, qw []float32) {
	y = y[:blockQ2_KSize]
	sc := y[:QK_K/16]
	qs := y[QK_K/16 : QK_K/16+QK_K/4]
	if qw == nil {
		var maxScale, maxMin float32 // scales and mins are never negative
		for j := range QK_K / 16 {
			xs := (*[16]float32)(x[16*j:])
			for l, v := range xs {
				s.weight[l] = abs32(v)
			}
			s.scales[j], s.mins[j] = makeQKX16(xs, &s.weight, (*[16]uint8)(s.L[16*j:]), &s.laux, 3, -0.5, 0.1, 15, true, false)
			if s.scales[j] > maxScale {
				maxScale = s.scales[j]
			}
			if s.mins[j] > maxMin {
				maxMin = s.mins[j]
			}
		}
		dBits, dminBits := fp16(0), fp16(0)
		clear(sc)
		if maxScale > 0 {
			iscale := 15 / maxScale
			for j := range QK_K / 16 {
				sc[j] = uint8(nearestInt(float32(iscale * s.scales[j])))
			}
			dBits = fp16(maxScale / 15)
		}
		if maxMin > 0 {
			iscale := 15 / maxMin
			for j := range QK_K / 16 {
				sc[j] |= uint8(nearestInt(float32(iscale*s.mins[j])) << 4)
			}
			dminBits = fp16(maxMin / 15)
		}
		binary.LittleEndian.PutUint16(y[blockQ2_KSize-4:], dBits)
		binary.LittleEndian.PutUint16(y[blockQ2_KSize-2:], dminBits)
	} else {
		var sumX2 float32
		for _, v := range x {
			sumX2 += float32(v * v)
		}
		sigma2 := sumX2 / QK_K
		for j := range QK_K / 16 {
			xs := (*[16]float32)(x[16*j:])
			var sw float32
			for l, v := range xs {
				s.weight[l] = float32(qw[16*j+l] * sqrt32(sigma2+float32(v*v)))
				sw += s.weight[l]
			}
			s.sw[j] = sw
			s.scales[j], s.mins[j] = makeQKX16(xs, &s.weight, (*[16]uint8)(s.L[16*j:]), &s.laux, 3, -0.9, 0.05, 36, false, true)
		}
		dm := makeQPN(s.scales[:], s.Ls[:], s.sw[:], 15)
		mm := makeQPN(s.mins[:], s.Lm[:], s.sw[:], 15)
		binary.LittleEndian.PutUint16(y[blockQ2_KSize-4:], fp16(dm))
		binary.LittleEndian.PutUint16(y[blockQ2_KSize-2:], fp16(mm))
		for j := range QK_K / 16 {
			sc[j] = s.Ls[j] | s.Lm[j]<<4
		}
	}
	// Requantize with the rounded scales and minimums.
	d16 := fp32(binary.LittleEndian.Uint16(y[blockQ2_KSize-4:]))
	dmin16 := fp32(binary.LittleEndian.Uint16(y[blockQ2_KSize-2:]))
	for j := range QK_K / 16 {
		d := float32(d16 * float32(sc[j]&0xf))
		if d == 0 {
			continue // keep the search's codes, as ggml does
		}
		dm := float32(dmin16 * float32(sc[j]>>4))
		for ii, v := range x[16*j : 16*j+16] {
			l := nearestInt((v + dm) / d)
			s.L[16*j+ii] = uint8(max(0, min(3, l)))
		}
	}
	packQ2Codes(qs, &s.L)
}

// packQ2Codes packs QK_K 2-bit codes as Q2_K and Q3_K store them: for each
// 128, byte l holds codes l, l+32, l+64 and l+96.
func packQ2Codes(qs []byte, L *[QK_K]uint8) {
	for j := 0; j < QK_K; j += 128 {
		for l := range 32 {
			qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
		}
	}
}

// quantizeQ3_K quantizes one super-block x into y: quantize_row_q3_K_ref
// when qw is nil, else quantize_row_q3_K_impl with the QK_K importance
// weights qw.
func (s *k23Scratch) quantizeQ3_K(x *[QK_K]float32, y []byte, qw []float32) {
	y = y[:blockQ3_KSize]
	hmask := y[:QK_K/8]
	qs := y[QK_K/8 : QK_K/8+QK_K/4]
	sc := y[QK_K/8+QK_K/4 : QK_K/8+QK_K/4+12]
	clear(sc)
	if qw == nil {
		var maxScale, amax float32
		for j := range QK_K / 16 {
			s.scales[j] = makeQ3((*[16]float32)(x[16*j:]), (*[16]int8)(s.L8[16*j:]))
			if a := abs32(s.scales[j]); a > amax {
				amax, maxScale = a, s.scales[j]
			}
		}
		if maxScale != 0 { // C's if (max_scale): true for NaN
			iscale := -32 / maxScale
			for j := range QK_K / 16 {
				l := int8(nearestInt(float32(iscale * s.scales[j])))
				packQ3Scale(sc, j, uint8(max(-32, min(31, l))+32))
			}
			binary.LittleEndian.PutUint16(y[blockQ3_KSize-2:], fp16(1/iscale))
		} else {
			binary.LittleEndian.PutUint16(y[blockQ3_KSize-2:], fp16(0))
		}
	} else {
		var sumX2 float32
		for _, v := range x {
			sumX2 += float32(v * v)
		}
		sigma2 := float32(2*sumX2) / QK_K
		for j := range QK_K / 16 {
			xs := x[16*j : 16*j+16]
			var sw float32
			for l, v := range xs {
				s.weight[l] = float32(qw[16*j+l] * sqrt32(sigma2+float32(v*v)))
				sw += s.weight[l]
			}
			s.sw[j] = sw
			s.scales[j] = makeQXWeighted(xs, 4, s.L8[16*j:16*j+16], s.weight[:])
		}
		dBlock := makeQXWeighted(s.scales[:], 32, s.Ls8[:], s.sw[:])
		for j, l := range s.Ls8 {
			packQ3Scale(sc, j, uint8(l))
		}
		binary.LittleEndian.PutUint16(y[blockQ3_KSize-2:], fp16(dBlock))
	}
	// Requantize with the rounded scales.
	d16 := fp32(binary.LittleEndian.Uint16(y[blockQ3_KSize-2:]))
	for j := range QK_K / 16 {
		d := float32(d16 * float32(q3Scale(sc, j)))
		if d == 0 {
			continue
		}
		for ii, v := range x[16*j : 16*j+16] {
			l := nearestInt(v / d)
			s.L8[16*j+ii] = int8(max(-4, min(3, l)) + 4)
		}
	}
	clear(hmask)
	for j, l := range s.L8 {
		c := uint8(l)
		if l > 3 {
			hmask[j%(QK_K/8)] |= 1 << (j / (QK_K / 8))
			c -= 4
		}
		s.L[j] = c
	}
	packQ2Codes(qs, &s.L)
}

// packQ3Scale ORs the 6-bit scale l (0..63) of sub-block j into Q3_K's 12
// scale bytes sc: its low nibble in byte j (j < 8) or the high nibble of
// byte j−8, its top two bits in byte 8 + j%4 at bit 2·(j/4).
func packQ3Scale(sc []byte, j int, l uint8) {
	if j < 8 {
		sc[j] |= l & 0xf
	} else {
		sc[j-8] |= (l & 0xf) << 4
	}
	sc[8+j%4] |= l >> 4 << (2 * (j / 4))
}

// q3Scale is the signed scale (−32..31) of sub-block j from Q3_K's 12
// scale bytes sc.
func q3Scale(sc []byte, j int) int8 {
	var lo uint8
	if j < 8 {
		lo = sc[j] & 0xf
	} else {
		lo = sc[j-8] >> 4
	}
	return int8(lo|(sc[8+j%4]>>(2*(j/4))&3)<<4) - 32
}

// makeQKX16 is ggml's make_qkx2_quants (qkx3 false) or make_qkx3_quants
// (qkx3 true) for n = 16 with the weights w: the scale and the negated
// minimum (ggml's *the_min) of the codes 0..nmax left in L that minimise
// the weighted absolute (useMAD) or squared error over the first guess and
// nstep+1 trial scales, each trial's least-squares fit computed in ggml's
// float32 order. The two differ only in their degenerate test (max == min,
// max <= min), which matters for NaN. laux is working memory.
func makeQKX16(x, w *[16]float32, L, laux *[16]uint8, nmax int32, rmin, rdelta float32, nstep int, useMAD, qkx3 bool) (scale, theMin float32) {
	vmin, vmax := x[0], x[0]
	sumW := w[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < 16; i++ {
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
	if (qkx3 && vmax <= vmin) || (!qkx3 && vmax == vmin) {
		*L = [16]uint8{}
		return 0, -vmin
	}
	iscale := float32(nmax) / (vmax - vmin)
	scale = 1 / iscale
	var best float32
	for i, v := range x {
		l := nearestInt(float32(iscale * (v - vmin)))
		L[i] = uint8(max(0, min(nmax, l)))
		diff := float32(float32(scale*float32(L[i]))+vmin) - v
		best += float32(w[i] * k23Err(diff, useMAD))
	}
	if nstep < 1 {
		return scale, -vmin
	}
	// A trial's sums, fit and error depend only on its codes, so a trial
	// whose codes equal the previous trial's cannot win (it did not, or
	// it set best to exactly its own error) and is skipped: neighbouring
	// trial scales mostly round to the same codes.
	var prev [16]uint8
	havePrev := false
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + float32(nmax)) / (vmax - vmin)
		for i, v := range x {
			laux[i] = uint8(max(0, min(nmax, nearestInt(float32(iscale*(v-vmin))))))
		}
		if havePrev && *laux == prev {
			continue
		}
		prev, havePrev = *laux, true
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			fl := float32(laux[i])
			wl := float32(w[i] * fl)
			sumL += wl
			sumL2 += float32(wl * fl)
			sumXL += float32(wl * v)
		}
		thisScale, thisMin, ok := kScaleMin(sumW, sumX, sumL, sumL2, sumXL)
		if !ok {
			continue
		}
		var cur float32
		for i, v := range x {
			diff := float32(float32(thisScale*float32(laux[i]))+thisMin) - v
			cur += float32(w[i] * k23Err(diff, useMAD))
		}
		if cur < best {
			*L = *laux
			best = cur
			scale = thisScale
			vmin = thisMin
		}
	}
	return scale, -vmin
}

// k23Err is make_qkx2_quants' error of one weight: |diff| (use_mad) or
// diff².
func k23Err(diff float32, useMAD bool) float32 {
	if useMAD {
		return abs32(diff)
	}
	return float32(diff * diff)
}

// makeQ3 is ggml's make_q3_quants(16, 4, x, L, true): codes −4..3 from the
// first guess −4/max (max the value of largest magnitude), refined a code
// at a time (up to five passes, weights x²) for the least-squares fit;
// it returns that fit's scale and leaves the codes + 4 in L.
func makeQ3(x *[16]float32, L *[16]int8) float32 {
	const nmax = 4
	var vmax, amax float32
	for _, v := range x {
		if ax := abs32(v); ax > amax {
			amax, vmax = ax, v
		}
	}
	if amax < groupMaxEps {
		*L = [16]int8{}
		return 0
	}
	iscale := -nmax / vmax
	var sumLX, sumL2 float32
	for i, v := range x {
		l := max(-nmax, min(nmax-1, nearestInt(float32(iscale*v))))
		L[i] = int8(l)
		w, fl := float32(v*v), float32(l)
		sumLX += float32(float32(w*v) * fl)
		sumL2 += float32(float32(w*fl) * fl)
	}
	for range 5 {
		changed := 0
		for i, v := range x {
			w, li := float32(v*v), float32(L[i])
			slx := sumLX - float32(float32(w*v)*li)
			if !(slx > 0) {
				continue
			}
			sl2 := sumL2 - float32(float32(w*li)*li)
			newL := max(-nmax, min(nmax-1, nearestInt(float32(v*sl2)/slx)))
			if newL == int32(L[i]) {
				continue
			}
			fl := float32(newL)
			slx += float32(float32(w*v) * fl)
			sl2 += float32(float32(w*fl) * fl)
			if sl2 > 0 && float32(float32(slx*slx)*sumL2) > float32(float32(sumLX*sumLX)*sl2) {
				L[i] = int8(newL)
				sumLX, sumL2 = slx, sl2
				changed++
			}
		}
		if changed == 0 {
			break
		}
	}
	for i := range L {
		L[i] += nmax
	}
	if sumL2 > 0 {
		return sumLX / sumL2
	}
	return 0
}

// DequantizeQ2_K converts len(dst) values, a whole number of super-blocks,
// from Q2_K blocks in src, as ggml's dequantize_row_q2_K: weight l of
// sub-block j is (d·sc[j])·q − dmin·m[j]. It panics if len(dst) is not a
// multiple of QK_K or src is too short.
func DequantizeQ2_K(dst []float32, src []byte) {
	nb := blocks("DequantizeQ2_K", len(dst), QK_K, len(src), blockQ2_KSize)
	for i := range nb {
		b := (*[blockQ2_KSize]byte)(src[i*blockQ2_KSize:])
		d := fp32(binary.LittleEndian.Uint16(b[blockQ2_KSize-4:]))
		dmin := fp32(binary.LittleEndian.Uint16(b[blockQ2_KSize-2:]))
		y := (*[QK_K]float32)(dst[i*QK_K:])
		// Weight 128n + 32k + l: bits 2k of qs[32n+l], sub-block
		// 8n + 2k + l/16.
		for n := range 2 {
			q := (*[32]byte)(b[QK_K/16+32*n:])
			for k := range 4 {
				shift := uint(2 * k)
				yk := (*[32]float32)(y[128*n+32*k:])
				for h := range 2 {
					s := b[8*n+2*k+h]
					dl, ml := float32(d*float32(s&0xf)), float32(dmin*float32(s>>4))
					for l := 16 * h; l < 16*h+16; l++ {
						yk[l] = float32(dl*float32(q[l]>>shift&3)) - ml
					}
				}
			}
		}
	}
}

// DequantizeQ3_K converts len(dst) values, a whole number of super-blocks,
// from Q3_K blocks in src, as ggml's dequantize_row_q3_K: weight l of
// sub-block j is (d·(sc[j]−32))·(q−4), q's third bit from hmask. It panics
// if len(dst) is not a multiple of QK_K or src is too short.
func DequantizeQ3_K(dst []float32, src []byte) {
	nb := blocks("DequantizeQ3_K", len(dst), QK_K, len(src), blockQ3_KSize)
	var dl [QK_K / 16]float32
	for i := range nb {
		b := (*[blockQ3_KSize]byte)(src[i*blockQ3_KSize:])
		d := fp32(binary.LittleEndian.Uint16(b[blockQ3_KSize-2:]))
		hm := (*[QK_K / 8]byte)(b[:QK_K/8])
		sc := b[QK_K/8+QK_K/4 : QK_K/8+QK_K/4+12]
		for j := range dl {
			dl[j] = float32(d * float32(q3Scale(sc, j)))
		}
		y := (*[QK_K]float32)(dst[i*QK_K:])
		// Weight 128n + 32k + l: low bits 2k of qs[32n+l], third bit
		// 4n+k of hmask[l], sub-block 8n + 2k + l/16.
		for n := range 2 {
			q := (*[32]byte)(b[QK_K/8+32*n:])
			for k := range 4 {
				shift, bit := uint(2*k), uint(4*n+k)
				yk := (*[32]float32)(y[128*n+32*k:])
				d0, d1 := dl[8*n+2*k], dl[8*n+2*k+1]
				for l := range 16 {
					v := int32(q[l]>>shift&3) - 4 + 4*int32(hm[l]>>bit&1)
					yk[l] = d0 * float32(v)
				}
				for l := 16; l < 32; l++ {
					v := int32(q[l]>>shift&3) - 4 + 4*int32(hm[l]>>bit&1)
					yk[l] = d1 * float32(v)
				}
			}
		}
	}
}
