package gguf

import (
	"encoding/binary"
	"math"
)

// Line-by-line transcriptions of ggml-quants.c's reference quantizers for
// the types added after Q8_0 and Q4_0, written from the C independently of
// quant_legacy.go and quant_k.go (which precompute and skip work), in the
// same float32 order; every product that C rounds before an addition is
// rounded here with an explicit float32(), so that no platform fuses it.
// The names follow the C.

const refQK_K = 256

func refFP16(f float32) uint16   { return ggmlComputeFP32ToFP16(f) }
func refFP32(h uint16) float32   { return ggmlComputeFP16ToFP32(h) }
func refInt8(f float32) int8     { return int8(int32(f)) } // (int8_t)f, gcc on x86-64
func refMINint(a, b int) int     { return cMINint(a, b) }
func refMAXint(a, b int) int     { return -cMINint(-a, -b) }
func refSqrtf(f float32) float32 { return float32(math.Sqrt(float64(f))) }

// ggmlComputeFP32ToBF16 is ggml_compute_fp32_to_bf16.
func ggmlComputeFP32ToBF16(s float32) uint16 {
	i := math.Float32bits(s)
	if i&0x7fffffff > 0x7f800000 { // nan
		return uint16(i>>16) | 64 // force to quiet
	}
	return uint16((i + (0x7fff + ((i >> 16) & 1))) >> 16)
}

// refNearestInt is nearest_int.
func refNearestInt(fval float32) int {
	val := fval + 12582912.0
	i := int32(math.Float32bits(val))
	return int((i & 0x007fffff) - 0x00400000)
}

// refQuantizeRowQ4_1 is quantize_row_q4_1_ref.
func refQuantizeRowQ4_1(x []float32) []byte {
	const qk = 32
	nb := len(x) / qk
	y := make([]byte, nb*20) // { ggml_half d; ggml_half m; uint8_t qs[16]; }
	for i := 0; i < nb; i++ {
		min := float32(math.MaxFloat32)
		max := float32(-math.MaxFloat32)
		for j := 0; j < qk; j++ {
			v := x[i*qk+j]
			if v < min {
				min = v
			}
			if v > max {
				max = v
			}
		}
		d := (max - min) / ((1 << 4) - 1)
		id := float32(0)
		if d != 0 {
			id = 1.0 / d
		}
		yb := y[i*20:]
		binary.LittleEndian.PutUint16(yb[0:], refFP16(d))
		binary.LittleEndian.PutUint16(yb[2:], refFP16(min))
		for j := 0; j < qk/2; j++ {
			x0 := float32((x[i*qk+0+j] - min) * id)
			x1 := float32((x[i*qk+qk/2+j] - min) * id)
			xi0 := uint8(refMINint(15, int(refInt8(x0+0.5))))
			xi1 := uint8(refMINint(15, int(refInt8(x1+0.5))))
			yb[4+j] = xi0
			yb[4+j] |= xi1 << 4
		}
	}
	return y
}

// refQuantizeRowQ5_0 is quantize_row_q5_0_ref.
func refQuantizeRowQ5_0(x []float32) []byte {
	const qk = 32
	nb := len(x) / qk
	y := make([]byte, nb*22) // { ggml_half d; uint8_t qh[4]; uint8_t qs[16]; }
	for i := 0; i < nb; i++ {
		amax := float32(0)
		max := float32(0)
		for j := 0; j < qk; j++ {
			v := x[i*qk+j]
			if amax < fabsf(v) {
				amax = fabsf(v)
				max = v
			}
		}
		d := max / -16
		id := float32(0)
		if d != 0 {
			id = 1.0 / d
		}
		yb := y[i*22:]
		binary.LittleEndian.PutUint16(yb, refFP16(d))
		qh := uint32(0)
		for j := 0; j < qk/2; j++ {
			x0 := float32(x[i*qk+0+j] * id)
			x1 := float32(x[i*qk+qk/2+j] * id)
			xi0 := uint8(refMINint(31, int(refInt8(x0+16.5))))
			xi1 := uint8(refMINint(31, int(refInt8(x1+16.5))))
			yb[6+j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)
			qh |= (uint32(xi0&0x10) >> 4) << (j + 0)
			qh |= (uint32(xi1&0x10) >> 4) << (j + qk/2)
		}
		binary.LittleEndian.PutUint32(yb[2:], qh)
	}
	return y
}

// refQuantizeRowQ5_1 is quantize_row_q5_1_ref.
func refQuantizeRowQ5_1(x []float32) []byte {
	const qk = 32
	nb := len(x) / qk
	y := make([]byte, nb*24) // { ggml_half d, m; uint8_t qh[4]; uint8_t qs[16]; }
	for i := 0; i < nb; i++ {
		min := float32(math.MaxFloat32)
		max := float32(-math.MaxFloat32)
		for j := 0; j < qk; j++ {
			v := x[i*qk+j]
			if v < min {
				min = v
			}
			if v > max {
				max = v
			}
		}
		d := (max - min) / ((1 << 5) - 1)
		id := float32(0)
		if d != 0 {
			id = 1.0 / d
		}
		yb := y[i*24:]
		binary.LittleEndian.PutUint16(yb[0:], refFP16(d))
		binary.LittleEndian.PutUint16(yb[2:], refFP16(min))
		qh := uint32(0)
		for j := 0; j < qk/2; j++ {
			x0 := float32((x[i*qk+0+j] - min) * id)
			x1 := float32((x[i*qk+qk/2+j] - min) * id)
			xi0 := uint8(int32(x0 + 0.5))
			xi1 := uint8(int32(x1 + 0.5))
			yb[8+j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)
			qh |= (uint32(xi0&0x10) >> 4) << (j + 0)
			qh |= (uint32(xi1&0x10) >> 4) << (j + qk/2)
		}
		binary.LittleEndian.PutUint32(yb[4:], qh)
	}
	return y
}

// refMakeQxQuants is make_qx_quants with qw == NULL.
func refMakeQxQuants(n, nmax int, x []float32, L []int8, rmseType int) float32 {
	max := float32(0)
	amax := float32(0)
	for i := 0; i < n; i++ {
		ax := fabsf(x[i])
		if ax > amax {
			amax = ax
			max = x[i]
		}
	}
	if amax < 1e-15 { // all zero
		for i := 0; i < n; i++ {
			L[i] = 0
		}
		return 0
	}
	iscale := float32(-nmax) / max
	if rmseType == 0 {
		for i := 0; i < n; i++ {
			l := refNearestInt(float32(iscale * x[i]))
			L[i] = int8(nmax + refMAXint(-nmax, refMINint(nmax-1, l)))
		}
		return 1 / iscale
	}
	weight := func(xi float32) float32 {
		switch rmseType {
		case 1:
			return float32(xi * xi)
		case 2:
			return 1
		case 3:
			return fabsf(xi)
		}
		return refSqrtf(fabsf(xi))
	}
	sumlx := float32(0)
	suml2 := float32(0)
	for i := 0; i < n; i++ {
		l := refNearestInt(float32(iscale * x[i]))
		l = refMAXint(-nmax, refMINint(nmax-1, l))
		L[i] = int8(l + nmax)
		w := weight(x[i])
		sumlx += float32(float32(w*x[i]) * float32(l))
		suml2 += float32(float32(w*float32(l)) * float32(l))
	}
	scale := float32(0)
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := float32(scale * sumlx)
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + float32(0.1*float32(is))) / max
		sumlx, suml2 = 0, 0
		for i := 0; i < n; i++ {
			l := refNearestInt(float32(iscale * x[i]))
			l = refMAXint(-nmax, refMINint(nmax-1, l))
			w := weight(x[i])
			sumlx += float32(float32(w*x[i]) * float32(l))
			suml2 += float32(float32(w*float32(l)) * float32(l))
		}
		if suml2 > 0 && float32(sumlx*sumlx) > float32(best*suml2) {
			for i := 0; i < n; i++ {
				l := refNearestInt(float32(iscale * x[i]))
				L[i] = int8(nmax + refMAXint(-nmax, refMINint(nmax-1, l)))
			}
			scale = sumlx / suml2
			best = float32(scale * sumlx)
		}
	}
	return scale
}

// refMakeQkx2Quants is make_qkx2_quants; it returns the scale and *the_min.
func refMakeQkx2Quants(n, nmax int, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int, useMad bool) (float32, float32) {
	min := x[0]
	max := x[0]
	sumW := weights[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < min {
			min = x[i]
		}
		if x[i] > max {
			max = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if min > 0 {
		min = 0
	}
	if max == min {
		for i := 0; i < n; i++ {
			L[i] = 0
		}
		return 0, -min
	}
	iscale := float32(nmax) / (max - min)
	scale := 1 / iscale
	bestError := float32(0)
	for i := 0; i < n; i++ {
		l := refNearestInt(float32(iscale * (x[i] - min)))
		L[i] = uint8(refMAXint(0, refMINint(nmax, l)))
		diff := float32(float32(scale*float32(L[i]))+min) - x[i]
		if useMad {
			diff = fabsf(diff)
		} else {
			diff = float32(diff * diff)
		}
		w := weights[i]
		bestError += float32(w * diff)
	}
	if nstep < 1 {
		return scale, -min
	}
	for is := 0; is <= nstep; is++ {
		iscale = float32(float32(rmin+float32(rdelta*float32(is)))+float32(nmax)) / (max - min)
		sumL, sumL2, sumXL := float32(0), float32(0), float32(0)
		for i := 0; i < n; i++ {
			l := refNearestInt(float32(iscale * (x[i] - min)))
			l = refMAXint(0, refMINint(nmax, l))
			Laux[i] = uint8(l)
			w := weights[i]
			sumL += float32(w * float32(l))
			sumL2 += float32(float32(w*float32(l)) * float32(l))
			sumXL += float32(float32(w*float32(l)) * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			curError := float32(0)
			for i := 0; i < n; i++ {
				diff := float32(float32(thisScale*float32(Laux[i]))+thisMin) - x[i]
				if useMad {
					diff = fabsf(diff)
				} else {
					diff = float32(diff * diff)
				}
				w := weights[i]
				curError += float32(w * diff)
			}
			if curError < bestError {
				for i := 0; i < n; i++ {
					L[i] = Laux[i]
				}
				bestError = curError
				scale = thisScale
				min = thisMin
			}
		}
	}
	return scale, -min
}

// refGetScaleMinK4 is get_scale_min_k4.
func refGetScaleMinK4(j int, q []byte) (d, m uint8) {
	if j < 4 {
		d = q[j] & 63
		m = q[j+4] & 63
	} else {
		d = (q[j+4] & 0xF) | ((q[j-4] >> 6) << 4)
		m = (q[j+4] >> 4) | ((q[j-0] >> 6) << 4)
	}
	return d, m
}

// refQuantizeRowQ45K is quantize_row_q4_K_ref (nmax 15) and
// quantize_row_q5_K_ref (nmax 31), which differ in make_qkx2_quants'
// arguments and in the packing of the codes.
func refQuantizeRowQ45K(x []float32, nmax int) []byte {
	nb := len(x) / refQK_K
	size := 144
	if nmax == 31 {
		size = 176
	}
	y := make([]byte, nb*size)
	var L [refQK_K]uint8
	var Laux [32]uint8
	var weights [32]float32
	var mins, scales [refQK_K / 32]float32
	for i := 0; i < nb; i++ {
		yb := y[i*size : (i+1)*size]
		ysc := yb[4:16]
		maxScale := float32(0)
		maxMin := float32(0)
		for j := 0; j < refQK_K/32; j++ {
			sumX2 := float32(0)
			for l := 0; l < 32; l++ {
				sumX2 += float32(x[32*j+l] * x[32*j+l])
			}
			avX := refSqrtf(sumX2 / 32)
			for l := 0; l < 32; l++ {
				weights[l] = avX + fabsf(x[32*j+l])
			}
			if nmax == 15 {
				scales[j], mins[j] = refMakeQkx2Quants(32, 15, x[32*j:], weights[:], L[32*j:], Laux[:], -1, 0.1, 20, false)
			} else {
				scales[j], mins[j] = refMakeQkx2Quants(32, 31, x[32*j:], weights[:], L[32*j:], Laux[:], -0.5, 0.1, 15, false)
			}
			scale := scales[j]
			if scale > maxScale {
				maxScale = scale
			}
			min := mins[j]
			if min > maxMin {
				maxMin = min
			}
		}
		invScale := float32(0)
		if maxScale > 0 {
			invScale = 63 / maxScale
		}
		invMin := float32(0)
		if maxMin > 0 {
			invMin = 63 / maxMin
		}
		for j := 0; j < refQK_K/32; j++ {
			ls := uint8(refNearestInt(float32(invScale * scales[j])))
			lm := uint8(refNearestInt(float32(invMin * mins[j])))
			ls = uint8(refMINint(63, int(ls)))
			lm = uint8(refMINint(63, int(lm)))
			if j < 4 {
				ysc[j] = ls
				ysc[j+4] = lm
			} else {
				ysc[j+4] = (ls & 0xF) | ((lm & 0xF) << 4)
				ysc[j-4] |= ((ls >> 4) << 6)
				ysc[j-0] |= ((lm >> 4) << 6)
			}
		}
		binary.LittleEndian.PutUint16(yb[0:], refFP16(maxScale/63))
		binary.LittleEndian.PutUint16(yb[2:], refFP16(maxMin/63))
		for j := 0; j < refQK_K/32; j++ {
			sc, m := refGetScaleMinK4(j, ysc)
			d := float32(refFP32(binary.LittleEndian.Uint16(yb[0:])) * float32(sc))
			if d == 0 {
				continue
			}
			dm := float32(refFP32(binary.LittleEndian.Uint16(yb[2:])) * float32(m))
			for ii := 0; ii < 32; ii++ {
				l := refNearestInt((x[32*j+ii] + dm) / d)
				l = refMAXint(0, refMINint(nmax, l))
				L[32*j+ii] = uint8(l)
			}
		}
		if nmax == 15 {
			q := yb[16:]
			for j := 0; j < refQK_K; j += 64 {
				for l := 0; l < 32; l++ {
					q[l] = L[j+l] | (L[j+l+32] << 4)
				}
				q = q[32:]
			}
		} else {
			qh := yb[16:48]
			ql := yb[48:]
			m1, m2 := uint8(1), uint8(2)
			for n := 0; n < refQK_K; n += 64 {
				for j := 0; j < 32; j++ {
					l1 := int(L[n+j])
					if l1 > 15 {
						l1 -= 16
						qh[j] |= m1
					}
					l2 := int(L[n+j+32])
					if l2 > 15 {
						l2 -= 16
						qh[j] |= m2
					}
					ql[j] = uint8(l1 | (l2 << 4))
				}
				m1 <<= 2
				m2 <<= 2
				ql = ql[32:]
			}
		}
		x = x[refQK_K:]
	}
	return y
}

func refQuantizeRowQ4_K(x []float32) []byte { return refQuantizeRowQ45K(x, 15) }
func refQuantizeRowQ5_K(x []float32) []byte { return refQuantizeRowQ45K(x, 31) }

// refQuantizeRowQ6_K is quantize_row_q6_K_ref.
func refQuantizeRowQ6_K(x []float32) []byte {
	nb := len(x) / refQK_K
	y := make([]byte, nb*210) // { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ggml_half d; }
	var L [refQK_K]int8
	var scales [refQK_K / 16]float32
	for i := 0; i < nb; i++ {
		yb := y[i*210 : (i+1)*210]
		ysc := yb[192:208]
		maxScale := float32(0)
		maxAbsScale := float32(0)
		for ib := 0; ib < refQK_K/16; ib++ {
			scale := refMakeQxQuants(16, 32, x[16*ib:], L[16*ib:], 1)
			scales[ib] = scale
			absScale := fabsf(scale)
			if absScale > maxAbsScale {
				maxAbsScale = absScale
				maxScale = scale
			}
		}
		if maxAbsScale < 1e-15 {
			clear(yb)
			binary.LittleEndian.PutUint16(yb[208:], refFP16(0))
			x = x[refQK_K:]
			continue
		}
		iscale := -128 / maxScale
		binary.LittleEndian.PutUint16(yb[208:], refFP16(1/iscale))
		for ib := 0; ib < refQK_K/16; ib++ {
			ysc[ib] = byte(int8(refMINint(127, refNearestInt(float32(iscale*scales[ib])))))
		}
		for j := 0; j < refQK_K/16; j++ {
			d := float32(refFP32(binary.LittleEndian.Uint16(yb[208:])) * float32(int8(ysc[j])))
			if d == 0 {
				continue
			}
			for ii := 0; ii < 16; ii++ {
				l := refNearestInt(x[16*j+ii] / d)
				l = refMAXint(-32, refMINint(31, l))
				L[16*j+ii] = int8(l + 32)
			}
		}
		ql := yb[0:128]
		qh := yb[128:192]
		for j := 0; j < refQK_K; j += 128 {
			for l := 0; l < 32; l++ {
				q1 := uint8(L[j+l+0]) & 0xF
				q2 := uint8(L[j+l+32]) & 0xF
				q3 := uint8(L[j+l+64]) & 0xF
				q4 := uint8(L[j+l+96]) & 0xF
				ql[l+0] = q1 | (q3 << 4)
				ql[l+32] = q2 | (q4 << 4)
				qh[l] = uint8(L[j+l]>>4) | uint8((L[j+l+32]>>4)<<2) | uint8((L[j+l+64]>>4)<<4) | uint8((L[j+l+96]>>4)<<6)
			}
			ql = ql[64:]
			qh = qh[32:]
		}
		x = x[refQK_K:]
	}
	return y
}
