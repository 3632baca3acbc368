//go:build !amd64 || noasm || gccgo || safe

package cpu

import "math"

// The kernels of qgroup_amd64.s in Go, for builds without the assembly.
// They are never called there (use.AVX2FMA and use.AVX512 are false),
// but compute what the assembly computes, the sums in float64 where the
// assembly adds float32.

func absMaxGroupsAVX2(amax []float32, x []float32, group int) {
	for g := range amax {
		amax[g] = math.Float32frombits(absMaxBits(x[g*group : (g+1)*group]))
	}
}

func absMaxGroupsAVX512(amax []float32, x []float32, group int) { absMaxGroupsAVX2(amax, x, group) }

func quantGroupsSumsGo(bits int, dst []byte, x []float32, sc []float32, group int, qmin, qmax int32, sums []float32) {
	for g, s := range sc {
		sig, noise := quantSumsGo(dst, x, g*group, (g+1)*group, s, bits, float64(qmin), float64(qmax))
		m, _ := groupPower(s)
		m2 := float64(m) * float64(m)
		sums[2*g], sums[2*g+1] = float32(sig*m2), float32(noise*m2)
	}
}

func quant8GroupsSumsAVX2(dst []byte, x []float32, sc []float32, group int, qmin, qmax int32, sums []float32) {
	quantGroupsSumsGo(8, dst, x, sc, group, qmin, qmax, sums)
}

func quant8GroupsSumsAVX512(dst []byte, x []float32, sc []float32, group int, qmin, qmax int32, sums []float32) {
	quantGroupsSumsGo(8, dst, x, sc, group, qmin, qmax, sums)
}

func quant4GroupsSumsAVX2(dst []byte, x []float32, sc []float32, group int, qmin, qmax int32, sums []float32) {
	quantGroupsSumsGo(4, dst, x, sc, group, qmin, qmax, sums)
}

func quant4GroupsSumsAVX512(dst []byte, x []float32, sc []float32, group int, qmin, qmax int32, sums []float32) {
	quantGroupsSumsGo(4, dst, x, sc, group, qmin, qmax, sums)
}
