//go:build !amd64 || noasm || gccgo || safe

package cpu

import "math"

// The element-wise kernels of elem_amd64.s in Go, for builds without the
// assembly. They are never called there (use.AVX2FMA is false), but
// compute what the assembly computes: whole blocks of 32 elements
// (*AVX512: 64, histogramAVX2: 128), the rest left to the caller.

func quantize8AVX2(dst []byte, x []float32, sc float32, zp, qmin, qmax int32) {
	x = x[:len(x)&^31]
	quantize8(dst[:len(x)], x, sc, zp, float64(qmin), float64(qmax))
}

func quantize8VecAVX2(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32) {
	for i, v := range x[:len(x)&^31] {
		dst[i] = byte(quantizeValue(v, sc[i], zp[i], float64(qmin), float64(qmax)))
	}
}

func quantize4AVX2(dst []byte, x []float32, sc float32, zp, qmin, qmax int32) {
	n := len(x) &^ 31
	quantize4(dst[:n/2], x[:n], 0, n, sc, zp, float64(qmin), float64(qmax))
}

func quantize4VecAVX2(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32) {
	for p := range (len(x) &^ 31) / 2 {
		q0 := quantizeValue(x[2*p], sc[2*p], zp[2*p], float64(qmin), float64(qmax))
		q1 := quantizeValue(x[2*p+1], sc[2*p+1], zp[2*p+1], float64(qmin), float64(qmax))
		dst[p] = byte(q0)&0x0F | byte(q1)<<4
	}
}

func quantize8GroupsAVX2(dst []byte, x []float32, sc []float32, zp []int32, group int, qmin, qmax int32) {
	for g := range sc {
		quantize8(dst[g*group:(g+1)*group], x[g*group:(g+1)*group], sc[g], zp[g], float64(qmin), float64(qmax))
	}
}

func quantize4GroupsAVX2(dst []byte, x []float32, sc []float32, zp []int32, group int, qmin, qmax int32) {
	for g := range sc {
		quantize4(dst, x, g*group, (g+1)*group, sc[g], zp[g], float64(qmin), float64(qmax))
	}
}

func quantize8AVX512(dst []byte, x []float32, sc float32, zp, qmin, qmax int32) {
	quantize8AVX2(dst, x[:len(x)&^63], sc, zp, qmin, qmax)
}

func quantize4AVX512(dst []byte, x []float32, sc float32, zp, qmin, qmax int32) {
	quantize4AVX2(dst, x[:len(x)&^63], sc, zp, qmin, qmax)
}

func quantize8VecAVX512(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32) {
	quantize8VecAVX2(dst, x[:len(x)&^63], sc, zp, qmin, qmax)
}

func quantize4VecAVX512(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32) {
	quantize4VecAVX2(dst, x[:len(x)&^63], sc, zp, qmin, qmax)
}

func quantize8GroupsAVX512(dst []byte, x []float32, sc []float32, zp []int32, group int, qmin, qmax int32) {
	quantize8GroupsAVX2(dst, x, sc, zp, group, qmin, qmax)
}

func quantize4GroupsAVX512(dst []byte, x []float32, sc []float32, zp []int32, group int, qmin, qmax int32) {
	quantize4GroupsAVX2(dst, x, sc, zp, group, qmin, qmax)
}

func quantize8Groups32AVX512(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32) {
	quantize8GroupsAVX2(dst, x, sc[:len(sc)&^1], zp, 32, qmin, qmax)
}

func quantize4Groups32AVX512(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32) {
	quantize4GroupsAVX2(dst, x, sc[:len(sc)&^1], zp, 32, qmin, qmax)
}

func dequantize8SAVX2(x []float32, codes []byte, sc float32, zp int32) {
	for i := range len(x) &^ 31 {
		x[i] = float32(int32(int8(codes[i]))-zp) * sc
	}
}

func dequantize8UAVX2(x []float32, codes []byte, sc float32, zp int32) {
	for i := range len(x) &^ 31 {
		x[i] = float32(int32(codes[i])-zp) * sc
	}
}

func dequantize8SVecAVX2(x []float32, codes []byte, sc []float32, zp []int32) {
	for i := range len(x) &^ 31 {
		x[i] = float32(int32(int8(codes[i]))-zp[i]) * sc[i]
	}
}

func dequantize8UVecAVX2(x []float32, codes []byte, sc []float32, zp []int32) {
	for i := range len(x) &^ 31 {
		x[i] = float32(int32(codes[i])-zp[i]) * sc[i]
	}
}

func dequantize8SGroupsAVX2(x []float32, codes []byte, sc []float32, zp []int32, group int) {
	for g := range sc {
		dequantize8SAVX2(x[g*group:(g+1)*group], codes[g*group:], sc[g], zp[g])
	}
}

func dequantize8UGroupsAVX2(x []float32, codes []byte, sc []float32, zp []int32, group int) {
	for g := range sc {
		dequantize8UAVX2(x[g*group:(g+1)*group], codes[g*group:], sc[g], zp[g])
	}
}

func dequantize4GroupsAVX2(x []float32, codes []byte, sc []float32, zp []int32, group int, off int32, flip uint32) {
	for g := range sc {
		dequantize4AVX2(x[g*group:(g+1)*group], codes[g*group/2:], sc[g], zp[g]+off, flip)
	}
}

func dequantize4AVX2(x []float32, codes []byte, sc float32, sub int32, flip uint32) {
	for p := range (len(x) &^ 31) / 2 {
		c := codes[p] ^ byte(flip)
		x[2*p] = float32(int32(c&0x0F)-sub) * sc
		x[2*p+1] = float32(int32(c>>4)-sub) * sc
	}
}

func absMaxAVX2(x []float32) uint32 {
	var m uint32
	for _, v := range x[:len(x)&^31] {
		if b := math.Float32bits(v) &^ (1 << 31); b < expMask {
			m = max(m, b)
		}
	}
	return m
}

func histogramAVX2(x []float32, inv, last float32, nb int32, counts []uint32) {
	for i, v := range x[:len(x)&^127] {
		bin := int(nb)
		if b := math.Float32bits(v) &^ (1 << 31); b < expMask {
			bin = int(min(math.Float32frombits(b)*inv, last))
		}
		counts[4*bin+i%4]++
	}
}

func sqnrSumsAVX2(x, y []float32) (sig, noise float64) {
	for i, v := range x[:len(x)&^15] {
		a := float64(v)
		d := a - float64(y[i])
		sig += a * a
		noise += d * d
	}
	return sig, noise
}
