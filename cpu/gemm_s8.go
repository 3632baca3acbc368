package cpu

import (
	"errors"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/backend"
)

type s8Panel = [gemmS8Pairs]float64

var poolS8B pool[s8Panel]

// GemmS8S32 computes C[m×n] = A[m×k]·B[n×k]ᵀ of int8 matrices with int32
// accumulation, exactly. It is
//
//	for i := range m {
//		for j := range n {
//			var s int32
//			for p := range k {
//				s += int32(a[i*k+p]) * int32(b[j*k+p])
//			}
//			c[i*n+j] = s
//		}
//	}
//
// to the bit, wrapping as that loop does, on the SIMD kernels (amd64) as
// on the Go ones. The sum never wraps when k < 131072:
// |s| ≤ k·128·128 < 2^31. GemmS8S32 panics unless len(a) = m·k,
// len(b) = n·k and len(c) = m·n.
func GemmS8S32(m, n, k int, a, b []int8, c []int32) {
	checkGemm("GemmS8S32", m, n, k, len(a), len(b), len(c))
	gemmS8(m, n, k, a, b, &s8Out{n: n, s32: c})
}

// GemmS8 multiplies int8 A[m×k] by int8 B[n×k]ᵀ with exact int32
// accumulation, as GemmS8S32, and applies the epilogue ep (nil for none)
// as backend.Epilogue documents, writing c, which is a []int32, []float32
// or []int8 of m·n elements. For each output, with acc the int32 sum:
//
//	a := acc + ep.ColOffset[j]                         // int32, wrapping
//	y := float32(float32(float32(a)*rowScale[i]) * colScale[j]) + ep.Bias[j]
//	if ep.ReLU { y = max(y, 0) }
//	int32: a; float32: y; int8: int8(quant.QuantizeValue(y, ep.OutScale, ep.OutZeroPoint, -128, 127))
//
// where nil scales are 1 (so the multiplication is skipped, which is
// exact), a nil Bias adds nothing and a nil ColOffset 0. The explicit
// conversions round each step to float32, so no multiply-add is fused.
// The epilogue runs on tiles of C while they are in cache; no int32 matrix
// is written first.
//
// int8 output needs an epilogue with a finite positive OutScale. GemmS8
// returns an error for a bad length, type or epilogue.
func GemmS8(m, n, k int, a, b []int8, c any, ep *backend.Epilogue) error {
	out := &s8Out{n: n}
	var lc int
	switch c := c.(type) {
	case []int32:
		out.s32, lc = c, len(c)
	case []float32:
		out.f32, lc = c, len(c)
	case []int8:
		if ep == nil || !(ep.OutScale > 0) || math.IsInf(float64(ep.OutScale), 0) {
			return errors.New("cpu: GemmS8: int8 output needs an epilogue with a finite positive OutScale")
		}
		out.s8, lc = c, len(c)
	default:
		return fmt.Errorf("cpu: GemmS8: output is a %T, want []int32, []float32 or []int8", c)
	}
	if err := gemmDimsError(m, n, k, len(a), len(b), lc); err != nil {
		return fmt.Errorf("cpu: GemmS8: %w", err)
	}
	if err := ep.Check(m, n); err != nil {
		return fmt.Errorf("cpu: GemmS8: %w", err)
	}
	if ep != nil {
		out.colOffset = ep.ColOffset
		out.rowScale, out.colScale, out.bias = ep.RowScale, ep.ColScale, ep.Bias
		out.relu = ep.ReLU
		out.outScale, out.outZeroPoint = ep.OutScale, ep.OutZeroPoint
	}
	gemmS8(m, n, k, a, b, out)
	return nil
}

// s8Out is where and how GemmS8 writes its results: exactly one of s32,
// f32 and s8 is set, and the epilogue fields are as in backend.Epilogue.
type s8Out struct {
	n            int  // columns of C
	swap         bool // the driver runs on Cᵀ = B·Aᵀ: its rows are columns of C
	s32          []int32
	f32          []float32
	s8           []int8
	colOffset    []int32
	rowScale     []float32
	colScale     []float32
	bias         []float32
	relu         bool
	outScale     float32
	outZeroPoint int32
}

// finish writes the sums acc of driver row r and driver columns
// [s0, s0+len(acc)) through the epilogue: C(r, s0+q), or C(s0+q, r) when
// swapped. It modifies acc.
func (o *s8Out) finish(r, s0 int, acc []int32) {
	n := o.n
	if off := o.colOffset; off != nil { // wraps, as int32 arithmetic does
		if o.swap {
			for q := range acc {
				acc[q] += off[r]
			}
		} else {
			off = off[s0 : s0+len(acc)]
			for q := range acc {
				acc[q] += off[q]
			}
		}
	}
	if o.s32 != nil {
		if !o.swap {
			copy(o.s32[r*n+s0:], acc)
			return
		}
		for q, v := range acc {
			o.s32[(s0+q)*n+r] = v
		}
		return
	}
	if !o.swap {
		o.finishRow(r, s0, acc)
		return
	}
	rs, cs, bias := o.rowScale, o.colScale, o.bias
	if o.s8 != nil && o.finishColumnS8(r, s0, acc) {
		return
	}
	for q, v := range acc {
		i, j := s0+q, r
		y := float32(v)
		if len(rs) > 0 {
			y = float32(y * rs[min(i, len(rs)-1)])
		}
		if len(cs) > 0 {
			y = float32(y * cs[min(j, len(cs)-1)])
		}
		if len(bias) > 0 {
			y = float32(y + bias[j])
		}
		if o.relu {
			y = max(y, 0)
		}
		if o.f32 != nil {
			o.f32[i*n+j] = y
		} else {
			// quantizeValue is quant.QuantizeValue, inlined.
			o.s8[i*n+j] = int8(quantizeValue(y, o.outScale, o.outZeroPoint, -128, 127))
		}
	}
}

// finishColumnS8 is finish, with int8 output, for column j of C, rows
// [i0, i0+len(acc)), by the SIMD epilogue (amd64, AVX-512): a row scale
// per output comes first, then the column's scale and bias, as in the Go
// loop. It reports false where there is no SIMD epilogue.
func (o *s8Out) finishColumnS8(j, i0 int, acc []int32) bool {
	rowScale := float32(1)
	var rowScales []float32
	if len(o.rowScale) > 1 {
		rowScales = o.rowScale[i0 : i0+len(acc)]
	} else if len(o.rowScale) == 1 {
		rowScale = o.rowScale[0]
	}
	colScale, bias := float32(1), float32(0)
	if len(o.colScale) > 0 {
		colScale = o.colScale[min(j, len(o.colScale)-1)]
	}
	if len(o.bias) > 0 {
		bias = o.bias[j]
	}
	var buf [64]int8
	for q0 := 0; q0 < len(acc); q0 += len(buf) {
		q1 := min(q0+len(buf), len(acc))
		var rs []float32
		if rowScales != nil {
			rs = rowScales[q0:q1]
		}
		codes := buf[:q1-q0]
		if !epilogueS8SIMD(codes, acc[q0:q1], rowScale, rs, 1, nil, colScale, bias, o.relu, o.outScale, o.outZeroPoint) {
			return false
		}
		for q, c := range codes {
			o.s8[(i0+q0+q)*o.n+j] = c
		}
	}
	return true
}

// finishRow is finish for row i of C, columns [j0, j0+len(acc)), after
// the column offsets: the same arithmetic, with what is constant along
// the row (its scale, a scale for all columns) taken out of the loop and
// the loop split by output type.
func (o *s8Out) finishRow(i, j0 int, acc []int32) {
	n := len(acc)
	rowScale, hasRow := float32(1), len(o.rowScale) > 0
	if hasRow {
		rowScale = o.rowScale[min(i, len(o.rowScale)-1)]
	}
	var colScales []float32
	colScale, hasCol := float32(1), len(o.colScale) > 0
	if len(o.colScale) > 1 {
		colScales = o.colScale[j0 : j0+n]
	} else if hasCol {
		colScale = o.colScale[0]
	}
	var bias []float32
	if len(o.bias) > 0 {
		bias = o.bias[j0 : j0+n]
	}
	y := func(q int, v int32) float32 {
		y := float32(v)
		if hasRow {
			y = float32(y * rowScale)
		}
		if colScales != nil {
			y = float32(y * colScales[q])
		} else if hasCol {
			y = float32(y * colScale)
		}
		if bias != nil {
			y = float32(y + bias[q])
		}
		if o.relu {
			y = max(y, 0)
		}
		return y
	}
	if o.f32 != nil {
		dst := o.f32[i*o.n+j0:][:n]
		// The SIMD epilogue (amd64) does all but the ReLU, which is then
		// the same Go max as below.
		if epilogueF32SIMD(dst, acc, rowScale, colScales, colScale, bias) {
			if o.relu {
				for q, v := range dst {
					dst[q] = max(v, 0)
				}
			}
			return
		}
		for q, v := range acc {
			dst[q] = y(q, v)
		}
		return
	}
	dst := o.s8[i*o.n+j0:][:n]
	scale, zp := o.outScale, o.outZeroPoint
	// The SIMD epilogue (amd64, AVX-512) does it all; elsewhere the SIMD
	// float32 part (if any) runs on blocks of 64, and the ReLU and the
	// requantization in Go.
	if epilogueS8SIMD(dst, acc, rowScale, colScales, colScale, bias, 1, 0, o.relu, scale, zp) {
		return
	}
	var buf [64]float32
	for q0 := 0; q0 < n; q0 += len(buf) {
		q1 := min(q0+len(buf), n)
		ys := buf[:q1-q0]
		var cs, bs []float32
		if colScales != nil {
			cs = colScales[q0:q1]
		}
		if bias != nil {
			bs = bias[q0:q1]
		}
		if !epilogueF32SIMD(ys, acc[q0:q1], rowScale, cs, colScale, bs) {
			for q, v := range acc[q0:q1] {
				// quantizeValue is quant.QuantizeValue, inlined.
				dst[q0+q] = int8(quantizeValue(y(q0+q, v), scale, zp, -128, 127))
			}
			continue
		}
		for q, v := range ys {
			if o.relu {
				v = max(v, 0)
			}
			dst[q0+q] = int8(quantizeValue(v, scale, zp, -128, 127))
		}
	}
}

// gemmS8DirectMax is the most rows (of A, or of B) for which the int8
// GEMM runs gemmS8KernelDirect (Go) where gemmS8Thin cannot run, rather
// than packing B: packing costs about as much as multiplying B by four or
// five rows of A.
const gemmS8DirectMax = 4

// gemmS8ThinMax is the most rows of A for which the int8 GEMM runs the
// row kernels on B where it lies (gemmS8Thin, in groups of at most four
// rows) rather than packing B (gemmS8SIMD): a W8A8 decode step of one to
// a few dozen tokens. Measured on decode shapes (576×576 to 5632×2048),
// 2 threads, AMD EPYC (Zen 5), on a shared machine (±40% noise): with
// AVX-512 VNNI the row kernels take 0.14–0.6 of the packing GEMM's time at
// 8 and 16 rows, 0.2–1.2 at 24 and 32, and win or lose by as much from 64;
// with AVX2 alone 0.08–0.26 at 8 and 16, 0.14–0.6 at 24 and 32.
const gemmS8ThinMax = 32

// gemmS8 runs the int8 GEMM into out; the dimensions have been checked.
// The driver's rows are those of A, or those of B when C has few columns
// (out.swap), so that the side the kernels block over is the longer one.
// With few rows of A (at most gemmS8ThinMax, a decode step's tokens) B is
// read where it lies; otherwise it is packed once per call.
func gemmS8(m, n, k int, a, b []int8, out *s8Out) {
	if m == 0 || n == 0 {
		return
	}
	if min(m, n) <= gemmS8DirectMax {
		if n < m {
			out.swap = true
			m, n, a, b = n, m, b, a
		}
		if !gemmS8Thin(m, n, k, a, b, out) {
			gemmS8Direct(m, n, k, a, b, out)
		}
		return
	}
	if m <= gemmS8ThinMax && gemmS8Thin(m, n, k, a, b, out) {
		return
	}
	if gemmS8SIMD(m, n, k, a, b, out) {
		return
	}
	if n < gemmS8NR && m > n {
		out.swap = true
		m, n, a, b = n, m, b, a
	}
	gemmS8Packed(m, n, k, a, b, out)
}

// gemmS8Direct multiplies each of the m (few) rows of a by every row of b
// where they lie, four rows of b at a time, each task a range of rows of
// b.
func gemmS8Direct(m, n, k int, a, b []int8, out *s8Out) {
	blocks := ceilDiv(n, gemmS8DirectNR)
	w := workers(blocks, m*n*max(k, 1), gemmMinWork)
	parallelRange(w, blocks, 1, func(_, lo, hi int) {
		var t [gemmS8DirectNR]int32
		for j := lo * gemmS8DirectNR; j < min(hi*gemmS8DirectNR, n); j += gemmS8DirectNR {
			cols := min(gemmS8DirectNR, n-j)
			for i := range m {
				ai := a[i*k : (i+1)*k]
				if cols == gemmS8DirectNR {
					gemmS8KernelDirect(ai, b[j*k:(j+cols)*k], k, &t)
				} else {
					for q := range cols {
						bq := b[(j+q)*k : (j+q+1)*k]
						var s int32
						for p, v := range ai {
							s += int32(v) * int32(bq[p])
						}
						t[q] = s
					}
				}
				out.finish(i, j, t[:cols])
			}
		}
	})
}

// gemmS8Packed packs b once into panels of 14 rows, two to a float64;
// each task takes gemmMC rows of a and a range of panels and, for each
// panel, runs the 1×14 micro-kernel over blocks of gemmS8KC steps of k,
// separating the lanes into an int32 tile after each block, and finally
// writes the tile through the epilogue.
func gemmS8Packed(m, n, k int, a, b []int8, out *s8Out) {
	np := ceilDiv(n, gemmS8NR)
	w := workers(m*np, m*n*max(k, 1), gemmMinWork)

	bp := poolS8B.get(np * k)
	defer poolS8B.put(bp)
	parallelRange(w, np, 1, func(_, lo, hi int) {
		for jp := lo; jp < hi; jp++ {
			packS8B(bp[jp*k:(jp+1)*k], b, n, k, jp*gemmS8NR)
		}
	})

	mb, nb, ppb := gemmTasks(m, np, gemmMC, w)
	parallelTasks(w, mb*nb, func(_, t int) {
		i0 := t / nb * gemmMC
		jp0 := t % nb * ppb
		gemmS8Block(i0, min(i0+gemmMC, m), jp0, min(jp0+ppb, np), n, k, a, bp, out)
	})
}

// gemmS8Block computes rows [i0, i1) of C in column panels [jp0, jp1).
func gemmS8Block(i0, i1, jp0, jp1, n, k int, a []int8, bp []s8Panel, out *s8Out) {
	var acc [gemmMC][gemmS8NR]int32
	var v [gemmS8Pairs]float64
	rows := acc[:i1-i0]
	for jp := jp0; jp < jp1; jp++ {
		clear(rows)
		for k0 := 0; k0 < k; k0 += gemmS8KC {
			k1 := min(k0+gemmS8KC, k)
			pan := bp[jp*k+k0 : jp*k+k1]
			for r := range rows {
				i := i0 + r
				gemmS8Kernel1x14(a[i*k+k0:i*k+k1], pan, &v)
				addS8Lanes(&v, &rows[r])
			}
		}
		j0 := jp * gemmS8NR
		cols := min(gemmS8NR, n-j0)
		for r := range rows {
			out.finish(i0+r, j0, rows[r][:cols])
		}
	}
}

// packS8B packs rows [j0, j0+14) of B (n×k) in pairs into the panel dst of
// k elements: dst[p][q] = B[j0+2q, p] + B[j0+2q+1, p]·2^26, rows past n
// counting as zero.
func packS8B(dst []s8Panel, b []int8, n, k, j0 int) {
	dst = dst[:k]
	const hi = 1 << gemmS8LaneShift
	if j0+gemmS8NR <= n {
		// Write the panel in order, reading the fourteen rows side by side.
		var r [gemmS8NR][]int8
		for q := range r {
			r[q] = b[(j0+q)*k:][:k]
		}
		for p := range dst {
			d := &dst[p]
			d[0] = float64(r[0][p]) + float64(r[1][p])*hi
			d[1] = float64(r[2][p]) + float64(r[3][p])*hi
			d[2] = float64(r[4][p]) + float64(r[5][p])*hi
			d[3] = float64(r[6][p]) + float64(r[7][p])*hi
			d[4] = float64(r[8][p]) + float64(r[9][p])*hi
			d[5] = float64(r[10][p]) + float64(r[11][p])*hi
			d[6] = float64(r[12][p]) + float64(r[13][p])*hi
		}
		return
	}
	for q := range gemmS8Pairs {
		j := j0 + 2*q
		switch {
		case j+1 < n:
			r0, r1 := b[j*k:(j+1)*k], b[(j+1)*k:(j+2)*k]
			for p := range dst {
				dst[p][q] = float64(r0[p]) + float64(r1[p])*hi
			}
		case j < n:
			r0 := b[j*k : (j+1)*k]
			for p := range dst {
				dst[p][q] = float64(r0[p])
			}
		default:
			for p := range dst {
				dst[p][q] = 0
			}
		}
	}
}
