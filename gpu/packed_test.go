//go:build cuda

package gpu

import (
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// TestGemmPacked runs the packed part of the conformance suite on the GPU
// backend's own kernels (cuda/packed.cu) for the formats it packs, and
// checks which formats those are: the suite alone would pass through the
// host fallback too.
func TestGemmPacked(t *testing.T) {
	b := openTest(t)
	packs := []backend.PackedFormat{
		quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 4096},
		quant.RowFormat{Bits: 8, Group: 33},
		quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 32},
		quant.RowFormat{Bits: 4, Group: 2},
		gguf.TypeQ8_0, gguf.TypeQ4_0,
	}
	for _, f := range packs {
		if !backend.Packs(b, f) {
			t.Errorf("Packs(%v) = false, want true", f)
		}
	}
	for _, f := range []backend.PackedFormat{gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeF16, quant.RowFormat{Bits: 4, Group: 3}, quant.RowFormat{Bits: 2, Group: 32}} {
		if backend.Packs(b, f) {
			t.Errorf("Packs(%v) = true, want false", f)
		}
	}
	backendtest.RunGemmPacked(t, b)
}

// TestPackedEdges runs packedEdges (packed_check_test.go) on the GPU: odd
// k, partial last blocks, zero points at the ends of the range, every m of
// the GEMV and the GEMM beyond it, and views at unaligned offsets.
func TestPackedEdges(t *testing.T) {
	packedEdges(t, openTest(t), false)
}

// TestGemmPackedErrors checks the method's own validation (called
// directly, not through backend.GemmPacked's).
func TestGemmPackedErrors(t *testing.T) {
	b := openTest(t)
	f := quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 32}
	data := mustUpload(t, b, make([]uint8, 4*36))
	a, c := mustUpload(t, b, make([]float32, 2*32)), mustUpload(t, b, make([]float32, 2*4))
	w := &backend.Packed{N: 4, K: 32, Format: f, Data: data}
	if err := b.GemmPacked(2, a, w, c); err != nil {
		t.Fatalf("GemmPacked: %v", err)
	}
	for name, run := range map[string]func() error{
		"a short A":     func() error { return b.GemmPacked(3, a, w, c) },
		"an F32 weight": func() error { return b.GemmPacked(2, a, &backend.Packed{N: 4, K: 32, Format: f, Data: a}, c) },
		"an S8 A":       func() error { return b.GemmPacked(2, mustUpload(t, b, make([]int8, 64)), w, c) },
		"a Q4_K weight": func() error {
			return b.GemmPacked(1, a, &backend.Packed{N: 1, K: 256, Format: gguf.TypeQ4_K, Data: data}, c)
		},
		"short data": func() error {
			return b.GemmPacked(2, a, &backend.Packed{N: 4, K: 32, Format: f, Data: data.Slice(1, 4*36-1)}, c)
		},
		"a negative m":  func() error { return b.GemmPacked(-1, a, w, c) },
		"a host buffer": func() error { return b.GemmPacked(2, a, w, backend.Buffer(nil)) },
		"k not in a block": func() error {
			return b.GemmPacked(2, a, &backend.Packed{N: 4, K: 31, Format: gguf.TypeQ8_0, Data: data}, c)
		},
	} {
		if err := run(); err == nil {
			t.Errorf("GemmPacked with %s: no error", name)
		}
	}
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
}
