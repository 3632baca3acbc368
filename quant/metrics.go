package quant

import (
	"fmt"
	"math"
)

// ErrorStats are the error metrics of one comparison of an approximation
// got with a reference ref, as Compare, MSE, SQNR, MaxAbsError and
// CosineSimilarity compute them: accumulating in float64, and, like gonum's
// floats, panicking when the lengths differ (a programming error, not a
// data error). A NaN in either input makes every metric NaN.
type ErrorStats struct {
	MSE    float64 // mean squared error
	SQNR   float64 // signal to quantization noise ratio in dB
	MaxAbs float64 // largest absolute error
	Cosine float64 // cosine similarity
}

// Compare computes every metric of got against ref in one pass.
func Compare(ref, got []float32) ErrorStats {
	checkSameLen("Compare", ref, got)
	var sig, noise, dot, gg, maxAbs float64
	for i, r := range ref {
		a, b := float64(r), float64(got[i])
		d := a - b
		sig += a * a
		noise += d * d
		dot += a * b
		gg += b * b
		maxAbs = math.Max(maxAbs, math.Abs(d))
	}
	return ErrorStats{MSE: mean(noise, len(ref)), SQNR: sqnr(sig, noise), MaxAbs: maxAbs, Cosine: cosine(dot, sig, gg)}
}

// MSE is the mean squared error, 0 for empty slices:
//
//	for i := range ref { s += (ref[i] − got[i])² }; return s/len(ref)
func MSE(ref, got []float32) float64 {
	checkSameLen("MSE", ref, got)
	var s float64
	for i, r := range ref {
		d := float64(r) - float64(got[i])
		s += d * d
	}
	return mean(s, len(ref))
}

// SQNR is the signal to quantization noise ratio in decibels,
// 10·log10(Σ ref² / Σ (ref − got)²): +Inf when got equals ref (empty slices
// included), −Inf when ref is all zero and got is not.
func SQNR(ref, got []float32) float64 {
	checkSameLen("SQNR", ref, got)
	// Two sums of each, so that an addition does not wait for the one
	// before it: a checkpoint's SQNR pass runs over every weight.
	var sig0, sig1, noise0, noise1 float64
	got = got[:len(ref)]
	i := 0
	for ; i+2 <= len(ref); i += 2 {
		a0, a1 := float64(ref[i]), float64(ref[i+1])
		d0, d1 := a0-float64(got[i]), a1-float64(got[i+1])
		sig0 += a0 * a0
		sig1 += a1 * a1
		noise0 += d0 * d0
		noise1 += d1 * d1
	}
	if i < len(ref) {
		a := float64(ref[i])
		d := a - float64(got[i])
		sig0 += a * a
		noise0 += d * d
	}
	return sqnr(sig0+sig1, noise0+noise1)
}

// MaxAbsError is the largest |ref[i] − got[i]|, 0 for empty slices.
func MaxAbsError(ref, got []float32) float64 {
	checkSameLen("MaxAbsError", ref, got)
	var m float64
	for i, r := range ref {
		m = math.Max(m, math.Abs(float64(r)-float64(got[i])))
	}
	return m
}

// CosineSimilarity is Σ ref·got / (‖ref‖·‖got‖). Two all-zero (or empty)
// vectors give 1, as equal vectors do; an all-zero vector against a
// non-zero one gives 0.
func CosineSimilarity(ref, got []float32) float64 {
	checkSameLen("CosineSimilarity", ref, got)
	var dot, rr, gg float64
	for i, r := range ref {
		a, b := float64(r), float64(got[i])
		dot += a * b
		rr += a * a
		gg += b * b
	}
	return cosine(dot, rr, gg)
}

func checkSameLen(fn string, ref, got []float32) {
	if len(ref) != len(got) {
		panic(fmt.Sprintf("quant: %s: reference has %d values, approximation %d", fn, len(ref), len(got)))
	}
}

func mean(s float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

func sqnr(sig, noise float64) float64 {
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

func cosine(dot, rr, gg float64) float64 {
	switch {
	case rr == 0 && gg == 0:
		return 1
	case rr == 0 || gg == 0:
		return 0
	}
	return dot / (math.Sqrt(rr) * math.Sqrt(gg))
}
