package cpu

import (
	"os"
	"strings"
)

// Instruction-set extensions the assembly kernels use, read once at
// start-up (features_amd64.go on amd64, features_generic.go elsewhere and
// under the noasm build tag, where all are false).
//
// Every kernel with an assembly version chooses it through the variable
// use, never through hw directly, so that ForceGeneric (tests) and the
// QUANTKIT_NOASM environment variable (users chasing a suspected kernel
// bug) switch every kernel to its pure-Go twin at once.
type isa struct {
	AVX2FMA    bool // AVX2 and FMA3: 256-bit integer and fused multiply-add
	AVX512     bool // AVX-512 F, BW, VL and DQ
	AVX512VNNI bool // VPDPBUSD on 512-bit registers (EVEX)
	AVXVNNI    bool // VPDPBUSD on 256-bit registers (VEX)
}

var (
	hw  = detect()
	use = fromEnv(hw)
)

func fromEnv(f isa) isa {
	if v := os.Getenv("QUANTKIT_NOASM"); v != "" && v != "0" {
		return isa{}
	}
	return f
}

// ForceGeneric makes every kernel run its pure-Go version (on) or the
// fastest version the processor supports (off), and returns a function
// that restores the previous choice. It is for tests and benchmarks that
// compare the two; it must not be called while kernels run.
func ForceGeneric(on bool) (restore func()) {
	prev := use
	if on {
		use = isa{}
	} else {
		use = hw
	}
	return func() { use = prev }
}

// Features lists the extensions the kernels use now, for Describe and
// bench reports: "avx512-vnni avx512 avx2-fma", or "generic".
func Features() string {
	if names := use.names(); len(names) > 0 {
		return strings.Join(names, " ")
	}
	return "generic"
}
