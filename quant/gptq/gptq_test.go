package gptq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// correlated returns n inputs of d values with correlated columns (a
// random mixing of independent normals), a few outlier channels ×10 and,
// when dead ≥ 0, column dead always zero.
func correlated(r *rand.Rand, n, d, dead int) []float32 {
	mix := make([]float64, d*d)
	for i := range mix {
		mix[i] = r.NormFloat64()
	}
	x := make([]float32, n*d)
	z := make([]float64, d)
	for t := range n {
		for i := range z {
			z[i] = r.NormFloat64()
		}
		for j := range d {
			var v float64
			for i := range d {
				v += z[i] * mix[i*d+j] / math.Sqrt(float64(d))
			}
			v += 0.3 * r.NormFloat64()
			if j%7 == 3 {
				v *= 10
			}
			if j == dead {
				v = 0
			}
			x[t*d+j] = float32(v)
		}
	}
	return x
}

func randomWeight(r *rand.Rand, rows, cols int) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() / math.Sqrt(float64(cols)))
		if r.IntN(50) == 0 {
			w[i] *= 6
		}
	}
	return w
}

func minmax(s quant.Scheme) Fit {
	return func(x []float32, shape []int) (*quant.Params, error) { return quant.FitMinMax(s, x, shape) }
}

// referenceGPTQ is the published algorithm transcribed in float64,
// without lazy batching: after each column, the error is spread over
// every later column at once (W[:, j+1:] −= e·U[j, j+1:]), with H⁻¹ from a
// Gauss–Jordan inverse and its upper Cholesky factor from the textbook
// recurrence. Activation order and dead columns as llm-compressor; with
// updated scales a group is fitted when its first column comes, on W as it
// stood at the start of the block of bs columns holding that column (what
// the reference code's W[:, i:i+G] reads). It returns the dequantized
// weight [rows, cols] in original column order.
func referenceGPTQ(w []float32, rows, cols int, x []float32, n int, s quant.Scheme, actOrder, updated bool, bs int) []float64 {
	H := make([]float64, cols*cols)
	for t := range n {
		for i := range cols {
			for j := range cols {
				H[i*cols+j] += 2 / float64(n) * float64(x[t*cols+i]) * float64(x[t*cols+j])
			}
		}
	}
	group := cols
	if s.Granularity == quant.PerGroup {
		group = s.GroupSize
	}
	perRow := (cols + group - 1) / group
	perm := make([]int, cols)
	for i := range perm {
		perm[i] = i
	}
	if actOrder { // stable insertion sort, descending diagonal
		for i := 1; i < cols; i++ {
			for j := i; j > 0 && H[perm[j]*cols+perm[j]] > H[perm[j-1]*cols+perm[j-1]]; j-- {
				perm[j], perm[j-1] = perm[j-1], perm[j]
			}
		}
	}
	W := make([][]float64, rows)
	for r := range W {
		W[r] = make([]float64, cols)
		for j := range cols {
			W[r][j] = float64(w[r*cols+perm[j]])
		}
	}
	A := make([][]float64, cols)
	for i := range A {
		A[i] = make([]float64, cols)
		for j := range cols {
			A[i][j] = H[perm[i]*cols+perm[j]]
		}
	}
	var mean float64
	for j := range cols {
		if A[j][j] == 0 {
			A[j][j] = 1
			for r := range rows {
				W[r][j] = 0
			}
		}
		mean += A[j][j] / float64(cols)
	}
	for j := range cols {
		A[j][j] += 0.01 * mean
	}
	// Gauss–Jordan inverse with partial pivoting.
	inv := make([][]float64, cols)
	for i := range inv {
		inv[i] = make([]float64, cols)
		inv[i][i] = 1
	}
	for c := range cols {
		p := c
		for i := c + 1; i < cols; i++ {
			if math.Abs(A[i][c]) > math.Abs(A[p][c]) {
				p = i
			}
		}
		A[c], A[p] = A[p], A[c]
		inv[c], inv[p] = inv[p], inv[c]
		d := A[c][c]
		for j := range cols {
			A[c][j] /= d
			inv[c][j] /= d
		}
		for i := range cols {
			if i != c && A[i][c] != 0 {
				f := A[i][c]
				for j := range cols {
					A[i][j] -= f * A[c][j]
					inv[i][j] -= f * inv[c][j]
				}
			}
		}
	}
	// Upper Cholesky: inv = UᵀU.
	U := make([][]float64, cols)
	for i := range U {
		U[i] = make([]float64, cols)
	}
	for i := range cols {
		s := inv[i][i]
		for k := range i {
			s -= U[k][i] * U[k][i]
		}
		U[i][i] = math.Sqrt(s)
		for j := i + 1; j < cols; j++ {
			s := inv[i][j]
			for k := range i {
				s -= U[k][i] * U[k][j]
			}
			U[i][j] = s / U[i][i]
		}
	}
	// Scales.
	orig := make([]float32, rows*cols)
	for r := range rows {
		for j := range cols {
			orig[r*cols+perm[j]] = float32(W[r][j])
		}
	}
	scale := make([][]float32, rows)
	zero := make([][]int32, rows)
	for r := range rows {
		scale[r], zero[r] = make([]float32, perRow), make([]int32, perRow)
	}
	fitGroup := func(src []float32, g int) {
		c0, c1 := g*group, min((g+1)*group, cols)
		for r := range rows {
			lo, hi := float32(0), float32(0)
			for c := c0; c < c1; c++ {
				lo, hi = min(lo, src[r*cols+c]), max(hi, src[r*cols+c])
			}
			scale[r][g], zero[r][g] = s.ScaleZeroPoint(lo, hi)
		}
	}
	if !updated || s.Granularity != quant.PerGroup {
		src := make([]float32, rows*cols) // the original weight, dead columns included
		copy(src, w)
		for g := range perRow {
			fitGroup(src, g)
		}
	}
	fitted := make([]bool, perRow)
	var snapshot []float32
	out := make([]float64, rows*cols)
	for j := range cols {
		if j%bs == 0 {
			snapshot = make([]float32, rows*cols)
			for r := range rows {
				for t := range cols {
					snapshot[r*cols+perm[t]] = float32(W[r][t])
				}
			}
		}
		c := perm[j]
		g := c / group
		if updated && s.Granularity == quant.PerGroup && !fitted[g] {
			fitGroup(snapshot, g)
			fitted[g] = true
		}
		for r := range rows {
			wv := W[r][j]
			code := quant.QuantizeValue(float32(wv), scale[r][g], zero[r][g], s.QMin(), s.QMax())
			q := float64(quant.DequantizeValue(code, scale[r][g], zero[r][g]))
			out[r*cols+c] = q
			e := (wv - q) / U[j][j]
			for t := j + 1; t < cols; t++ {
				W[r][t] -= e * U[j][t]
			}
		}
	}
	return out
}

func dequant(t *testing.T, res *Result) []float64 {
	t.Helper()
	y := make([]float32, res.Params.Len())
	if err := quant.Dequantize(y, res.Codes, res.Params); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(y))
	for i, v := range y {
		out[i] = float64(v)
	}
	return out
}

// TestAgainstReference compares Quantize with referenceGPTQ: per channel
// and per group, int4 and int8, blocks smaller than the weight and a last
// partial block and group, activation order, updated scales and a dead
// input. The dequantized weights must agree to rounding: the same codes
// everywhere but where float64 rounding flips a tie (at most 1 in 500).
func TestAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	int4g, _ := quant.ParseScheme("int4-sym-group16")
	int4c, _ := quant.ParseScheme("int4-sym-channel")
	int8c, _ := quant.ParseScheme("int8-sym-channel")
	asym, _ := quant.ParseScheme("uint4-asym-group16")
	for _, tc := range []struct {
		name              string
		s                 quant.Scheme
		rows, cols, bs    int
		actOrder, updated bool
		dead              int
	}{
		{"int4-group", int4g, 12, 72, 32, false, false, -1},
		{"int4-group-actorder", int4g, 12, 72, 32, true, false, 5},
		{"int4-group-updated", int4g, 10, 72, 32, false, true, -1},
		{"int4-group-actorder-updated", int4g, 10, 72, 32, true, true, 9},
		{"int4-channel-default-block", int4c, 9, 150, 0, true, false, -1},
		{"int8-channel", int8c, 7, 40, 16, false, false, 0},
		{"uint4-asym-group", asym, 8, 48, 16, true, false, -1},
		{"int4-group-rows-in-parallel", int4g, 40, 136, 64, true, false, 3},
		{"uint4-asym-rows-in-parallel-updated", asym, 33, 100, 48, true, true, -1},
		// three blocks of the factorisations, updates in chunks of 40 columns
		{"int4-group-wide", int4g, 16, 2*cholBlock + 50, 32, true, true, 11},
	} {
		if tc.cols > 2*cholBlock {
			defer func(u, f, b int) { updateCols, f32Block, cholBlockF32 = u, f, b }(updateCols, f32Block, cholBlockF32)
			updateCols, f32Block, cholBlockF32 = 40, 40, 56
		}
		x := correlated(r, 300, tc.cols, tc.dead)
		w := randomWeight(r, tc.rows, tc.cols)
		h := NewHessian(tc.cols)
		if err := h.Add(x, 300); err != nil {
			t.Fatal(err)
		}
		bs := tc.bs
		if bs == 0 {
			bs = 128
		}
		want := referenceGPTQ(w, tc.rows, tc.cols, x, 300, tc.s, tc.actOrder, tc.updated, bs)
		var got []float64
		// Gemm nil: the factorisation in float64; gemmLoop: its trailing
		// updates' products in float32 (as the pipeline runs it).
		for _, gemm := range []func(m, n, k int, a, b, c []float32){nil, gemmLoop} {
			res, err := Quantize(w, tc.rows, tc.cols, h, tc.s, minmax(tc.s), Options{BlockSize: tc.bs, ActOrder: tc.actOrder, UpdatedScales: tc.updated, Gemm: gemm})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if res.Fallback {
				t.Fatalf("%s: fell back to RTN", tc.name)
			}
			got = dequant(t, res)
			differ := 0
			for i := range got {
				if math.Abs(got[i]-want[i]) > 1e-6*math.Max(1, math.Abs(want[i])) {
					differ++
				}
			}
			t.Logf("%s (float32 products %v): %d of %d values differ from the reference", tc.name, gemm != nil, differ, len(got))
			if differ*500 > len(got) {
				t.Errorf("%s (float32 products %v): %d of %d values differ from the reference", tc.name, gemm != nil, differ, len(got))
			}
		}
		if tc.dead >= 0 {
			for row := range tc.rows {
				if got[row*tc.cols+tc.dead] != 0 {
					t.Errorf("%s: dead column %d row %d is %g, want 0", tc.name, tc.dead, row, got[row*tc.cols+tc.dead])
				}
			}
		}
	}
}

// outputError is ‖XWᵀ − XŴᵀ‖² in float64.
func outputError(x []float32, n, cols int, w []float32, wq []float64, rows int) float64 {
	var e float64
	for t := range n {
		for o := range rows {
			var d float64
			for j := range cols {
				d += float64(x[t*cols+j]) * (float64(w[o*cols+j]) - wq[o*cols+j])
			}
			e += d * d
		}
	}
	return e
}

// TestNoWorseThanRTN checks that GPTQ's output error ‖XWᵀ − XŴᵀ‖² on the
// calibration inputs is below round-to-nearest's (same scales) on random
// layers with correlated inputs, for every option, and reports the ratio.
func TestNoWorseThanRTN(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for seed := range 4 {
		for _, name := range []string{"int4-sym-group32", "int4-sym-channel", "int8-sym-channel", "uint4-asym-group32"} {
			s, err := quant.ParseScheme(name)
			if err != nil {
				t.Fatal(err)
			}
			rows, cols, n := 24, 96+seed*16, 400
			x := correlated(r, n, cols, -1)
			w := randomWeight(r, rows, cols)
			h := NewHessian(cols)
			if err := h.Add(x, n); err != nil {
				t.Fatal(err)
			}
			p, err := quant.FitMinMax(s, w, []int{rows, cols})
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(w))
			codes := make([]byte, s.PackedLen(len(w)))
			if err := quant.Quantize(codes, w, p); err != nil {
				t.Fatal(err)
			}
			if err := quant.Dequantize(y, codes, p); err != nil {
				t.Fatal(err)
			}
			rtn := make([]float64, len(y))
			for i, v := range y {
				rtn[i] = float64(v)
			}
			base := outputError(x, n, cols, w, rtn, rows)
			for _, opt := range []Options{{}, {ActOrder: true}, {UpdatedScales: true}, {ActOrder: true, UpdatedScales: true}} {
				res, err := Quantize(w, rows, cols, h, s, minmax(s), opt)
				if err != nil {
					t.Fatal(err)
				}
				e := outputError(x, n, cols, w, dequant(t, res), rows)
				if seed == 0 {
					t.Logf("%s %+v: GPTQ/RTN output error %.3f", name, opt, e/base)
				}
				if !(e <= base) {
					t.Errorf("seed %d %s %+v: GPTQ's output error %g above RTN's %g", seed, name, opt, e, base)
				}
			}
		}
	}
}

// TestHessianGram checks Add against AddGram of a Gram matrix computed
// here, and Matrix's 2/n scaling.
func TestHessianGram(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 9))
	x := correlated(r, 37, 11, 4)
	a, b := NewHessian(11), NewHessian(11)
	if err := a.Add(x[:20*11], 20); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(x[20*11:], 17); err != nil {
		t.Fatal(err)
	}
	g := make([]float32, 121)
	for i := range 11 {
		for j := range 11 {
			var s float64
			for t := range 37 {
				s += float64(x[t*11+i]) * float64(x[t*11+j])
			}
			g[i*11+j] = float32(s)
		}
	}
	if err := b.AddGram(g, 37); err != nil {
		t.Fatal(err)
	}
	ma, mb := a.Matrix(), b.Matrix()
	for i := range ma {
		if math.Abs(ma[i]-mb[i]) > 1e-5*math.Max(1, math.Abs(mb[i])) {
			t.Fatalf("H[%d] = %g by Add, %g by AddGram", i, ma[i], mb[i])
		}
		if want := 2 * float64(g[i]) / 37; math.Abs(mb[i]-want) > 1e-12*math.Max(1, want) {
			t.Fatalf("H[%d] = %g, want 2/n·Σ = %g", i, mb[i], want)
		}
	}
	if err := a.Add(x[:5], 1); err == nil {
		t.Error("Add took 5 values as a row of 11")
	}
}

// TestHessianBlock checks Block against the sums computed here, on
// diagonal blocks at the start, inside and at the end of the matrix.
func TestHessianBlock(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 3))
	const d, n = 19, 23
	x := correlated(r, n, d, 5)
	h := NewHessian(d)
	if err := h.Add(x, n); err != nil {
		t.Fatal(err)
	}
	for _, blk := range [][2]int{{0, 8}, {8, 8}, {16, 3}, {0, d}} {
		j0, m := blk[0], blk[1]
		got := h.Block(j0, m)
		for i := range m {
			for j := range m {
				var want float64
				for k := range n {
					want += float64(x[k*d+j0+i]) * float64(x[k*d+j0+j])
				}
				if math.Abs(got[i*m+j]-want) > 1e-5*math.Max(1, math.Abs(want)) {
					t.Fatalf("Block(%d, %d)[%d, %d] = %g, want Σ x_i x_j = %g", j0, m, i, j, got[i*m+j], want)
				}
			}
		}
	}
}

// TestHessianBlocks checks AddGramBlock against Add: a Gram matrix given
// as blocks below the diagonal, above it, and straddling it (square and
// not), each entry of the symmetric XᵀX counted once.
func TestHessianBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const d, n = 23, 30
	x := correlated(r, n, d, 6)
	a, b := NewHessian(d), NewHessian(d)
	if err := a.Add(x, n); err != nil {
		t.Fatal(err)
	}
	gram := func(i0, ni, j0, nj int) []float32 {
		g := make([]float32, ni*nj)
		for i := range ni {
			for j := range nj {
				var s float64
				for k := range n {
					s += float64(x[k*d+i0+i]) * float64(x[k*d+j0+j])
				}
				g[i*nj+j] = float32(s)
			}
		}
		return g
	}
	// rows 0:10 × all columns (straddling, not square), then rows 10:23 ×
	// columns 0:10 given as the block above (0:10 × 10:23 is done), then
	// the square 10:23 on the diagonal.
	for _, blk := range [][4]int{{0, 10, 0, d}, {10, 13, 10, 13}} {
		if err := b.AddGramBlock(gram(blk[0], blk[1], blk[2], blk[3]), blk[0], blk[1], blk[2], blk[3]); err != nil {
			t.Fatal(err)
		}
	}
	b.Count(n)
	c := NewHessian(d) // the lower blocks only
	for _, blk := range [][4]int{{0, 10, 0, 10}, {10, 13, 0, 10}, {10, 13, 10, 13}} {
		if err := c.AddGramBlock(gram(blk[0], blk[1], blk[2], blk[3]), blk[0], blk[1], blk[2], blk[3]); err != nil {
			t.Fatal(err)
		}
	}
	c.Count(n)
	ma, mb, mc := a.Matrix(), b.Matrix(), c.Matrix()
	for i := range ma {
		if math.Abs(ma[i]-mb[i]) > 1e-5*math.Max(1, math.Abs(ma[i])) || math.Abs(ma[i]-mc[i]) > 1e-5*math.Max(1, math.Abs(ma[i])) {
			t.Fatalf("H[%d, %d] = %g by Add, %g and %g by blocks", i/d, i%d, ma[i], mb[i], mc[i])
		}
	}
	if err := b.AddGramBlock(make([]float32, 4), 21, 2, 22, 2); err == nil {
		t.Error("AddGramBlock took a block past the last column")
	}
}

// TestFallback gives a Hessian that is not positive definite (NaN
// inputs): Quantize falls back to round-to-nearest and says so.
func TestFallback(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 1))
	s, _ := quant.ParseScheme("int4-sym-group16")
	w := randomWeight(r, 4, 32)
	x := correlated(r, 10, 32, -1)
	x[7] = float32(math.NaN())
	h := NewHessian(32)
	if err := h.Add(x, 10); err != nil {
		t.Fatal(err)
	}
	res, err := Quantize(w, 4, 32, h, s, minmax(s), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Fallback {
		t.Fatal("no fallback on a NaN Hessian")
	}
	p, _ := quant.FitMinMax(s, w, []int{4, 32})
	codes := make([]byte, s.PackedLen(len(w)))
	if err := quant.Quantize(codes, w, p); err != nil {
		t.Fatal(err)
	}
	for i := range codes {
		if codes[i] != res.Codes[i] {
			t.Fatalf("fallback code byte %d is %#x, RTN's %#x", i, res.Codes[i], codes[i])
		}
	}
	if _, err := Quantize(w, 4, 32, NewHessian(31), s, minmax(s), Options{}); err == nil {
		t.Error("Quantize took a Hessian of 31 columns for 32")
	}
	if _, err := Quantize(w, 4, 32, h, quant.Int8PerTensor, minmax(quant.Int8PerTensor), Options{}); err == nil {
		t.Error("Quantize took a per-tensor scheme")
	}
}

// TestFactorShared checks that a Factor serves several weights: Quantize
// leaves its Hessian as it was, QuantizeFactored with one Factorize of it
// gives Quantize's codes for two weights, and Factorize consumes the
// Hessian it is given.
func TestFactorShared(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 7))
	s, _ := quant.ParseScheme("int4-sym-group16")
	x := correlated(r, 200, 48, 2)
	h := NewHessian(48)
	if err := h.Add(x, 200); err != nil {
		t.Fatal(err)
	}
	before := h.Matrix()
	opt := Options{ActOrder: true, BlockSize: 16}
	var want []*Result
	ws := [][]float32{randomWeight(r, 20, 48), randomWeight(r, 9, 48)}
	for _, w := range ws {
		res, err := Quantize(w, len(w)/48, 48, h, s, minmax(s), opt)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res)
	}
	after := h.Matrix()
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("Quantize changed its Hessian at %d: %g → %g", i, before[i], after[i])
		}
	}
	f, err := Factorize(h, opt)
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range ws {
		res, err := QuantizeFactored(w, len(w)/48, 48, f, s, minmax(s), opt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range res.Codes {
			if res.Codes[i] != want[k].Codes[i] {
				t.Fatalf("weight %d: byte %d is %#x by QuantizeFactored, %#x by Quantize", k, i, res.Codes[i], want[k].Codes[i])
			}
		}
	}
	if _, err := Factorize(h, opt); err == nil {
		t.Error("a Hessian was factorised twice")
	}
}
