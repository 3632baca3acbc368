package gptq

import (
	"errors"
	"fmt"
	"math"
)

// Asymmetric calibration (GPTAQ: Li et al., "GPTAQ: Efficient
// Finetuning-Free Quantization for Asymmetric Calibration", 2025). GPTQ
// makes a quantized Linear reproduce the float Linear on the inputs X_q
// the quantized model gives it, minimizing ‖(W − Q)·X_qᵀ‖². What the
// model needs is the float model's output W·X_fᵀ (X_f the float model's
// inputs, row for row) from X_q: minimize ‖W·X_fᵀ − Q·X_qᵀ‖². With
// H = X_qᵀX_q and D = (X_f − X_q)ᵀX_q, the least-squares float weight on
// X_q is W' = W + W·D·H⁻¹, and W'·X_qᵀ being the projection of W·X_fᵀ on
// X_q's row space,
//
//	‖W·X_fᵀ − Q·X_qᵀ‖² = ‖W·X_fᵀ − W'·X_qᵀ‖² + ‖(W' − Q)·X_qᵀ‖²,
//
// the first term free of Q: the objective is GPTQ's on W' under the same
// H. Asymmetric replaces W with W'; GPTQ then quantizes it as usual.

// Cross accumulates Dᵀ = Σ x_q (x_f − x_q)ᵀ [Cols, Cols] over the rows of
// a Hessian's inputs, paired with the float model's.
type Cross struct {
	Cols int
	N    int64     // rows added
	sum  []float32 // row-major: sum[j, i] = Σ_r x_q[r, j]·(x_f[r, i] − x_q[r, i])
}

// NewCross returns an empty accumulator for inputs of cols values.
func NewCross(cols int) *Cross { return &Cross{Cols: cols, sum: make([]float32, cols*cols)} }

// Add adds g = X_qᵀ·(X_f − X_q) [Cols, Cols] of rows paired inputs,
// computed elsewhere (a GEMM on a backend).
func (c *Cross) Add(g []float32, rows int) error {
	if len(g) != len(c.sum) {
		return fmt.Errorf("gptq: a cross product of %d values for %d columns", len(g), c.Cols)
	}
	for i, v := range g {
		c.sum[i] += v
	}
	c.N += int64(rows)
	return nil
}

// AddBlock adds the block g = X_q[:, j0:j0+nj]ᵀ·(X_f − X_q)[:, i0:i0+ni]
// [nj, ni] of the cross product, computed elsewhere; the rows are counted
// by Count, once per X.
func (c *Cross) AddBlock(g []float32, j0, nj, i0, ni int) error {
	d := c.Cols
	if len(g) != nj*ni || j0 < 0 || i0 < 0 || nj < 0 || ni < 0 || j0+nj > d || i0+ni > d {
		return fmt.Errorf("gptq: a cross block [%d:%d, %d:%d] of %d values for %d columns", j0, j0+nj, i0, i0+ni, len(g), d)
	}
	for a := range nj {
		row := c.sum[(j0+a)*d+i0 : (j0+a)*d+i0+ni]
		for k, v := range g[a*ni : (a+1)*ni] {
			row[k] += v
		}
	}
	return nil
}

// Count adds rows to the number of inputs seen (with AddBlock).
func (c *Cross) Count(rows int) { c.N += int64(rows) }

// Bytes is the memory the accumulator holds.
func (c *Cross) Bytes() int64 { return int64(len(c.sum)) * 4 }

// CrossBytes is the memory a Cross of cols columns holds, and the most
// Factor.Asymmetric holds at once beside it and the factor for weights of
// rows rows in all, the widest of them maxRows.
func CrossBytes(cols, rows, maxRows int) (cross, asymmetric int64) {
	d := int64(cols)
	t := int64(min(asymTile, cols))
	return 4 * d * d, 4 * (int64(rows)*d + int64(maxRows)*d + t*d + int64(maxRows)*t)
}

// asymTile is how many rows of U (or of Uᵀ) Asymmetric makes dense for one
// GEMM: the factor stays packed in float64, and a dense float32 copy of
// it (4·Cols² bytes: 268 MB for an 8192-wide input) is never held.
var asymTile = 128

// Asymmetric replaces each weight of ws ([rows, Cols] row-major, all
// reading the factor's input) with W' = W + W·D·(H + λI)⁻¹, (H + λI)⁻¹
// the factor's (dampened as Factorize dampens it, dead inputs counted as
// 1, their columns of W' zero): the weight QuantizeFactored should
// quantize for the quantized layer to reproduce the float model's
// outputs (see above). Only the correction term is regularized, not W.
// c must have counted the rows of f's Hessian, and is consumed. It fails,
// changing nothing, on a factor that fell back to round-to-nearest or a
// correction that is not finite.
//
// With J the reversal and Q the processing order, U (upper) is J·L⁻¹·J
// for Q·(H + λI)·Qᵀ = L·Lᵀ, so (H + λI)⁻¹ = Pᵀ·Uᵀ·U·P with P = J·Q,
// (P·x)_j = x[perm[j]]: a row m of W·D times it is ((m·Pᵀ)·Uᵀ·U)·P, the
// columns gathered into processing order, two products with U, scattered
// back. The products go asymTile output columns at a time, each a GEMM
// with those rows of U (or of Uᵀ) made dense.
func (f *Factor) Asymmetric(c *Cross, opt Options, ws ...[]float32) error {
	d := f.Cols
	switch {
	case f.u == nil:
		return errors.New("gptq: asymmetric: no factor")
	case c == nil || c.sum == nil:
		return errors.New("gptq: asymmetric: no cross product")
	case c.Cols != d || c.N == 0:
		return fmt.Errorf("gptq: asymmetric: a factor of %d columns with a cross product of %d columns and %d rows", d, c.Cols, c.N)
	case f.Fallback:
		return errors.New("gptq: asymmetric: the Hessian is not positive definite")
	}
	rowsMax := 0
	for _, w := range ws {
		if len(w)%d != 0 {
			return fmt.Errorf("gptq: asymmetric: a weight of %d values for %d inputs", len(w), d)
		}
		rowsMax = max(rowsMax, len(w)/d)
	}
	gemm := opt.Gemm
	if gemm == nil {
		gemm = gemmLoop
	}
	// Dᵀ scaled as H (2/N), in the cross product's own memory, its rows
	// in processing order: row j of the product W·D·Pᵀ's operand is
	// Dᵀ[perm[j], :].
	dt := c.sum
	c.sum = nil
	scale := float32(2 / float64(c.N))
	for i := range dt {
		dt[i] *= scale
	}
	permuteRows(dt, d, f.perm)
	bt := min(asymTile, d)
	tile := make([]float32, bt*d)      // rows j0… of U or of Uᵀ, dense
	out := make([]float32, rowsMax*bt) // a GEMM's [rows, bt] result
	// colsOf runs a [rows, d] · tileᵀ GEMM for each tile of output
	// columns, fill writing the tile's rows, and hands each result to put.
	colsOf := func(rows int, a []float32, fill func(j0, n int), put func(j0, n int, o []float32) error) error {
		for j0 := 0; j0 < d; j0 += bt {
			n := min(bt, d-j0)
			clear(tile[:n*d])
			fill(j0, n)
			o := out[:rows*n]
			gemm(rows, n, d, a, tile[:n*d], o)
			if err := put(j0, n, o); err != nil {
				return err
			}
		}
		return nil
	}
	uRows := func(j0, n int) { // tile row t = U row j0+t (zero left of the diagonal)
		for t := range n {
			j := j0 + t
			for k, v := range f.u[upOff(j, d) : upOff(j, d)+d-j] {
				tile[t*d+j+k] = float32(v)
			}
		}
	}
	uCols := func(j0, n int) { // tile row t = Uᵀ row j0+t = U column j0+t
		for i := range min(d, j0+n) {
			row := f.u[upOff(i, d) : upOff(i, d)+d-i] // U[i, i:]
			for t := max(0, i-j0); t < n; t++ {
				tile[t*d+i] = float32(row[j0+t-i])
			}
		}
	}
	// Each weight's correction in original column order, all computed
	// before any weight changes; m is the scratch of one weight's steps.
	m := make([]float32, rowsMax*d)
	corr := make([][]float32, len(ws))
	for k, w := range ws {
		rows := len(w) / d
		a, cw := m[:rows*d], make([]float32, rows*d)
		gemm(rows, d, d, w, dt, a)                                         // W·D·Pᵀ
		err := colsOf(rows, a, uRows, func(j0, n int, o []float32) error { // ·Uᵀ
			for r := range rows {
				copy(cw[r*d+j0:r*d+j0+n], o[r*n:(r+1)*n])
			}
			return nil
		})
		if err == nil {
			err = colsOf(rows, cw, uCols, func(j0, n int, o []float32) error { // ·U, then ·P
				for r := range rows {
					for t, v := range o[r*n : (r+1)*n] {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							return errors.New("gptq: asymmetric: the correction is not finite")
						}
						a[r*d+f.perm[j0+t]] = v
					}
				}
				return nil
			})
		}
		if err != nil {
			return err
		}
		// a holds the correction now, cw is free: swap them.
		corr[k] = a[: rows*d : rows*d]
		m = cw[:cap(cw)]
		if len(m) < rowsMax*d {
			m = make([]float32, rowsMax*d)
		}
	}
	dt = nil
	for k, w := range ws {
		for r := range len(w) / d {
			for j := range d {
				if f.dead[j] {
					w[r*d+j] = 0
				} else {
					w[r*d+j] += corr[k][r*d+j]
				}
			}
		}
	}
	return nil
}

// permuteRows replaces x [d, d] row-major with its rows in the order
// perm: row j becomes the old row perm[j].
func permuteRows(x []float32, d int, perm []int) {
	done := make([]bool, d)
	tmp := make([]float32, d)
	for start := range d {
		if done[start] || perm[start] == start {
			continue
		}
		// Follow the cycle start ← perm[start] ← perm[perm[start]] ….
		copy(tmp, x[start*d:(start+1)*d])
		j := start
		for {
			done[j] = true
			src := perm[j]
			if src == start {
				copy(x[j*d:(j+1)*d], tmp)
				break
			}
			copy(x[j*d:(j+1)*d], x[src*d:(src+1)*d])
			j = src
		}
	}
}
