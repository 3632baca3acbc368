package quant

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool {
	if math.IsInf(b, 0) || b == 0 {
		return a == b
	}
	return math.Abs(a-b) <= tol*math.Abs(b)
}

func TestMetricsByHand(t *testing.T) {
	for _, c := range []struct {
		name     string
		ref, got []float32
		want     ErrorStats
	}{
		{"one off", []float32{1, 2, 3}, []float32{1, 2, 4},
			ErrorStats{MSE: 1.0 / 3, SQNR: 10 * math.Log10(14), MaxAbs: 1, Cosine: 17 / (math.Sqrt(14) * math.Sqrt(21))}},
		{"exact", []float32{1, -2}, []float32{1, -2}, ErrorStats{SQNR: math.Inf(1), Cosine: 1}},
		{"scaled", []float32{3, 4}, []float32{6, 8}, ErrorStats{MSE: 12.5, SQNR: 0, MaxAbs: 4, Cosine: 1}},
		{"opposite", []float32{1, 0}, []float32{-1, 0}, ErrorStats{MSE: 2, SQNR: 10 * math.Log10(0.25), MaxAbs: 2, Cosine: -1}},
		{"orthogonal", []float32{1, 0}, []float32{0, 1}, ErrorStats{MSE: 1, SQNR: 10 * math.Log10(0.5), MaxAbs: 1, Cosine: 0}},
		{"zero ref", []float32{0, 0}, []float32{0, 1}, ErrorStats{MSE: 0.5, SQNR: math.Inf(-1), MaxAbs: 1, Cosine: 0}},
		{"both zero", []float32{0, 0}, []float32{0, 0}, ErrorStats{SQNR: math.Inf(1), Cosine: 1}},
		{"empty", nil, nil, ErrorStats{SQNR: math.Inf(1), Cosine: 1}},
		// float64 accumulation: (2^66)² overflows float32 but not float64.
		{"large", []float32{0x1p66}, []float32{0x1p67}, ErrorStats{MSE: 0x1p132, SQNR: 0, MaxAbs: 0x1p66, Cosine: 1}},
	} {
		got := Compare(c.ref, c.got)
		single := ErrorStats{MSE(c.ref, c.got), SQNR(c.ref, c.got), MaxAbsError(c.ref, c.got), CosineSimilarity(c.ref, c.got)}
		for _, g := range []ErrorStats{got, single} {
			if !near(g.MSE, c.want.MSE, 1e-12) || !near(g.SQNR, c.want.SQNR, 1e-12) ||
				!near(g.MaxAbs, c.want.MaxAbs, 1e-12) || !near(g.Cosine, c.want.Cosine, 1e-12) {
				t.Errorf("%s: %+v, want %+v", c.name, g, c.want)
			}
		}
	}
}

// TestSQNRKnownNoise: got = ref·(1 − 0.1) has noise 1% of the signal
// power, 20 dB, whatever ref is.
func TestSQNRKnownNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	ref := make([]float32, 1001)
	got := make([]float32, len(ref))
	for i := range ref {
		ref[i] = float32(rng.NormFloat64()) * 4 // powers of two keep 0.9·ref's error exact enough
		got[i] = ref[i] - ref[i]*0.1
	}
	if s := SQNR(ref, got); math.Abs(s-20) > 1e-4 {
		t.Errorf("SQNR = %g dB, want 20", s)
	}
	if c := CosineSimilarity(ref, got); math.Abs(c-1) > 1e-12 {
		t.Errorf("cosine = %.15g, want 1", c)
	}
}

func TestMetricsNaN(t *testing.T) {
	nan := float32(math.NaN())
	s := Compare([]float32{1, nan}, []float32{1, 2})
	if !math.IsNaN(s.MSE) || !math.IsNaN(s.SQNR) || !math.IsNaN(s.MaxAbs) || !math.IsNaN(s.Cosine) {
		t.Errorf("NaN input: %+v, want all NaN", s)
	}
	if !math.IsNaN(MaxAbsError([]float32{nan, 1}, []float32{0, 0})) {
		t.Error("MaxAbsError ignores a leading NaN")
	}
}

func TestMetricsLengthMismatchPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"MSE":              func() { MSE(make([]float32, 2), make([]float32, 3)) },
		"SQNR":             func() { SQNR(make([]float32, 2), nil) },
		"MaxAbsError":      func() { MaxAbsError(nil, make([]float32, 1)) },
		"CosineSimilarity": func() { CosineSimilarity(make([]float32, 2), make([]float32, 1)) },
		"Compare":          func() { Compare(make([]float32, 2), make([]float32, 1)) },
	} {
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, name) {
					t.Errorf("%s: panic %v, want a message naming it", name, r)
				}
			}()
			f()
		}()
	}
}
