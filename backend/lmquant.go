package backend

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/quant"
)

// CheckQuantizeRows reports whether QuantizeRows' operands fit: codes and
// x of rows·cols elements, scales of rows, rows and cols positive.
func CheckQuantizeRows(lcodes, lscales, lx, rows, cols int) error {
	if rows <= 0 || cols <= 0 || lx != rows*cols || lcodes != lx || lscales != rows {
		return fmt.Errorf("quantize rows: codes, scales and x have %d, %d and %d elements for %d×%d: want %d, %d and %d",
			lcodes, lscales, lx, rows, cols, rows*cols, rows, rows*cols)
	}
	return nil
}

// QuantizeRowsS8 quantizes each row of x [rows, cols] to int8 codes with
// a symmetric scale of its own, the dynamic per-token activation
// quantization of a W8A8 GEMM (GemmS8 with Epilogue.RowScale = scales):
//
//	amax      = max |x[r,c]| over the finite values of row r   (0 when none)
//	scales[r] = float32(amax / 127)                           (float32 division)
//	codes[r,c] = quant.QuantizeValue(x[r,c], scales[r], 0, -127, 127)
//	          = clamp(roundHalfEven(float32(x/scales[r])), -127, 127)
//
// The rounding is quant's scalar rounding: the float32 quotient rounded
// half to even (not half away from zero), so every backend gives the same
// codes. -128 is never used, so the code range is symmetric. NaN becomes
// 0, ±Inf ±127. A row whose scale is 0 (all zeros, or amax below
// 127·2⁻¹⁴⁹ so that the division underflows) gets scale 0 and codes 0,
// which dequantize to 0. codes·scales then approximates x within
// scales[r]/2 per finite value.
func QuantizeRowsS8(codes []int8, scales, x []float32, rows, cols int) {
	if err := CheckQuantizeRows(len(codes), len(scales), len(x), rows, cols); err != nil {
		panic(err)
	}
	for r := range rows {
		QuantizeRowS8(codes[r*cols:(r+1)*cols], &scales[r], x[r*cols:(r+1)*cols])
	}
}

// QuantizeRowS8 is QuantizeRowsS8 on one row, for backends that split the
// rows among workers.
func QuantizeRowS8(codes []int8, scale *float32, x []float32) {
	var amax float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax && !math.IsInf(float64(a), 0) {
			amax = a
		}
	}
	s := amax / 127
	*scale = s
	if s == 0 {
		clear(codes)
		return
	}
	for i, v := range x {
		codes[i] = int8(quant.QuantizeValue(v, s, 0, -127, 127))
	}
}

// QuantizeRows runs QuantizeRowsS8 on b's buffers: codes S8, scales and x
// F32.
func QuantizeRows(b Backend, codes, scales, x Buffer, rows, cols int) error {
	if codes == nil || codes.DType() != S8 {
		return fmt.Errorf("quantize rows: codes must be an s8 buffer")
	}
	if err := checkF32(scales, x); err != nil {
		return fmt.Errorf("quantize rows: %w", err)
	}
	if err := CheckQuantizeRows(codes.Len(), scales.Len(), x.Len(), rows, cols); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.QuantizeRows(codes, scales, x, rows, cols)
	}
	hc, okc := Host[int8](codes)
	hs, oks := Host[float32](scales)
	hx, okx := Host[float32](x)
	if okc && oks && okx {
		if err := b.Synchronize(); err != nil {
			return err
		}
		QuantizeRowsS8(hc, hs, hx, rows, cols)
		return nil
	}
	hx = make([]float32, x.Len())
	if err := b.Download(hx, x); err != nil {
		return err
	}
	hc, hs = make([]int8, codes.Len()), make([]float32, rows)
	QuantizeRowsS8(hc, hs, hx, rows, cols)
	if err := b.Upload(codes, hc); err != nil {
		return err
	}
	return b.Upload(scales, hs)
}
