package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// TestSwiGLU checks swiglu, with the AVX2 kernel and with the Go twin,
// against silu(g)·u in float64 on lengths around the vector width (the
// masked tail), values where exp(-g) overflows or underflows, NaN and
// ±Inf, guard values after the output, and in place.
func TestSwiGLU(t *testing.T) {
	kernels(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(1, 1))
		edge := []float32{-88, -88.3, -88.4, -88.8, -89, -100, -1e30, 88, 89, 1e30, 20, -20, 1e-40, 0,
			float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
		for _, n := range []int{1, 3, 7, 8, 9, 15, 16, 17, 33, 100, 1536} {
			g, u := make([]float32, n), make([]float32, n)
			for i := range n {
				g[i] = float32(rnd.NormFloat64() * 4)
				u[i] = float32(rnd.NormFloat64())
				if i%3 == 0 {
					g[i] = edge[(i/3)%len(edge)]
				}
			}
			g0, u0 := slices.Clone(g), slices.Clone(u)
			buf := make([]float32, n+8)
			for i := range buf {
				buf[i] = guard
			}
			dst := buf[:n]
			swiglu(dst, g, u)
			check := func(what string, got []float32) {
				t.Helper()
				for i := range n {
					gv, uv := float64(g[i]), float64(u[i])
					want := gv / (1 + math.Exp(-gv)) * uv
					if math.IsNaN(want) || math.IsNaN(float64(got[i])) {
						if math.IsNaN(want) != math.IsNaN(float64(got[i])) {
							t.Fatalf("%s n=%d: silu(%g)·%g = %g, want %g", what, n, g[i], u[i], got[i], want)
						}
						continue
					}
					if math.IsInf(want, 0) {
						if float64(got[i]) != want {
							t.Fatalf("%s n=%d: silu(%g)·%g = %g, want %g", what, n, g[i], u[i], got[i], want)
						}
						continue
					}
					bound := 8*unit*math.Abs(want) + 0x1p-119*math.Abs(uv) + 0x1p-148
					if d := math.Abs(float64(got[i]) - want); !(d <= bound) {
						t.Fatalf("%s n=%d: silu(%g)·%g = %g, want %g (±%g)", what, n, g[i], u[i], got[i], want, bound)
					}
				}
			}
			check("dst", dst)
			for i, v := range buf[n:] {
				if v != guard {
					t.Fatalf("n=%d: guard %d overwritten with %g", n, i, v)
				}
			}
			if !sameFloats(g, g0) || !sameFloats(u, u0) {
				t.Fatalf("n=%d: inputs modified", n)
			}
			io := slices.Clone(g)
			swiglu(io, io, u)
			check("in place of gate", io)
			io = slices.Clone(u)
			swiglu(io, g, io)
			check("in place of up", io)
		}
	})
}

// TestSwiGLUTwin checks that the AVX2 kernel and the Go twin agree to a
// unit in the last place (they differ by FMA's rounding only).
func TestSwiGLUTwin(t *testing.T) {
	if !use.AVX2FMA {
		t.Skip("no AVX2 and FMA")
	}
	rnd := rand.New(rand.NewPCG(2, 1))
	n := 4099
	g, u := make([]float32, n), make([]float32, n)
	for i := range n {
		g[i] = float32(rnd.NormFloat64() * 30)
		u[i] = float32(rnd.NormFloat64())
	}
	a, b := make([]float32, n), make([]float32, n)
	swigluAVX2(a, g, u)
	swigluGo(b, g, u)
	for i := range n {
		if d := math.Abs(float64(a[i]) - float64(b[i])); d > 2*unit*math.Abs(float64(b[i]))+0x1p-140 {
			t.Fatalf("silu(%g)·%g: assembly %g, Go %g", g[i], u[i], a[i], b[i])
		}
	}
}

// sameFloats reports whether x and y hold the same bits.
func sameFloats(x, y []float32) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			return false
		}
	}
	return true
}

// TestRoPEMatchesTwin checks ropeF32 against backend.RoPEF32 bit for bit:
// both pair layouts, scaled and not, several heads and positions (some
// large), out of place and in place.
func TestRoPEMatchesTwin(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 1))
	for _, c := range []struct {
		heads, dim  int
		interleaved bool
		scale       float32
	}{{1, 2, false, 0}, {9, 64, false, 0}, {3, 64, true, 0}, {4, 128, false, 1.25}, {2, 6, true, 0.5},
		{2, 256, false, 0}, {1, 258, true, 0}, {1, 512, false, 0}} {
		name := fmt.Sprintf("h%d_d%d_il%v_s%g", c.heads, c.dim, c.interleaved, c.scale)
		freqs := make([]float32, c.dim/2)
		for i := range freqs {
			freqs[i] = float32(math.Pow(10000, -2*float64(i)/float64(c.dim)))
		}
		r := &backend.Rotary{Heads: c.heads, Dim: c.dim, Interleaved: c.interleaved, Freqs: freqs, Scale: c.scale}
		pos := []int32{0, 1, 7, 128, 4095, 100000}
		x := make([]float32, len(pos)*c.heads*c.dim)
		for i := range x {
			x[i] = float32(rnd.NormFloat64())
		}
		want, got := make([]float32, len(x)), make([]float32, len(x))
		backend.RoPEF32(want, x, r, pos)
		ropeF32(got, x, r, pos)
		if !sameFloats(got, want) {
			t.Fatalf("%s: ropeF32 differs from backend.RoPEF32", name)
		}
		io := slices.Clone(x)
		ropeF32(io, io, r, pos)
		if !sameFloats(io, want) {
			t.Fatalf("%s: ropeF32 in place differs from backend.RoPEF32", name)
		}
	}
}
