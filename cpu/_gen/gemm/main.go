// Command gemm generates the amd64 GEMM micro-kernels of package cpu:
// cpu/gemm_amd64.s and its declarations, cpu/gemm_stubs_amd64.go.
//
// Run it from cpu/_gen with `go run ./gemm` (make asm; make asm-check
// fails when the committed files differ from what it writes).
//
// The tile kernels multiply mr rows of A, read where they lie (or, for
// the AVX2 int8 kernel, packed in int16 pairs), by a panel of nr rows of
// B packed along k, over kc steps, with every sum of the mr×nr tile in a
// vector register, and store the tile into C (or add it to C) at the end:
// C is read and written once per call, A and B are each read once. The
// dot kernels, for GEMMs with at most four rows on one side, take vectors
// along k from both operands in place and reduce each sum across its
// lanes at the end. packWords32AVX512 packs B for the AVX-512 int8
// kernel, sumS8AVX512VNNI sums rows of A for its offset correction.
//
// Every kernel uses fixed registers: the tile takes nearly the whole
// vector register file, so there is nothing for an allocator to decide.
// Instructions avo v0.5.0 does not know are built as ir.Instructions:
// VPDPBUSD in its EVEX form (which Go's assembler knows), and in its VEX
// form (AVX-VNNI, which Go's assembler does not know either) as bytes.
package main

import (
	"fmt"
	"os"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
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
		os.Args = append(os.Args, "-out", "../gemm_amd64.s", "-stubs", "../gemm_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")

	f32Kernel("gemmF32Kernel14x32AVX512", 14, 2, zmm)
	f32Kernel("gemmF32Kernel6x16AVX2", 6, 2, ymm)
	s8Kernel("gemmS8Kernel14x32AVX512VNNI", 14, 2, zmm, dotVNNI512)
	s8Kernel("gemmS8Kernel6x16AVXVNNI", 6, 2, ymm, dotVNNI256)
	s8Kernel("gemmS8Kernel6x16AVX2", 6, 2, ymm, dotAVX2)
	packWords32()
	sumS8VNNI()
	epilogueF32()
	epilogueS8()
	for m := 1; m <= 4; m++ {
		dotKernel(fmt.Sprintf("gemmF32Dot%dx4AVX512", m), m)
	}

	Generate()
}

// Fixed general-purpose registers of every kernel.
var (
	rA   = RAX // A: row 0 of the panel, or the packed panel
	rA9  = R13 // A: row 9 of the panel
	rLDA = R9  // row stride of A in bytes
	rLD3 = R10 // 3·rLDA
	rLD5 = R11 // 5·rLDA
	rLD7 = R12 // 7·rLDA
	rB   = RBX // packed B: nr values (or words) per step
	rK   = RCX // steps left
	rC   = RDI // C, row by row
	rLDC = RSI // row stride of C in bytes
	rAcc = R8  // accumulate into C (1) or store (0)
)

// header loads the arguments common to every kernel; with lda, A is read
// where it lies, a row every lda elements of elem bytes.
func header(lda bool, elem int) {
	Load(Param("kc"), rK)
	Load(Param("a"), rA)
	if lda {
		Load(Param("lda"), rLDA)
		if elem > 1 {
			SHLQ(U8(log2(elem)), rLDA)
		}
		LEAQ(Mem{Base: rLDA, Index: rLDA, Scale: 2}, rLD3)
		LEAQ(Mem{Base: rLDA, Index: rLDA, Scale: 4}, rLD5)
		LEAQ(Mem{Base: rLD3, Index: rLDA, Scale: 4}, rLD7)
		LEAQ(Mem{Base: rA, Index: rLDA, Scale: 8}, rA9)
		ADDQ(rLDA, rA9)
	}
	Load(Param("b"), rB)
	Load(Param("c"), rC)
	Load(Param("ldc"), rLDC)
	SHLQ(U8(2), rLDC)
	Load(Param("accumulate"), rAcc)
}

// rowA addresses element 0 of row r (< 14) of A read in place, with the
// registers header sets: every row is a base plus a scaled index.
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

func log2(x int) int {
	n := 0
	for 1<<n < x {
		n++
	}
	return n
}

// f32Kernel emits an mr×(nv vectors) float32 kernel. Per step p it loads
// nv vectors of B, broadcasts each of the mr values of A and issues mr·nv
// fused multiply-adds into the tile.
func f32Kernel(name string, mr, nv int, v []VecPhysical) {
	w := int(v[0].Size()) / 4 // float32 lanes
	nr := nv * w
	TEXT(name, NOSPLIT, "func(kc int, a *float32, lda int, b, c *float32, ldc int, accumulate bool)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, for %d rows of A where they lie (a[r*lda+p] = A[r, p]) and a", name, mr),
		fmt.Sprintf("panel b of %d rows of B interleaved along k (b[p*%d+j] = B[j, p]), with fused", nr, nr),
		"multiply-adds,",
		"",
		fmt.Sprintf("\tfor r := range %d {", mr),
		fmt.Sprintf("\t\tfor j := range %d {", nr),
		"\t\t\tvar s float32",
		"\t\t\tfor p := range kc {",
		fmt.Sprintf("\t\t\t\ts += a[p*%d+r] * b[p*%d+j]", mr, nr),
		"\t\t\t}",
		"\t\t\tif accumulate {",
		"\t\t\t\tc[r*ldc+j] += s",
		"\t\t\t} else {",
		"\t\t\t\tc[r*ldc+j] = s",
		"\t\t\t}",
		"\t\t}",
		"\t}",
		"",
		"kc must be at least 1.")
	acc, bv, tv := tile(mr, nv, v)
	header(true, 4)
	// C is read (or written) only after the loop: ask for its lines now,
	// so that they arrive while the loop runs.
	MOVQ(rC, RDX)
	for range mr {
		for l := 0; l < nr*4; l += 64 {
			PREFETCHT0(Mem{Base: RDX, Disp: l})
		}
		ADDQ(rLDC, RDX)
	}
	for _, r := range acc {
		VXORPS(r, r, r)
	}
	Label(name + "_loop")
	for j, r := range bv {
		VMOVUPS(Mem{Base: rB, Disp: j * int(r.Size())}, r)
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
	ADDQ(U32(4*nr), rB)
	DECQ(rK)
	JNZ(LabelRef(name + "_loop"))
	storeTile(name, mr, nv, acc, VADDPS, func(src, dst Op) { VMOVUPS(src, dst) })
}

// tile assigns the registers of an mr×nv tile: accumulators first, then
// nv for B, then what is left (at least one) for broadcasts of A.
func tile(mr, nv int, v []VecPhysical) (acc, bv, tv []VecPhysical) {
	n := mr * nv
	if n+nv+1 > len(v) {
		panic("tile does not fit the register file")
	}
	return v[:n], v[n : n+nv], v[n+nv:]
}

// storeTile writes the tile to C, adding what C holds when accumulate is
// set.
func storeTile(name string, mr, nv int, acc []VecPhysical, add func(...Op), mov func(src, dst Op)) {
	size := int(acc[0].Size())
	TESTQ(rAcc, rAcc)
	JZ(LabelRef(name + "_store"))
	for i := range mr {
		for j := range nv {
			m := Mem{Base: rC, Disp: j * size}
			add(m, acc[i*nv+j], acc[i*nv+j])
			mov(acc[i*nv+j], m)
		}
		ADDQ(rLDC, rC)
	}
	VZEROUPPER()
	RET()
	Label(name + "_store")
	for i := range mr {
		for j := range nv {
			mov(acc[i*nv+j], Mem{Base: rC, Disp: j * size})
		}
		ADDQ(rLDC, rC)
	}
	VZEROUPPER()
	RET()
}

// A dot emits acc += the products of one broadcast word of A (signed) with
// one vector of B, and says how many steps of k a word holds.
type dot struct {
	steps int
	emit  func(a, b, acc, tmp VecPhysical)
	doc   []string
}

// dotVNNI512 is VPDPBUSD on 512-bit registers: each 32-bit lane adds four
// products of unsigned bytes of B by signed bytes of A, without
// saturation. Go's assembler knows the EVEX form; avo v0.5.0 does not, so
// the instruction is built by hand.
var dotVNNI512 = dot{
	steps: 4,
	emit: func(a, b, acc, _ VecPhysical) {
		Instruction(&ir.Instruction{
			Opcode: "VPDPBUSD", Operands: []Op{a, b, acc},
			Inputs: []Op{a, b, acc}, Outputs: []Op{acc}, ISA: []string{"AVX512_VNNI"},
		})
	},
	doc: []string{"VPDPBUSD (AVX-512 VNNI) on 512-bit registers"},
}

// dotVNNI256 is the VEX-encoded VPDPBUSD of AVX-VNNI, which neither avo
// nor Go's assembler knows (Go assembles VPDPBUSD on Y registers as EVEX,
// which needs AVX-512 VL): it is emitted as bytes, for fixed registers.
var dotVNNI256 = dot{
	steps: 4,
	emit: func(a, b, acc, _ VecPhysical) {
		for _, x := range vexVPDPBUSD(int(acc.PhysicalIndex()), int(b.PhysicalIndex()), int(a.PhysicalIndex())) {
			Instruction(&ir.Instruction{Opcode: "BYTE", Operands: []Op{U8(x)}, ISA: []string{"AVX_VNNI"}})
		}
	},
	doc: []string{"VPDPBUSD (AVX-VNNI, VEX-encoded) on 256-bit registers"},
}

// vexVPDPBUSD encodes VPDPBUSD ymm(dst), ymm(src1), ymm(src2) in Intel
// operand order (VEX.256.66.0F38.W0 50 /r): dst += Σ u8(src1)·s8(src2).
func vexVPDPBUSD(dst, src1, src2 int) []byte {
	inv := func(b int) byte { return byte(^b & 1) }
	return []byte{
		0xC4,
		inv(dst>>3)<<7 | 1<<6 | inv(src2>>3)<<5 | 0x02, // R̄ X̄ B̄, map 0F38
		0<<7 | byte(^src1&15)<<3 | 1<<2 | 0x01,         // W0, v̄v̄v̄v̄, L=256, pp=66
		0x50,
		0xC0 | byte(dst&7)<<3 | byte(src2&7),
	}
}

// dotAVX2 is VPMADDWD on sign-extended int16 pairs (AVX2): each 32-bit lane
// gets two products, which cannot saturate (|a·b| ≤ 2^14), added with
// VPADDD. (VPMADDUBSW would take bytes directly, but its int16 pair sums
// saturate.)
var dotAVX2 = dot{
	steps: 2,
	emit: func(a, b, acc, tmp VecPhysical) {
		VPMADDWD(b, a, tmp)
		VPADDD(tmp, acc, acc)
	},
	doc: []string{"VPMADDWD and VPADDD (AVX2) on int16 pairs"},
}

// s8Kernel emits an mr×(nv vectors) int32 kernel over words of d.steps
// steps of k.
func s8Kernel(name string, mr, nv int, v []VecPhysical, d dot) {
	w := int(v[0].Size()) / 4 // int32 lanes
	nr := nv * w
	if d.steps == 4 {
		TEXT(name, NOSPLIT, "func(kc int, a *int8, lda int, b *uint32, c *int32, ldc int, accumulate bool, init *int32)")
		Pragma("noescape")
		Doc(fmt.Sprintf("%s is, with %s, for %d rows of A", name, d.doc[0], mr),
			"where they lie (a[r*lda+p] = A[r, p]) and a panel b of "+fmt.Sprint(nr)+" rows of B in words",
			fmt.Sprintf("of four steps of k, b[g*%d+j] holding the uint8s B[j, 4g..4g+3]+128,", nr),
			"",
			fmt.Sprintf("\tfor r := range %d {", mr),
			fmt.Sprintf("\t\tfor j := range %d {", nr),
			"\t\t\ts := init[r]",
			"\t\t\tfor g := range kc {",
			"\t\t\t\tfor t := range 4 {",
			fmt.Sprintf("\t\t\t\t\ts += int32(a[r*lda+4*g+t]) * int32(uint8(b[g*%d+j]>>(8*t)))", nr),
			"\t\t\t\t}",
			"\t\t\t}",
			"\t\t\tif accumulate {",
			"\t\t\t\tc[r*ldc+j] += s",
			"\t\t\t} else {",
			"\t\t\t\tc[r*ldc+j] = s",
			"\t\t\t}",
			"\t\t}",
			"\t}",
			"",
			"in int32 arithmetic that wraps, for kc ≥ 1. init holds a value per row for the",
			"sums to start from: −128·Σ A[r, ·] undoes the offset of B.")
	} else {
		TEXT(name, NOSPLIT, "func(kc int, a, b *int16, c *int32, ldc int, accumulate bool)")
		Pragma("noescape")
		Doc(fmt.Sprintf("%s is, with %s, for a panel a of %d rows of A", name, d.doc[0], mr),
			fmt.Sprintf("and a panel b of %d rows of B, in int16 pairs along k (a[(g*%d+r)*2+t] = A[r, 2g+t],", nr, mr),
			fmt.Sprintf("b[(g*%d+j)*2+t] = B[j, 2g+t]),", nr),
			"",
			fmt.Sprintf("\tfor r := range %d {", mr),
			fmt.Sprintf("\t\tfor j := range %d {", nr),
			"\t\t\tvar s int32",
			"\t\t\tfor g := range kc {",
			"\t\t\t\tfor t := range 2 {",
			fmt.Sprintf("\t\t\t\t\ts += int32(a[(g*%d+r)*2+t]) * int32(b[(g*%d+j)*2+t])", mr, nr),
			"\t\t\t\t}",
			"\t\t\t}",
			"\t\t\tif accumulate {",
			"\t\t\t\tc[r*ldc+j] += s",
			"\t\t\t} else {",
			"\t\t\t\tc[r*ldc+j] = s",
			"\t\t\t}",
			"\t\t}",
			"\t}",
			"",
			"in int32 arithmetic that wraps, for kc ≥ 1; the int16s must lie in [-128, 128].")
	}
	acc, bv, tv := tile(mr, nv, v)
	if d.steps == 2 && len(tv) < 2 {
		panic("the AVX2 dot needs a temporary")
	}
	inPlace := d.steps == 4
	header(inPlace, 1)
	if inPlace {
		Load(Param("init"), RDX)
		for i := range mr {
			for j := range nv {
				VPBROADCASTD(Mem{Base: RDX, Disp: 4 * i}, acc[i*nv+j])
			}
		}
	} else {
		for _, r := range acc {
			if r.Size() == 64 {
				VPXORD(r, r, r)
			} else {
				VPXOR(r, r, r)
			}
		}
	}
	Label(name + "_loop")
	for j, r := range bv {
		movdqu(Mem{Base: rB, Disp: j * int(r.Size())}, r)
	}
	for i := range mr {
		t := tv[0]
		if d.steps == 4 {
			t = tv[i%len(tv)]
		}
		if inPlace {
			VPBROADCASTD(rowA(i), t)
		} else {
			VPBROADCASTD(Mem{Base: rA, Disp: 4 * i}, t)
		}
		for j := range nv {
			d.emit(t, bv[j], acc[i*nv+j], tv[len(tv)-1])
		}
	}
	if inPlace {
		ADDQ(U8(4), rA)
		ADDQ(U8(4), rA9)
	} else {
		ADDQ(U32(4*mr), rA)
	}
	ADDQ(U32(4*nr), rB)
	DECQ(rK)
	JNZ(LabelRef(name + "_loop"))
	storeTile(name, mr, nv, acc, VPADDD, movdqu)
}

// movdqu is VMOVDQU, or VMOVDQU32 on 512-bit registers, which have no
// VMOVDQU.
func movdqu(src, dst Op) {
	if IsZMM(src) || IsZMM(dst) {
		VMOVDQU32(src, dst)
	} else {
		VMOVDQU(src, dst)
	}
}

// packWords32 emits the packing of a 32-row panel of B for the AVX-512
// kernels: 4-byte words (float32s, or four int8 steps of k) gathered
// from 32 rows, a column of them per step, 16 at a time with VPGATHERDD.
func packWords32() {
	TEXT("packWords32AVX512", NOSPLIT, "func(kg int, src *byte, ld int, dst *uint32, flip uint32)")
	Pragma("noescape")
	Doc("packWords32AVX512 is, for 32 rows of 4-byte words at a stride of ld bytes,",
		"",
		"\tfor g := range kg {",
		"\t\tfor j := range 32 {",
		"\t\t\tdst[g*32+j] = *(*uint32)(src[j*ld+4*g:]) ^ flip",
		"\t\t}",
		"\t}",
		"",
		"kg must be at least 1 and 31·ld below 2^31.")
	src, src16, dst, k, ld := RSI, R8, RDI, RCX, RDX
	Load(Param("kg"), k)
	Load(Param("src"), src)
	Load(Param("ld"), ld)
	Load(Param("dst"), dst)
	Load(Param("flip"), EAX)
	idx, flip, lo, hi := Z0, Z1, Z2, Z3
	VPBROADCASTD(EAX, flip)
	VPBROADCASTD(EDX, idx)
	iota := GLOBL("packIota", RODATA|NOPTR)
	for i := range 16 {
		DATA(4*i, U32(i))
	}
	VPMULLD(iota, idx, idx) // row offsets 0, ld, …, 15·ld
	MOVQ(ld, src16)
	SHLQ(U8(4), src16)
	ADDQ(src, src16)
	Label("packWords32AVX512_loop")
	KXNORW(K1, K1, K1)
	KXNORW(K2, K2, K2)
	VPGATHERDD(Mem{Base: src, Index: idx, Scale: 1}, K1, lo)
	VPGATHERDD(Mem{Base: src16, Index: idx, Scale: 1}, K2, hi)
	VPXORD(flip, lo, lo)
	VPXORD(flip, hi, hi)
	VMOVDQU32(lo, Mem{Base: dst})
	VMOVDQU32(hi, Mem{Base: dst, Disp: 64})
	ADDQ(U8(4), src)
	ADDQ(U8(4), src16)
	ADDQ(U8(128), dst)
	DECQ(k)
	JNZ(LabelRef("packWords32AVX512_loop"))
	VZEROUPPER()
	RET()
}

// sumS8VNNI emits the sum of 64-byte blocks of int8s with VPDPBUSD
// against bytes of 1, for the offset correction of the int8 GEMM.
func sumS8VNNI() {
	TEXT("sumS8AVX512VNNI", NOSPLIT, "func(x *int8, blocks int) int32")
	Pragma("noescape")
	Doc("sumS8AVX512VNNI is Σ x[p] for p < 64·blocks (blocks ≥ 1), in int32",
		"arithmetic, which wraps.")
	x, n := RSI, RCX
	Load(Param("x"), x)
	Load(Param("blocks"), n)
	ones, acc0, acc1 := Z0, Z1, Z2
	MOVL(U32(0x01010101), EAX)
	VPBROADCASTD(EAX, ones)
	VPXORD(acc0, acc0, acc0)
	VPXORD(acc1, acc1, acc1)
	vnni := func(m Mem, acc VecPhysical) {
		Instruction(&ir.Instruction{
			Opcode: "VPDPBUSD", Operands: []Op{m, ones, acc},
			Inputs: []Op{m, ones, acc}, Outputs: []Op{acc}, ISA: []string{"AVX512_VNNI"},
		})
	}
	// Two blocks per step into two sums, so that each waits on the other
	// half as often.
	TESTQ(U32(1), n)
	JZ(LabelRef("sumS8AVX512VNNI_pairs"))
	vnni(Mem{Base: x}, acc0)
	ADDQ(U8(64), x)
	DECQ(n)
	JZ(LabelRef("sumS8AVX512VNNI_reduce"))
	Label("sumS8AVX512VNNI_pairs")
	vnni(Mem{Base: x}, acc0)
	vnni(Mem{Base: x, Disp: 64}, acc1)
	ADDQ(U8(128), x)
	SUBQ(U8(2), n)
	JNZ(LabelRef("sumS8AVX512VNNI_pairs"))
	Label("sumS8AVX512VNNI_reduce")
	VPADDD(acc1, acc0, acc0)
	VEXTRACTI64X4(U8(1), acc0, Y2)
	VPADDD(Y2, Y1, Y1)
	VEXTRACTI128(U8(1), Y1, X2)
	VPADDD(X2, X1, X1)
	VPSHUFD(U8(0x4e), X1, X2)
	VPADDD(X2, X1, X1)
	VPSHUFD(U8(0xb1), X1, X2)
	VPADDD(X2, X1, X1)
	VMOVD(X1, EAX)
	Store(EAX, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// dotKernel emits a float32 kernel for GEMMs with at most four rows on
// one side, where packing the other would cost more than it saves: m rows
// of A against four rows of B, both read where they lie, vectors of 16
// along k, so that every load is a whole cache line, with one accumulator
// per output reduced across its lanes at the end. The last, partial
// vector of k is read under a mask. (The int8 GEMM with few rows of A has
// its own kernels, _gen/s8rows, which read B a row at a time.)
func dotKernel(name string, m int) {
	const nr = 4
	TEXT(name, NOSPLIT, "func(kv int, tail uint64, a *float32, lda int, b *float32, ldb int, c *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, for %d rows of A and 4 rows of B where they lie", name, m),
		"(a[r*lda+p] = A[r, p], b[j*ldb+p] = B[j, p]) and k = 16·kv plus the bits set in",
		"the mask tail (the low ones), with fused multiply-adds in another order,",
		"",
		fmt.Sprintf("\tfor r := range %d {", m),
		"\t\tfor j := range 4 {",
		"\t\t\tvar s float32",
		"\t\t\tfor p := range k {",
		"\t\t\t\ts += a[r*lda+p] * b[j*ldb+p]",
		"\t\t\t}",
		"\t\t\tc[r*4+j] = s",
		"\t\t}",
		"\t}",
		"",
		"kv + tail ≥ 1.")
	kv, tail, a, lda, b, ldb, c := RCX, RDX, RAX, R9, RBX, R10, RDI
	Load(Param("kv"), kv)
	Load(Param("tail"), tail)
	Load(Param("a"), a)
	Load(Param("lda"), lda)
	Load(Param("b"), b)
	Load(Param("ldb"), ldb)
	Load(Param("c"), c)
	SHLQ(U8(2), lda)
	SHLQ(U8(2), ldb)
	ld3 := R11
	LEAQ(Mem{Base: ldb, Index: ldb, Scale: 2}, ld3)
	KMOVW(EDX, K1)
	acc := zmm[:m*nr]
	av := zmm[16 : 16+m]
	bv := Z20
	for _, r := range acc {
		VPXORD(r, r, r)
	}
	// Row 3 of A needs 3·lda: keep it in R12.
	if m == 4 {
		LEAQ(Mem{Base: lda, Index: lda, Scale: 2}, R12)
	}
	rowA := func(r int) Mem {
		switch r {
		case 0:
			return Mem{Base: a}
		case 3:
			return Mem{Base: a, Index: R12, Scale: 1}
		}
		return Mem{Base: a, Index: lda, Scale: uint8(r)}
	}
	rowB := func(j int) Mem {
		switch j {
		case 0:
			return Mem{Base: b}
		case 3:
			return Mem{Base: b, Index: ld3, Scale: 1}
		}
		return Mem{Base: b, Index: ldb, Scale: uint8(j)}
	}
	body := func(masked bool) {
		for r := range m {
			if masked {
				VMOVUPS_Z(rowA(r), K1, av[r])
			} else {
				VMOVDQU32(rowA(r), av[r])
			}
		}
		for j := range nr {
			if masked {
				VMOVUPS_Z(rowB(j), K1, bv)
			} else {
				VMOVDQU32(rowB(j), bv)
			}
			for r := range m {
				VFMADD231PS(av[r], bv, acc[r*nr+j])
			}
		}
	}
	TESTQ(kv, kv)
	JZ(LabelRef(name + "_tail"))
	Label(name + "_loop")
	body(false)
	ADDQ(U8(64), a)
	ADDQ(U8(64), b)
	DECQ(kv)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_tail")
	TESTQ(tail, tail)
	JZ(LabelRef(name + "_reduce"))
	body(true)
	Label(name + "_reduce")
	// Sum the lanes of each accumulator: halves, quarters, then within
	// the last 128 bits.
	for i, r := range acc {
		x := r.AsX()
		y := r.AsY()
		VEXTRACTF64X4(U8(1), r, Y22)
		VADDPS(Y22, y, y)
		VEXTRACTF32X4(U8(1), y, X22)
		VADDPS(X22, x, x)
		VPERMILPS(U8(0x4e), x, X22)
		VADDPS(X22, x, x)
		VPERMILPS(U8(0xb1), x, X22)
		VADDPS(X22, x, x)
		VMOVSS(x, Mem{Base: c, Disp: 4 * i})
	}
	VZEROUPPER()
	RET()
}

// epiRegs are the general registers every epilogue kernel loads: n =
// 16·full + popcount(tail) outputs from acc to dst, with the column
// scales at cols and the biases at bias when mode asks for them.
type epiRegs struct{ full, tail, acc, dst, cols, bias, mode GPPhysical }

// epilogueArgs loads the arguments both epilogue kernels share and
// broadcasts the named float32 arguments into their vector registers.
func epilogueArgs(scalars []epiScalar) epiRegs {
	r := epiRegs{RCX, RDX, RSI, RDI, R8, R9, R10}
	Load(Param("full"), r.full)
	Load(Param("tail"), r.tail)
	Load(Param("acc"), r.acc)
	Load(Param("dst"), r.dst)
	Load(Param("colScales"), r.cols)
	Load(Param("bias"), r.bias)
	Load(Param("mode"), r.mode)
	for _, p := range scalars {
		b, err := Param(p.name).Resolve()
		if err != nil {
			panic(err)
		}
		VBROADCASTSS(b.Addr, p.reg)
	}
	return r
}

// epiScalar is a float32 argument broadcast into a vector register.
type epiScalar struct {
	name string
	reg  VecPhysical
}

// epilogueFloat emits the float32 part of one step into Z0: 16 int32
// sums (masked by K1 in the tail) converted, times the row scale rowS,
// times the column scales (mode&1) or colS, times last if not nil, plus
// the biases (mode&2) or biasAll if not nil; each step rounded to
// float32, no fused multiply-add.
func epilogueFloat(r epiRegs, m int, masked bool, rowS, colS VecPhysical, last, biasAll VecPhysical) {
	if masked {
		VMOVDQU32_Z(Mem{Base: r.acc}, K1, Z0)
	} else {
		VMOVDQU32(Mem{Base: r.acc}, Z0)
	}
	VCVTDQ2PS(Z0, Z0)
	VMULPS(rowS, Z0, Z0)
	if m&1 != 0 {
		if masked {
			VMOVUPS_Z(Mem{Base: r.cols}, K1, Z3)
		} else {
			VMOVUPS(Mem{Base: r.cols}, Z3)
		}
		VMULPS(Z3, Z0, Z0)
	} else {
		VMULPS(colS, Z0, Z0)
	}
	if last != nil {
		VMULPS(last, Z0, Z0)
	}
	if m&2 != 0 {
		if masked {
			VMOVUPS_Z(Mem{Base: r.bias}, K1, Z4)
		} else {
			VMOVUPS(Mem{Base: r.bias}, Z4)
		}
		VADDPS(Z4, Z0, Z0)
	} else if biasAll != nil {
		VADDPS(biasAll, Z0, Z0)
	}
}

// epilogueModes emits, for each of modes values of the mode argument, a
// loop of full unmasked steps and one masked step for the tail (K1 holds
// tail), advancing dst by dstStep bytes a step, then the return.
func epilogueModes(name string, modes int, r epiRegs, dstStep uint8, step func(m int, masked bool)) {
	KMOVW(EDX, K1)
	for m := range modes {
		variant := fmt.Sprintf("%s_mode%d", name, m)
		CMPQ(r.mode, U8(m))
		JNE(LabelRef(variant + "_next"))
		TESTQ(r.full, r.full)
		JZ(LabelRef(variant + "_tail"))
		Label(variant + "_loop")
		step(m, false)
		ADDQ(U8(64), r.acc)
		ADDQ(U8(dstStep), r.dst)
		if m&1 != 0 {
			ADDQ(U8(64), r.cols)
		}
		if m&2 != 0 {
			ADDQ(U8(64), r.bias)
		}
		DECQ(r.full)
		JNZ(LabelRef(variant + "_loop"))
		Label(variant + "_tail")
		TESTQ(r.tail, r.tail)
		JZ(LabelRef(name + "_done"))
		step(m, true)
		JMP(LabelRef(name + "_done"))
		Label(variant + "_next")
	}
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// epilogueF32 emits the float32 part of the int8 GEMM's epilogue for a
// row of C, 16 outputs a step: conversion, the row and column scales and
// the bias, each rounded to float32 as the Go loop does (no fused
// multiply-add). The ReLU of a float32 output stays in Go; epilogueS8
// does the int8 output whole.
func epilogueF32() {
	name := "epilogueF32AVX512"
	TEXT(name, NOSPLIT, "func(full int, tail uint16, acc *int32, dst *float32, rowScale float32, colScales *float32, colScale float32, bias *float32, mode int)")
	Pragma("noescape")
	Doc(name+" is, for n = 16·full plus the bits set in tail (the low ones),",
		"",
		"\tfor q := range n {",
		"\t\ty := float32(acc[q])",
		"\t\ty = float32(y * rowScale)",
		"\t\tif mode&1 != 0 {",
		"\t\t\ty = float32(y * colScales[q])",
		"\t\t} else {",
		"\t\t\ty = float32(y * colScale)",
		"\t\t}",
		"\t\tif mode&2 != 0 {",
		"\t\t\ty = float32(y + bias[q])",
		"\t\t}",
		"\t\tdst[q] = y",
		"\t}",
		"",
		"A scale of 1 changes nothing (y is never NaN), so none is passed as 1.")
	rowS, colS := Z1, Z2
	r := epilogueArgs([]epiScalar{{"rowScale", rowS}, {"colScale", colS}})
	epilogueModes(name, 4, r, 64, func(m int, masked bool) {
		epilogueFloat(r, m, masked, rowS, colS, nil, nil)
		if masked {
			VMOVUPS(Z0, K1, Mem{Base: r.dst})
		} else {
			VMOVUPS(Z0, Mem{Base: r.dst})
		}
	})
}

// epilogueS8 emits the whole epilogue of the int8 GEMM for a row of C
// with int8 output, 16 outputs a step: the float32 part as epilogueF32,
// the ReLU, and quant.QuantizeValue(y, outScale, zeroPoint, -128, 127)
// bit for bit: the float32 division y/outScale (VDIVPS is correctly
// rounded, as Go's division), rounding half to even, NaN to the zero
// point, then the clamp. It needs a zero point in [-128, 127]: the
// rounded quotient is clamped to [-256, 256] before its conversion (the
// conversion of a larger value, or of ±Inf, is no number), which decides
// no clamp differently, and the sum with the zero point cannot wrap.
// Two more steps serve the rows of a C the driver runs transposed, whose
// row scales vary and column scale and bias do not: a last scale and a
// bias for all outputs. A scale of 1 changes no value and leaves NaN a
// NaN; adding a bias of 0 changes only -0 into +0: neither changes a code.
func epilogueS8() {
	name := "epilogueS8AVX512"
	TEXT(name, NOSPLIT, "func(full int, tail uint16, acc *int32, dst *int8, rowScale float32, colScales *float32, colScale float32, bias *float32, lastScale float32, biasAll float32, mode int, outScale float32, zeroPoint int32)")
	Pragma("noescape")
	Doc(name+" is, for n = 16·full plus the bits set in tail (the low ones),",
		"",
		"\tfor q := range n {",
		"\t\ty := float32(acc[q])",
		"\t\ty = float32(y * rowScale)",
		"\t\tif mode&1 != 0 {",
		"\t\t\ty = float32(y * colScales[q])",
		"\t\t} else {",
		"\t\t\ty = float32(y * colScale)",
		"\t\t}",
		"\t\ty = float32(y * lastScale)",
		"\t\tif mode&2 != 0 {",
		"\t\t\ty = float32(y + bias[q])",
		"\t\t} else {",
		"\t\t\ty = float32(y + biasAll)",
		"\t\t}",
		"\t\tif mode&4 != 0 {",
		"\t\t\ty = max(y, 0)",
		"\t\t}",
		"\t\tdst[q] = int8(quant.QuantizeValue(y, outScale, zeroPoint, -128, 127))",
		"\t}",
		"",
		"with outScale finite and positive and zeroPoint in [-128, 127]. A",
		"scale of 1 and a bias of 0 change no code, so none is passed as 1 or 0.")
	rowS, colS, outS, zp := Z1, Z2, Z5, Z6
	r := epilogueArgs([]epiScalar{{"rowScale", rowS}, {"colScale", colS}, {"outScale", outS}, {"lastScale", Z12}, {"biasAll", Z13}})
	Load(Param("zeroPoint"), EAX)
	VPBROADCASTD(EAX, zp)
	// The constants: ∓256 (float32), -128 and 127 (int32), zero.
	neg, lim, qmin, qmax, zero := Z7, Z8, Z9, Z10, Z11
	for _, c := range []struct {
		bits uint32
		reg  VecPhysical
	}{{0xc3800000, neg}, {0x43800000, lim}, {0xffffff80, qmin}, {0x7f, qmax}} {
		MOVL(U32(c.bits), EAX)
		VPBROADCASTD(EAX, c.reg)
	}
	VPXORD(zero, zero, zero)
	epilogueModes(name, 8, r, 16, func(m int, masked bool) {
		epilogueFloat(r, m, masked, rowS, colS, Z12, Z13)
		// Lanes that are NaN here become the zero point; the ReLU's
		// treatment of them does not matter.
		VCMPPS(U8(7), Z0, Z0, K2) // not NaN
		if m&4 != 0 {
			VMAXPS(zero, Z0, Z0)
		}
		VDIVPS(outS, Z0, Z0)
		VMAXPS(neg, Z0, Z0)
		VMINPS(lim, Z0, Z0)
		VCVTPS2DQ_RN_SAE_Z(Z0, K2, Z0) // half to even; NaN lanes 0
		VPADDD(zp, Z0, Z0)
		VPMAXSD(qmin, Z0, Z0)
		VPMINSD(qmax, Z0, Z0)
		if masked {
			VPMOVDB(Z0, K1, Mem{Base: r.dst})
		} else {
			VPMOVDB(Z0, Mem{Base: r.dst})
		}
	})
}
