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

// Cross accumulates what Asymmetric needs of D = (X_f − X_q)ᵀX_q over
// the rows of a Hessian's inputs, paired with the float model's: Dᵀ =
// Σ x_q (x_f − x_q)ᵀ [Cols, Cols] (NewCross), or, for given weights W_k of
// the input's projections, the products W_k·D [rows_k, Cols]
// (NewCrossProducts): fewer values where the projections' rows together
// are fewer than Cols (down_proj's 2048 rows on an 8192-wide input at
// 1B: a quarter of D).
type Cross struct {
	Cols int
	N    int64       // rows added
	sum  []float32   // row-major: sum[j, i] = Σ_r x_q[r, j]·(x_f[r, i] − x_q[r, i])
	wd   [][]float32 // NewCrossProducts: wd[k] = W_k·D [rows_k, Cols], row-major
}

// NewCross returns an empty accumulator of Dᵀ for inputs of cols values.
func NewCross(cols int) *Cross { return &Cross{Cols: cols, sum: make([]float32, cols*cols)} }

// NewCrossProducts returns an empty accumulator of W_k·D for weights of
// rows[k] rows reading inputs of cols values: Asymmetric must then be
// given those weights, in that order, unchanged since the products were
// added.
func NewCrossProducts(cols int, rows ...int) *Cross {
	c := &Cross{Cols: cols, wd: make([][]float32, len(rows))}
	for k, r := range rows {
		c.wd[k] = make([]float32, r*cols)
	}
	return c
}

// Products reports whether c holds W_k·D (NewCrossProducts) rather than Dᵀ.
func (c *Cross) Products() bool { return c != nil && c.wd != nil }

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
	if c.sum == nil || len(g) != nj*ni || j0 < 0 || i0 < 0 || nj < 0 || ni < 0 || j0+nj > d || i0+ni > d {
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

// AddProducts adds to W_k·D the columns [i0, i0+ni) of W_k·(X_f −
// X_q)ᵀ·X_q, g [rows_k, ni] row-major, computed elsewhere; the rows are
// counted by Count, once per X.
func (c *Cross) AddProducts(k int, g []float32, i0, ni int) error {
	d := c.Cols
	if k < 0 || k >= len(c.wd) || i0 < 0 || ni < 0 || i0+ni > d || len(g) != len(c.wd[k])/d*ni {
		return fmt.Errorf("gptq: products [%d][:, %d:%d] of %d values for %d weights of %d columns", k, i0, i0+ni, len(g), len(c.wd), d)
	}
	wd := c.wd[k]
	for r := range len(wd) / d {
		row := wd[r*d+i0 : r*d+i0+ni]
		for j, v := range g[r*ni : (r+1)*ni] {
			row[j] += v
		}
	}
	return nil
}

// Count adds rows to the number of inputs seen (with AddBlock).
func (c *Cross) Count(rows int) { c.N += int64(rows) }

// Bytes is the memory the accumulator holds.
func (c *Cross) Bytes() int64 {
	n := int64(len(c.sum))
	for _, w := range c.wd {
		n += int64(len(w))
	}
	return 4 * n
}

// CrossBytes is the memory a Cross of cols columns holds, and the most
// Factor.Asymmetric holds at once beside it and the factor, for weights
// of rows rows in all, the widest of them maxRows; products says the
// Cross holds W·D (NewCrossProducts) rather than Dᵀ.
func CrossBytes(cols, rows, maxRows int, products bool) (cross, asymmetric int64) {
	d, r, mr := int64(cols), int64(rows), int64(maxRows)
	t := int64(min(asymTile, cols))
	work := t*d + mr*t // a tile of U and a GEMM's result
	if products {
		// The products become the corrections in place, beside one
		// weight's scratch.
		return 4 * r * d, 4 * (mr*d + work)
	}
	return 4 * d * d, 4 * (r*d + mr*d + work)
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
	case c == nil || c.sum == nil && c.wd == nil:
		return errors.New("gptq: asymmetric: no cross product")
	case c.Cols != d || c.N == 0:
		return fmt.Errorf("gptq: asymmetric: a factor of %d columns with a cross product of %d columns and %d rows", d, c.Cols, c.N)
	case f.Fallback:
		return errors.New("gptq: asymmetric: the Hessian is not positive definite")
	case c.wd != nil && len(ws) != len(c.wd):
		return fmt.Errorf("gptq: asymmetric: %d weights for products with %d", len(ws), len(c.wd))
	}
	rowsMax := 0
	for k, w := range ws {
		if len(w)%d != 0 {
			return fmt.Errorf("gptq: asymmetric: a weight of %d values for %d inputs", len(w), d)
		}
		if c.wd != nil && len(c.wd[k]) != len(w) {
			return fmt.Errorf("gptq: asymmetric: weight %d has %d rows, its product %d", k, len(w)/d, len(c.wd[k])/d)
		}
		rowsMax = max(rowsMax, len(w)/d)
	}
	gemm := opt.Gemm
	if gemm == nil {
		gemm = gemmLoop
	}
	// D scaled as H (2/N), in the cross product's own memory, in
	// processing order: Dᵀ's rows (row j of the operand of W·D·Pᵀ is
	// Dᵀ[perm[j], :]), or W·D's columns (W·D·Pᵀ itself).
	scale := float32(2 / float64(c.N))
	dt, wd := c.sum, c.wd
	c.sum, c.wd = nil, nil
	for _, x := range append([][]float32{dt}, wd...) {
		for i := range x {
			x[i] *= scale
		}
	}
	if dt != nil {
		permuteRows(dt, d, f.perm)
	}
	tmp := make([]float32, d)
	for _, x := range wd {
		for r := range len(x) / d {
			row := x[r*d : (r+1)*d]
			for j, p := range f.perm {
				tmp[j] = row[p]
			}
			copy(row, tmp)
		}
	}
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
	// before any weight changes (in W·D's memory with products).
	scratch := make([]float32, rowsMax*d)
	corr := make([][]float32, len(ws))
	for k, w := range ws {
		rows := len(w) / d
		var a []float32 // W·D·Pᵀ, then the correction
		if wd != nil {
			a = wd[k]
		} else {
			a = make([]float32, rows*d)
			gemm(rows, d, d, w, dt, a)
		}
		cw := scratch[:rows*d]
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
		corr[k] = a
	}
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
