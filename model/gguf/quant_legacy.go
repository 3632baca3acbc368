package gguf

import (
	"encoding/binary"
	"math"

	"github.com/quantkit/quantkit/internal/half"
)

// Block layouts of ggml-common.h for the 32-element types with a minimum
// or a fifth bit.
const (
	// QK4_1 is the number of weights in a Q4_1 block: float16 d, float16
	// m, then QK4_1/2 bytes of nibbles laid out as Q4_0's, x ≈ q·d + m.
	QK4_1         = 32
	blockQ4_1Size = 4 + QK4_1/2
	// QK5_0 is the number of weights in a Q5_0 block: float16 d, a
	// little-endian uint32 qh whose bit j is the fifth bit of element j,
	// then QK5_0/2 bytes of low nibbles laid out as Q4_0's, x ≈ (q−16)·d.
	QK5_0         = 32
	blockQ5_0Size = 2 + 4 + QK5_0/2
	// QK5_1 is the number of weights in a Q5_1 block: float16 d, float16
	// m, qh and the low nibbles as in Q5_0, x ≈ q·d + m.
	QK5_1         = 32
	blockQ5_1Size = 4 + 4 + QK5_1/2
)

// fp16 is ggml's GGML_FP32_TO_FP16 (ggml_compute_fp32_to_fp16): round to
// nearest, ties to even, as internal/half, except that every NaN becomes
// the quiet NaN 0x7e00 with its sign (half keeps the payload).
func fp16(f float32) uint16 {
	if f != f {
		return uint16(math.Float32bits(f)>>16)&0x8000 | 0x7e00
	}
	return half.Float32ToFloat16(f)
}

// fp32 is ggml's GGML_FP16_TO_FP32 for finite values and infinities.
func fp32(h uint16) float32 { return half.Float16ToFloat32(h) }

// cInt8 is C's (int8_t) conversion of a float as gcc compiles it for
// x86-64 (cvttss2si to 32 bits, then the low byte): truncation toward
// zero, and 0 for NaN or values beyond the int32 range. Go's own int8(f)
// leaves those cases to the implementation.
func cInt8(f float32) int8 { return int8(int32(f)) }

// QuantizeQ4_1 quantizes x, a whole number of blocks of QK4_1 values, into
// the first len(x)/QK4_1·20 bytes of dst, as ggml's quantize_row_q4_1_ref
// does, bit for bit; for each block:
//
//	min, max := the smallest and largest x[j]
//	d := (max − min) / 15
//	id := 0; if d != 0 { id = 1 / d }
//	dst = float16(d), float16(min), then for j in 0..15:
//	    q0 := min(15, int8((x[j]−min)·id + 0.5))     (truncated)
//	    q1 := min(15, int8((x[j+16]−min)·id + 0.5))
//	    byte j = q0 | q1<<4
//
// It panics if len(x) is not a multiple of QK4_1 or dst is too short.
func QuantizeQ4_1(dst []byte, x []float32) {
	nb := blocks("QuantizeQ4_1", len(x), QK4_1, len(dst), blockQ4_1Size)
	for i := range nb {
		xb := x[i*QK4_1 : (i+1)*QK4_1]
		yb := dst[i*blockQ4_1Size : (i+1)*blockQ4_1Size]
		vmin, vmax := xMinMax(xb)
		d := (vmax - vmin) / 15
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(yb[0:], fp16(d))
		binary.LittleEndian.PutUint16(yb[2:], fp16(vmin))
		for j := range QK4_1 / 2 {
			x0 := float32((xb[j] - vmin) * id)
			x1 := float32((xb[QK4_1/2+j] - vmin) * id)
			xi0 := uint8(min(15, int(cInt8(x0+0.5))))
			xi1 := uint8(min(15, int(cInt8(x1+0.5))))
			yb[4+j] = xi0 | xi1<<4
		}
	}
}

// xMinMax is the min/max scan of quantize_row_q4_1_ref and _q5_1_ref,
// starting from FLT_MAX and −FLT_MAX (so NaNs are skipped).
func xMinMax(xb []float32) (vmin, vmax float32) {
	vmin, vmax = math.MaxFloat32, -math.MaxFloat32
	for _, v := range xb {
		if v < vmin {
			vmin = v
		}
		if v > vmax {
			vmax = v
		}
	}
	return vmin, vmax
}

// DequantizeQ4_1 converts len(dst) values, a whole number of blocks, from
// Q4_1 blocks in src: dst[32i+j] = q·d + m with q the low nibble of byte
// j (the high one for j+16), as ggml's dequantize_row_q4_1. It panics if
// len(dst) is not a multiple of QK4_1 or src is too short.
func DequantizeQ4_1(dst []float32, src []byte) {
	nb := blocks("DequantizeQ4_1", len(dst), QK4_1, len(src), blockQ4_1Size)
	for i := range nb {
		b := src[i*blockQ4_1Size : (i+1)*blockQ4_1Size]
		d := fp32(binary.LittleEndian.Uint16(b[0:]))
		m := fp32(binary.LittleEndian.Uint16(b[2:]))
		y := dst[i*QK4_1 : (i+1)*QK4_1]
		for j := range QK4_1 / 2 {
			y[j] = float32(float32(b[4+j]&0x0f)*d) + m
			y[j+QK4_1/2] = float32(float32(b[4+j]>>4)*d) + m
		}
	}
}

// QuantizeQ5_0 quantizes x, a whole number of blocks of QK5_0 values, into
// the first len(x)/QK5_0·22 bytes of dst, as ggml's quantize_row_q5_0_ref
// does, bit for bit; for each block:
//
//	max := the first x[j] of largest magnitude, sign kept
//	d := max / -16
//	id := 0; if d != 0 { id = 1 / d }
//	q[j] := min(31, int8(x[j]·id + 16.5))     (truncated)
//	dst = float16(d), qh (bit j = bit 4 of q[j]), then for j in 0..15
//	      byte j = q[j]&15 | (q[j+16]&15)<<4
//
// It panics if len(x) is not a multiple of QK5_0 or dst is too short.
func QuantizeQ5_0(dst []byte, x []float32) {
	nb := blocks("QuantizeQ5_0", len(x), QK5_0, len(dst), blockQ5_0Size)
	for i := range nb {
		xb := x[i*QK5_0 : (i+1)*QK5_0]
		yb := dst[i*blockQ5_0Size : (i+1)*blockQ5_0Size]
		var amax, vmax float32
		for _, v := range xb {
			if a := abs32(v); amax < a {
				amax, vmax = a, v
			}
		}
		d := vmax / -16
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(yb, fp16(d))
		var qh uint32
		for j := range QK5_0 / 2 {
			x0 := float32(xb[j] * id)
			x1 := float32(xb[QK5_0/2+j] * id)
			xi0 := uint8(min(31, int(cInt8(x0+16.5))))
			xi1 := uint8(min(31, int(cInt8(x1+16.5))))
			yb[6+j] = xi0&0x0f | (xi1&0x0f)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + QK5_0/2)
		}
		binary.LittleEndian.PutUint32(yb[2:], qh)
	}
}

// DequantizeQ5_0 converts len(dst) values, a whole number of blocks, from
// Q5_0 blocks in src: dst[32i+j] = (q[j]−16)·d, as ggml's
// dequantize_row_q5_0. It panics if len(dst) is not a multiple of QK5_0
// or src is too short.
func DequantizeQ5_0(dst []float32, src []byte) {
	nb := blocks("DequantizeQ5_0", len(dst), QK5_0, len(src), blockQ5_0Size)
	for i := range nb {
		b := src[i*blockQ5_0Size : (i+1)*blockQ5_0Size]
		d := fp32(binary.LittleEndian.Uint16(b))
		qh := binary.LittleEndian.Uint32(b[2:])
		y := dst[i*QK5_0 : (i+1)*QK5_0]
		for j := range QK5_0 / 2 {
			h0 := byte(qh>>j<<4) & 0x10
			h1 := byte(qh>>(j+12)) & 0x10
			y[j] = float32(int(b[6+j]&0x0f|h0)-16) * d
			y[j+QK5_0/2] = float32(int(b[6+j]>>4|h1)-16) * d
		}
	}
}

// QuantizeQ5_1 quantizes x, a whole number of blocks of QK5_1 values, into
// the first len(x)/QK5_1·24 bytes of dst, as ggml's quantize_row_q5_1_ref
// does, bit for bit; for each block:
//
//	min, max := the smallest and largest x[j]
//	d := (max − min) / 31
//	id := 0; if d != 0 { id = 1 / d }
//	q[j] := uint8((x[j]−min)·id + 0.5)     (truncated, not clamped)
//	dst = float16(d), float16(min), qh, low nibbles as in Q5_0
//
// It panics if len(x) is not a multiple of QK5_1 or dst is too short.
func QuantizeQ5_1(dst []byte, x []float32) {
	nb := blocks("QuantizeQ5_1", len(x), QK5_1, len(dst), blockQ5_1Size)
	for i := range nb {
		xb := x[i*QK5_1 : (i+1)*QK5_1]
		yb := dst[i*blockQ5_1Size : (i+1)*blockQ5_1Size]
		vmin, vmax := xMinMax(xb)
		d := (vmax - vmin) / 31
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(yb[0:], fp16(d))
		binary.LittleEndian.PutUint16(yb[2:], fp16(vmin))
		var qh uint32
		for j := range QK5_1 / 2 {
			x0 := float32((xb[j] - vmin) * id)
			x1 := float32((xb[QK5_1/2+j] - vmin) * id)
			// (uint8_t)(x0 + 0.5f): the same cvttss2si and low byte.
			xi0 := uint8(int32(x0 + 0.5))
			xi1 := uint8(int32(x1 + 0.5))
			yb[8+j] = xi0&0x0f | (xi1&0x0f)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + QK5_1/2)
		}
		binary.LittleEndian.PutUint32(yb[4:], qh)
	}
}

// DequantizeQ5_1 converts len(dst) values, a whole number of blocks, from
// Q5_1 blocks in src: dst[32i+j] = q[j]·d + m, as ggml's
// dequantize_row_q5_1. It panics if len(dst) is not a multiple of QK5_1
// or src is too short.
func DequantizeQ5_1(dst []float32, src []byte) {
	nb := blocks("DequantizeQ5_1", len(dst), QK5_1, len(src), blockQ5_1Size)
	for i := range nb {
		b := src[i*blockQ5_1Size : (i+1)*blockQ5_1Size]
		d := fp32(binary.LittleEndian.Uint16(b[0:]))
		m := fp32(binary.LittleEndian.Uint16(b[2:]))
		qh := binary.LittleEndian.Uint32(b[4:])
		y := dst[i*QK5_1 : (i+1)*QK5_1]
		for j := range QK5_1 / 2 {
			h0 := byte(qh>>j<<4) & 0x10
			h1 := byte(qh>>(j+12)) & 0x10
			y[j] = float32(float32(b[8+j]&0x0f|h0)*d) + m
			y[j+QK5_1/2] = float32(float32(b[8+j]>>4|h1)*d) + m
		}
	}
}
