//go:build cuda

package gpu

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// The gpu backend multiplies by packed weights on the device
// (backend.PackedGemmer) with the kernels of cuda/packed.cu: the packed
// rows stay as they are in device memory and are decoded in registers (the
// GEMV, for m ≤ pkGemvMaxM rows of A: decode steps) or in shared memory
// (the tiled GEMM, for more rows: prefill), to exactly the values the
// format's DecodeRows gives, and summed in float32 with fused
// multiply-adds (backend.GemmPackedF32's contract).

var _ backend.PackedGemmer = (*Backend)(nil)

// The header kinds pkHdrF32, pkHdrF32ZP and pkHdrF16 (the kernels' kind
// parameter) are in constants_gen.go.

// pkMaxGroup is the largest group the kernels take: their block sizes
// (group·bits/8 bytes) are 32-bit ints.
const pkMaxGroup = 1 << 28

// pkLayout is a packed format as the kernels take it.
type pkLayout struct {
	bits, group, kind int
	signed            bool
	zconst            int  // the zero point when the header stores none
	split             bool // Q4_0's nibble order (group 32)
}

// packedLayout returns the kernels' view of f, or false when they do not
// run it.
func packedLayout(f backend.PackedFormat) (pkLayout, bool) {
	switch f := f.(type) {
	case quant.RowFormat:
		if (f.Bits != 8 && f.Bits != 4) || f.Group <= 0 || f.Group > pkMaxGroup || (f.Bits == 4 && f.Group%2 != 0) {
			return pkLayout{}, false
		}
		l := pkLayout{bits: f.Bits, group: f.Group, kind: pkHdrF32, signed: f.Signed}
		if !f.Symmetric {
			l.kind = pkHdrF32ZP
		}
		return l, true
	case gguf.Type:
		switch f {
		case gguf.TypeQ8_0:
			return pkLayout{bits: 8, group: gguf.QK8_0, kind: pkHdrF16, signed: true}, true
		case gguf.TypeQ4_0:
			return pkLayout{bits: 4, group: gguf.QK4_0, kind: pkHdrF16, zconst: 8, split: true}, true
		}
	}
	return pkLayout{}, false
}

// Packs reports whether GemmPacked runs weights of format f on the device:
// quant.RowFormat of 8 or 4 bits (signed or not, symmetric or with zero
// points, any group), gguf Q8_0 and Q4_0. Other formats (K-quants, F16)
// go through the host (backend.GemmPacked), or a model loader dequantizes
// them once.
func (b *Backend) Packs(f backend.PackedFormat) bool {
	_, ok := packedLayout(f)
	return ok
}

// GemmPacked is backend.GemmPackedF32 on device buffers: c [m, w.N] =
// a [m, w.K] · Wᵀ, W the packed weight w (U8 data on this device) decoded
// exactly, the products summed in float32 in the kernels' order (within
// backendtest.GemmF32Bound). m ≤ pkGemvMaxM runs packed_gemv_*, more rows
// packed_gemm_*. It returns once the kernel is queued.
func (b *Backend) GemmPacked(m int, a backend.Buffer, w *backend.Packed, c backend.Buffer) error {
	if err := w.Check(); err != nil {
		return b.errorf("GemmPacked: %w", err)
	}
	l, ok := packedLayout(w.Format)
	if !ok {
		return b.errorf("GemmPacked: no kernel for %v weights (Packs is false)", w.Format)
	}
	A, err := b.typed("GemmPacked", "A", a, backend.F32)
	if err != nil {
		return err
	}
	W, err := b.typed("GemmPacked", "W", w.Data, backend.U8)
	if err != nil {
		return err
	}
	C, err := b.typed("GemmPacked", "C", c, backend.F32)
	if err != nil {
		return err
	}
	if m < 0 || A.n != m*w.K || C.n != m*w.N {
		return b.errorf("GemmPacked: A has %d elements and C %d for m=%d n=%d k=%d, want %d and %d",
			A.n, C.n, m, w.N, w.K, m*w.K, m*w.N)
	}
	if m > math.MaxInt32 || w.N > math.MaxInt32 || w.K > math.MaxInt32 {
		return b.errorf("GemmPacked: m=%d n=%d k=%d: a dimension exceeds the kernels' 32-bit sizes", m, w.N, w.K)
	}
	if m == 0 {
		return nil
	}
	what := fmt.Sprintf("m=%d n=%d k=%d %v", m, w.N, w.K, w.Format)
	return b.do(func() error {
		args := func(aOff, cOff, rows int) []arg {
			return []arg{ptrArg(W.ptr()), ptrArg(A.ptr() + cu.DevicePtr(aOff*4)), ptrArg(C.ptr() + cu.DevicePtr(cOff*4)),
				intArg(rows), intArg(w.N), intArg(w.K), intArg(l.group), intArg(l.kind), boolArg(l.signed),
				intArg(l.zconst), boolArg(l.split)}
		}
		if m <= pkGemvMaxM {
			k := &b.k.packedGemv8
			if l.bits == 4 {
				k = &b.k.packedGemv4
			}
			return b.launch(k, ceilDiv(w.N, pkGemvWarps), 1, pkGemvThreads, 0, what, args(0, 0, m)...)
		}
		k := &b.k.packedGemm8
		if l.bits == 4 {
			k = &b.k.packedGemm4
		}
		// The grid's y dimension is limited: taller products run in slabs.
		slab := b.maxGridY * pkGemmBM
		for m0 := 0; m0 < m; m0 += slab {
			rows := min(slab, m-m0)
			if err := b.launch(k, ceilDiv(w.N, pkGemmBN), ceilDiv(rows, pkGemmBM), pkGemmThreads, 0, what,
				args(m0*w.K, m0*w.N, rows)...); err != nil {
				return err
			}
		}
		return nil
	})
}
