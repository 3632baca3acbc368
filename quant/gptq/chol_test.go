package gptq

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// spd returns a random symmetric positive definite n×n matrix (full,
// row-major): X·Xᵀ/k of k random columns, a few rows ×scale (scale ≫ 1
// makes it ill-conditioned), the rows in dead zeroed but for a 1 on the
// diagonal (as Factorize leaves a dead input), plus eps·I.
func spd(r *rand.Rand, n, k int, scale float64, dead []int, eps float64) []float64 {
	x := make([]float64, n*k)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	for i := 0; i < n; i += 7 {
		for p := range k {
			x[i*k+p] *= scale
		}
	}
	for _, d := range dead {
		clear(x[d*k : (d+1)*k])
	}
	a := make([]float64, n*n)
	for i := range n {
		for j := range n {
			var s float64
			for p := range k {
				s += x[i*k+p] * x[j*k+p]
			}
			a[i*n+j] = s / float64(k)
		}
		a[i*n+i] += eps
	}
	for _, d := range dead {
		a[d*n+d] = 1
	}
	return a
}

func pack(a []float64, n int) []float64 {
	p := make([]float64, packedLen(n))
	for i := range n {
		copy(p[rowOff(i):rowOff(i)+i+1], a[i*n:i*n+i+1])
	}
	return p
}

// naiveChol is the textbook Cholesky–Banachiewicz recurrence in float64,
// full storage.
func naiveChol(a []float64, n int) ([]float64, bool) {
	l := make([]float64, n*n)
	for i := range n {
		for j := 0; j <= i; j++ {
			s := a[i*n+j]
			for p := range j {
				s -= l[i*n+p] * l[j*n+p]
			}
			if i == j {
				if !(s > 0) {
					return nil, false
				}
				l[i*n+i] = math.Sqrt(s)
			} else {
				l[i*n+j] = s / l[j*n+j]
			}
		}
	}
	return l, true
}

// TestCholPacked compares cholPacked and invLowerPacked with the naive
// recurrence and with gonum's dpotrf and dtrtri, on sizes below, at and
// across the block size, well and ill conditioned (condition numbers to
// about 1e9), with dead columns.
//
// The float32 path (Options.Gemm's products) is checked the same way at
// float32's precision, its GEMMs in blocks of 40 so that several blocks
// and a partial one are summed.
func TestCholPacked(t *testing.T) {
	defer func(v, b int) { f32Block, cholBlockF32 = v, b }(f32Block, cholBlockF32)
	f32Block, cholBlockF32 = 40, 56
	r := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		n, k             int
		scale            float64
		dead             []int
		eps              float64
		relTol, relTol32 float64
	}{
		{1, 3, 1, nil, 0.1, 1e-13, 1e-13},  // one block: float64 either way
		{5, 9, 1, nil, 0.01, 1e-12, 1e-12}, // one block: float64 either way
		{cholBlock, 200, 1, []int{3}, 0.01, 1e-11, 1e-6},
		{cholBlock + 1, 200, 10, nil, 0.01, 1e-10, 1e-6},
		{2*cholBlock + 37, 400, 30, []int{0, 100, 2*cholBlock + 36}, 1e-3, 1e-8, 1e-6},
		// rank-deficient, held up by eps: condition number about 1e9,
		// where float32 products keep no digit worth checking (GPTQ's
		// dampening keeps its Hessians far better conditioned): only that
		// the float32 path completes, finite and of the right size
		{300, 100, 100, []int{7}, 1e-5, 1e-6, 1},
	} {
		a := spd(r, tc.n, tc.k, tc.scale, tc.dead, tc.eps)
		for _, f32 := range []bool{false, true} {
			name := fmt.Sprintf("n%d-scale%g-eps%g-f32%v", tc.n, tc.scale, tc.eps, f32)
			n := tc.n
			var gemm gemmFunc
			if f32 {
				gemm = gemmLoop
				tc.relTol = tc.relTol32
			}
			want, ok := naiveChol(a, n)
			if !ok {
				t.Fatalf("%s: the naive Cholesky failed", name)
			}
			p := pack(a, n)
			if !cholPacked(p, n, gemm) {
				t.Fatalf("%s: cholPacked failed", name)
			}
			var maxL, errL float64
			for i := range n {
				for j := 0; j <= i; j++ {
					maxL = math.Max(maxL, math.Abs(want[i*n+j]))
					errL = math.Max(errL, math.Abs(p[rowOff(i)+j]-want[i*n+j]))
				}
			}
			if errL > tc.relTol*maxL {
				t.Errorf("%s: L differs from the naive one by %g (max |L| %g)", name, errL, maxL)
			}
			// gonum on the same matrix.
			g := append([]float64(nil), a...)
			tri, ok := lapack64.Potrf(blas64.Symmetric{N: n, Stride: n, Uplo: blas.Lower, Data: g})
			if !ok || !lapack64.Trtri(tri) {
				t.Fatalf("%s: gonum failed", name)
			}
			if !invLowerPacked(p, n, gemm) {
				t.Fatalf("%s: invLowerPacked failed", name)
			}
			var maxI, errI float64
			for i := range n {
				for j := 0; j <= i; j++ {
					maxI = math.Max(maxI, math.Abs(g[i*n+j]))
					errI = math.Max(errI, math.Abs(p[rowOff(i)+j]-g[i*n+j]))
				}
			}
			if errI > tc.relTol*maxI {
				t.Errorf("%s: L⁻¹ differs from gonum's by %g (max |L⁻¹| %g)", name, errI, maxI)
			}
			// L⁻¹·L = I, from the naive L.
			var errId float64
			for i := range n {
				for j := 0; j <= i; j++ {
					var s float64
					for q := j; q <= i; q++ {
						s += p[rowOff(i)+q] * want[q*n+j]
					}
					if i == j {
						s--
					}
					errId = math.Max(errId, math.Abs(s))
				}
			}
			if errId > tc.relTol*math.Max(1, maxI*maxL) {
				t.Errorf("%s: ‖L⁻¹·L − I‖max = %g", name, errId)
			}
			t.Logf("%s: |ΔL| %.2g of %.2g, |ΔL⁻¹| %.2g of %.2g, |L⁻¹L−I| %.2g", name, errL, maxL, errI, maxI, errId)
		}
	}
}

// TestCholPackedFails checks that a matrix that is not positive definite
// (an indefinite one, one with a NaN, one singular) is refused.
func TestCholPackedFails(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	n := 2*cholBlock + 5
	for _, tc := range []struct {
		name string
		edit func(a []float64)
	}{
		{"indefinite late", func(a []float64) { a[(n-3)*n+n-3] = -50 }},
		{"NaN", func(a []float64) { a[(cholBlock+2)*n+1] = math.NaN() }},
		{"singular", func(a []float64) {
			for j := range n { // row and column 150 = row and column 149
				a[150*n+j], a[j*n+150] = a[149*n+j], a[j*n+149]
			}
			a[150*n+150] = a[149*n+149]
		}},
	} {
		a := spd(r, n, 400, 1, nil, 0)
		tc.edit(a)
		p := pack(a, n)
		if cholPacked(p, n, nil) {
			ok := true
			for i := range n {
				if d := p[rowOff(i)+i]; !(d > 1e-6) || math.IsNaN(d) {
					ok = false
				}
			}
			if ok {
				t.Errorf("%s: cholPacked succeeded", tc.name)
			}
		}
	}
	p := pack(spd(r, 10, 20, 1, nil, 0.1), 10)
	p[rowOff(4)+4] = 0
	if invLowerPacked(p, 10, nil) {
		t.Error("invLowerPacked inverted a matrix with a zero diagonal")
	}
}

// BenchmarkFactor times cholPacked then invLowerPacked, all float64 and
// with float32 products (gemmLoop, standing in for the pipeline's
// cpu.GemmF32: quant may not import a backend), against gonum's
// dpotrf then dtrtri (what Factorize ran before) on an n×n SPD matrix.
func BenchmarkFactor(b *testing.B) {
	n := 2048
	r := rand.New(rand.NewPCG(1, 1))
	a := spd(r, n, 64, 1, nil, 0.1)
	b.Run(fmt.Sprintf("packed-%d", n), func(b *testing.B) {
		for b.Loop() {
			p := pack(a, n)
			if !cholPacked(p, n, nil) || !invLowerPacked(p, n, nil) {
				b.Fatal("failed")
			}
		}
	})
	b.Run(fmt.Sprintf("packed-f32-products-%d", n), func(b *testing.B) {
		for b.Loop() {
			p := pack(a, n)
			if !cholPacked(p, n, gemmLoop) || !invLowerPacked(p, n, gemmLoop) {
				b.Fatal("failed")
			}
		}
	})
	b.Run(fmt.Sprintf("gonum-%d", n), func(b *testing.B) {
		for b.Loop() {
			g := append([]float64(nil), a...)
			tri, ok := lapack64.Potrf(blas64.Symmetric{N: n, Stride: n, Uplo: blas.Lower, Data: g})
			if !ok || !lapack64.Trtri(tri) {
				b.Fatal("failed")
			}
		}
	})
}
