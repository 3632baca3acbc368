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
//   - λ = Damp (1 %) of the mean diagonal is added to H's diagonal; H⁻¹'s
//     upper Cholesky factor U (H⁻¹ = UᵀU) is computed from H's Cholesky
//     factor by a triangular inverse, blocked, on packed triangles, in
//     float64 (with Options.Gemm the blocks' products are float32 GEMMs
//     summed in float64: float32's precision, which the reference
//     implementations run the whole factorisation in); if a
//     factorisation fails, U = I, which is round-to-nearest, and
//     Result.Fallback says so;
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
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/quantkit/quantkit/quant"
)

// Hessian accumulates H = 2/n·Σ x xᵀ over the n rows x [Cols] it is given,
// in float64. H is symmetric: it keeps its lower triangle only, packed
// (row i's entries (i, 0..i) one after the other), Cols(Cols+1)/2 values.
type Hessian struct {
	Cols int
	N    int64     // rows added
	sum  []float64 // Σ x xᵀ, packed lower
}

// NewHessian returns an empty accumulator for inputs of cols values.
func NewHessian(cols int) *Hessian {
	return &Hessian{Cols: cols, sum: make([]float64, packedLen(cols))}
}

// Add adds rows inputs x [rows, Cols] row-major:
//
//	for each row r: for j ≤ i: sum[i,j] += x[r,i]·x[r,j]
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
			row := h.sum[rowOff(i) : rowOff(i)+i+1]
			for j, b := range xr[:i+1] {
				row[j] += a * b
			}
		}
	}
	h.N += int64(rows)
	return nil
}

// AddGram adds the Gram matrix g = XᵀX [Cols, Cols] of rows inputs X
// [rows, Cols] computed elsewhere (a GEMM on a backend); its lower
// triangle is read.
func (h *Hessian) AddGram(g []float32, rows int) error {
	if len(g) != h.Cols*h.Cols {
		return fmt.Errorf("gptq: a Gram matrix of %d values for %d columns", len(g), h.Cols)
	}
	if err := h.AddGramBlock(g, 0, h.Cols, 0, h.Cols); err != nil {
		return err
	}
	h.N += int64(rows)
	return nil
}

// AddGramBlock adds to H's sum the block g = X[:, i0:i0+ni]ᵀ·X[:, j0:j0+nj]
// [ni, nj] of a Gram matrix computed elsewhere: each entry (i, j) to the
// stored (max(i,j), min(i,j)), but for an entry above the diagonal whose
// mirror (j, i) lies in the block too (a block on the diagonal), which
// counts once. A caller computing only the blocks on one side of the
// diagonal of a symmetric XᵀX (best the lower: i0 ≥ j0, whose rows are
// H's stored rows) does half the work of AddGram's. The rows are counted
// by Count, once per X.
func (h *Hessian) AddGramBlock(g []float32, i0, ni, j0, nj int) error {
	d := h.Cols
	if len(g) != ni*nj || i0 < 0 || j0 < 0 || i0+ni > d || j0+nj > d || ni < 0 || nj < 0 {
		return fmt.Errorf("gptq: a Gram block [%d:%d, %d:%d] of %d values for %d columns", i0, i0+ni, j0, j0+nj, len(g), d)
	}
	for a := range ni {
		i := i0 + a
		grow := g[a*nj : (a+1)*nj]
		// (i, j) for j ≤ i: row i of the packed sum, contiguous.
		if lo, hi := j0, min(j0+nj, i+1); lo < hi {
			row := h.sum[rowOff(i)+lo : rowOff(i)+hi]
			for k, v := range grow[lo-j0 : hi-j0] {
				row[k] += float64(v)
			}
		}
		// (i, j) for j > i, stored at (j, i), unless (j, i) is in the block.
		for j := max(j0, i+1); j < j0+nj; j++ {
			if j >= i0 && j < i0+ni && i >= j0 {
				continue
			}
			h.sum[rowOff(j)+i] += float64(grow[j-j0])
		}
	}
	return nil
}

// Count adds rows to the number of inputs seen (with AddGramBlock).
func (h *Hessian) Count(rows int) { h.N += int64(rows) }

// Matrix is H = 2/N·Σ x xᵀ [Cols, Cols], square, a new slice (zero when N
// is 0).
func (h *Hessian) Matrix() []float64 {
	d := h.Cols
	out := make([]float64, d*d)
	if h.N == 0 {
		return out
	}
	f := 2 / float64(h.N)
	for i := range d {
		for j, v := range h.sum[rowOff(i) : rowOff(i)+i+1] {
			out[i*d+j] = f * v
			out[j*d+i] = f * v
		}
	}
	return out
}

// Block is Σ x xᵀ (the sums, not Matrix's 2/N multiple) for the rows
// and columns [j0, j0+m): an m×m row-major slice, new.
func (h *Hessian) Block(j0, m int) []float64 {
	out := make([]float64, m*m)
	for i := range m {
		row := h.sum[rowOff(j0+i)+j0:]
		for j := range i + 1 {
			out[i*m+j], out[j*m+i] = row[j], row[j]
		}
	}
	return out
}

// Bytes is the memory the accumulator holds.
func (h *Hessian) Bytes() int64 { return int64(len(h.sum)) * 8 }

// HessianBytes is the memory a Hessian of cols columns holds, and the
// most its Factorize holds at once (the Hessian, which becomes the
// factor, and the scratch).
func HessianBytes(cols int) (hessian, factorize int64) {
	b := int64(packedLen(cols)) * 8
	return b, b + int64(packedLen(cols))/8 + int64(2*cholBlock+f32Block)*int64(cols)*8
}

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
	// Gemm is a float32 GEMM, C[m×n] = A[m×k]·B[n×k]ᵀ as cpu.GemmF32
	// computes it (any summation order), for QuantizeFactored's lazy
	// updates and Factorize's trailing updates; nil runs the updates as
	// plain float32 loops and the factorisation all in float64. quant
	// stays free of the backends: the caller hands its kernel in
	// (job/llmq passes cpu.GemmF32).
	Gemm func(m, n, k int, a, b, c []float32) `json:"-"`
}

// gemmLoop is Options.Gemm's default: C = A·Bᵀ in float32, summed in
// order.
func gemmLoop(m, n, k int, a, b, c []float32) {
	for i := range m {
		for j := range n {
			var s float32
			for p, x := range a[i*k : (i+1)*k] {
				s += x * b[j*k+p]
			}
			c[i*n+j] = s
		}
	}
}

// updateCols is the most columns of W one lazy update's GEMM writes: its
// scratch is rows × updateCols float32. (A variable for the tests.)
var updateCols = 1024

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

// Factor is what GPTQ needs of a Hessian, for every weight that reads
// the same inputs (q/k/v share one, gate/up share one): the processing
// order, the dead columns and U, the upper Cholesky factor of H⁻¹ (of H
// dampened, in processing order).
type Factor struct {
	Cols int
	perm []int     // position j processes original column perm[j]
	dead []bool    // original column c is dead (H_cc was 0)
	u    []float64 // U [Cols, Cols], upper, packed: row j's (j, j..Cols−1) at upOff(j)
	// Fallback is set when H was not positive definite (numerically): U
	// is I, which is round-to-nearest.
	Fallback bool
}

// upOff is the offset of row j of an n×n packed upper triangle.
func upOff(j, n int) int { return j*n - j*(j-1)/2 }

// Bytes is the memory f holds.
func (f *Factor) Bytes() int64 { return int64(len(f.u))*8 + int64(f.Cols)*9 }

// Factorize computes h's Factor under opt (ActOrder, Damp, Gemm),
// consuming h: U is made in h's memory (HessianBytes), and h must not be
// used afterwards. U comes from one Cholesky factorisation and one
// triangular inverse in float64 (cholPacked, invLowerPacked: blocked,
// their trailing updates on every core; with opt.Gemm the updates'
// products are float32 GEMMs summed in float64, the precision of the
// float32 factorisations the reference implementations run): with J
// the reversal, J·H·J = L·Lᵀ gives H⁻¹ = (J·L⁻¹·J)ᵀ·(J·L⁻¹·J), and J·L⁻¹·J
// is upper with a positive diagonal, so it is the upper Cholesky factor of
// H⁻¹ that torch's cholesky, cholesky_inverse, cholesky(upper) chain
// computes in three factorisations.
func Factorize(h *Hessian, opt Options) (*Factor, error) {
	if h == nil || h.sum == nil {
		return nil, errors.New("gptq: no Hessian (or one already factorised)")
	}
	damp := opt.Damp
	if damp == 0 {
		damp = 0.01
	}
	if !(damp >= 0) {
		return nil, fmt.Errorf("gptq: dampening %g", damp)
	}
	n := h.Cols
	H := h.sum
	h.sum = nil
	scale := 0.0
	if h.N > 0 {
		scale = 2 / float64(h.N)
	}
	diag := make([]float64, n)
	for c := range n {
		diag[c] = scale * H[rowOff(c)+c]
	}
	f := &Factor{Cols: n, perm: make([]int, n), dead: make([]bool, n)}
	for i := range f.perm {
		f.perm[i] = i
	}
	if opt.ActOrder {
		slices.SortStableFunc(f.perm, func(a, b int) int {
			da, db := diag[a], diag[b]
			switch {
			case da > db:
				return -1
			case da < db:
				return 1
			}
			return 0
		})
	}
	var mean float64
	for c := range n {
		if diag[c] == 0 { // dead input
			diag[c] = 1
			f.dead[c] = true
		}
		mean += diag[c]
	}
	mean /= float64(n)
	// A = J·P·H·Pᵀ·J (the processing order reversed), dampened, packed
	// lower, in H's own memory: A[i, k] = H[q_i, q_k].
	q := make([]int, n)
	for i := range q {
		q[i] = f.perm[n-1-i]
	}
	A := H
	permutePacked(A, n, q)
	for i := range A {
		A[i] *= scale
	}
	for i, qi := range q {
		A[rowOff(i)+i] = diag[qi] + damp*mean
	}
	ok := cholPacked(A, n, opt.Gemm) && invLowerPacked(A, n, opt.Gemm)
	// U = J·L⁻¹·J: reversing L⁻¹'s packed rows (lower, row-major) gives
	// U's packed rows (upper, row-major), row n−1−i of U being row i of
	// L⁻¹ backwards.
	slices.Reverse(A)
	for j := range n {
		for _, v := range A[upOff(j, n) : upOff(j, n)+n-j] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				ok = false
			}
		}
		if !(A[upOff(j, n)] > 0) {
			ok = false
		}
	}
	if !ok {
		f.Fallback = true
		clear(A)
		for j := range n {
			A[upOff(j, n)] = 1
		}
	}
	f.u = A
	return f, nil
}

// permutePacked replaces the symmetric a [n×n, packed lower] with
// a[q_i, q_k] at (i, k), in place: the map from an entry's (unordered)
// pair of indices to the pair it takes its value from is a permutation
// of the pairs, followed cycle by cycle (one bit a pair of scratch).
func permutePacked(a []float64, n int, q []int) {
	pos := func(i, k int) int {
		if i < k {
			i, k = k, i
		}
		return rowOff(i) + k
	}
	done := make([]uint64, (packedLen(n)+63)/64)
	for i := range n {
		for k := 0; k <= i; k++ {
			s := rowOff(i) + k
			if done[s/64]&(1<<(s%64)) != 0 {
				continue
			}
			tmp := a[s]
			ci, ck, cp := i, k, s
			for {
				done[cp/64] |= 1 << (cp % 64)
				si, sk := q[ci], q[ck]
				sp := pos(si, sk)
				if sp == s {
					a[cp] = tmp
					break
				}
				a[cp] = a[sp]
				ci, ck, cp = si, sk, sp
			}
		}
	}
}

// Quantize quantizes w [rows, cols] (row-major, Hugging Face's [out, in])
// under s with the Hessian h of its inputs (h.Cols == cols), taking
// scales from fit (see the package documentation). s must be per channel
// along axis 0 or per group. h is left as it is: Quantize factorises a
// copy (Factorize and QuantizeFactored share one factorisation between
// the weights that read the same inputs).
func Quantize(w []float32, rows, cols int, h *Hessian, s quant.Scheme, fit Fit, opt Options) (*Result, error) {
	if h == nil || h.Cols != cols || h.sum == nil {
		return nil, fmt.Errorf("gptq: a Hessian of %d columns for a weight of %d", h.Cols, cols)
	}
	c := &Hessian{Cols: h.Cols, N: h.N, sum: slices.Clone(h.sum)}
	f, err := Factorize(c, opt)
	if err != nil {
		return nil, err
	}
	return QuantizeFactored(w, rows, cols, f, s, fit, opt)
}

// QuantizeFactored is Quantize with the Factor of the inputs' Hessian,
// made with the same ActOrder and Damp; f is left as it is, so weights
// reading the same inputs may be quantized concurrently.
func QuantizeFactored(w []float32, rows, cols int, f *Factor, s quant.Scheme, fit Fit, opt Options) (*Result, error) {
	if len(w) != rows*cols || rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("gptq: %d values are not a [%d, %d] weight", len(w), rows, cols)
	}
	if f == nil || f.Cols != cols {
		return nil, fmt.Errorf("gptq: a factorised Hessian of %d columns for a weight of %d", f.Cols, cols)
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
	perm, U := f.perm, f.u
	// W in processing order, float64, dead columns zero.
	W := make([]float64, rows*cols)
	for r := range rows {
		for j, c := range perm {
			if !f.dead[c] {
				W[r*cols+j] = float64(w[r*cols+c])
			}
		}
	}
	res := &Result{Params: p, Codes: make([]byte, s.PackedLen(rows*cols)), Fallback: f.Fallback}

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
	Err1 := make([]float32, rows*bs)
	var ut, upd []float32 // the lazy update's operands
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		n := i2 - i1
		for r := range rows {
			copy(W1[r*bs:r*bs+n], W[r*cols+i1:r*cols+i2])
		}
		for i := range n {
			j := i1 + i
			g := perm[j] / group
			if updated && !fitted[g] {
				if err := fitGroup(g); err != nil {
					return nil, err
				}
			}
		}
		// The block's columns, rows in parallel (each row is on its own).
		var loss [2]float64
		rowsOf := func(part, r0, r1 int) {
			for r := r0; r < r1; r++ {
				row := W1[r*bs : r*bs+n]
				for i := range n {
					j := i1 + i
					c := perm[j]
					k := r*perRow + c/group
					sc, zp := p.Scales[k], p.ZeroPoints[k]
					wv := row[i]
					code := quant.QuantizeValue(float32(wv), sc, zp, qmin, qmax)
					quant.PutCode(res.Codes, s.Bits, r*cols+c, code)
					uj := U[upOff(j, cols) : upOff(j, cols)+cols-j] // U[j, j:]
					d := uj[0]
					q := float64(quant.DequantizeValue(code, sc, zp))
					e := (wv - q) / d
					loss[part] += (wv - q) * (wv - q) / (d * d) / 2
					Err1[r*bs+i] = float32(e)
					urow := uj[1 : i2-j]
					tail := row[i+1 : n]
					for t, u := range urow {
						tail[t] -= e * u
					}
				}
			}
		}
		// PutCode packs several codes a byte: the halves split at a row that
		// is a multiple of 8, so that no byte is written by both.
		if half := rows / 2 &^ 7; rows*n*n >= 1<<16 && half > 0 {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); rowsOf(1, half, rows) }()
			rowsOf(0, 0, half)
			wg.Wait()
		} else {
			rowsOf(0, 0, rows)
		}
		res.Loss += loss[0] + loss[1]
		if i2 == cols {
			break
		}
		// W[:, i2:] −= Err1 · U[i1:i2, i2:], a float32 GEMM (as the
		// reference implementations run the whole sweep in float32) into
		// the float64 W, updateCols columns at a time (a bounded scratch).
		e := Err1[:rows*bs]
		if n < bs {
			e = make([]float32, rows*n)
			for r := range rows {
				copy(e[r*n:(r+1)*n], Err1[r*bs:r*bs+n])
			}
		}
		gemm := opt.Gemm
		if gemm == nil {
			gemm = gemmLoop
		}
		for c0 := i2; c0 < cols; c0 += updateCols {
			c1 := min(c0+updateCols, cols)
			m := c1 - c0
			ut = slices.Grow(ut[:0], m*n)[:m*n]
			for i := range n {
				j := i1 + i
				for t, u := range U[upOff(j, cols)+c0-j : upOff(j, cols)+c1-j] { // U[j, c0:c1]
					ut[t*n+i] = float32(u)
				}
			}
			upd = slices.Grow(upd[:0], rows*m)[:rows*m]
			gemm(rows, m, n, e, ut, upd)
			for r := range rows {
				dst := W[r*cols+c0 : r*cols+c1]
				for t, v := range upd[r*m : (r+1)*m] {
					dst[t] -= float64(v)
				}
			}
		}
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return res, nil
}
