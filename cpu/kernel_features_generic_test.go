//go:build !amd64 || noasm || gccgo || safe

package cpu

import "testing"

// Without the assembly kernels there is nothing to dispatch to.
func TestNoFeaturesWithoutAssembly(t *testing.T) {
	if p, k := ProcessorFeatures(), KernelFeatures(); len(p) != 0 || len(k) != 0 {
		t.Errorf("ProcessorFeatures %v, KernelFeatures %v; want none in this build", p, k)
	}
}
