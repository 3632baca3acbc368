package cpu

// MaxPool2x2Row is one output row of a 2×2 max pool of stride 2 over the
// input rows r0 and r1:
//
//	for j := range y {
//		y[j] = max(r0[2*j], r0[2*j+1], r1[2*j], r1[2*j+1])
//	}
//
// a NaN in a window being its maximum. r0 and r1 must hold 2·len(y)
// values.
func MaxPool2x2Row(y, r0, r1 []float32) {
	n := len(y)
	r0, r1 = r0[:2*n], r1[:2*n]
	if n == 0 {
		return
	}
	if maxPool2x2RowSIMD(y, r0, r1) {
		return
	}
	maxPool2x2RowGo(y, r0, r1)
}

func maxPool2x2RowGo(y, r0, r1 []float32) {
	for j := range y {
		y[j] = max(r0[2*j], r0[2*j+1], r1[2*j], r1[2*j+1])
	}
}

// MaxInto is
//
//	for j := range y {
//		y[j] = max(y[j], x[j])
//	}
//
// a NaN in either being the maximum: the rows of a max pool's window
// folded into one before its columns are. x must hold len(y) values.
func MaxInto(y, x []float32) {
	x = x[:len(y)]
	if len(y) == 0 {
		return
	}
	if maxIntoSIMD(y, x) {
		return
	}
	maxIntoGo(y, x)
}

func maxIntoGo(y, x []float32) {
	for j, v := range x {
		y[j] = max(y[j], v)
	}
}

// MaxWindows is the maximum of the kh×kw window (kh, kw ≥ 1) at each of
// len(t) columns of rows rs apart:
//
//	for j := range t {
//		t[j] = max over h < kh, u < kw of x[h*rs+j+u]
//	}
//
// a NaN in a window being its maximum: a max pool of stride s takes every
// s-th. x must hold (kh−1)·rs + len(t) + kw − 1 values.
func MaxWindows(t, x []float32, rs, kh, kw int) {
	n := len(t)
	if n == 0 {
		return
	}
	x = x[:(kh-1)*rs+n+kw-1]
	v := 0
	if maxWindowsSIMD(t, x, rs, kh, kw) {
		v = n &^ 7
	}
	maxWindowsGo(t[v:], x[v:], rs, kh, kw)
}

func maxWindowsGo(t, x []float32, rs, kh, kw int) {
	for j := range t {
		m := x[j]
		for h := range kh {
			for _, v := range x[h*rs+j : h*rs+j+kw] {
				m = max(m, v)
			}
		}
		t[j] = m
	}
}

// MaxWindowsS32 is MaxWindows for int32 values whose window columns lie
// step values apart (the pixels of NHWC rows, step their channels):
//
//	for j := range t {
//		t[j] = max over h < kh, u < kw of x[h*rs+u*step+j]
//	}
//
// x must hold (kh−1)·rs + (kw−1)·step + len(t) values.
func MaxWindowsS32(t, x []int32, rs, kh, kw, step int) {
	n := len(t)
	if n == 0 {
		return
	}
	x = x[:(kh-1)*rs+(kw-1)*step+n]
	v := 0
	if maxWindowsS32SIMD(t, x, rs, kh, kw, step) {
		v = n &^ 7
	}
	maxWindowsS32Go(t[v:], x[v:], rs, kh, kw, step)
}

func maxWindowsS32Go(t, x []int32, rs, kh, kw, step int) {
	for j := range t {
		m := x[j]
		for h := range kh {
			for u := range kw {
				m = max(m, x[h*rs+u*step+j])
			}
		}
		t[j] = m
	}
}
