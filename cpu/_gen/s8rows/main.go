// Command s8rows generates the int8 row kernels of package cpu
// (s8rows_amd64.s): for m ≤ 4 rows of A and a run of rows of B, both
// read where they lie, the exact int32 dot product of every pair, one row
// of B at a time from its first byte to its last. They serve GemmS8 for
// few rows of A (a W8A8 decode step): B, the weight, streams through once
// in order, as the packed integer kernels (_gen/packedq8) stream theirs,
// which the hardware prefetchers follow; the rows of A stay in L1.
//
//	gemmS8Rows{m}AVX2        VPMOVSXBW widens 16 bytes of B to int16,
//	                         VPMADDWD multiplies them by A (widened to
//	                         int16 by the caller) and adds pairs into
//	                         int32 lanes (two products of at most 2^14
//	                         each: no overflow), VPADDD accumulates
//	                         (wrapping as int32 addition does).
//	gemmS8Rows{m}AVX512VNNI  VPDPBUSD on 64 bytes: B flipped to B+128
//	                         (unsigned), A signed; the caller subtracts
//	                         128·Σ A[r, ·]. The last, partial 64 bytes
//	                         of k are read under a mask.
//
// Two sets of accumulators take alternate steps of k, so that each waits
// on the other half as often.
//
//	cd cpu/_gen && go run ./s8rows    # or make asm
//
// The pure-Go twins in package cpu, gemmS8RowsAVX2Go and
// gemmS8RowsVNNIGo (gemm_s8thin_amd64.go), compute the same sums; int32
// addition wraps the same whatever its order, so they agree exactly.
package main

import (
	"fmt"
	"os"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../s8rows_amd64.s", "-stubs", "../s8rows_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	for m := 1; m <= 4; m++ {
		rowsAVX2(m)
	}
	for m := 1; m <= 4; m++ {
		rowsVNNI(m)
	}
	Generate()
}

var (
	ymm = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}
	zmm = []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23}
)

// rowAt is row r of a matrix at base with rows ld bytes apart (ld3 = 3·ld),
// plus disp bytes.
func rowAt(base, ld, ld3 GPPhysical, r, disp int) Mem {
	switch r {
	case 0:
		return Mem{Base: base, Disp: disp}
	case 3:
		return Mem{Base: base, Index: ld3, Scale: 1, Disp: disp}
	}
	return Mem{Base: base, Index: ld, Scale: uint8(r), Disp: disp}
}

// registers of both kernels.
var (
	kv, a, lda, lda3, b, ldb, rows = RCX, RAX, R9, R11, RBX, R10, RDX
	c, ldc, ldc3, p, pa, pb, tail  = RDI, R8, R12, R13, R14, R15, RSI
)

// loadCommon loads the parameters both kernels share and turns the
// strides into bytes (eltA: the size of an element of A).
func loadCommon(m, eltA int) {
	Load(Param("kv"), kv)
	Load(Param("a"), a)
	Load(Param("lda"), lda)
	Load(Param("b"), b)
	Load(Param("ldb"), ldb)
	Load(Param("rows"), rows)
	Load(Param("c"), c)
	Load(Param("ldc"), ldc)
	if eltA == 2 {
		SHLQ(U8(1), lda)
	}
	SHLQ(U8(2), ldc)
	if m == 4 {
		LEAQ(Mem{Base: lda, Index: lda, Scale: 2}, lda3)
		LEAQ(Mem{Base: ldc, Index: ldc, Scale: 2}, ldc3)
	}
}

// reduce adds the second accumulators into the first, sums the lanes of
// each and stores the m sums at c + r·ldc. tmp is a scratch register of
// the accumulators' width.
func reduce(acc0, acc1 []VecPhysical, tmp VecPhysical, zmmWide bool) {
	for r := range acc0 {
		x, t := acc0[r], tmp
		VPADDD(acc1[r], x, x)
		if zmmWide {
			VEXTRACTI64X4(U8(1), x, t.AsY())
			VPADDD(t.AsY(), x.AsY(), x.AsY())
		}
		VEXTRACTI128(U8(1), x.AsY(), t.AsX())
		VPADDD(t.AsX(), x.AsX(), x.AsX())
		VPSHUFD(U8(0x4e), x.AsX(), t.AsX())
		VPADDD(t.AsX(), x.AsX(), x.AsX())
		VPSHUFD(U8(0xb1), x.AsX(), t.AsX())
		VPADDD(t.AsX(), x.AsX(), x.AsX())
		VMOVD(x.AsX(), rowAt(c, ldc, ldc3, r, 0))
	}
}

func rowsAVX2(m int) {
	name := fmt.Sprintf("gemmS8Rows%dAVX2", m)
	TEXT(name, NOSPLIT, "func(kv int, a *int16, lda int, b *int8, ldb int, rows int, c *int32, ldc int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, with VPMOVSXBW, VPMADDWD and VPADDD (AVX2), for m = %d rows", name, m),
		"of A as int16 (a[r*lda+p] = A[r, p]) and rows rows of B where they lie",
		"(b[j*ldb+p] = B[j, p]), k = 16·kv (kv ≥ 0),",
		"",
		fmt.Sprintf("\tfor r := range %d {", m),
		"\t\tfor j := range rows {",
		"\t\t\tvar s int32",
		"\t\t\tfor p := range k {",
		"\t\t\t\ts += int32(a[r*lda+p]) * int32(b[j*ldb+p])",
		"\t\t\t}",
		"\t\t\tc[r*ldc+j] = s",
		"\t\t}",
		"\t}",
		"",
		"in int32 arithmetic that wraps (gemmS8RowsAVX2Go). B's rows are read",
		"in order, each from its first byte to its last.")
	loadCommon(m, 2)
	acc0, acc1 := ymm[:m], ymm[m:2*m]
	b0, b1, t0, t1 := ymm[2*m], ymm[2*m+1], ymm[2*m+2], ymm[2*m+3]
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_done"))
	Label(name + "_row")
	for r := range m {
		VPXOR(acc0[r], acc0[r], acc0[r])
		VPXOR(acc1[r], acc1[r], acc1[r])
	}
	MOVQ(a, pa)
	MOVQ(b, pb)
	MOVQ(kv, p)
	SUBQ(U8(2), p)
	JB(LabelRef(name + "_odd"))
	Label(name + "_pairs")
	VPMOVSXBW(Mem{Base: pb}, b0)
	VPMOVSXBW(Mem{Base: pb, Disp: 16}, b1)
	for r := range m {
		VPMADDWD(rowAt(pa, lda, lda3, r, 0), b0, t0)
		VPADDD(t0, acc0[r], acc0[r])
		VPMADDWD(rowAt(pa, lda, lda3, r, 32), b1, t1)
		VPADDD(t1, acc1[r], acc1[r])
	}
	ADDQ(U8(64), pa)
	ADDQ(U8(32), pb)
	SUBQ(U8(2), p)
	JAE(LabelRef(name + "_pairs"))
	Label(name + "_odd")
	CMPQ(p, I8(-1))
	JNE(LabelRef(name + "_reduce"))
	VPMOVSXBW(Mem{Base: pb}, b0)
	for r := range m {
		VPMADDWD(rowAt(pa, lda, lda3, r, 0), b0, t0)
		VPADDD(t0, acc0[r], acc0[r])
	}
	Label(name + "_reduce")
	reduce(acc0, acc1, t0, false)
	ADDQ(ldb, b)
	ADDQ(U8(4), c)
	DECQ(rows)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

func rowsVNNI(m int) {
	name := fmt.Sprintf("gemmS8Rows%dAVX512VNNI", m)
	TEXT(name, NOSPLIT, "func(kv int, tail uint64, a *int8, lda int, b *int8, ldb int, rows int, c *int32, ldc int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, with VPDPBUSD (AVX-512 VNNI), for m = %d rows of A", name, m),
		"(a[r*lda+p] = A[r, p]) and rows rows of B where they lie (b[j*ldb+p] = B[j, p]),",
		"k = 64·kv plus the bits set in the mask tail (the low ones),",
		"",
		fmt.Sprintf("\tfor r := range %d {", m),
		"\t\tfor j := range rows {",
		"\t\t\tvar s int32",
		"\t\t\tfor p := range k {",
		"\t\t\t\ts += int32(a[r*lda+p]) * (int32(b[j*ldb+p]) + 128)",
		"\t\t\t}",
		"\t\t\tc[r*ldc+j] = s",
		"\t\t}",
		"\t}",
		"",
		"in int32 arithmetic that wraps (gemmS8RowsVNNIGo); kv + tail ≥ 1. B's",
		"rows are read in order, each from its first byte to its last.")
	loadCommon(m, 1)
	Load(Param("tail"), tail)
	KMOVQ(tail, K1)
	acc0, acc1 := zmm[:m], zmm[m:2*m]
	at := zmm[2*m : 3*m] // the masked last vector of each row of A
	b0, b1, flip, t0 := zmm[3*m], zmm[3*m+1], zmm[3*m+2], zmm[3*m+3]
	MOVL(U32(0x80808080), pb.As32())
	VPBROADCASTD(pb.As32(), flip)
	// The rows of A end the same for every row of B: load their last,
	// partial vectors once.
	MOVQ(kv, pa)
	SHLQ(U8(6), pa)
	ADDQ(a, pa)
	for r := range m {
		VMOVDQU8_Z(rowAt(pa, lda, lda3, r, 0), K1, at[r])
	}
	vnni := func(s Op, u, acc VecPhysical) {
		Instruction(&ir.Instruction{
			Opcode: "VPDPBUSD", Operands: []Op{s, u, acc},
			Inputs: []Op{s, u, acc}, Outputs: []Op{acc}, ISA: []string{"AVX512_VNNI"},
		})
	}
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_done"))
	Label(name + "_row")
	for r := range m {
		VPXORD(acc0[r], acc0[r], acc0[r])
		VPXORD(acc1[r], acc1[r], acc1[r])
	}
	MOVQ(a, pa)
	MOVQ(b, pb)
	MOVQ(kv, p)
	SUBQ(U8(2), p)
	JB(LabelRef(name + "_odd"))
	Label(name + "_pairs")
	VMOVDQU32(Mem{Base: pb}, b0)
	VMOVDQU32(Mem{Base: pb, Disp: 64}, b1)
	VPXORD(flip, b0, b0)
	VPXORD(flip, b1, b1)
	for r := range m {
		vnni(rowAt(pa, lda, lda3, r, 0), b0, acc0[r])
		vnni(rowAt(pa, lda, lda3, r, 64), b1, acc1[r])
	}
	SUBQ(I8(-128), pa)
	SUBQ(I8(-128), pb)
	SUBQ(U8(2), p)
	JAE(LabelRef(name + "_pairs"))
	Label(name + "_odd")
	CMPQ(p, I8(-1))
	JNE(LabelRef(name + "_tail"))
	VMOVDQU32(Mem{Base: pb}, b0)
	VPXORD(flip, b0, b0)
	for r := range m {
		vnni(rowAt(pa, lda, lda3, r, 0), b0, acc0[r])
	}
	ADDQ(U8(64), pb)
	Label(name + "_tail")
	TESTQ(tail, tail)
	JZ(LabelRef(name + "_reduce"))
	// Bytes past k load as 0, flip to 128, and meet zeros of A.
	VMOVDQU8_Z(Mem{Base: pb}, K1, b0)
	VPXORD(flip, b0, b0)
	for r := range m {
		vnni(at[r], b0, acc1[r])
	}
	Label(name + "_reduce")
	reduce(acc0, acc1, t0, true)
	ADDQ(ldb, b)
	ADDQ(U8(4), c)
	DECQ(rows)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}
