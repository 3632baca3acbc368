//go:build cuda

package gpu

import (
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
)

// TestLM runs the LM part of the conformance suite on the GPU backend's own
// kernels (cuda/lm.cu): it must implement backend.LMOps, or the suite would
// only test the host fallback.
func TestLM(t *testing.T) {
	b := openTest(t)
	if _, ok := backend.Backend(b).(backend.LMOps); !ok {
		t.Fatal("the gpu backend does not implement backend.LMOps")
	}
	backendtest.RunLM(t, b)
}

// TestLMAgainstCPU compares the GPU's LM operations with the CPU backend's
// at a small model's shapes, several calls queued with different host
// vectors before anything is read back.
func TestLMAgainstCPU(t *testing.T) {
	lmAgainstCPU(t, openTest(t))
}

// TestLMErrors checks the limits the kernels add to the twins'.
func TestLMErrors(t *testing.T) {
	b := openTest(t)
	f := func(n int) backend.Buffer { return mustUpload(t, b, make([]float32, n)) }
	d := lmAttnMaxDim + 2
	if err := b.Attend(f(d), f(d), f(d), f(d), &backend.Attention{Tokens: 1, Heads: 1, KVHeads: 1, Dim: d}); err == nil {
		t.Errorf("Attend with head dimension %d: no error", d)
	}
	freqs := []float32{1 << 30}
	if err := b.RoPE(f(2), f(2), &backend.Rotary{Heads: 1, Dim: 2, Freqs: freqs}, []int32{1 << 30}); err == nil {
		t.Error("RoPE with an angle of 2^60: no error")
	}
	if err := b.RMSNorm(f(4), f(4), mustUpload(t, b, make([]int8, 4)), 1, 4, 1e-5); err == nil {
		t.Error("RMSNorm with an s8 weight: no error")
	}
}
