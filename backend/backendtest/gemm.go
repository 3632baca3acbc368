package backendtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/quant"
)

// gemmSizes are the m, n, k of the GEMM tests: empty, unit, odd, long and
// thin, and one large enough for every blocking level.
var gemmSizes = [][3]int{
	{0, 0, 0}, {0, 5, 3}, {4, 0, 3}, {4, 5, 0},
	{1, 1, 1}, {1, 7, 1}, {7, 1, 7}, {7, 7, 7}, {2, 3, 33}, {33, 33, 33},
	{67, 45, 129}, {1, 67, 45}, {67, 1, 45}, {67, 5, 33}, {130, 13, 20}, {5, 9, 257}, {3, 17, 1000},
	{512, 384, 700},
}

func testGemmF32(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, sz := range gemmSizes {
		m, n, k := sz[0], sz[1], sz[2]
		a, bt := randNormF32(rnd, m*k, 1), randNormF32(rnd, n*k, 1)
		t.Run(sizeName(m, n, k), func(t *testing.T) { checkGemmF32(t, b, m, n, k, a, bt) })
	}

	// Mixed magnitudes: the bound is relative to Σ|a·b|, not to |c|.
	t.Run("mixed", func(t *testing.T) {
		m, n, k := 19, 23, 301
		a, bt := randNormF32(rnd, m*k, 1), randNormF32(rnd, n*k, 1)
		for i := range a {
			a[i] = float32(math.Ldexp(float64(a[i]), rnd.IntN(41)-20))
		}
		checkGemmF32(t, b, m, n, k, a, bt)
	})

	const m, n, k = 9, 11, 37
	fill := func(v float32, l int) []float32 {
		s := make([]float32, l)
		for i := range s {
			s[i] = v
		}
		return s
	}
	adversarial := []struct {
		name  string
		a, bt []float32
	}{
		{"zero", fill(0, m*k), randNormF32(rnd, n*k, 1)},
		{"negzero", fill(float32(math.Copysign(0, -1)), m*k), randNormF32(rnd, n*k, 1)},
		{"equal", fill(1.5, m*k), fill(-3, n*k)},
		// Products near 1e36 and sums near 1e37: large but no overflow.
		{"huge", randNormF32(rnd, m*k, 1e18), randNormF32(rnd, n*k, 1e18)},
		// Products of 1e-20 and 1e-22 are subnormal.
		{"tiny", randNormF32(rnd, m*k, 1e-20), randNormF32(rnd, n*k, 1e-22)},
		{"subnormal", randNormF32(rnd, m*k, 1e-41), randNormF32(rnd, n*k, 1)},
	}
	for _, tc := range adversarial {
		t.Run(tc.name, func(t *testing.T) { checkGemmF32(t, b, m, n, k, tc.a, tc.bt) })
	}

	// NaN and Inf propagate: a NaN poisons its row, an Inf makes its row
	// infinite except where it meets a zero (NaN) or an opposite Inf (NaN).
	t.Run("nonfinite", func(t *testing.T) {
		a, bt := randNormF32(rnd, m*k, 1), randNormF32(rnd, n*k, 1)
		inf := float32(math.Inf(1))
		a[1*k+3] = float32(math.NaN())
		a[4*k+5] = inf
		a[6*k+7] = -inf
		bt[2*k+5] = 0    // Inf·0 at (4, 2)
		bt[8*k+7] = -inf // -Inf·-Inf at (6, 8)
		bt[8*k+9] = -inf // and -Inf·b elsewhere in column 8
		a[6*k+9] = 1     // (6, 8) now also sees -Inf·1: +Inf + -Inf = NaN
		bt[10*k+0] = float32(math.NaN())
		checkGemmF32(t, b, m, n, k, a, bt)
	})

	t.Run("errors", func(t *testing.T) {
		a := upload(t, b, make([]float32, 6))
		bt := upload(t, b, make([]float32, 6))
		c := upload(t, b, make([]float32, 4))
		s8 := upload(t, b, make([]int8, 6))
		mustFail(t, "GemmF32 with a short A", func() error { return b.GemmF32(2, 2, 4, a, bt, c) })
		mustFail(t, "GemmF32 with a wrong C", func() error { return b.GemmF32(2, 3, 3, a, bt, c) })
		mustFail(t, "GemmF32 with an s8 A", func() error { return b.GemmF32(2, 2, 3, s8, bt, c) })
		mustFail(t, "GemmF32 with negative m", func() error { return b.GemmF32(-2, 2, -3, a, bt, c) })
	})
}

// checkGemmF32 runs GemmF32 on a and bt and checks it against a float64
// reference within GemmF32Bound.
func checkGemmF32(t *testing.T, b backend.Backend, m, n, k int, a, bt []float32) {
	t.Helper()
	ab, bb := upload(t, b, a), upload(t, b, bt)
	c := newOutput[float32](t, b, m*n)
	if err := b.GemmF32(m, n, k, ab, bb, c.mid); err != nil {
		t.Fatalf("GemmF32(%d, %d, %d): %v", m, n, k, err)
	}
	got := c.read(t, b)
	checkUnchanged(t, b, ab, a, "A")
	checkUnchanged(t, b, bb, bt, "B")
	bad := mismatches{t: t}
	for i := range m {
		for j := range n {
			ref, abs := dot64(a[i*k:(i+1)*k], bt[j*k:(j+1)*k])
			g := got[i*n+j]
			if !closeTo(g, ref, GemmF32Bound(k, abs)) {
				if !bad.add("C[%d,%d] = %v, want %v within %.3g", i, j, g, ref, GemmF32Bound(k, abs)) {
					return
				}
			}
		}
	}
	bad.done("GemmF32")
}

// dot64 is the dot product of x and y in float64, where the products of
// float32s are exact, and the sum of their magnitudes.
func dot64(x, y []float32) (dot, abs float64) {
	for p := range x {
		v := float64(x[p]) * float64(y[p])
		dot += v
		abs += math.Abs(v)
	}
	return dot, abs
}

// closeTo reports whether got is ref within bound; a NaN or infinite ref
// must be matched exactly in kind.
func closeTo(got float32, ref, bound float64) bool {
	switch {
	case math.IsNaN(ref):
		return got != got
	case math.IsInf(ref, 0):
		return float64(got) == ref
	}
	return math.Abs(float64(got)-ref) <= bound
}

func randNormF32(rnd *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rnd.NormFloat64() * scale)
	}
	return s
}

func randS8(rnd *rand.Rand, n int) []int8 {
	s := make([]int8, n)
	for i := range s {
		s[i] = int8(rnd.IntN(256) - 128)
	}
	return s
}

func testGemmS8(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, sz := range gemmSizes {
		m, n, k := sz[0], sz[1], sz[2]
		a, bt := randS8(rnd, m*k), randS8(rnd, n*k)
		t.Run(sizeName(m, n, k), func(t *testing.T) { checkGemmS8All(t, b, rnd, m, n, k, a, bt) })
	}
	fill := func(v int8, l int) []int8 {
		s := make([]int8, l)
		for i := range s {
			s[i] = v
		}
		return s
	}
	alternate := func(l int) []int8 {
		s := make([]int8, l)
		for i := range s {
			s[i] = [2]int8{-128, 127}[i%2]
		}
		return s
	}
	// The largest sums: every product 128·128 over a long k.
	t.Run("extreme-3x9x3000", func(t *testing.T) {
		checkGemmS8All(t, b, rnd, 3, 9, 3000, fill(-128, 3*3000), fill(-128, 9*3000))
	})
	t.Run("extreme-mixed-5x16x2100", func(t *testing.T) {
		a := fill(-128, 5*2100)
		bt := alternate(16 * 2100)
		for j := range 8 { // rows of B alternately all -128 and all 127
			copy(bt[2*j*2100:(2*j+1)*2100], fill(-128, 2100))
			copy(bt[(2*j+1)*2100:(2*j+2)*2100], fill(127, 2100))
		}
		checkGemmS8All(t, b, rnd, 5, 16, 2100, a, bt)
	})
	t.Run("alternating-13x29x77", func(t *testing.T) {
		checkGemmS8All(t, b, rnd, 13, 29, 77, alternate(13*77), alternate(29*77))
	})
	t.Run("zero-6x6x6", func(t *testing.T) {
		checkGemmS8All(t, b, rnd, 6, 6, 6, fill(0, 36), randS8(rnd, 36))
	})

	t.Run("errors", func(t *testing.T) {
		a := upload(t, b, make([]int8, 6))
		bt := upload(t, b, make([]int8, 6))
		c := upload(t, b, make([]int32, 4))
		u8 := upload(t, b, make([]uint8, 4))
		f := upload(t, b, make([]float32, 6))
		mustFail(t, "GemmS8 with a short A", func() error { return b.GemmS8(2, 2, 4, a, bt, c, nil) })
		mustFail(t, "GemmS8 with a wrong C", func() error { return b.GemmS8(2, 3, 3, a, bt, c, nil) })
		mustFail(t, "GemmS8 with an f32 A", func() error { return b.GemmS8(2, 2, 3, f, bt, c, nil) })
		mustFail(t, "GemmS8 with a u8 C", func() error { return b.GemmS8(2, 2, 3, a, bt, u8, nil) })
		mustFail(t, "GemmS8 with 3 row scales for 2 rows", func() error {
			return b.GemmS8(2, 2, 3, a, bt, c, &backend.Epilogue{RowScale: []float32{1, 2, 3}})
		})
		mustFail(t, "GemmS8 with 1 bias for 2 columns", func() error {
			return b.GemmS8(2, 2, 3, a, bt, c, &backend.Epilogue{Bias: []float32{1}})
		})
	})
}

// checkGemmS8All computes the exact product once and checks every output
// type against it under a set of epilogues.
func checkGemmS8All(t *testing.T, b backend.Backend, rnd *rand.Rand, m, n, k int, a, bt []int8) {
	acc := make([]int32, m*n)
	for i := range m {
		for j := range n {
			var s int64
			for p := range k {
				s += int64(a[i*k+p]) * int64(bt[j*k+p])
			}
			if s != int64(int32(s)) {
				t.Fatalf("test bug: sum %d overflows int32", s)
			}
			acc[i*n+j] = int32(s)
		}
	}
	vec := func(l int, lo, hi float64) []float32 {
		s := make([]float32, l)
		for i := range s {
			s[i] = float32(lo + (hi-lo)*rnd.Float64())
		}
		return s
	}
	offsets := make([]int32, n)
	for j := range offsets {
		// Some offsets wrap the sum around int32.
		offsets[j] = [...]int32{0, 7, -12345, math.MaxInt32, math.MinInt32, int32(rnd.Uint32())}[j%6]
	}
	// Output scale so that about half the int8 outputs saturate.
	var amax float64
	for _, v := range acc {
		amax = max(amax, math.Abs(float64(v)))
	}
	outScale := float32(max(amax, 1) * 1e-3 / 64)
	rowScale, colScale := vec(m, 0.5e-3, 2e-3), vec(n, -1.5e-3, 2e-3)
	bias := vec(n, -0.05, 0.05)
	if amax > 0 {
		for j := range bias {
			bias[j] *= float32(amax * 1e-3)
		}
	}

	eps := []struct {
		name string
		ep   *backend.Epilogue
	}{
		{"none", nil},
		{"empty", &backend.Epilogue{}},
		{"offset", &backend.Epilogue{ColOffset: offsets}},
		{"scales", &backend.Epilogue{RowScale: rowScale, ColScale: colScale}},
		{"all", &backend.Epilogue{ColOffset: offsets[:n:n], RowScale: rowScale, ColScale: colScale, Bias: bias,
			OutScale: outScale, OutZeroPoint: -3}},
		{"one-scale-relu", &backend.Epilogue{RowScale: []float32{1.25e-3}, ColScale: []float32{-0.75}, Bias: bias,
			ReLU: true, OutScale: outScale, OutZeroPoint: 5}},
		{"relu-saturate", &backend.Epilogue{RowScale: rowScale, ColScale: colScale, ReLU: true,
			OutScale: outScale / 64, OutZeroPoint: -128}},
	}
	if m == 0 || n == 0 {
		eps = eps[:2]
	} else {
		eps = append(eps, struct {
			name string
			ep   *backend.Epilogue
		}{"ties", tieEpilogue(m, n, acc)})
	}
	for _, e := range eps {
		t.Run(e.name, func(t *testing.T) {
			if e.ep == nil || e.ep.OutScale == 0 {
				checkGemmS8(t, b, m, n, k, a, bt, acc, e.ep, backend.S32)
				checkGemmS8(t, b, m, n, k, a, bt, acc, e.ep, backend.F32)
				return
			}
			for _, dt := range []backend.DType{backend.S32, backend.F32, backend.S8} {
				checkGemmS8(t, b, m, n, k, a, bt, acc, e.ep, dt)
			}
		})
	}
}

// tieEpilogue gives an epilogue under which output (j mod m, j) of every
// column j lands exactly halfway between two int8 codes when the formula
// is evaluated step by step in float32, as documented: the scaled sum p is
// near ±38 and the bias cancels most of it, leaving y = (t+½)·OutScale.
// The scales are not powers of two, so their products round, and the
// rounding error of p is far larger than an ulp of y: a backend that fuses
// the multiply-add, or multiplies in another order or precision, moves
// such an output off the tie and, about half the time, to the other code.
func tieEpilogue(m, n int, acc []int32) *backend.Epilogue {
	const outScale = 0x1p-4
	rs := make([]float32, m)
	for i := range rs {
		rs[i] = float32(1 + 0.37e-3*float64(i%11+1))
	}
	cs, bias := make([]float32, n), make([]float32, n)
	for j := range n {
		i := j % m
		a := acc[i*n+j]
		if a == 0 {
			cs[j] = 1.1
			continue
		}
		cs[j] = float32(38.4 / (float64(a) * float64(rs[i])) * 1.0123457)
		p := float32(float32(float32(a)*rs[i]) * cs[j])
		// |p| is in [32, 64) with an ulp of 2^-18, and |tie·outScale| <
		// 4, so tie·outScale − p is a multiple of 2^-18 below 64 in
		// magnitude: exact in float32, and so is p + bias.
		tie := float64(j*37%121-60) + 0.5
		bias[j] = float32(tie*outScale - float64(p))
	}
	return &backend.Epilogue{RowScale: rs, ColScale: cs, Bias: bias, OutScale: outScale}
}

// checkGemmS8 runs GemmS8 with output type dt and checks it against acc
// put through the epilogue.
func checkGemmS8(t *testing.T, b backend.Backend, m, n, k int, a, bt []int8, acc []int32, ep *backend.Epilogue, dt backend.DType) {
	t.Helper()
	ab, bb := upload(t, b, a), upload(t, b, bt)
	epOrig := cloneEpilogue(ep)
	run := func(c backend.Buffer) {
		t.Helper()
		if err := b.GemmS8(m, n, k, ab, bb, c, ep); err != nil {
			t.Fatalf("GemmS8(%d, %d, %d) to %v: %v", m, n, k, dt, err)
		}
	}
	bad := mismatches{t: t}
	switch dt {
	case backend.S32:
		c := newOutput[int32](t, b, m*n)
		run(c.mid)
		got := c.read(t, b)
		for i := range m {
			for j := range n {
				if want := epilogueS32(acc[i*n+j], j, ep); got[i*n+j] != want {
					if !bad.add("s32 C[%d,%d] = %d, want %d", i, j, got[i*n+j], want) {
						return
					}
				}
			}
		}
	case backend.F32:
		c := newOutput[float32](t, b, m*n)
		run(c.mid)
		got := c.read(t, b)
		for i := range m {
			for j := range n {
				want, mag := epilogueF64(epilogueS32(acc[i*n+j], j, ep), i, j, ep)
				if g := got[i*n+j]; !closeTo(g, want, EpilogueF32Bound(mag)) {
					if !bad.add("f32 C[%d,%d] = %v, want %v within %.3g", i, j, g, want, EpilogueF32Bound(mag)) {
						return
					}
				}
			}
		}
	case backend.S8:
		c := newOutput[int8](t, b, m*n)
		run(c.mid)
		got := c.read(t, b)
		for i := range m {
			for j := range n {
				y := epilogueF32(epilogueS32(acc[i*n+j], j, ep), i, j, ep)
				want := int8(quant.QuantizeValue(y, ep.OutScale, ep.OutZeroPoint, -128, 127))
				if got[i*n+j] != want {
					if !bad.add("s8 C[%d,%d] = %d, want %d (y = %v)", i, j, got[i*n+j], want, y) {
						return
					}
				}
			}
		}
	}
	bad.done("GemmS8")
	checkUnchanged(t, b, ab, a, "A")
	checkUnchanged(t, b, bb, bt, "B")
	if !sameEpilogue(ep, epOrig) {
		t.Errorf("GemmS8 changed its epilogue")
	}
}

// epilogueS32 is acc + ColOffset[j], wrapping.
func epilogueS32(acc int32, j int, ep *backend.Epilogue) int32 {
	if ep != nil && ep.ColOffset != nil {
		return acc + ep.ColOffset[j]
	}
	return acc
}

// scales gives the row and column scale of output (i, j), 1 when absent.
func scales(i, j int, ep *backend.Epilogue) (rs, cs float32) {
	rs, cs = 1, 1
	if ep == nil {
		return rs, cs
	}
	if l := len(ep.RowScale); l > 0 {
		rs = ep.RowScale[min(i, l-1)]
	}
	if l := len(ep.ColScale); l > 0 {
		cs = ep.ColScale[min(j, l-1)]
	}
	return rs, cs
}

// epilogueF32 is the documented formula step by step in float32:
// float32(float32(a)·rs)·cs + bias, then ReLU. A nil Bias adds nothing (the
// sign of a zero is then kept; it does not change an int8 code).
func epilogueF32(a int32, i, j int, ep *backend.Epilogue) float32 {
	rs, cs := scales(i, j, ep)
	y := float32(float32(float32(a)*rs) * cs)
	if ep != nil && ep.Bias != nil {
		y = float32(y + ep.Bias[j])
	}
	if ep != nil && ep.ReLU {
		y = max(y, 0)
	}
	return y
}

// epilogueF64 is the formula evaluated exactly (in float64, where these
// products and the sum are exact enough for the bound), and the magnitude
// EpilogueF32Bound is relative to.
func epilogueF64(a int32, i, j int, ep *backend.Epilogue) (y, mag float64) {
	rs, cs := scales(i, j, ep)
	y = float64(a) * float64(rs) * float64(cs)
	mag = math.Abs(y)
	if ep != nil && ep.Bias != nil {
		y += float64(ep.Bias[j])
		mag += math.Abs(float64(ep.Bias[j]))
	}
	if ep != nil && ep.ReLU {
		y = max(y, 0)
	}
	return y, mag
}

func cloneEpilogue(ep *backend.Epilogue) *backend.Epilogue {
	if ep == nil {
		return nil
	}
	c := *ep
	c.ColOffset = slices.Clone(ep.ColOffset)
	c.RowScale = slices.Clone(ep.RowScale)
	c.ColScale = slices.Clone(ep.ColScale)
	c.Bias = slices.Clone(ep.Bias)
	return &c
}

func sameEpilogue(a, b *backend.Epilogue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.ColOffset, b.ColOffset) && slices.Equal(a.RowScale, b.RowScale) &&
		slices.Equal(a.ColScale, b.ColScale) && slices.Equal(a.Bias, b.Bias) &&
		a.ReLU == b.ReLU && a.OutScale == b.OutScale && a.OutZeroPoint == b.OutZeroPoint
}
