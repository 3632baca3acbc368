package cpu

// kernelSets are the choices of kernels tests run, each a subset of the
// extensions that selects kernels of its own: on an AVX-512 VNNI machine
// every GEMM kernel is run, not only the fastest.
var kernelSets = []struct {
	name string
	isa  isa
}{
	{"generic", isa{}},
	{"avx2", isa{AVX2FMA: true}},
	{"avx2+avx-vnni", isa{AVX2FMA: true, AVXVNNI: true}},
	{"avx512", isa{AVX2FMA: true, AVX512: true}},
	{"avx512-vnni", isa{AVX2FMA: true, AVX512: true, AVX512VNNI: true}},
}

// KernelSets names the kernel sets this processor (and build) supports,
// generic first.
func KernelSets() []string {
	var s []string
	for _, k := range kernelSets {
		if k.isa.subsetOf(hw) {
			s = append(s, k.name)
		}
	}
	return s
}

// UseKernelSet selects the kernel set name (one KernelSets returned) and
// returns a function that restores the previous choice.
func UseKernelSet(name string) (restore func()) {
	prev := use
	for _, k := range kernelSets {
		if k.name == name {
			use = k.isa
		}
	}
	return func() { use = prev }
}

func (f isa) subsetOf(g isa) bool {
	return (!f.AVX2FMA || g.AVX2FMA) && (!f.AVX512 || g.AVX512) &&
		(!f.AVX512VNNI || g.AVX512VNNI) && (!f.AVXVNNI || g.AVXVNNI)
}
