package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/internal/half"
)

// Block layouts of ggml-common.h.
const (
	// QK8_0 is the number of weights in a Q8_0 block: a float16 scale d
	// followed by QK8_0 int8 quants, x ≈ q·d.
	QK8_0         = 32
	blockQ8_0Size = 2 + QK8_0
	// QK4_0 is the number of weights in a Q4_0 block: a float16 scale d
	// followed by QK4_0/2 bytes, byte j holding element j in its low
	// nibble and element j+QK4_0/2 in its high nibble, x ≈ (q−8)·d.
	QK4_0         = 32
	blockQ4_0Size = 2 + QK4_0/2
)

// blocks returns the number of blocks in n elements, panicking (these are
// programming errors, like an index out of range) if n is not a whole
// number of blocks or the quantized buffer has fewer than that many.
func blocks(fn string, n, qk, bufLen, blockBytes int) int {
	if n%qk != 0 {
		panic(fmt.Sprintf("gguf: %s: %d values are not a multiple of the block size %d", fn, n, qk))
	}
	nb := n / qk
	if bufLen < nb*blockBytes {
		panic(fmt.Sprintf("gguf: %s: %d values need %d bytes, buffer has %d", fn, n, nb*blockBytes, bufLen))
	}
	return nb
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// QuantizeQ8_0 quantizes x, a whole number of blocks of QK8_0 values, into
// the first len(x)/QK8_0·34 bytes of dst, as ggml's quantize_row_q8_0_ref
// does, bit for bit; for each block:
//
//	amax := max |x[j]|
//	d := amax / 127
//	id := 0; if d != 0 { id = 1 / d }
//	dst = float16(d), then q[j] = roundf(x[j]·id) for j in 0..31
//
// with roundf rounding half away from zero. It panics if len(x) is not a
// multiple of QK8_0 or dst is too short.
func QuantizeQ8_0(dst []byte, x []float32) {
	nb := blocks("QuantizeQ8_0", len(x), QK8_0, len(dst), blockQ8_0Size)
	runBlocks(dst[:nb*blockQ8_0Size], x[:nb*QK8_0], blockQ8_0Size, quantizeQ8_0AVX2, quantizeQ8_0Block)
}

// quantizeQ8_0Block quantizes one block, xb, into yb (QuantizeQ8_0).
func quantizeQ8_0Block(yb []byte, xb []float32) {
	xb, yb = xb[:QK8_0], yb[:blockQ8_0Size]
	var amax float32
	for _, v := range xb {
		// C's MAX(amax, fabsf(v)): a > b ? a : b, NaN handling included.
		if a := abs32(v); !(amax > a) {
			amax = a
		}
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(yb, fp16(d))
	for j, v := range xb {
		yb[2+j] = byte(roundfInt8(float32(v * id)))
	}
}

// roundfInt8 is C's (int8_t)roundf(f): round half away from zero, then
// gcc's conversion (cvttss2si, low byte; 0 for NaN and ±Inf). Below 2^22,
// f ± 0.5 is exact in float64 and truncating it rounds half away from
// zero, with no branch to mispredict and much faster than math.Round.
func roundfInt8(f float32) int8 {
	if abs32(f) < 0x1p22 {
		g := float64(f)
		return int8(int32(g + math.Copysign(0.5, g)))
	}
	return roundfInt8Big(f)
}

func roundfInt8Big(f float32) int8 { return cInt8(float32(math.Round(float64(f)))) }

// DequantizeQ8_0 converts len(dst) values, a whole number of blocks, from
// Q8_0 blocks in src: dst[32i+j] = q[j]·d with d the block's float16 scale
// widened to float32, as ggml's dequantize_row_q8_0. It panics if len(dst)
// is not a multiple of QK8_0 or src is too short.
func DequantizeQ8_0(dst []float32, src []byte) {
	nb := blocks("DequantizeQ8_0", len(dst), QK8_0, len(src), blockQ8_0Size)
	for i := range nb {
		b := src[i*blockQ8_0Size : (i+1)*blockQ8_0Size]
		d := half.Float16ToFloat32(binary.LittleEndian.Uint16(b))
		y := dst[i*QK8_0 : (i+1)*QK8_0]
		for j := range y {
			y[j] = float32(int8(b[2+j])) * d
		}
	}
}

// QuantizeQ4_0 quantizes x, a whole number of blocks of QK4_0 values, into
// the first len(x)/QK4_0·18 bytes of dst, as ggml's quantize_row_q4_0_ref
// does, bit for bit; for each block:
//
//	max := the first x[j] of largest magnitude, sign kept
//	d := max / -8
//	id := 0; if d != 0 { id = 1 / d }
//	dst = float16(d), then for j in 0..15:
//	    q0 := min(15, int8(x[j]·id + 8.5))     (truncated, not rounded)
//	    q1 := min(15, int8(x[j+16]·id + 8.5))
//	    byte j = q0 | q1<<4
//
// so the value of largest magnitude maps to q = 0 and (q−8)·d gives it
// back exactly (up to the float16 rounding of d). It panics if len(x) is
// not a multiple of QK4_0 or dst is too short.
func QuantizeQ4_0(dst []byte, x []float32) {
	nb := blocks("QuantizeQ4_0", len(x), QK4_0, len(dst), blockQ4_0Size)
	runBlocks(dst[:nb*blockQ4_0Size], x[:nb*QK4_0], blockQ4_0Size, quantizeQ4_0AVX2, quantizeQ4_0Block)
}

// quantizeQ4_0Block quantizes one block, xb, into yb (QuantizeQ4_0).
func quantizeQ4_0Block(yb []byte, xb []float32) {
	xb, yb = xb[:QK4_0], yb[:blockQ4_0Size]
	var amax, vmax float32
	for _, v := range xb {
		if a := abs32(v); amax < a {
			amax, vmax = a, v
		}
	}
	d := vmax / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(yb, fp16(d))
	for j := range QK4_0 / 2 {
		x0 := float32(xb[j] * id)
		x1 := float32(xb[QK4_0/2+j] * id)
		xi0 := uint8(min(15, int8(x0+8.5)))
		xi1 := uint8(min(15, int8(x1+8.5)))
		yb[2+j] = xi0 | xi1<<4
	}
}

// DequantizeQ4_0 converts len(dst) values, a whole number of blocks, from
// Q4_0 blocks in src: dst[32i+j] = (low nibble of byte j − 8)·d and
// dst[32i+j+16] = (high nibble of byte j − 8)·d, as ggml's
// dequantize_row_q4_0. It panics if len(dst) is not a multiple of QK4_0 or
// src is too short.
func DequantizeQ4_0(dst []float32, src []byte) {
	nb := blocks("DequantizeQ4_0", len(dst), QK4_0, len(src), blockQ4_0Size)
	for i := range nb {
		b := src[i*blockQ4_0Size : (i+1)*blockQ4_0Size]
		d := half.Float16ToFloat32(binary.LittleEndian.Uint16(b))
		y := dst[i*QK4_0 : (i+1)*QK4_0]
		for j := range QK4_0 / 2 {
			y[j] = float32(int(b[2+j]&0x0f)-8) * d
			y[j+QK4_0/2] = float32(int(b[2+j]>>4)-8) * d
		}
	}
}
