package half

import (
	"encoding/binary"
	"math"
)

// Float16ToFloat32 returns the float32 value of the IEEE 754 binary16 number
// with bits h. It is exact: every float16 value is a float32 value.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN: keep the payload in the top mantissa bits.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127.
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal m·2^-24: normalise so that the leading 1 becomes implicit.
	e := uint32(127 - 15 + 1)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// Float32ToFloat16 returns the IEEE 754 binary16 bits nearest to f, ties to
// even. Overflow gives ±Inf, underflow ±0 or a subnormal; see the package
// documentation for NaNs.
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		m := uint16(mant >> 13)
		if m == 0 {
			m = 0x200 // quiet bit, so that the result is still a NaN
		}
		return sign | 0x7c00 | m
	}
	e := exp - 127 + 15 // biased float16 exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal result (or zero). The value is 1.mant·2^(e-15), that is
		// (mant|1<<23) · 2^(e-38), and the float16 subnormal unit is 2^-24,
		// so the result is (mant|1<<23) >> (14-e), rounded.
		if e < -10 {
			return sign // below 2^-25, half the smallest subnormal
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		return sign | uint16(roundShift(m, shift))
	}
	// Normal result: a carry out of the mantissa correctly bumps the
	// exponent, and from the largest finite value to Inf.
	return sign | uint16(roundShift(uint32(e)<<23|mant, 13))
}

// roundShift returns x >> s rounded to nearest, ties to even (1 ≤ s ≤ 31).
func roundShift(x, s uint32) uint32 {
	q := x >> s
	rem := x & (1<<s - 1)
	halfway := uint32(1) << (s - 1)
	if rem > halfway || (rem == halfway && q&1 == 1) {
		q++
	}
	return q
}

// BFloat16ToFloat32 returns the float32 value of the bfloat16 number with
// bits b. It is exact: bfloat16 is the upper half of a float32.
func BFloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// Float32ToBFloat16 returns the bfloat16 bits nearest to f, ties to even.
// Overflow gives ±Inf; see the package documentation for NaNs.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		h := uint16(b >> 16)
		if h&0x7f == 0 {
			h |= 0x40 // quiet bit, so that the result is still a NaN
		}
		return h
	}
	return uint16(roundShift(b, 16))
}

// DecodeFloat16 is
//
//	for i := range dst { dst[i] = Float16ToFloat32(order.Uint16(src[2*i:])) }
//
// It panics if src is shorter than 2*len(dst).
func DecodeFloat16(dst []float32, src []byte, order binary.ByteOrder) {
	_ = src[:2*len(dst)]
	if order == binary.LittleEndian {
		for i := range dst {
			dst[i] = Float16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
		return
	}
	for i := range dst {
		dst[i] = Float16ToFloat32(order.Uint16(src[2*i:]))
	}
}

// DecodeBFloat16 is
//
//	for i := range dst { dst[i] = BFloat16ToFloat32(order.Uint16(src[2*i:])) }
//
// It panics if src is shorter than 2*len(dst).
func DecodeBFloat16(dst []float32, src []byte, order binary.ByteOrder) {
	_ = src[:2*len(dst)]
	if order == binary.LittleEndian {
		for i := range dst {
			dst[i] = BFloat16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
		return
	}
	for i := range dst {
		dst[i] = BFloat16ToFloat32(order.Uint16(src[2*i:]))
	}
}

// EncodeFloat16 is
//
//	for i, v := range src { order.PutUint16(dst[2*i:], Float32ToFloat16(v)) }
//
// It panics if dst is shorter than 2*len(src).
func EncodeFloat16(dst []byte, src []float32, order binary.ByteOrder) {
	_ = dst[:2*len(src)]
	for i, v := range src {
		order.PutUint16(dst[2*i:], Float32ToFloat16(v))
	}
}

// EncodeBFloat16 is
//
//	for i, v := range src { order.PutUint16(dst[2*i:], Float32ToBFloat16(v)) }
//
// It panics if dst is shorter than 2*len(src).
func EncodeBFloat16(dst []byte, src []float32, order binary.ByteOrder) {
	_ = dst[:2*len(src)]
	for i, v := range src {
		order.PutUint16(dst[2*i:], Float32ToBFloat16(v))
	}
}
