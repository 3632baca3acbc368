//go:build cuda

package gpu

import (
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cuda"
)

// Open loads the fatbins' SASS where it has the GPU's architecture, and
// says which code runs, as KernelCodes does for every device.
func TestKernelCode(t *testing.T) {
	b := openTest(t)
	want := cuda.CodeName(b.ccMajor, b.ccMinor)
	t.Logf("%s: compute capability %d.%d, %s, kernels loaded in %v", b.DeviceName(), b.ccMajor, b.ccMinor, b.Code(), b.LoadTime())
	if b.Code() != want {
		t.Errorf("Code() = %q, want %q (the driver refused a fatbin?)", b.Code(), want)
	}
	if sass, _ := cuda.Code(b.ccMajor, b.ccMinor); sass != 0 && b.JITLog() != "" {
		t.Logf("a JIT log although SASS sm_%d fits:\n%s", sass, b.JITLog())
	}
	if !strings.HasSuffix(b.Describe(), "kernels: "+b.Code()) {
		t.Errorf("Describe() = %q lacks the code", b.Describe())
	}
	codes, err := KernelCodes()
	if err != nil || len(codes) == 0 {
		t.Fatalf("KernelCodes: %v, %v", codes, err)
	}
	if c := codes[0]; c.Code != want || c.Name != b.DeviceName() {
		t.Errorf("KernelCodes()[0] = %+v, want %q on %s", c, want, b.DeviceName())
	}
}
