//go:build cuda

package gpu

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
)

// GemmF32 is C[m×n] = A[m×k]·B[n×k]ᵀ in float32 (gemm_f32: SIMT, FMA,
// no TF32). It returns once the kernel is queued.
func (b *Backend) GemmF32(m, n, k int, a, bt, c backend.Buffer) error {
	A, err := b.typed("GemmF32", "A", a, backend.F32)
	if err != nil {
		return err
	}
	B, err := b.typed("GemmF32", "B", bt, backend.F32)
	if err != nil {
		return err
	}
	C, err := b.typed("GemmF32", "C", c, backend.F32)
	if err != nil {
		return err
	}
	if err := gemmDimsError(m, n, k, A.n, B.n, C.n); err != nil {
		return b.errorf("GemmF32: %w", err)
	}
	return b.do(func() error { return b.gemmF32(m, n, k, A, B, C) })
}

func (b *Backend) gemmF32(m, n, k int, A, B, C *Buffer) error {
	if m == 0 || n == 0 {
		return nil
	}
	what := fmt.Sprintf("m=%d n=%d k=%d", m, n, k)
	if k == 0 {
		if err := cu.MemsetD32Async(C.ptr(), 0, int64(m)*int64(n), b.stream); err != nil {
			return b.asyncErr("GemmF32 "+what+": zeroing C", err)
		}
		return nil
	}
	// The grid's y dimension is limited (65535 blocks): run taller
	// products in slabs of rows.
	slab := b.maxGridY * gemmF32BM
	for m0 := 0; m0 < m; m0 += slab {
		rows := min(slab, m-m0)
		aP := A.ptr() + cu.DevicePtr(m0*k*4)
		cP := C.ptr() + cu.DevicePtr(m0*n*4)
		if err := b.launch(&b.k.gemmF32, ceilDiv(n, gemmF32BN), ceilDiv(rows, gemmF32BM), gemmF32Threads, 0, what,
			ptrArg(aP), ptrArg(B.ptr()), ptrArg(cP), intArg(rows), intArg(n), intArg(k)); err != nil {
			return err
		}
	}
	return nil
}

// GemmS8 multiplies int8 A[m×k] by int8 B[n×k]ᵀ with int32 accumulation on
// the tensor cores and applies ep as backend.Epilogue documents; c's type
// (S32, F32 or S8) selects the output. It returns once the work is queued.
//
// The kernel needs K a multiple of 16 and A and B 16-byte aligned. Other
// operands are first copied (pad_rows_s8) into scratch buffers with rows
// of K rounded up to 16 bytes, zero-filled: the zeros add nothing to the
// sums. k = 0 runs the kernel on 16 columns of zeros, so that the outputs
// are the epilogue of 0, as on the CPU. The epilogue vectors are uploaded
// to scratch buffers, only when they differ from the previous call's.
func (b *Backend) GemmS8(m, n, k int, a, bt, c backend.Buffer, ep *backend.Epilogue) error {
	A, err := b.typed("GemmS8", "A", a, backend.S8)
	if err != nil {
		return err
	}
	B, err := b.typed("GemmS8", "B", bt, backend.S8)
	if err != nil {
		return err
	}
	C, err := b.own("GemmS8", "C", c)
	if err != nil {
		return err
	}
	switch C.dt {
	case backend.S32, backend.F32:
	case backend.S8:
		if ep == nil || !(ep.OutScale > 0) || math.IsInf(float64(ep.OutScale), 0) {
			return b.errorf("GemmS8: int8 output needs an epilogue with a finite positive OutScale")
		}
	default:
		return b.errorf("GemmS8: C is %v, want s32, f32 or s8", C.dt)
	}
	if err := gemmDimsError(m, n, k, A.n, B.n, C.n); err != nil {
		return b.errorf("GemmS8: %w", err)
	}
	if err := ep.Check(m, n); err != nil {
		return b.errorf("GemmS8: %w", err)
	}
	if padK(k) > math.MaxInt32 {
		return b.errorf("GemmS8: k=%d is too large for the kernel", k)
	}
	return b.do(func() error { return b.gemmS8(m, n, k, A, B, C, ep) })
}

// padK is k rounded up to the kernel's granularity, and at least one step.
func padK(k int) int {
	return max(ceilDiv(k, gemmS8KAlign), 1) * gemmS8KAlign
}

func (b *Backend) gemmS8(m, n, k int, A, B, C *Buffer, ep *backend.Epilogue) error {
	if m == 0 || n == 0 {
		return nil
	}
	var kern *kernel
	switch C.dt {
	case backend.S32:
		kern = &b.k.gemmS8S32
	case backend.F32:
		kern = &b.k.gemmS8F32
	default:
		kern = &b.k.gemmS8S8
	}
	what := fmt.Sprintf("m=%d n=%d k=%d", m, n, k)
	kp := padK(k)
	aP, err := b.gemmOperand(&b.scratch.padA, A.ptr(), m, k, kp, "A", what)
	if err != nil {
		return err
	}
	bP, err := b.gemmOperand(&b.scratch.padB, B.ptr(), n, k, kp, "B", what)
	if err != nil {
		return err
	}

	var e backend.Epilogue
	if ep != nil {
		e = *ep
	}
	colOff, err := b.vector(&b.scratch.colOffset, asBytes(e.ColOffset), "the column offsets")
	if err != nil {
		return err
	}
	var rs, cs, bias cu.DevicePtr
	if C.dt != backend.S32 {
		if rs, err = b.vector(&b.scratch.rowScale, asBytes(e.RowScale), "the row scales"); err != nil {
			return err
		}
		if cs, err = b.vector(&b.scratch.colScale, asBytes(e.ColScale), "the column scales"); err != nil {
			return err
		}
		if bias, err = b.vector(&b.scratch.bias, asBytes(e.Bias), "the bias"); err != nil {
			return err
		}
	}

	size := C.dt.Size()
	slab := b.maxGridY * gemmS8BM
	for m0 := 0; m0 < m; m0 += slab {
		rows := min(slab, m-m0)
		args := []arg{
			ptrArg(aP + cu.DevicePtr(m0*kp)), ptrArg(bP), ptrArg(C.ptr() + cu.DevicePtr(m0*n*size)),
			intArg(rows), intArg(n), intArg(kp), ptrArg(colOff),
		}
		if C.dt != backend.S32 {
			rsP, rsLen := rs, len(e.RowScale)
			if rsLen > 1 { // one per row: this slab's
				rsP += cu.DevicePtr(m0 * 4)
				rsLen = rows
			}
			args = append(args, ptrArg(rsP), intArg(rsLen), ptrArg(cs), intArg(len(e.ColScale)),
				ptrArg(bias), boolArg(e.ReLU))
		}
		if C.dt == backend.S8 {
			args = append(args, f32Arg(e.OutScale), intArg(int(e.OutZeroPoint)))
		}
		if err := b.launch(kern, ceilDiv(n, gemmS8BN), ceilDiv(rows, gemmS8BM), gemmS8Threads, gemmS8Smem, what, args...); err != nil {
			return err
		}
	}
	return nil
}

// gemmOperand returns the address of an int8 operand of rows×k at src as
// the kernel needs it, rows of kp bytes (kp a multiple of 16) starting
// 16-byte aligned: src itself when it is so, else a copy in s — zero-padded
// by pad_rows_s8 when k < kp, a plain copy when only the alignment is off,
// all zeros when k = 0.
func (b *Backend) gemmOperand(s *scratch, src cu.DevicePtr, rows, k, kp int, name, what string) (cu.DevicePtr, error) {
	if k == kp && src%gemmS8KAlign == 0 {
		return src, nil
	}
	bytes := int64(rows) * int64(kp)
	p, err := b.ensure(s, bytes, "padding "+name)
	if err != nil {
		return 0, err
	}
	switch {
	case k == 0:
		if err := cu.MemsetD8Async(p, 0, bytes, b.stream); err != nil {
			return 0, b.asyncErr(fmt.Sprintf("GemmS8 %s: zeroing %s", what, name), err)
		}
	case k == kp:
		if err := cu.MemcpyDtoDAsync(p, src, bytes, b.stream); err != nil {
			return 0, b.asyncErr(fmt.Sprintf("GemmS8 %s: aligning %s", what, name), err)
		}
	default:
		words := int(bytes / 4)
		if err := b.launch(&b.k.padRowsS8, b.strideGrid(words), 1, padRowsThreads, 0,
			fmt.Sprintf("rows=%d K=%d Kpad=%d (%s of gemm_s8 %s)", rows, k, kp, name, what),
			ptrArg(src), ptrArg(p), intArg(rows), intArg(k), intArg(kp)); err != nil {
			return 0, err
		}
	}
	return p, nil
}

// gemmDimsError is backend.CheckGemm, and the dimensions must fit the
// kernels' int parameters.
func gemmDimsError(m, n, k, la, lb, lc int) error {
	if m > math.MaxInt32 || n > math.MaxInt32 || k > math.MaxInt32 {
		return fmt.Errorf("m=%d n=%d k=%d: a dimension exceeds the kernels' 32-bit sizes", m, n, k)
	}
	return backend.CheckGemm(m, n, k, la, lb, lc)
}
