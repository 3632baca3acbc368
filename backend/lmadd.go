package backend

import "fmt"

// CheckAdd reports whether Add's operands fit: x and dst of one length,
// y of a positive length that divides it.
func CheckAdd(ld, lx, ly int) error {
	if ld != lx || ly <= 0 || lx%ly != 0 {
		return fmt.Errorf("add: dst, x and y have %d, %d and %d elements: want dst and x of one length, a multiple of y's", ld, lx, ly)
	}
	return nil
}

// AddF32 adds y to x, repeating y along x:
//
//	for i := range x {
//		dst[i] = x[i] + y[i%len(y)]   // float32, one rounding
//	}
//
// With y as long as x it is a residual connection; with y one row of x
// [rows, len(y)] it adds a bias to every row. The sum is one float32
// addition, so every backend gives the same bits. dst may be x, or y when
// it is as long as x. It panics when the operands do not fit (CheckAdd).
func AddF32(dst, x, y []float32) {
	if err := CheckAdd(len(dst), len(x), len(y)); err != nil {
		panic(err)
	}
	n := len(y)
	for r := 0; r < len(x); r += n {
		xr, dr := x[r:r+n], dst[r:r+n]
		for i, v := range y {
			dr[i] = xr[i] + v
		}
	}
}

// Add runs AddF32 on b's buffers; dst may be x, or y when it is as long
// as x.
func Add(b Backend, dst, x, y Buffer) error {
	if err := checkF32(dst, x, y); err != nil {
		return fmt.Errorf("add: %w", err)
	}
	if err := CheckAdd(dst.Len(), x.Len(), y.Len()); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.Add(dst, x, y)
	}
	return viaHost(b, dst, []Buffer{x, y}, func(d []float32, in [][]float32) {
		AddF32(d, in[0], in[1])
	})
}
