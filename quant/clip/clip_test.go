package clip

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// rowErrors is each row's squared round-trip error under p.
func rowErrors(t *testing.T, x []float32, rows, cols int, p *quant.Params) []float64 {
	t.Helper()
	codes := make([]byte, p.Scheme.PackedLen(len(x)))
	y := make([]float32, len(x))
	if err := quant.Quantize(codes, x, p); err != nil {
		t.Fatal(err)
	}
	if err := quant.Dequantize(y, codes, p); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, rows)
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		out[i/cols] += d * d
	}
	return out
}

// bruteForce is the best ratio's error of one run, searched here over the
// same grid by re-fitting FitMinMax on the clipped values.
func bruteForce(s quant.Scheme, vals []float32, steps int, lowest float64) float64 {
	best := math.Inf(1)
	for i := 0; i <= steps; i++ {
		r := 1 - float64(i)/float64(steps)*(1-lowest)
		lo, hi := float32(0), float32(0)
		for _, v := range vals {
			lo, hi = min(lo, v), max(hi, v)
		}
		sc, zp := s.ScaleZeroPoint(float32(r*float64(lo)), float32(r*float64(hi)))
		var e float64
		for _, v := range vals {
			q := quant.DequantizeValue(quant.QuantizeValue(v, sc, zp, s.QMin(), s.QMax()), sc, zp)
			e += (float64(v) - float64(q)) * (float64(v) - float64(q))
		}
		best = math.Min(best, e)
	}
	return best
}

// TestMSENotWorseThanMinMax checks, for every row of random weights with
// outliers, that FitMSE's squared error is at most min-max's, strictly
// below it in total, and equal to a brute-force search over the grid for
// each group.
func TestMSENotWorseThanMinMax(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	rows, cols := 16, 96
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		if r.IntN(40) == 0 {
			x[i] *= 8
		}
	}
	for _, name := range []string{"int4-sym-group32", "int4-sym-channel", "int8-sym-channel", "uint4-asym-group32", "int4-sym-group20"} {
		s, err := quant.ParseScheme(name)
		if err != nil {
			t.Fatal(err)
		}
		shape := []int{rows, cols}
		base, err := quant.FitMinMax(s, x, shape)
		if err != nil {
			t.Fatal(err)
		}
		p, err := FitMSE(s, x, shape, Options{})
		if err != nil {
			t.Fatal(err)
		}
		eb, em := rowErrors(t, x, rows, cols, base), rowErrors(t, x, rows, cols, p)
		var sb, sm float64
		for i := range eb {
			if em[i] > eb[i] {
				t.Errorf("%s: row %d: error %g above min-max's %g", name, i, em[i], eb[i])
			}
			sb, sm = sb+eb[i], sm+em[i]
		}
		t.Logf("%s: squared error %.4g, min-max %.4g (%.2f)", name, sm, sb, sm/sb)
		if !(sm < sb) {
			t.Errorf("%s: no better than min-max (%g vs %g)", name, sm, sb)
		}
		// Each run against the brute force.
		p.Runs(func(start, end, k int) {
			want := bruteForce(s, x[start:end], 50, 0.5)
			sc, zp := p.Scales[k], p.ZeroPoints[k]
			var got float64
			for _, v := range x[start:end] {
				q := quant.DequantizeValue(quant.QuantizeValue(v, sc, zp, s.QMin(), s.QMax()), sc, zp)
				got += (float64(v) - float64(q)) * (float64(v) - float64(q))
			}
			if math.Abs(got-want) > 1e-9*math.Max(1, want) {
				t.Errorf("%s: run %d: error %g, brute force %g", name, k, got, want)
			}
		})
	}
	// Rounded scales: the choice is made on what is stored.
	s, _ := quant.ParseScheme("int4-sym-group32")
	toBF16 := func(v float32) float32 { return math.Float32frombits((math.Float32bits(v) + 0x8000) &^ 0xffff) }
	p, err := FitMSE(s, x, []int{rows, cols}, Options{RoundScale: toBF16})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.Scales {
		if v != toBF16(v) {
			t.Fatalf("scale %d is %g, not rounded", k, v)
		}
	}
	if _, err := FitMSE(s, x, []int{rows, cols}, Options{MinRatio: 1.5}); err == nil {
		t.Error("FitMSE took a minimum ratio of 1.5")
	}
}
