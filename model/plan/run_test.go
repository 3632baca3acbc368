package plan

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// adversarial returns n values: normal ones with NaN, ±Inf, ±0,
// subnormals and ±MaxFloat32 sprinkled in (none when clean), or, for
// the third pattern, runs with no finite value at all.
func adversarial(rnd *rand.Rand, n int, pattern int) []float32 {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0,
		float32(math.Copysign(0, -1)), 0x1p-149, -0x1p-140, math.MaxFloat32, -math.MaxFloat32}
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rnd.NormFloat64() * math.Exp(rnd.NormFloat64()))
		switch {
		case pattern == 1 && rnd.IntN(50) == 0:
			x[i] = specials[rnd.IntN(len(specials))]
		case pattern == 2 && i%64 < 40:
			x[i] = specials[rnd.IntN(3)]
		}
	}
	return x
}

func TestFitMinMaxMatchesQuant(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, name := range []string{"int8-sym-tensor", "int8-sym-channel", "int4-sym-group32", "int4-sym-group128",
		"int8-sym-group64", "int4-sym-channel", "uint8-sym-tensor", "int8-asym-channel", "int4-asym-group32"} {
		s, err := quant.ParseScheme(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, shape := range [][]int{{7, 64}, {33, 128}, {1, 4096}, {64, 4096}, {3, 5, 64}} {
			for pattern := range 3 {
				n, _ := quant.NumElements(shape)
				x := adversarial(rnd, n, pattern)
				want, werr := quant.FitMinMax(s, x, shape)
				got, gerr := fitMinMax(ReferenceKernels{}, s, x, shape)
				if (werr == nil) != (gerr == nil) {
					t.Fatalf("%s %v: errors %v and %v", name, shape, gerr, werr)
				}
				if werr != nil {
					continue
				}
				if !slices.Equal(got.Scales, want.Scales) || !slices.Equal(got.ZeroPoints, want.ZeroPoints) {
					t.Errorf("%s %v pattern %d: parameters differ from quant.FitMinMax", name, shape, pattern)
				}
			}
		}
	}
}

func TestCountNonFinite(t *testing.T) {
	rnd := rand.New(rand.NewPCG(2, 2))
	for n := range 70 {
		for pattern := range 3 {
			x := adversarial(rnd, n, pattern)
			want := 0
			for _, v := range x {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					want++
				}
			}
			if got := countNonFinite(x); got != want {
				t.Errorf("n=%d pattern %d: %d non-finite, want %d", n, pattern, got, want)
			}
			if n > 0 { // starting at an odd element: not 8-byte aligned
				want1 := want
				if v := float64(x[0]); math.IsNaN(v) || math.IsInf(v, 0) {
					want1--
				}
				if got := countNonFinite(x[1:]); got != want1 {
					t.Errorf("n=%d pattern %d, from element 1: %d non-finite, want %d", n, pattern, got, want1)
				}
			}
		}
	}
	// Every NaN payload and both signs.
	for _, bits := range []uint32{0x7f800001, 0xffffffff, 0x7fc00000, 0xff800000, 0x7f800000, 0x7f7fffff, 0x80000000} {
		x := []float32{math.Float32frombits(bits)}
		want := 0
		if v := float64(x[0]); math.IsNaN(v) || math.IsInf(v, 0) {
			want = 1
		}
		if got := countNonFinite(x); got != want {
			t.Errorf("%#08x: %d, want %d", bits, got, want)
		}
	}
}
