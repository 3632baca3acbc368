//go:build !noasm && !gccgo && !safe

package cpu

func maxPool2x2RowSIMD(y, r0, r1 []float32) bool {
	if !use.AVX2FMA {
		return false
	}
	maxPool2x2RowAVX2(&y[0], &r0[0], &r1[0], len(y))
	return true
}

func maxIntoSIMD(y, x []float32) bool {
	if !use.AVX2FMA {
		return false
	}
	maxIntoAVX2(&y[0], &x[0], len(y))
	return true
}

// maxWindowsSIMD computes the first len(t) &^ 7 columns of MaxWindows.
func maxWindowsSIMD(t, x []float32, rs, kh, kw int) bool {
	if !use.AVX2FMA || kh < 1 || kw < 1 {
		return false
	}
	if n := len(t) &^ 7; n > 0 {
		maxWindowsAVX2(&t[0], &x[0], rs, kh, kw, n)
	}
	return true
}

// maxWindowsS32SIMD computes the first len(t) &^ 7 values of
// MaxWindowsS32.
func maxWindowsS32SIMD(t, x []int32, rs, kh, kw, step int) bool {
	if !use.AVX2FMA || kh < 1 || kw < 1 {
		return false
	}
	if n := len(t) &^ 7; n > 0 {
		maxWindowsS32AVX2(&t[0], &x[0], rs, kh, kw, step, n)
	}
	return true
}
