//go:build !amd64 || noasm || gccgo || safe

package cpu

// The attention kernels of attention_amd64.s in Go, for builds without
// the assembly. They are never called there (use.AVX2FMA is false), but
// compute what the assembly computes.

func attnDotsAVX2(s, q, k []float32, stride int, scale float32) float32 {
	return attnDotsGo(s, q, k, stride, scale)
}

func attnExpAVX2(s []float32, m float32) float32 { return attnExpGo(s, m) }

func attnAccumAVX2(o, p, v []float32, stride int, f float32) {
	attnAccumGo(o, p, v, stride, f)
}

func swigluAVX2(dst, gate, up []float32) { swigluGo(dst, gate, up) }
