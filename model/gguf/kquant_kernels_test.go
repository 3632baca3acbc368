package gguf

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The trial kernels (AVX2 where the build has them) compute the bits
// their pure-Go twins compute, lane by lane, on random blocks whose
// products stay within kBitsOK, with codes clamped at both ends.
func TestTrialKernelsMatchGo(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	bits := func(a, b *[kLanes]float32) int {
		for k := range a {
			if math.Float32bits(a[k]) != math.Float32bits(b[k]) {
				return k
			}
		}
		return -1
	}
	for trial := range 2000 {
		var xm, x, w [32]float32
		var is, sc, mn [kLanes]float32
		s := float32(math.Exp(r.NormFloat64() * 4))
		for i := range x {
			x[i] = s * float32(r.NormFloat64())
			xm[i] = x[i] + s*float32(r.Float64()*2)
			w[i] = float32(r.Float64()) * s
		}
		nmax := []int32{15, 31}[trial%2]
		for k := range is {
			is[k] = float32(nmax) / s * float32(r.Float64()*2-0.2)
			sc[k] = s / float32(nmax) * float32(r.Float64())
			mn[k] = -s * float32(r.Float64())
		}
		hi := math.Float32bits(12582912 + float32(nmax))
		var a, b [6][kLanes]float32
		groups := 1 + trial%3
		kTrialsAVX2(groups, &xm, &x, &w, &is, hi, &a[0], &a[1], &a[2])
		kTrialsGo(8*groups, &xm, &x, &w, &is, hi, &b[0], &b[1], &b[2])
		kErrsAVX2(groups, &xm, &x, &w, &is, &sc, &mn, hi, &a[3])
		kErrsGo(8*groups, &xm, &x, &w, &is, &sc, &mn, hi, &b[3])
		var x16, w16, wx16 [16]float32
		for i := range x16 {
			x16[i] = x[i]
			w16[i] = x[i] * x[i]
			wx16[i] = w16[i] * x[i]
		}
		var vmax float32
		for _, v := range x16 {
			if abs32(v) > abs32(vmax) {
				vmax = v
			}
		}
		for k := range is {
			is[k] = -(32 + float32(0.1*float32(k-12))) / vmax
		}
		q6TrialsAVX2(&x16, &w16, &wx16, &is, &a[4], &a[5])
		q6TrialsGo(kLanes, &x16, &w16, &wx16, &is, &b[4], &b[5])
		for j := range a {
			if k := bits(&a[j], &b[j]); k >= 0 {
				t.Fatalf("case %d, output %d, lane %d: kernel %g, Go %g", trial, j, k, a[j][k], b[j][k])
			}
		}
	}
}

// With the kernels off (the pure-Go twins only), the quantizers still
// write their transcriptions' bytes.
func TestNewQuantizersGenericMatchTranscription(t *testing.T) {
	prev := useAVX2
	useAVX2 = false
	defer func() { useAVX2 = prev }()
	TestNewQuantizersMatchTranscription(t)
}
