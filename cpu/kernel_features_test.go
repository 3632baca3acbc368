package cpu

import (
	"slices"
	"strings"
	"testing"
)

// KernelFeatures and Features name the same extensions in the same order,
// for every combination.
func TestKernelFeaturesMatchFeatures(t *testing.T) {
	defer func(prev isa) { use = prev }(use)
	for m := range 16 {
		use = isa{AVX2FMA: m&1 != 0, AVX512: m&2 != 0, AVX512VNNI: m&4 != 0, AVXVNNI: m&8 != 0}
		want := Features()
		got := strings.Join(KernelFeatures(), " ")
		if got == "" {
			got = "generic"
		}
		if got != want {
			t.Errorf("%+v: KernelFeatures %q, Features %q", use, got, want)
		}
	}
}

// KernelFeatures follows the kernels' choice: nothing under ForceGeneric,
// everything the processor has otherwise.
func TestKernelFeaturesFollowDispatch(t *testing.T) {
	restore := ForceGeneric(true)
	if got := KernelFeatures(); len(got) != 0 {
		t.Errorf("under ForceGeneric: %v, want none", got)
	}
	restore()
	defer ForceGeneric(false)()
	if got, want := KernelFeatures(), ProcessorFeatures(); !slices.Equal(got, want) {
		t.Errorf("KernelFeatures %v, ProcessorFeatures %v", got, want)
	}
}
