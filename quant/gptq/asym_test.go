package gptq

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// asymInputs returns n paired rows of d inputs: x_q, and x_f = x_q plus
// a perturbation correlated with x_q (as a quantized model's inputs
// differ from the float model's), input dead in x_q (all zero) when
// dead ≥ 0.
func asymInputs(rng *rand.Rand, n, d, dead int) (xf, xq []float32) {
	xq = make([]float32, n*d)
	xf = make([]float32, n*d)
	for r := range n {
		for j := range d {
			v := float32(rng.NormFloat64() * (1 + float64(j%3)))
			if j == dead {
				v = 0
			}
			xq[r*d+j] = v
		}
		for j := range d {
			xf[r*d+j] = xq[r*d+j] + 0.3*xq[r*d+(j+1)%d] + float32(0.1*rng.NormFloat64())
		}
	}
	return xf, xq
}

// crossOf is the Cross of n paired rows, Xqᵀ·(Xf − Xq) [d, d] by a
// float64 loop.
func crossOf(xf, xq []float32, n, d int) *Cross {
	g := make([]float32, d*d)
	for j := range d {
		for i := range d {
			var s float64
			for r := range n {
				s += float64(xq[r*d+j]) * float64(xf[r*d+i]-xq[r*d+i])
			}
			g[j*d+i] = float32(s)
		}
	}
	c := NewCross(d)
	if err := c.Add(g, n); err != nil {
		panic(err)
	}
	return c
}

// productsOf is the Cross of NewCrossProducts for weights ws of xf and xq
// [n, d]: W·(Xf − Xq)ᵀ·Xq for each, summed in float64.
func productsOf(xf, xq []float32, n, d int, ws ...[]float32) *Cross {
	rows := make([]int, len(ws))
	for k, w := range ws {
		rows[k] = len(w) / d
	}
	c := NewCrossProducts(d, rows...)
	for k, w := range ws {
		g := make([]float32, len(w))
		for r := range rows[k] {
			for j := range d {
				var s float64
				for t := range n {
					var we float64 // (W·e_t)[r]
					for i := range d {
						we += float64(w[r*d+i]) * float64(xf[t*d+i]-xq[t*d+i])
					}
					s += we * float64(xq[t*d+j])
				}
				g[r*d+j] = float32(s)
			}
		}
		if err := c.AddProducts(k, g, 0, d); err != nil {
			panic(err)
		}
	}
	c.Count(n)
	return c
}

// solve64 returns A⁻¹·B for A [d, d] and B [d, m], by Gaussian elimination
// with partial pivoting in float64.
func solve64(a []float64, b []float64, d, m int) []float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	for k := range d {
		p := k
		for i := k + 1; i < d; i++ {
			if math.Abs(a[i*d+k]) > math.Abs(a[p*d+k]) {
				p = i
			}
		}
		for j := range d {
			a[k*d+j], a[p*d+j] = a[p*d+j], a[k*d+j]
		}
		for j := range m {
			b[k*m+j], b[p*m+j] = b[p*m+j], b[k*m+j]
		}
		for i := k + 1; i < d; i++ {
			f := a[i*d+k] / a[k*d+k]
			for j := k; j < d; j++ {
				a[i*d+j] -= f * a[k*d+j]
			}
			for j := range m {
				b[i*m+j] -= f * b[k*m+j]
			}
		}
	}
	for k := d - 1; k >= 0; k-- {
		for j := range m {
			s := b[k*m+j]
			for i := k + 1; i < d; i++ {
				s -= a[k*d+i] * b[i*m+j]
			}
			b[k*m+j] = s / a[k*d+k]
		}
	}
	return b
}

// TestAsymmetricAgainstReference: W' equals W + W·D·(H + λI)⁻¹ computed
// in float64 from the rows themselves (H = 2/n·XqᵀXq, D = 2/n·(Xf −
// Xq)ᵀXq, λ = 1 % of the mean diagonal with the dead input counted as
// 1), the dead input's column zero; with the float inputs equal to the
// quantized ones W is left as it is.
func TestAsymmetricAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, d, rows, dead = 300, 37, 5, 4
	xf, xq := asymInputs(rng, n, d, dead)
	w := make([]float32, rows*d)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	w2 := make([]float32, 3*d)
	for i := range w2 {
		w2[i] = float32(rng.NormFloat64())
	}
	// The reference.
	hm := make([]float64, d*d)
	dm := make([]float64, d*d) // D [d, d]: D[i, j] = 2/n Σ (xf−xq)[r, i]·xq[r, j]
	for i := range d {
		for j := range d {
			var sh, sd float64
			for r := range n {
				sh += float64(xq[r*d+i]) * float64(xq[r*d+j])
				sd += float64(xf[r*d+i]-xq[r*d+i]) * float64(xq[r*d+j])
			}
			hm[i*d+j], dm[i*d+j] = 2*sh/n, 2*sd/n
		}
	}
	mean := 0.0
	for i := range d {
		if i == dead {
			hm[i*d+i] = 1
		}
		mean += hm[i*d+i]
	}
	mean /= d
	for i := range d {
		hm[i*d+i] += 0.01 * mean
	}
	want := func(w []float32) []float64 {
		r := len(w) / d
		// (W·D·A⁻¹)ᵀ = A⁻¹·(W·D)ᵀ, A symmetric.
		wdT := make([]float64, d*r)
		for k := range r {
			for j := range d {
				var s float64
				for i := range d {
					s += float64(w[k*d+i]) * dm[i*d+j]
				}
				wdT[j*r+k] = s
			}
		}
		z := solve64(hm, wdT, d, r)
		out := make([]float64, len(w))
		for k := range r {
			for j := range d {
				if j != dead {
					out[k*d+j] = float64(w[k*d+j]) + z[j*r+k]
				}
			}
		}
		return out
	}
	ref, ref2 := want(w), want(w2)
	orig, orig2 := slices.Clone(w), slices.Clone(w2)
	defer func(t int) { asymTile = t }(asymTile)
	for _, c := range []struct {
		actOrder bool
		tile     int
		products bool
	}{{false, 128, false}, {true, 128, false}, {true, 5, false}, {false, 5, false}, {true, 128, true}, {false, 5, true}} {
		// Tiles of 5 rows of U: seven GEMMs a product, the last of 2.
		actOrder := c.actOrder
		asymTile = c.tile
		w, w2 := slices.Clone(orig), slices.Clone(orig2)
		opt := Options{ActOrder: actOrder}
		f := factorOf(t, xq, n, d, opt)
		cr := crossOf(xf, xq, n, d)
		if c.products {
			cr = productsOf(xf, xq, n, d, w, w2)
		}
		if err := f.Asymmetric(cr, opt, w, w2); err != nil {
			t.Fatal(err)
		}
		if c.tile == 5 && !c.products {
			// The tiles change which GEMM computes a value, not its sum.
			asymTile = 128
			v, v2 := slices.Clone(orig), slices.Clone(orig2)
			if err := factorOf(t, xq, n, d, opt).Asymmetric(crossOf(xf, xq, n, d), opt, v, v2); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v, w) || !slices.Equal(v2, w2) {
				t.Fatalf("act order %v: tiles of 5 and one tile of 37 give different weights", actOrder)
			}
		}
		for _, pair := range []struct {
			got  []float32
			want []float64
		}{{w, ref}, {w2, ref2}} {
			for i, g := range pair.got {
				if e := math.Abs(float64(g) - pair.want[i]); e > 1e-4*(1+math.Abs(pair.want[i])) {
					t.Fatalf("act order %v, tiles of %d, products %v: W'[%d] = %g, want %g", actOrder, c.tile, c.products, i, g, pair.want[i])
				}
			}
		}
		moved := 0.0
		for i := range w {
			moved = max(moved, math.Abs(float64(w[i]-orig[i])))
		}
		if moved < 0.05 {
			t.Fatalf("the correction moved W by at most %g: the test's inputs do not exercise it", moved)
		}
	}

	// Equal inputs: D = 0, W unchanged (but for the dead column).
	w0 := slices.Clone(orig)
	opt := Options{ActOrder: true, Gemm: gemmLoop}
	if err := factorOf(t, xq, n, d, opt).Asymmetric(crossOf(xq, xq, n, d), opt, w0); err != nil {
		t.Fatal(err)
	}
	for i, v := range w0 {
		if want := orig[i]; i%d == dead {
			want = 0
		} else if v != want {
			t.Fatalf("equal inputs: W'[%d] = %g, want %g", i, v, want)
		}
	}
}

// factorOf is the Factor of the Hessian of xq [n, d] under opt.
func factorOf(t *testing.T, xq []float32, n, d int, opt Options) *Factor {
	t.Helper()
	h := NewHessian(d)
	if err := h.Add(xq, n); err != nil {
		t.Fatal(err)
	}
	f, err := Factorize(h, opt)
	if err != nil || f.Fallback {
		t.Fatalf("Factorize: %v, fallback %v", err, f != nil && f.Fallback)
	}
	return f
}

// TestAsymmetricIsLeastSquares: with a negligible dampening, W'·X_qᵀ is
// the least-squares fit of W·X_fᵀ on X_q's rows: the residual is
// orthogonal to every input column, (W·X_fᵀ − W'·X_qᵀ)·X_q ≈ 0, and the
// output error from X_q is below W's own.
func TestAsymmetricIsLeastSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, d, rows = 400, 16, 3
	xf, xq := asymInputs(rng, n, d, -1)
	w := make([]float32, rows*d)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	wp := slices.Clone(w)
	opt := Options{Damp: 1e-9, ActOrder: true}
	if err := factorOf(t, xq, n, d, opt).Asymmetric(crossOf(xf, xq, n, d), opt, wp); err != nil {
		t.Fatal(err)
	}
	errOf := func(v []float32) (sq float64, orth float64) {
		res := make([]float64, rows*n)
		for k := range rows {
			for r := range n {
				var s float64
				for j := range d {
					s += float64(w[k*d+j])*float64(xf[r*d+j]) - float64(v[k*d+j])*float64(xq[r*d+j])
				}
				res[k*n+r] = s
				sq += s * s
			}
		}
		for k := range rows {
			for j := range d {
				var s, norm float64
				for r := range n {
					s += res[k*n+r] * float64(xq[r*d+j])
					norm += float64(xq[r*d+j]) * float64(xq[r*d+j])
				}
				orth = max(orth, math.Abs(s)/math.Sqrt(norm))
			}
		}
		return sq, orth
	}
	e0, _ := errOf(w)
	e1, orth := errOf(wp)
	if !(e1 < 0.5*e0) {
		t.Errorf("output error %g with W', %g with W: want well below", e1, e0)
	}
	if orth > 1e-3*math.Sqrt(e1) {
		t.Errorf("residual not orthogonal to the inputs: %g (error norm %g)", orth, math.Sqrt(e1))
	}
}

// TestAsymmetricRefuses mismatched statistics and a fallen-back factor.
func TestAsymmetricRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	xf, xq := asymInputs(rng, 20, 4, -1)
	f := factorOf(t, xq, 20, 4, Options{})
	if err := f.Asymmetric(crossOf(xf[:30], xq[:30], 10, 3), Options{}, make([]float32, 8)); err == nil {
		t.Error("a cross product of 3 columns for a factor of 4: no error")
	}
	if err := f.Asymmetric(crossOf(xf, xq, 20, 4), Options{}, make([]float32, 7)); err == nil {
		t.Error("a weight of 7 values for 4 inputs: no error")
	}
	w2 := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	if err := f.Asymmetric(productsOf(xf, xq, 20, 4, w2), Options{}, w2, w2); err == nil {
		t.Error("products of one weight given two: no error")
	}
	if err := f.Asymmetric(productsOf(xf, xq, 20, 4, w2), Options{}, w2[:4]); err == nil || !slices.Equal(w2, []float32{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("products of a 2-row weight given 1 row: error %v, weight %v", err, w2)
	}
	if err := NewCrossProducts(4, 2).AddProducts(0, make([]float32, 6), 1, 3); err != nil {
		t.Errorf("adding columns 1…3 of 2 rows: %v", err)
	}
	if err := NewCrossProducts(4, 2).AddProducts(0, make([]float32, 6), 2, 3); err == nil {
		t.Error("adding columns 2…4 of 4: no error")
	}
	bad := *f
	bad.Fallback = true // as Factorize leaves a Hessian that is not positive definite
	w := []float32{1, 2, 3, 4}
	if err := bad.Asymmetric(crossOf(xf, xq, 20, 4), Options{}, w); err == nil || !slices.Equal(w, []float32{1, 2, 3, 4}) {
		t.Errorf("a fallen-back factor: error %v, weight %v", err, w)
	}
}
