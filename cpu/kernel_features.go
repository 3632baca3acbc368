package cpu

// KernelFeatures lists the instruction-set extensions the kernels dispatch
// to on this machine now, widest first, named as Features names them:
// [avx512-vnni avx512 avx2-fma] on a recent x86 server. It is empty when
// every kernel runs its pure-Go version: a processor without the
// extensions, another architecture, the noasm build tag, QUANTKIT_NOASM
// set, or ForceGeneric(true). It reads the same choice the kernels read,
// so it cannot claim what they do not use.
func KernelFeatures() []string { return use.names() }

// ProcessorFeatures lists the extensions the kernels know that this
// processor has (and the operating system enables), whether or not they
// are in use: it differs from KernelFeatures under QUANTKIT_NOASM or
// ForceGeneric, and is empty in a build without the assembly kernels.
func ProcessorFeatures() []string { return hw.names() }

// names is f's extensions, widest first.
func (f isa) names() []string {
	s := []string{}
	for _, x := range []struct {
		on   bool
		name string
	}{
		{f.AVX512VNNI, "avx512-vnni"},
		{f.AVXVNNI, "avx-vnni"},
		{f.AVX512, "avx512"},
		{f.AVX2FMA, "avx2-fma"},
	} {
		if x.on {
			s = append(s, x.name)
		}
	}
	return s
}
