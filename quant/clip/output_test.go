package clip

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// outputError is Σ_t (Σ_j x[t,j]·(w[r,j] − ŵ[r,j]))² over the columns
// [j0, j1) of row r, from the input rows themselves, in float64.
func outputError(x []float32, n, cols int, w, q []float32, r, j0, j1 int) float64 {
	var e float64
	for t := range n {
		var d float64
		for j := j0; j < j1; j++ {
			d += float64(x[t*cols+j]) * (float64(w[r*cols+j]) - float64(q[r*cols+j]))
		}
		e += d * d
	}
	return e
}

// TestFitOutputAgainstBruteForce checks FitOutput, per group and per
// channel, symmetric and not, against a search written here: for each
// row and group, every ratio of the grid, its scale from ScaleZeroPoint,
// the output error from the input rows (not the Gram); FitOutput's
// choice must reach the least error (to float32's precision: its GEMM
// is float32), and never be worse than min-max. With the plain Go GEMM
// and cpu's; 40 rows make two GEMMs a group.
func TestFitOutputAgainstBruteForce(t *testing.T) {
	for _, gemm := range gemms {
		t.Run(gemm.name, func(t *testing.T) { testFitOutputAgainstBruteForce(t, gemm.f) })
	}
}

// gemms are the GEMMs FitOutput's tests run it with: the default and
// one that sums in another order (by halves of k), as a SIMD kernel may.
// (job/llmq runs the split test with cpu.GemmF32Serial, which quant may
// not import.)
var gemms = []struct {
	name string
	f    func(m, n, k int, a, b, c []float32)
}{{"go", nil}, {"halves", gemmHalves}}

func gemmHalves(m, n, k int, a, b, c []float32) {
	h := k / 2
	for i := range m {
		for j := range n {
			var s0, s1 float32
			for p := range h {
				s0 += a[i*k+p] * b[j*k+p]
			}
			for p := h; p < k; p++ {
				s1 += a[i*k+p] * b[j*k+p]
			}
			c[i*n+j] = s0 + s1
		}
	}
}

func testFitOutputAgainstBruteForce(t *testing.T, gemm func(m, n, k int, a, b, c []float32)) {
	rng := rand.New(rand.NewPCG(5, 7))
	rows, cols, n := 40, 40, 50
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
		if rng.IntN(15) == 0 {
			w[i] *= 4
		}
	}
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * (1 + float64(i%cols%5))) // channels of unequal size
	}
	for _, name := range []string{"int4-sym-group16", "int4-asym-group16", "int4-sym-channel", "int4-sym-group8"} {
		s, err := quant.ParseScheme(name)
		if err != nil {
			t.Fatal(err)
		}
		group := cols
		if s.Granularity == quant.PerGroup {
			group = s.GroupSize
		}
		g, err := NewGram(x, n, cols, group)
		if err != nil {
			t.Fatal(err)
		}
		p, err := FitOutput(s, w, rows, cols, g, Options{Gemm: gemm})
		if err != nil {
			t.Fatal(err)
		}
		q := dequant(t, w, p)
		mm, err := quant.FitMinMax(s, w, []int{rows, cols})
		if err != nil {
			t.Fatal(err)
		}
		qm := dequant(t, w, mm)
		clipped := 0
		for r := range rows {
			for j0 := 0; j0 < cols; j0 += group {
				j1 := min(j0+group, cols)
				got := outputError(x, n, cols, w, q, r, j0, j1)
				lo, hi := float32(0), float32(0)
				for _, v := range w[r*cols+j0 : r*cols+j1] {
					lo, hi = min(lo, v), max(hi, v)
				}
				best := math.Inf(1)
				qb := make([]float32, len(w))
				for i := 0; i <= OutputSteps; i++ {
					ratio := 1 - float64(i)/OutputSteps*(1-OutputMinRatio)
					sc, zp := s.ScaleZeroPoint(float32(ratio*float64(lo)), float32(ratio*float64(hi)))
					for j := j0; j < j1; j++ {
						qb[r*cols+j] = quant.DequantizeValue(quant.QuantizeValue(w[r*cols+j], sc, zp, s.QMin(), s.QMax()), sc, zp)
					}
					best = math.Min(best, outputError(x, n, cols, w, qb, r, j0, j1))
				}
				if math.Abs(got-best) > 1e-6*best {
					t.Errorf("%s: row %d group %d: output error %g, brute force %g", name, r, j0/group, got, best)
				}
				if m := outputError(x, n, cols, w, qm, r, j0, j1); got > m*(1+1e-6) {
					t.Errorf("%s: row %d group %d: output error %g above min-max's %g", name, r, j0/group, got, m)
				} else if got < m {
					clipped++
				}
			}
		}
		if clipped == 0 {
			t.Errorf("%s: no group clipped", name)
		}
	}
}

// TestGramScaled checks Gram.Scaled against the Gram of the divided rows.
func TestGramScaled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, cols := 9, 11
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	s := make([]float32, cols)
	xs := make([]float32, len(x))
	for j := range s {
		s[j] = float32(0.5 + rng.Float64())
	}
	for i, v := range x {
		xs[i] = v / s[i%cols]
	}
	g, err := NewGram(x, n, cols, 4)
	if err != nil {
		t.Fatal(err)
	}
	want, err := NewGram(xs, n, cols, 4)
	if err != nil {
		t.Fatal(err)
	}
	got := g.Scaled(s)
	for b, blk := range want.Blocks {
		for i, v := range blk {
			if math.Abs(got.Blocks[b][i]-v) > 1e-5*(1+math.Abs(v)) {
				t.Fatalf("block %d entry %d: %g, want %g", b, i, got.Blocks[b][i], v)
			}
		}
	}
}

func dequant(t *testing.T, w []float32, p *quant.Params) []float32 {
	t.Helper()
	codes := make([]byte, p.Scheme.PackedLen(len(w)))
	y := make([]float32, len(w))
	if err := quant.Quantize(codes, w, p); err != nil {
		t.Fatal(err)
	}
	if err := quant.Dequantize(y, codes, p); err != nil {
		t.Fatal(err)
	}
	return y
}

// TestFitOutputSplit fits a weight of many rows at once, which spreads
// its runs over goroutines when there are several cores, and row by row
// (one goroutine each call): every row's scales must be the same, with
// each GEMM (a row's errors do not depend on the rows beside it in E).
func TestFitOutputSplit(t *testing.T) {
	for _, gemm := range gemms {
		t.Run(gemm.name, func(t *testing.T) { testFitOutputSplit(t, gemm.f) })
	}
}

func testFitOutputSplit(t *testing.T, gemm func(m, n, k int, a, b, c []float32)) {
	rng := rand.New(rand.NewPCG(9, 1))
	rows, cols, n, group := 300, 96, 40, 32
	w, x := make([]float32, rows*cols), make([]float32, n*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	g, err := NewGram(x, n, cols, group)
	if err != nil {
		t.Fatal(err)
	}
	s := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: group}
	all, err := FitOutput(s, w, rows, cols, g, Options{Gemm: gemm})
	if err != nil {
		t.Fatal(err)
	}
	per := cols / group
	for r := range rows {
		one, err := FitOutput(s, w[r*cols:(r+1)*cols], 1, cols, g, Options{Gemm: gemm})
		if err != nil {
			t.Fatal(err)
		}
		for k := range per {
			if one.Scales[k] != all.Scales[r*per+k] || one.ZeroPoints[k] != all.ZeroPoints[r*per+k] {
				t.Fatalf("row %d group %d: scale %g alone, %g among all rows", r, k, one.Scales[k], all.Scales[r*per+k])
			}
		}
	}
}

// TestRoundTripErrors checks roundTripErrors against quant.QuantizeValue
// and DequantizeValue, with values past both ends of the range, ties and
// zero points.
func TestRoundTripErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	v := make([]float32, 500)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 3)
	}
	v[0], v[1], v[2] = 0.25, -0.75, 2.5 // ties at scale 0.5 and 1
	e := make([]float32, len(v))
	for _, c := range []struct {
		scale          float32
		zp, qmin, qmax int32
	}{{0.5, 0, -8, 7}, {1, 0, -8, 7}, {0.37, 3, 0, 15}, {0.05, -2, -128, 127}} {
		roundTripErrors(e, v, c.scale, c.zp, c.qmin, c.qmax)
		for j, x := range v {
			want := float32(float64(x) - float64(quant.DequantizeValue(quant.QuantizeValue(x, c.scale, c.zp, c.qmin, c.qmax), c.scale, c.zp)))
			if e[j] != want {
				t.Fatalf("%+v: value %g: error %g, want %g", c, x, e[j], want)
			}
		}
	}
}
