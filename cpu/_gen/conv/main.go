// Command conv generates the convolution micro-kernels of package cpu
// (conv_kernels_amd64.s and its stubs): the f32 GEMM kernels of
// cpu/_gen/gemm with B read where it lies, a row of nr values per step
// of k at an offset of its own from b, so that ConvF32 passes the offsets
// of window rows in the planes instead of copying them into a panel.
package main

import (
	"fmt"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var (
	zmm = []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}
	ymm = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}
)

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../conv_kernels_amd64.s", "-stubs", "../conv_kernels_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	kernel("convF32Kernel14x32AVX512", 14, 2, zmm)
	kernel("convF32Kernel6x16AVX2", 6, 2, ymm)
	// Few output channels: tiles of 8 (4) rows, the output channels of a
	// small CNN's convolutions, over wide runs of positions.
	kernel("convF32Kernel8x48AVX512", 8, 3, zmm)
	kernel("convF32Kernel8x32AVX512", 8, 2, zmm)
	kernel("convF32Kernel4x24AVX2", 4, 3, ymm)
	pools()
	maxWindows()
	maxWindowsS32()
	Generate()
}

// Registers, as cpu/_gen/gemm's kernels use them; rP walks the table of
// B's row offsets, and rAcc holds the offset of the step in the loop.
var (
	rA   = RAX
	rA9  = R13
	rLDA = R9
	rLD3 = R10
	rLD5 = R11
	rLD7 = R12
	rB   = RBX
	rP   = RDX
	rK   = RCX
	rC   = RDI
	rLDC = RSI
	rAcc = R8
)

// rowA addresses element 0 of row r (< 14) of A.
func rowA(r int) Mem {
	switch r {
	case 0:
		return Mem{Base: rA}
	case 1, 2, 4, 8:
		return Mem{Base: rA, Index: rLDA, Scale: uint8(r)}
	case 3, 6, 12:
		return Mem{Base: rA, Index: rLD3, Scale: uint8(r / 3)}
	case 5:
		return Mem{Base: rA, Index: rLD5, Scale: 1}
	case 7:
		return Mem{Base: rA, Index: rLD7, Scale: 1}
	case 9:
		return Mem{Base: rA9}
	case 10, 11, 13:
		return Mem{Base: rA9, Index: rLDA, Scale: uint8(r - 9)}
	}
	panic("row out of range")
}

// kernel emits an mr×(nv vectors) float32 kernel whose step p loads nv
// vectors of B from b[steps[p]] on.
func kernel(name string, mr, nv int, v []VecPhysical) {
	w := int(v[0].Size()) / 4
	nr := nv * w
	TEXT(name, NOSPLIT, "func(kc int, a *float32, lda int, b *float32, steps *int, c *float32, ldc int, bias *float32, relu bool)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, for %d rows of A where they lie (a[r*lda+p] = A[r, p]) and", name, mr),
		fmt.Sprintf("rows of B where they lie, step p's %d values from b[steps[p]] on (B[j, p] = b[steps[p]+j]),", nr),
		"with fused multiply-adds, the bias added on the way out,",
		"",
		fmt.Sprintf("\tfor r := range %d {", mr),
		fmt.Sprintf("\t\tfor j := range %d {", nr),
		"\t\t\ts := bias[r]",
		"\t\t\tfor p := range kc {",
		"\t\t\t\ts += a[r*lda+p] * b[steps[p]+j]",
		"\t\t\t}",
		"\t\t\tif relu && s < 0 {",
		"\t\t\t\ts = 0 // NaN stays",
		"\t\t\t}",
		"\t\t\tc[r*ldc+j] = s",
		"\t\t}",
		"\t}",
		"",
		"kc must be at least 1. (The sum starts from zero and the bias is added",
		"last; relu keeps a −0.)")
	n := mr * nv
	if n+nv+1 > len(v) {
		panic("tile does not fit the register file")
	}
	acc, bv, tv := v[:n], v[n:n+nv], v[n+nv:]
	Load(Param("kc"), rK)
	Load(Param("a"), rA)
	Load(Param("lda"), rLDA)
	SHLQ(U8(2), rLDA)
	LEAQ(Mem{Base: rLDA, Index: rLDA, Scale: 2}, rLD3)
	LEAQ(Mem{Base: rLDA, Index: rLDA, Scale: 4}, rLD5)
	LEAQ(Mem{Base: rLD3, Index: rLDA, Scale: 4}, rLD7)
	LEAQ(Mem{Base: rA, Index: rLDA, Scale: 8}, rA9)
	ADDQ(rLDA, rA9)
	Load(Param("b"), rB)
	Load(Param("steps"), rP)
	Load(Param("c"), rC)
	Load(Param("ldc"), rLDC)
	SHLQ(U8(2), rLDC)
	for _, r := range acc {
		VXORPS(r, r, r)
	}
	Label(name + "_loop")
	MOVQ(Mem{Base: rP}, rAcc)
	for j, r := range bv {
		VMOVUPS(Mem{Base: rB, Index: rAcc, Scale: 4, Disp: j * int(r.Size())}, r)
	}
	for i := range mr {
		t := tv[i%len(tv)]
		VBROADCASTSS(rowA(i), t)
		for j := range nv {
			VFMADD231PS(bv[j], t, acc[i*nv+j])
		}
	}
	ADDQ(U8(4), rA)
	ADDQ(U8(4), rA9)
	ADDQ(U8(8), rP)
	DECQ(rK)
	JNZ(LabelRef(name + "_loop"))

	// The epilogue: B's registers are free, the first holds zero, and a
	// temporary the broadcast bias of a row.
	size := int(acc[0].Size())
	zero, t := bv[0], tv[0]
	VXORPS(zero, zero, zero)
	Load(Param("bias"), rB)
	Load(Param("relu"), rAcc)
	TESTQ(rAcc, rAcc)
	JZ(LabelRef(name + "_store"))
	store(mr, nv, size, acc, t, zero, true)
	Label(name + "_store")
	store(mr, nv, size, acc, t, zero, false)
}

// store writes the tile's rows to C, each with its bias added and, with
// relu, the maximum of it and zero (VMAXPS returns its second source,
// the sum, when either is a NaN), then returns.
func store(mr, nv, size int, acc []VecPhysical, t, zero VecPhysical, relu bool) {
	for i := range mr {
		VBROADCASTSS(Mem{Base: rB, Disp: 4 * i}, t)
		for j := range nv {
			a := acc[i*nv+j]
			VADDPS(t, a, a)
			if relu {
				VMAXPS(a, zero, a)
			}
			VMOVUPS(a, Mem{Base: rC, Disp: j * size})
		}
		ADDQ(rLDC, rC)
	}
	VZEROUPPER()
	RET()
}

// pools emits the max-pool row kernels (AVX2; a NaN in a window is its
// maximum). A row's last partial vector is computed again as the row's
// last whole vector (rewriting some outputs with their own values), or,
// in rows shorter than a vector, read and written with masks from
// poolMask: nothing past a row is touched.
func pools() {
	mask := GLOBL("poolMask", RODATA|NOPTR)
	for i := range 16 {
		DATA(4*i, U32(0xFFFFFFFF))
	}
	for i := 16; i < 32; i++ {
		DATA(4*i, U32(0))
	}

	TEXT("maxPool2x2RowAVX2", NOSPLIT, "func(y, r0, r1 *float32, n int)")
	Pragma("noescape")
	Doc("maxPool2x2RowAVX2 is, for j < n, y[j] = max(r0[2j], r0[2j+1], r1[2j], r1[2j+1]),",
		"a NaN in a window being its maximum.")
	y, a, b, n := RDI, RSI, RDX, RCX
	Load(Param("y"), y)
	Load(Param("r0"), a)
	Load(Param("r1"), b)
	Load(Param("n"), n)
	MOVQ(n, R8)
	LEAQ(mask, RAX)
	pool2 := func(load func(m Mem, dst VecPhysical, half int), store func(v VecPhysical)) {
		load(Mem{Base: a}, Y0, 0)
		load(Mem{Base: a, Disp: 32}, Y1, 1)
		load(Mem{Base: b}, Y2, 0)
		load(Mem{Base: b, Disp: 32}, Y3, 1)
		nanMax(Y0, Y2, Y8, Y4)
		nanMax(Y1, Y3, Y9, Y5)
		// Even and odd columns: per 128-bit lane, m0's then m1's, so
		// pairs 0 1 4 5 | 2 3 6 7 until VPERMPD puts them in order.
		VSHUFPS(U8(0x88), Y9, Y8, Y10)
		VSHUFPS(U8(0xDD), Y9, Y8, Y11)
		nanMax(Y10, Y11, Y12, Y4)
		VPERMPD(U8(0xD8), Y12, Y12)
		store(Y12)
	}
	Label("maxPool2x2RowAVX2_loop")
	CMPQ(n, U8(8))
	JL(LabelRef("maxPool2x2RowAVX2_tail"))
	pool2(func(m Mem, dst VecPhysical, _ int) { VMOVUPS(m, dst) }, func(v VecPhysical) { VMOVUPS(v, Mem{Base: y}) })
	ADDQ(U8(64), a)
	ADDQ(U8(64), b)
	ADDQ(U8(32), y)
	SUBQ(U8(8), n)
	JMP(LabelRef("maxPool2x2RowAVX2_loop"))
	Label("maxPool2x2RowAVX2_tail")
	TESTQ(n, n)
	JZ(LabelRef("maxPool2x2RowAVX2_done"))
	// k = n < 8 outputs left of at least 8: the last 8 outputs again,
	// overlapping ones already written with the same values.
	CMPQ(R8, U8(8))
	JL(LabelRef("maxPool2x2RowAVX2_masked"))
	SUBQ(U8(8), n)
	LEAQ(Mem{Base: y, Index: n, Scale: 4}, y)
	SHLQ(U8(3), n)
	ADDQ(n, a)
	ADDQ(n, b)
	pool2(func(m Mem, dst VecPhysical, _ int) { VMOVUPS(m, dst) }, func(v VecPhysical) { VMOVUPS(v, Mem{Base: y}) })
	JMP(LabelRef("maxPool2x2RowAVX2_done"))
	Label("maxPool2x2RowAVX2_masked")
	// k = n < 8 outputs left: the input masks have 2k ones over two
	// vectors (poolMask from dword 16−2k, and 8 further on), the output
	// mask k (from dword 16−k).
	MOVQ(n, RBX)
	SHLQ(U8(3), RBX)
	NEGQ(RBX)
	VMOVDQU(Mem{Base: RAX, Index: RBX, Scale: 1, Disp: 64}, Y6)
	VMOVDQU(Mem{Base: RAX, Index: RBX, Scale: 1, Disp: 96}, Y7)
	SARQ(U8(1), RBX)
	VMOVDQU(Mem{Base: RAX, Index: RBX, Scale: 1, Disp: 64}, Y13)
	pool2(func(m Mem, dst VecPhysical, half int) { VMASKMOVPS(m, []VecPhysical{Y6, Y7}[half], dst) },
		func(v VecPhysical) { VMASKMOVPS(v, Y13, Mem{Base: y}) })
	Label("maxPool2x2RowAVX2_done")
	VZEROUPPER()
	RET()

	TEXT("maxIntoAVX2", NOSPLIT, "func(y, x *float32, n int)")
	Pragma("noescape")
	Doc("maxIntoAVX2 is, for j < n, y[j] = max(y[j], x[j]), a NaN in either being the maximum.")
	Load(Param("y"), y)
	Load(Param("x"), a)
	Load(Param("n"), n)
	MOVQ(n, R8)
	LEAQ(mask, RAX)
	Label("maxIntoAVX2_loop")
	CMPQ(n, U8(8))
	JL(LabelRef("maxIntoAVX2_tail"))
	VMOVUPS(Mem{Base: y}, Y0)
	VMOVUPS(Mem{Base: a}, Y1)
	nanMax(Y0, Y1, Y2, Y3)
	VMOVUPS(Y2, Mem{Base: y})
	ADDQ(U8(32), a)
	ADDQ(U8(32), y)
	SUBQ(U8(8), n)
	JMP(LabelRef("maxIntoAVX2_loop"))
	Label("maxIntoAVX2_tail")
	TESTQ(n, n)
	JZ(LabelRef("maxIntoAVX2_done"))
	// The last 8 again where there are 8: max is idempotent.
	CMPQ(R8, U8(8))
	JL(LabelRef("maxIntoAVX2_masked"))
	SUBQ(U8(8), n)
	LEAQ(Mem{Base: y, Index: n, Scale: 4}, y)
	LEAQ(Mem{Base: a, Index: n, Scale: 4}, a)
	VMOVUPS(Mem{Base: y}, Y0)
	VMOVUPS(Mem{Base: a}, Y1)
	nanMax(Y0, Y1, Y2, Y3)
	VMOVUPS(Y2, Mem{Base: y})
	JMP(LabelRef("maxIntoAVX2_done"))
	Label("maxIntoAVX2_masked")
	MOVQ(n, RBX)
	SHLQ(U8(2), RBX)
	NEGQ(RBX)
	VMOVDQU(Mem{Base: RAX, Index: RBX, Scale: 1, Disp: 64}, Y6)
	VMASKMOVPS(Mem{Base: y}, Y6, Y0)
	VMASKMOVPS(Mem{Base: a}, Y6, Y1)
	nanMax(Y0, Y1, Y2, Y3)
	VMASKMOVPS(Y2, Y6, Mem{Base: y})
	Label("maxIntoAVX2_done")
	VZEROUPPER()
	RET()
}

// maxWindows emits maxWindowsAVX2, the maxima of kh×kw windows at each
// of n columns (n a multiple of 8), eight columns at a time.
func maxWindows() {
	TEXT("maxWindowsAVX2", NOSPLIT, "func(t, x *float32, rs, kh, kw, n int)")
	Pragma("noescape")
	Doc("maxWindowsAVX2 is, for j < n (a multiple of 8), t[j] = the maximum of x[h*rs+j+u]",
		"over h < kh and u < kw (both at least 1), a NaN in a window being its maximum.")
	t, x, rs, kh, kw, n := RDI, RSI, RDX, R8, R9, RCX
	row, col, h, u := R10, R11, R12, R13
	Load(Param("t"), t)
	Load(Param("x"), x)
	Load(Param("rs"), rs)
	SHLQ(U8(2), rs)
	Load(Param("kh"), kh)
	Load(Param("kw"), kw)
	Load(Param("n"), n)
	SHRQ(U8(3), n)
	JZ(LabelRef("maxWindowsAVX2_done"))
	Label("maxWindowsAVX2_vec")
	VMOVUPS(Mem{Base: x}, Y0)
	MOVQ(x, row)
	MOVQ(kh, h)
	Label("maxWindowsAVX2_row")
	MOVQ(row, col)
	MOVQ(kw, u)
	Label("maxWindowsAVX2_col")
	VMOVUPS(Mem{Base: col}, Y1)
	nanMax(Y0, Y1, Y2, Y3)
	VMOVAPS(Y2, Y0)
	ADDQ(U8(4), col)
	DECQ(u)
	JNZ(LabelRef("maxWindowsAVX2_col"))
	ADDQ(rs, row)
	DECQ(h)
	JNZ(LabelRef("maxWindowsAVX2_row"))
	VMOVUPS(Y0, Mem{Base: t})
	ADDQ(U8(32), x)
	ADDQ(U8(32), t)
	DECQ(n)
	JNZ(LabelRef("maxWindowsAVX2_vec"))
	Label("maxWindowsAVX2_done")
	VZEROUPPER()
	RET()
}

// maxWindowsS32 emits maxWindowsS32AVX2, maxWindows for int32 values
// whose window columns lie step values apart (the pixels of NHWC rows).
func maxWindowsS32() {
	TEXT("maxWindowsS32AVX2", NOSPLIT, "func(t, x *int32, rs, kh, kw, step, n int)")
	Pragma("noescape")
	Doc("maxWindowsS32AVX2 is, for j < n (a multiple of 8), t[j] = the maximum of x[h*rs+u*step+j]",
		"over h < kh and u < kw (both at least 1).")
	t, x, rs, kh, kw, step, n := RDI, RSI, RDX, R8, R9, RBX, RCX
	row, col, h, u := R10, R11, R12, R13
	Load(Param("t"), t)
	Load(Param("x"), x)
	Load(Param("rs"), rs)
	SHLQ(U8(2), rs)
	Load(Param("kh"), kh)
	Load(Param("kw"), kw)
	Load(Param("step"), step)
	SHLQ(U8(2), step)
	Load(Param("n"), n)
	SHRQ(U8(3), n)
	JZ(LabelRef("maxWindowsS32AVX2_done"))
	Label("maxWindowsS32AVX2_vec")
	VMOVDQU(Mem{Base: x}, Y0)
	MOVQ(x, row)
	MOVQ(kh, h)
	Label("maxWindowsS32AVX2_row")
	MOVQ(row, col)
	MOVQ(kw, u)
	Label("maxWindowsS32AVX2_col")
	VPMAXSD(Mem{Base: col}, Y0, Y0)
	ADDQ(step, col)
	DECQ(u)
	JNZ(LabelRef("maxWindowsS32AVX2_col"))
	ADDQ(rs, row)
	DECQ(h)
	JNZ(LabelRef("maxWindowsS32AVX2_row"))
	VMOVDQU(Y0, Mem{Base: t})
	ADDQ(U8(32), x)
	ADDQ(U8(32), t)
	DECQ(n)
	JNZ(LabelRef("maxWindowsS32AVX2_vec"))
	Label("maxWindowsS32AVX2_done")
	VZEROUPPER()
	RET()
}

// nanMax writes max(p, q) to dst, a NaN in either being the result:
// VMAXPS returns its second source, q, when either is a NaN, and p's
// NaNs are blended in after. tmp is clobbered.
func nanMax(p, q, dst, tmp VecPhysical) {
	VMAXPS(q, p, dst)
	VCMPPS(U8(3), p, p, tmp) // unordered: p is a NaN
	VBLENDVPS(tmp, p, dst, dst)
}
