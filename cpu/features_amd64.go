//go:build !noasm && !gccgo && !safe

package cpu

import "golang.org/x/sys/cpu"

func detect() isa {
	x := cpu.X86
	f := isa{
		AVX2FMA: x.HasAVX2 && x.HasFMA,
		AVX512:  x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ,
		AVXVNNI: x.HasAVX2 && x.HasAVXVNNI,
	}
	f.AVX512VNNI = f.AVX512 && x.HasAVX512VNNI
	return f
}
