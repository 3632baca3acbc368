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
// Asymmetric holds at once beside it and the Hessian.
func CrossBytes(cols int) (cross, asymmetric int64) {
	d := int64(cols)
	return 4 * d * d, 8*int64(packedLen(cols)) + 4*d*d
}

// Asymmetric replaces each weight of ws ([rows, Cols] row-major, all
// reading the Hessian's input) with W' = W + W·D·(H + λI)⁻¹, λ dampening
// H as Factorize does (opt.Damp of its mean diagonal, dead inputs counted
// as 1): the weight GPTQ should quantize (under the same Hessian) for
// the quantized layer to reproduce the float model's outputs (see
// above). Only the correction term is regularized, not W. h and c must
// have counted the same rows; h is left as it is (Factorize takes it
// next). It fails, changing nothing, when the dampened Hessian is not
// positive definite.
func Asymmetric(h *Hessian, c *Cross, opt Options, ws ...[]float32) error {
	if h == nil || h.sum == nil || c == nil || c.sum == nil {
		return errors.New("gptq: asymmetric: no statistics")
	}
	d := h.Cols
	if c.Cols != d || c.N != h.N || h.N == 0 {
		return fmt.Errorf("gptq: asymmetric: a Hessian of %d columns and %d rows with a cross product of %d columns and %d rows", d, h.N, c.Cols, c.N)
	}
	for _, w := range ws {
		if len(w)%d != 0 {
			return fmt.Errorf("gptq: asymmetric: a weight of %d values for %d inputs", len(w), d)
		}
	}
	damp := opt.Damp
	if damp == 0 {
		damp = 0.01
	}
	gemm := opt.Gemm
	if gemm == nil {
		gemm = gemmLoop
	}
	// A = H + λI, scaled as H (2/N), packed lower; dead inputs' rows and
	// columns are zero, their diagonal 1 (+λ).
	scale := 2 / float64(h.N)
	a := make([]float64, len(h.sum))
	dead := make([]bool, d)
	mean := 0.0
	for i := range d {
		v := scale * h.sum[rowOff(i)+i]
		if v == 0 {
			v, dead[i] = 1, true
		}
		mean += v
	}
	mean /= float64(d)
	for i := range a {
		a[i] = scale * h.sum[i]
	}
	for i := range d {
		if dead[i] {
			a[rowOff(i)+i] = 1
		}
		a[rowOff(i)+i] += damp * mean
	}
	if !cholPacked(a, d, opt.Gemm) || !invLowerPacked(a, d, opt.Gemm) {
		return errors.New("gptq: asymmetric: the dampened Hessian is not positive definite")
	}
	// (H + λI)⁻¹ = L⁻ᵀ·L⁻¹. linv holds L⁻¹ dense [d, d] in float32, then
	// its transpose; dt is D scaled, transposed (Cross's layout).
	linv := make([]float32, d*d)
	for i := range d {
		for j, v := range a[rowOff(i) : rowOff(i)+i+1] {
			linv[i*d+j] = float32(v)
		}
	}
	a = nil
	dt := make([]float32, d*d)
	for i, v := range c.sum {
		dt[i] = float32(scale * float64(v))
	}
	// Per weight: M = W·D (M[r, j] = Σ_i W[r, i]·Dᵀ[j, i]), N = M·L⁻ᵀ,
	// then, L⁻¹ transposed once, the correction N·L⁻¹ = W·D·(H + λI)⁻¹.
	rowsMax := 0
	for _, w := range ws {
		rowsMax = max(rowsMax, len(w)/d)
	}
	m := make([]float32, rowsMax*d)
	corr := make([][]float32, len(ws))
	for k, w := range ws {
		rows := len(w) / d
		corr[k] = make([]float32, rows*d)
		gemm(rows, d, d, w, dt, m[:rows*d])
		gemm(rows, d, d, m[:rows*d], linv, corr[k])
	}
	dt = nil
	transposeSquare(linv, d)
	for k, w := range ws {
		rows := len(w) / d
		gemm(rows, d, d, corr[k], linv, m[:rows*d])
		copy(corr[k], m[:rows*d])
		for _, v := range corr[k] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return errors.New("gptq: asymmetric: the correction is not finite")
			}
		}
	}
	for k, w := range ws {
		for r := range len(w) / d {
			for j := range d {
				if dead[j] {
					w[r*d+j] = 0
				} else {
					w[r*d+j] += corr[k][r*d+j]
				}
			}
		}
	}
	return nil
}

// transposeSquare transposes the square x [d, d] in place.
func transposeSquare(x []float32, d int) {
	for i := range d {
		for j := i + 1; j < d; j++ {
			x[i*d+j], x[j*d+i] = x[j*d+i], x[i*d+j]
		}
	}
}
