// Package gptq is GPTQ (Frantar et al., "GPTQ: Accurate Post-Training
// Quantization for Generative Pre-trained Transformers", 2022) on one
// Linear weight, as llm-compressor's GPTQModifier runs it: the numeric core
// only, plain functions on a weight matrix and the Hessian of its inputs,
// knowing nothing of models or files.
//
// For a weight W [rows, cols] (out, in) whose inputs x [cols] were seen n
// times, Hessian accumulates H = 2/n·Σ x xᵀ in float64. Quantize then
// minimises ‖XWᵀ − XŴᵀ‖² column by column:
//
//   - dead columns (H_jj = 0: an input that is always zero) get H_jj = 1
//     and W_:j = 0, as llm-compressor does;
//   - with ActOrder (llm-compressor's actorder "weight", static): the
//     columns are processed by descending H_jj (a stable sort), while a
//     group keeps its original columns (g_idx = column / G) and the
//     scales, fitted before the permutation, stay those of the original
//     groups;
//   - λ = Damp (1 %) of the mean diagonal is added to H's diagonal; H⁻¹ is
//     computed from H's Cholesky factor and factored again, H⁻¹ = UᵀU
//     (upper U), in float64; if a factorisation fails, U = I, which is
//     round-to-nearest, and Result.Fallback says so;
//   - columns are processed in blocks of BlockSize (128): column j is
//     quantized with its group's parameters, q = Q(w_j), its error
//     e = (w_j − q)/U_jj is spread over the block's later columns
//     (w_k −= e·U_jk), and at the end of a block over every later column
//     (lazy batch updates, section 3.4 of the paper);
//   - the scales come from the original weights (Fit on W before the
//     sweep, as llm-compressor does), or, with UpdatedScales, as the GPTQ
//     paper's code does: a group's scales are fitted when its first column
//     comes, on the group's columns of W as updated by the blocks done so
//     far (the reference code's W[:, i:i+G] at i % G == 0).
//
// Codes and scales are in package quant's conventions
// (quant.QuantizeValue, quant.DequantizeValue), so the result encodes as
// the checkpoint formats encode round-to-nearest.
package gptq

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/quantkit/quantkit/quant"
)

// Hessian accumulates H = 2/n·Σ x xᵀ over the n rows x [Cols] it is given,
// in float64.
type Hessian struct {
	Cols int
	N    int64     // rows added
	sum  []float64 // Σ x xᵀ, [Cols, Cols]
}

// NewHessian returns an empty accumulator for inputs of cols values.
func NewHessian(cols int) *Hessian {
	return &Hessian{Cols: cols, sum: make([]float64, cols*cols)}
}

// Add adds rows inputs x [rows, Cols] row-major:
//
//	for each row r: for i, j: sum[i,j] += x[r,i]·x[r,j]
func (h *Hessian) Add(x []float32, rows int) error {
	d := h.Cols
	if len(x) != rows*d {
		return fmt.Errorf("gptq: %d values are not %d rows of %d", len(x), rows, d)
	}
	xr := make([]float64, d)
	for r := range rows {
		for i, v := range x[r*d : (r+1)*d] {
			xr[i] = float64(v)
		}
		for i, a := range xr {
			if a == 0 {
				continue
			}
			row := h.sum[i*d : (i+1)*d]
			for j := i; j < d; j++ {
				row[j] += a * xr[j]
			}
		}
	}
	h.mirror()
	h.N += int64(rows)
	return nil
}

// AddGram adds the Gram matrix g = XᵀX [Cols, Cols] of rows inputs X
// [rows, Cols] computed elsewhere (a GEMM on a backend).
func (h *Hessian) AddGram(g []float32, rows int) error {
	if len(g) != h.Cols*h.Cols {
		return fmt.Errorf("gptq: a Gram matrix of %d values for %d columns", len(g), h.Cols)
	}
	for i, v := range g {
		h.sum[i] += float64(v)
	}
	h.N += int64(rows)
	return nil
}

// mirror copies the upper triangle of sum to the lower.
func (h *Hessian) mirror() {
	d := h.Cols
	for i := range d {
		for j := i + 1; j < d; j++ {
			h.sum[j*d+i] = h.sum[i*d+j]
		}
	}
}

// Matrix is H = 2/N·Σ x xᵀ [Cols, Cols], a new slice (zero when N is 0).
func (h *Hessian) Matrix() []float64 {
	out := make([]float64, len(h.sum))
	if h.N == 0 {
		return out
	}
	f := 2 / float64(h.N)
	for i, v := range h.sum {
		out[i] = f * v
	}
	return out
}

// Bytes is the memory the accumulator holds.
func (h *Hessian) Bytes() int64 { return int64(len(h.sum)) * 8 }

// Fit computes a weight's quantization parameters (one scale and zero
// point per channel or group) from values x of the given shape, under the
// scheme the caller chose: min-max (quant.FitMinMax), a clipping search,
// with scales rounded to the checkpoint's dtype.
type Fit func(x []float32, shape []int) (*quant.Params, error)

// Options tune Quantize.
type Options struct {
	BlockSize     int     // columns per lazy-update block; 0 means 128
	Damp          float64 // fraction of the mean diagonal added to it; 0 means 0.01
	ActOrder      bool    // process columns by descending H_jj (static groups)
	UpdatedScales bool    // fit group scales on the updated weights (per-group schemes only)
}

// Result is a quantized weight.
type Result struct {
	Codes  []byte        // packed as quant.Quantize packs them, [rows, cols]
	Params *quant.Params // the scales and zero points the codes are under
	// Fallback is set when H or H⁻¹ was not positive definite: the
	// weight was rounded to nearest (U = I), as llm-compressor does.
	Fallback bool
	// Loss is GPTQ's own estimate, Σ (w − q)²/U_jj² / 2 over the weight.
	Loss float64
}

// Quantize quantizes w [rows, cols] (row-major, Hugging Face's [out, in])
// under s with the Hessian h of its inputs (h.Cols == cols), taking
// scales from fit (see the package documentation). s must be per channel
// along axis 0 or per group.
func Quantize(w []float32, rows, cols int, h *Hessian, s quant.Scheme, fit Fit, opt Options) (*Result, error) {
	if len(w) != rows*cols || rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("gptq: %d values are not a [%d, %d] weight", len(w), rows, cols)
	}
	if h == nil || h.Cols != cols {
		return nil, fmt.Errorf("gptq: a Hessian of %d columns for a weight of %d", h.Cols, cols)
	}
	switch {
	case s.Granularity == quant.PerChannel && s.Axis == 0:
	case s.Granularity == quant.PerGroup:
	default:
		return nil, fmt.Errorf("gptq: scheme %v: GPTQ quantizes per output channel or per group", s)
	}
	bs := opt.BlockSize
	if bs <= 0 {
		bs = 128
	}
	damp := opt.Damp
	if damp == 0 {
		damp = 0.01
	}
	if !(damp >= 0) {
		return nil, fmt.Errorf("gptq: dampening %g", damp)
	}
	group := cols // columns a parameter covers along a row
	if s.Granularity == quant.PerGroup {
		group = s.GroupSize
	}
	perRow := (cols + group - 1) / group
	updated := opt.UpdatedScales && s.Granularity == quant.PerGroup
	shape := []int{rows, cols}
	var p *quant.Params
	var err error
	if updated {
		p, err = quant.NewParams(s, shape)
	} else {
		p, err = fit(w, shape)
	}
	if err != nil {
		return nil, err
	}
	if len(p.Scales) != rows*perRow {
		return nil, fmt.Errorf("gptq: %d parameters for %d rows of %d groups", len(p.Scales), rows, perRow)
	}

	H := h.Matrix()
	// The permutation: position j processes original column perm[j].
	perm := make([]int, cols)
	for i := range perm {
		perm[i] = i
	}
	if opt.ActOrder {
		slices.SortStableFunc(perm, func(a, b int) int {
			da, db := H[a*cols+a], H[b*cols+b]
			switch {
			case da > db:
				return -1
			case da < db:
				return 1
			}
			return 0
		})
	}
	// W and H in processing order, float64.
	W := make([]float64, rows*cols)
	for r := range rows {
		for j, c := range perm {
			W[r*cols+j] = float64(w[r*cols+c])
		}
	}
	Hp := make([]float64, cols*cols)
	for i, ci := range perm {
		for j, cj := range perm {
			Hp[i*cols+j] = H[ci*cols+cj]
		}
	}
	H = Hp
	var mean float64
	for j := range cols {
		if H[j*cols+j] == 0 { // dead input
			H[j*cols+j] = 1
			for r := range rows {
				W[r*cols+j] = 0
			}
		}
		mean += H[j*cols+j]
	}
	mean /= float64(cols)
	for j := range cols {
		H[j*cols+j] += damp * mean
	}
	U, ok := inverseCholeskyUpper(H, cols)
	res := &Result{Params: p, Codes: make([]byte, s.PackedLen(rows*cols))}
	if !ok {
		res.Fallback = true
		U = make([]float64, cols*cols)
		for j := range cols {
			U[j*cols+j] = 1
		}
	}

	// fitGroup fits group g's scales from W's columns of that group.
	fitted := make([]bool, perRow)
	inv := make([]int, cols) // position of original column c
	for j, c := range perm {
		inv[c] = j
	}
	fitGroup := func(g int) error {
		c0, c1 := g*group, min((g+1)*group, cols)
		sub := make([]float32, rows*(c1-c0))
		for r := range rows {
			for c := c0; c < c1; c++ {
				sub[r*(c1-c0)+c-c0] = float32(W[r*cols+inv[c]])
			}
		}
		gp, err := fit(sub, []int{rows, c1 - c0})
		if err != nil {
			return err
		}
		if len(gp.Scales) != rows {
			return fmt.Errorf("gptq: a group's fit gave %d parameters for %d rows", len(gp.Scales), rows)
		}
		for r := range rows {
			p.Scales[r*perRow+g], p.ZeroPoints[r*perRow+g] = gp.Scales[r], gp.ZeroPoints[r]
		}
		fitted[g] = true
		return nil
	}
	if err := p.Check(); err != nil && !updated {
		return nil, err
	}

	qmin, qmax := s.QMin(), s.QMax()
	W1 := make([]float64, rows*bs)
	Err1 := make([]float64, rows*bs)
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		n := i2 - i1
		for r := range rows {
			copy(W1[r*bs:r*bs+n], W[r*cols+i1:r*cols+i2])
		}
		for i := range n {
			j := i1 + i
			c := perm[j]
			g := c / group
			if updated && !fitted[g] {
				if err := fitGroup(g); err != nil {
					return nil, err
				}
			}
			d := U[j*cols+j]
			for r := range rows {
				k := r*perRow + g
				sc, zp := p.Scales[k], p.ZeroPoints[k]
				wv := W1[r*bs+i]
				code := quant.QuantizeValue(float32(wv), sc, zp, qmin, qmax)
				quant.PutCode(res.Codes, s.Bits, r*cols+c, code)
				q := float64(quant.DequantizeValue(code, sc, zp))
				e := (wv - q) / d
				res.Loss += (wv - q) * (wv - q) / (d * d) / 2
				Err1[r*bs+i] = e
				row := W1[r*bs : r*bs+n]
				urow := U[j*cols+i1 : j*cols+i2]
				for t := i + 1; t < n; t++ {
					row[t] -= e * urow[t]
				}
			}
		}
		// W[:, i2:] -= Err1 · U[i1:i2, i2:]
		for r := range rows {
			dst := W[r*cols+i2 : (r+1)*cols]
			for i := range n {
				e := Err1[r*bs+i]
				if e == 0 {
					continue
				}
				urow := U[(i1+i)*cols+i2 : (i1+i+1)*cols]
				for t, u := range urow {
					dst[t] -= e * u
				}
			}
		}
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return res, nil
}

// inverseCholeskyUpper returns the upper Cholesky factor U of H⁻¹ (H⁻¹ =
// UᵀU) for the symmetric n×n H, computed as torch's cholesky,
// cholesky_inverse, cholesky(upper) chain does; ok is false when H or H⁻¹
// is not positive definite (numerically).
func inverseCholeskyUpper(H []float64, n int) (U []float64, ok bool) {
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(n, H)) {
		return nil, false
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return nil, false
	}
	var ch2 mat.Cholesky
	if !ch2.Factorize(&inv) {
		return nil, false
	}
	var u mat.TriDense
	ch2.UTo(&u)
	U = make([]float64, n*n)
	for i := range n {
		for j := i; j < n; j++ {
			v := u.At(i, j)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, false
			}
			U[i*n+j] = v
		}
	}
	for i := range n {
		if !(U[i*n+i] > 0) {
			return nil, false
		}
	}
	return U, true
}
