package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// reduceSizes are the lengths of the reduction tests.
var reduceSizes = []int{0, 1, 2, 7, 33, 1000, 4099, 1 << 20}

// specials are adversarial float32 values.
var specials = []float32{
	float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
	0, float32(math.Copysign(0, -1)), math.MaxFloat32, -math.MaxFloat32,
	0x1p-149, -0x1p-149, 0x1p-126, 1, -1, 0.5, 3.75,
}

// randValues gives n values: mostly normal ones of varied magnitude, with
// a sprinkling of specials when withSpecials.
func randValues(rnd *rand.Rand, n int, withSpecials bool) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.Ldexp(rnd.NormFloat64(), rnd.IntN(16)-8))
		if withSpecials && rnd.IntN(50) == 0 {
			x[i] = specials[rnd.IntN(len(specials))]
		}
	}
	return x
}

func absMaxRef(x []float32) float32 {
	var m float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a <= math.MaxFloat32 && a > m {
			m = a
		}
	}
	return m
}

func testAbsMax(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	cases := []struct {
		name string
		x    []float32
	}{
		{"negzero", []float32{float32(math.Copysign(0, -1))}},
		{"nan", []float32{float32(math.NaN())}},
		{"nonfinite", []float32{float32(math.Inf(1)), float32(math.NaN()), float32(math.Inf(-1))}},
		{"maxneg", []float32{1, -math.MaxFloat32, float32(math.Inf(1)), 2}},
		{"subnormal", []float32{0x1p-149, -0x1p-140, 0x1p-145, 0}},
		{"specials", slices.Clone(specials)},
	}
	for _, n := range reduceSizes {
		cases = append(cases, struct {
			name string
			x    []float32
		}{sizeName(n), randValues(rnd, n, true)})
	}
	// A maximum at either end, and one duplicated, in a large array.
	big := randValues(rnd, 1<<20+3, false)
	big[len(big)-1] = -1e6
	cases = append(cases, struct {
		name string
		x    []float32
	}{"last", big})
	first := randValues(rnd, 1<<20, true)
	first[0] = 1e7
	first[1<<19] = -1e7
	cases = append(cases, struct {
		name string
		x    []float32
	}{"first", first})
	equal := make([]float32, 100000)
	for i := range equal {
		equal[i] = -2.5
	}
	cases = append(cases, struct {
		name string
		x    []float32
	}{"equal", equal})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			xb := upload(t, b, tc.x)
			got, err := b.AbsMax(xb)
			if err != nil {
				t.Fatalf("AbsMax: %v", err)
			}
			if want := absMaxRef(tc.x); math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("AbsMax of %d values = %v, want %v", len(tc.x), got, want)
			}
			checkUnchanged(t, b, xb, tc.x, "x")
		})
	}
	t.Run("errors", func(t *testing.T) {
		s8 := upload(t, b, make([]int8, 4))
		mustFail(t, "AbsMax of s8", func() error { _, err := b.AbsMax(s8); return err })
	})
}

// histogramRef is the plain loop: floor(|v|/width), exact in float64 for a
// power-of-two width, clamped to the last bin.
func histogramRef(x []float32, width float32, counts []int64) (nonFinite int64) {
	last := len(counts) - 1
	for _, v := range x {
		f := math.Abs(float64(v))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			nonFinite++
			continue
		}
		q := math.Floor(f / float64(width))
		if q >= float64(last) {
			counts[last]++
		} else {
			counts[int(q)]++
		}
	}
	return nonFinite
}

func testHistogramAbs(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	type hcase struct {
		name  string
		x     []float32
		width float32
		bins  int
	}
	var cases []hcase
	for _, n := range reduceSizes {
		cases = append(cases, hcase{"random-" + sizeName(n), randValues(rnd, n, true), 0x1p-4, 512})
	}
	// Many zeros: skew onto one bin.
	zeros := make([]float32, 1<<20)
	for i := range zeros {
		if rnd.IntN(10) == 0 {
			zeros[i] = float32(rnd.NormFloat64())
		} else if rnd.IntN(2) == 0 {
			zeros[i] = float32(math.Copysign(0, -1))
		}
	}
	cases = append(cases, hcase{"zeros", zeros, 0x1p-6, 256})
	// Values on bin edges, just below them, and far past the end.
	var edges []float32
	for i := -3; i < 300; i++ {
		v := float32(i) * 0.25
		edges = append(edges, v, math.Nextafter32(v, 0), math.Nextafter32(v, float32(math.Inf(1))), -v)
	}
	edges = append(edges, 1e30, -3e38, math.MaxFloat32, 0x1p-149, 0x1p-127)
	cases = append(cases,
		hcase{"edges", edges, 0.25, 64},
		hcase{"edges-one-bin", edges, 0.25, 1},
		hcase{"edges-wide", edges, 0x1p20, 7},
		// A tiny width: |x|/width overflows float32 for large |x|.
		hcase{"tiny-width", randValues(rnd, 4099, true), 0x1p-126, 100},
		hcase{"huge-width", edges, 0x1p127, 3},
		hcase{"many-bins", randValues(rnd, 1<<20, true), 0x1p-12, 70000},
		hcase{"specials", slices.Clone(specials), 0.5, 9},
	)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			xb := upload(t, b, tc.x)
			counts := make([]int64, tc.bins)
			for i := range counts {
				counts[i] = int64(rnd.IntN(1000)) // counts are added to
			}
			want := slices.Clone(counts)
			wantNF := histogramRef(tc.x, tc.width, want)
			nf, err := b.HistogramAbs(xb, tc.width, counts)
			if err != nil {
				t.Fatalf("HistogramAbs: %v", err)
			}
			if nf != wantNF {
				t.Errorf("non-finite count %d, want %d", nf, wantNF)
			}
			bad := mismatches{t: t}
			for i := range want {
				if counts[i] != want[i] {
					if !bad.add("bin %d: %d, want %d", i, counts[i], want[i]) {
						break
					}
				}
			}
			bad.done("HistogramAbs")
			checkUnchanged(t, b, xb, tc.x, "x")
		})
	}

	t.Run("errors", func(t *testing.T) {
		x := upload(t, b, []float32{1, 2, 3})
		s8 := upload(t, b, make([]int8, 3))
		counts := make([]int64, 4)
		for _, w := range []float32{3, 0, -1, 0.3, float32(math.NaN()), float32(math.Inf(1)), 0x1p-149} {
			mustFail(t, fmt.Sprintf("HistogramAbs with width %g", w), func() error {
				_, err := b.HistogramAbs(x, w, counts)
				return err
			})
		}
		mustFail(t, "HistogramAbs with no bins", func() error { _, err := b.HistogramAbs(x, 1, nil); return err })
		mustFail(t, "HistogramAbs of s8", func() error { _, err := b.HistogramAbs(s8, 1, counts); return err })
		if !slices.Equal(counts, make([]int64, 4)) {
			t.Errorf("a failed HistogramAbs changed counts: %v", counts)
		}
	})
}
