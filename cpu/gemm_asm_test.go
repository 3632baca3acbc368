package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// The tests here run every GEMM on every kernel set the processor
// supports (generic, AVX2, AVX-VNNI, AVX-512, AVX-512 VNNI on amd64; only
// generic elsewhere and under the noasm tag), against naive loops.

// forKernels runs fn under each kernel set.
func forKernels(t *testing.T, fn func(t *testing.T)) {
	for _, set := range cpu.KernelSets() {
		t.Run(set, func(t *testing.T) {
			defer cpu.UseKernelSet(set)()
			fn(t)
		})
	}
}

// gemmSizes are m, n, k triples around every tile edge (the kernels'
// rows of 6 and 14 and columns of 16 and 32, the 4-step words of k, the
// blocks of k) and random ones in [1, 70].
func gemmSizes(rnd *rand.Rand, random int) [][3]int {
	edges := []int{1, 5, 6, 7, 13, 14, 15, 16, 17, 31, 32, 33, 63, 65}
	var s [][3]int
	for _, m := range edges {
		for _, n := range edges {
			s = append(s, [3]int{m, n, 1 + (m*7+n*13)%70})
		}
	}
	for _, k := range []int{1, 2, 3, 4, 5, 63, 64, 65, 255, 257, 1023, 1025} {
		s = append(s, [3]int{29, 47, k})
	}
	for range random {
		s = append(s, [3]int{1 + rnd.IntN(70), 1 + rnd.IntN(70), 1 + rnd.IntN(70)})
	}
	// Several blocks of k, and a k that is not a multiple of 4 or 64.
	s = append(s, [3]int{33, 70, 4099}, [3]int{15, 17, 4099}, [3]int{70, 65, 2053})
	// Rows a multiple of 4 KiB long (the float32 GEMM copies A then).
	s = append(s, [3]int{43, 70, 2048}, [3]int{15, 33, 1024}, [3]int{200, 40, 1024})
	// A prefill's shape: fewer rows in A than in B, so that A is packed
	// and B read in place (with k unblocked), over several tasks.
	s = append(s, [3]int{130, 301, 577}, [3]int{66, 700, 1536})
	// A decode step's GEMV: rows of B in many chunks, the last partial.
	s = append(s, [3]int{1, 1001, 577}, [3]int{2, 515, 64})
	// One side of at most four rows (the dot kernels), with k around
	// their vectors of 16 and 64.
	for _, k := range []int{1, 15, 16, 17, 63, 64, 65, 128, 1000, 4099} {
		s = append(s, [3]int{1 + k%4, 37, k}, [3]int{61, 1 + k%3, k})
	}
	return s
}

// guarded returns a slice of n elements inside a larger one whose other
// elements hold g, and a check that they still do.
func guarded[T comparable](n int, g T) ([]T, func(t *testing.T, what string)) {
	const pad = 64
	all := make([]T, n+2*pad)
	for i := range all {
		all[i] = g
	}
	check := func(t *testing.T, what string) {
		t.Helper()
		for i, v := range all {
			if (i < pad || i >= pad+n) && v != g {
				t.Fatalf("%s: wrote outside C at offset %d", what, i-pad)
			}
		}
	}
	return all[pad : pad+n : pad+n], check
}

func TestGemmS8Kernels(t *testing.T) {
	forKernels(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(1, 1))
		for _, sz := range gemmSizes(rnd, 150) {
			m, n, k := sz[0], sz[1], sz[2]
			a, b := randS8(rnd, m*k), randS8(rnd, n*k)
			a0, b0 := slices.Clone(a), slices.Clone(b)
			c, check := guarded[int32](m*n, 0x5a5a5a5a)
			cpu.GemmS8S32(m, n, k, a, b, c)
			name := fmt.Sprintf("%dx%dx%d", m, n, k)
			check(t, name)
			checkS8(t, m, n, k, a, b, c)
			if !slices.Equal(a, a0) || !slices.Equal(b, b0) {
				t.Fatalf("%s: inputs modified", name)
			}
		}
	})
}

// TestGemmS8Extremes fills A and B with the extreme int8 values, where a
// sum reaches k·2^14 and VPMADDUBSW-style int16 pairs would saturate.
func TestGemmS8Extremes(t *testing.T) {
	fills := []struct {
		name string
		a, b func(i int) int8
	}{
		{"-128·-128", func(int) int8 { return -128 }, func(int) int8 { return -128 }},
		{"127·127", func(int) int8 { return 127 }, func(int) int8 { return 127 }},
		{"-128·127", func(int) int8 { return -128 }, func(int) int8 { return 127 }},
		{"mixed", func(i int) int8 { return [...]int8{-128, 127, -128, -128, 127}[i%5] },
			func(i int) int8 { return [...]int8{-128, -128, 127}[i%3] }},
		{"zero·-128", func(int) int8 { return 0 }, func(int) int8 { return -128 }},
	}
	forKernels(t, func(t *testing.T) {
		for _, f := range fills {
			for _, sz := range [][3]int{{17, 33, 4099}, {14, 32, 4096}, {6, 16, 2}, {65, 70, 255}, {5, 40, 1}, {1, 33, 4099}, {9, 4, 200},
				// The dot kernels (m ≤ 4), k around their 16 steps.
				{1, 7, 16}, {2, 9, 15}, {3, 5, 17}, {4, 37, 4099}, {4, 6, 1}, {3, 11, 4096}} {
				m, n, k := sz[0], sz[1], sz[2]
				a, b := make([]int8, m*k), make([]int8, n*k)
				for i := range a {
					a[i] = f.a(i)
				}
				for i := range b {
					b[i] = f.b(i)
				}
				c := make([]int32, m*n)
				cpu.GemmS8S32(m, n, k, a, b, c)
				t.Run(f.name, func(t *testing.T) { checkS8(t, m, n, k, a, b, c) })
			}
		}
	})
}

// TestGemmS8KernelsWrap runs sums past 2^31, which wrap as the int32 loop
// GemmS8S32 documents does, through the SIMD tiles.
func TestGemmS8KernelsWrap(t *testing.T) {
	if testing.Short() {
		t.Skip("long k")
	}
	const k = 140001 // 140001·2^14 > 2^31, and not a multiple of 4
	for _, mn := range [][2]int{{15, 33}, {2, 7}} {
		m, n := mn[0], mn[1]
		a, b := make([]int8, m*k), make([]int8, n*k)
		for i := range a {
			a[i] = -128
		}
		for i := range b {
			b[i] = [...]int8{-128, 127, -128, 1}[i/k%4]
		}
		forKernels(t, func(t *testing.T) {
			c := make([]int32, m*n)
			cpu.GemmS8S32(m, n, k, a, b, c)
			checkS8(t, m, n, k, a, b, c)
		})
	}
}

// TestGemmS8KernelsEpilogue holds every epilogue and output type of the
// SIMD kernels to the generic kernels, bit for bit (TestGemmS8Epilogue
// holds those to the documented arithmetic).
func TestGemmS8KernelsEpilogue(t *testing.T) {
	rnd := rand.New(rand.NewPCG(2, 2))
	sizes := [][3]int{{5, 5, 9}, {6, 16, 8}, {14, 32, 64}, {33, 7, 100}, {70, 45, 257}, {100, 3, 33}, {2, 50, 70}, {45, 4, 130}, {9, 161, 3}}
	eps := func(m, n, k int) []*backend.Epilogue {
		rs, cs, bias, off := make([]float32, m), make([]float32, n), make([]float32, n), make([]int32, n)
		for i := range rs {
			rs[i] = float32(rnd.Float64()) / float32(20*k)
		}
		for j := range cs {
			cs[j] = 0.5 + float32(rnd.Float64())
			bias[j] = float32(rnd.NormFloat64())
			off[j] = int32(rnd.IntN(1<<20)) - 1<<19
		}
		// Adversarial values: infinities, NaN (whose sign and payload the
		// outputs must keep as the Go loop does), zeros of both signs,
		// subnormals, huge scales, offsets that wrap.
		specials := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
			-float32(math.NaN()), 0x1p-149, -3e38, 0, float32(math.Copysign(0, -1)), -1, 1e-3}
		ars, acs, abias, aoff := make([]float32, m), make([]float32, n), make([]float32, n), make([]int32, n)
		halves := make([]float32, n)
		for j := range halves {
			halves[j] = [...]float32{0.5, -0.5, 1.5, -1.5}[j%4]
		}
		for i := range ars {
			ars[i] = specials[(i*7)%len(specials)]
		}
		for j := range acs {
			acs[j] = specials[(j*3+1)%len(specials)]
			abias[j] = specials[(j*5+2)%len(specials)]
			aoff[j] = [...]int32{math.MaxInt32, math.MinInt32, -1, 0}[j%4]
		}
		return []*backend.Epilogue{
			nil,
			{ColOffset: off},
			{RowScale: rs, ColScale: cs, Bias: bias, ReLU: true, OutScale: 0.05, OutZeroPoint: 3},
			{ColOffset: off, RowScale: rs[:1], ColScale: cs[:1], OutScale: 0.2},
			{RowScale: rs, Bias: bias, OutScale: 1e-3, OutZeroPoint: -128},
			{ColScale: cs, OutScale: 7},
			{ColOffset: aoff, RowScale: ars, ColScale: acs, Bias: abias, ReLU: true, OutScale: 0.5, OutZeroPoint: 100},
			{ColOffset: aoff, RowScale: ars, ColScale: acs, Bias: abias, OutScale: 1e-30, OutZeroPoint: -7},
			{RowScale: ars, ColScale: acs[:1], OutScale: 3e38},
			// For the int8 output: quotients that are ties at .5 (odd sums
			// over 2, sums plus a bias of ±0.5 or ±1.5 over 1), quotients
			// that clamp, the zero points at both ends and outside the
			// codes, specials with and without ReLU, a subnormal scale.
			{OutScale: 2, OutZeroPoint: 127},
			{OutScale: 2, OutZeroPoint: -128, ReLU: true},
			{Bias: halves, OutScale: 1},
			{Bias: halves, ReLU: true, OutScale: 1, OutZeroPoint: -1},
			{ColOffset: off, RowScale: rs, ColScale: cs, Bias: bias, OutScale: 0.01, OutZeroPoint: 127},
			{ColOffset: aoff, RowScale: ars, ColScale: acs, Bias: abias, OutScale: 0.5, OutZeroPoint: 127},
			{ColOffset: aoff, RowScale: ars, ColScale: acs, Bias: abias, ReLU: true, OutScale: 2, OutZeroPoint: -128},
			{RowScale: ars, ColScale: cs, Bias: abias, ReLU: true, OutScale: 0x1p-149},
			{Bias: halves, OutScale: 1, OutZeroPoint: 300},
			{ColScale: acs, ReLU: true, OutScale: 1, OutZeroPoint: -1000},
		}
	}
	forKernels(t, func(t *testing.T) {
		for _, sz := range sizes {
			m, n, k := sz[0], sz[1], sz[2]
			a, b := randS8(rnd, m*k), randS8(rnd, n*k)
			for e, ep := range eps(m, n, k) {
				outs := []func() any{
					func() any { return make([]int32, m*n) },
					func() any { return make([]float32, m*n) },
					func() any { return make([]int8, m*n) },
				}
				for _, mk := range outs {
					got, want := mk(), mk()
					errGot := cpu.GemmS8(m, n, k, a, b, got, ep)
					restore := cpu.ForceGeneric(true)
					errWant := cpu.GemmS8(m, n, k, a, b, want, ep)
					restore()
					if (errGot == nil) != (errWant == nil) {
						t.Fatalf("%dx%dx%d epilogue %d %T: error %v, generic %v", m, n, k, e, got, errGot, errWant)
					}
					if !sameBits(got, want) {
						t.Fatalf("%dx%dx%d epilogue %d %T: differs from the generic kernels", m, n, k, e, got)
					}
					if got, ok := got.([]int8); ok && errGot == nil {
						// The int8 codes are quant.QuantizeValue of the
						// float32 outputs.
						y := make([]float32, m*n)
						if err := cpu.GemmS8(m, n, k, a, b, y, ep); err != nil {
							t.Fatal(err)
						}
						for q, v := range y {
							if w := int8(quant.QuantizeValue(v, ep.OutScale, ep.OutZeroPoint, -128, 127)); got[q] != w {
								t.Fatalf("%dx%dx%d epilogue %d: C[%d] = %d from %v, want %d", m, n, k, e, q, got[q], v, w)
							}
						}
					}
				}
			}
		}
	})
}

// sameBits reports whether two outputs hold the same bits, taking any
// two NaNs as equal: where two NaNs meet (a NaN scale times a NaN, a NaN
// bias), which one survives depends on the order of the operands, which
// the compiler may swap (it does under -race), so the Go loop itself
// gives no fixed NaN.
func sameBits(x, y any) bool {
	switch x := x.(type) {
	case []int32:
		return slices.Equal(x, y.([]int32))
	case []int8:
		return slices.Equal(x, y.([]int8))
	case []float32:
		y := y.([]float32)
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) && !(x[i] != x[i] && y[i] != y[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func TestGemmF32Kernels(t *testing.T) {
	forKernels(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(1, 1))
		for _, sz := range gemmSizes(rnd, 100) {
			m, n, k := sz[0], sz[1], sz[2]
			a, b := randF32(rnd, m*k), randF32(rnd, n*k)
			a0, b0 := slices.Clone(a), slices.Clone(b)
			c, check := guarded(m*n, float32(-7.25))
			cpu.GemmF32(m, n, k, a, b, c)
			name := fmt.Sprintf("%dx%dx%d", m, n, k)
			check(t, name)
			checkF32(t, name, m, n, k, a, b, c)
			if !slices.Equal(a, a0) || !slices.Equal(b, b0) {
				t.Fatalf("%s: inputs modified", name)
			}
		}
	})
}

// checkF32 compares c with A·Bᵀ in float64 within the bound the
// conformance suite allows for k-step sums.
func checkF32(t *testing.T, name string, m, n, k int, a, b, c []float32) {
	t.Helper()
	for i := range m {
		for j := range n {
			var s, abs float64
			for p := range k {
				v := float64(a[i*k+p]) * float64(b[j*k+p])
				s += v
				abs += math.Abs(v)
			}
			if d := math.Abs(float64(c[i*n+j]) - s); !(d <= backendtest.GemmF32Bound(k, abs)) {
				t.Fatalf("%s: C[%d,%d] = %v, want %v", name, i, j, c[i*n+j], s)
			}
		}
	}
}

// TestGemmF32KernelsNonFinite checks that NaN and Inf reach exactly the
// outputs IEEE arithmetic says, in and out of whole tiles.
func TestGemmF32KernelsNonFinite(t *testing.T) {
	forKernels(t, func(t *testing.T) {
		m, n, k := 30, 40, 300
		a, b := make([]float32, m*k), make([]float32, n*k)
		for i := range a {
			a[i] = 1
		}
		for i := range b {
			b[i] = 1
		}
		a[3*k+250] = float32(math.NaN())  // row 3: NaN
		a[29*k+7] = float32(math.Inf(1))  // row 29: +Inf, except NaN in column 39
		b[39*k+8] = float32(math.Inf(-1)) // column 39: -Inf, and +Inf + -Inf = NaN in row 29
		c := make([]float32, m*n)
		cpu.GemmF32(m, n, k, a, b, c)
		for i := range m {
			for j := range n {
				v := c[i*n+j]
				var ok bool
				switch {
				case i == 3 || (i == 29 && j == 39):
					ok = math.IsNaN(float64(v))
				case i == 29:
					ok = math.IsInf(float64(v), 1)
				case j == 39:
					ok = math.IsInf(float64(v), -1)
				default:
					ok = v == float32(k)
				}
				if !ok {
					t.Fatalf("C[%d,%d] = %v", i, j, v)
				}
			}
		}
	})
}

// TestConformanceKernels runs the conformance suite on every kernel set
// but the fastest, which TestConformance runs. Short runs (make test runs
// them under the race detector, where the suite takes minutes) leave it
// to the full run and to make test-noasm.
func TestConformanceKernels(t *testing.T) {
	if testing.Short() {
		t.Skip("the full run covers every kernel set")
	}
	sets := cpu.KernelSets()
	for _, set := range sets[:max(len(sets)-1, 1)] {
		t.Run(set, func(t *testing.T) {
			defer cpu.UseKernelSet(set)()
			backendtest.Run(t, cpu.New())
		})
	}
}

func TestGemmKernelsNamed(t *testing.T) {
	t.Log(cpu.GemmKernels())
	defer cpu.ForceGeneric(true)()
	if got := cpu.GemmKernels(); got != "f32 generic 1x7, int8 generic 1x14" {
		t.Errorf("with ForceGeneric, GemmKernels() = %q", got)
	}
}

// TestGemmKernelsParallel runs GEMMs large enough for the SIMD paths to
// split over three goroutines (the smaller ones above run on one), with
// partial panels on both sides.
func TestGemmKernelsParallel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(6, 6))
	prev := cpu.SetThreads(3)
	defer cpu.SetThreads(prev)
	// Tiles, and the dot kernels with the short side first and second.
	for _, sz := range [][3]int{{321, 301, 600}, {3, 1001, 4100}, {2000, 3, 2100}} {
		m, n, k := sz[0], sz[1], sz[2]
		name := fmt.Sprintf("%dx%dx%d", m, n, k)
		af, bf := randF32(rnd, m*k), randF32(rnd, n*k)
		a8, b8 := randS8(rnd, m*k), randS8(rnd, n*k)
		forKernels(t, func(t *testing.T) {
			cf, check := guarded(m*n, float32(3.5))
			cpu.GemmF32(m, n, k, af, bf, cf)
			check(t, name)
			checkF32(t, name, m, n, k, af, bf, cf)
			c32, check32 := guarded[int32](m*n, 77)
			cpu.GemmS8S32(m, n, k, a8, b8, c32)
			check32(t, name)
			checkS8(t, m, n, k, a8, b8, c32)
		})
	}
}

// BenchmarkGemmKernelSets runs the 1024³ GEMMs on each kernel set the
// processor supports (as a processor with fewer extensions would).
func BenchmarkGemmKernelSets(b *testing.B) {
	const n = 1024
	rnd := rand.New(rand.NewPCG(1, 1))
	af, bf, cf := randF32(rnd, n*n), randF32(rnd, n*n), make([]float32, n*n)
	a8, b8, c32 := randS8(rnd, n*n), randS8(rnd, n*n), make([]int32, n*n)
	for _, set := range cpu.KernelSets() {
		b.Run(fmt.Sprintf("%s/f32/%d", set, n), func(b *testing.B) {
			defer cpu.UseKernelSet(set)()
			for b.Loop() {
				cpu.GemmF32(n, n, n, af, bf, cf)
			}
			b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("%s/s32/%d", set, n), func(b *testing.B) {
			defer cpu.UseKernelSet(set)()
			for b.Loop() {
				cpu.GemmS8S32(n, n, n, a8, b8, c32)
			}
			b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
		})
	}
}
