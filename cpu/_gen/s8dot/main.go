// Command s8dot generates the AVX2 int8 dot kernels of package cpu
// (s8dot_amd64.s): for m ≤ 4 rows of A and a few rows of B, both read
// where they lie, the exact int32 dot product of every pair, 16 values of
// k at a time. Each step widens 16 int8 of a row to int16 (VPMOVSXBW),
// multiplies the rows pairwise and adds neighbouring products into int32
// lanes (VPMADDWD: two products of at most 2^14 each, which cannot
// overflow) and adds those to the accumulators (VPADDD, which wraps as
// int32 addition does). They serve GemmS8 on processors with AVX2 but
// without AVX-512 VNNI, where a decode step multiplies one row of
// activations by every weight row.
//
//	cd cpu/_gen && go run ./s8dot    # or make asm
//
// The pure-Go twin in package cpu, gemmS8DotGo (gemm_s8dot_amd64.go), computes
// the same sums; int32 addition wraps the same whatever its order, so the
// two agree exactly.
package main

import (
	"fmt"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// NR is the rows of B each kernel takes for m rows of A: four for one or
// two rows of A, two for three or four, so that the m·NR accumulators,
// the m rows of A, one row of B and a product fit in 16 registers.
var NR = [...]int{0, 4, 4, 2, 2}

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../s8dot_amd64.s", "-stubs", "../s8dot_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	for m := 1; m <= 4; m++ {
		dotKernel(m, NR[m])
	}
	Generate()
}

var ymm = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}

func dotKernel(m, nr int) {
	name := fmt.Sprintf("gemmS8Dot%dx%dAVX2", m, nr)
	TEXT(name, NOSPLIT, "func(kv int, a *int8, lda int, b *int8, ldb int, c *int32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is, with VPMOVSXBW, VPMADDWD and VPADDD (AVX2), for m = %d rows of A", name, m),
		fmt.Sprintf("and %d rows of B where they lie (a[r*lda+p] = A[r, p], b[j*ldb+p] = B[j, p])", nr),
		"and k = 16·kv (kv ≥ 0),",
		"",
		fmt.Sprintf("\tfor r := range %d {", m),
		fmt.Sprintf("\t\tfor j := range %d {", nr),
		"\t\t\tvar s int32",
		"\t\t\tfor p := range k {",
		"\t\t\t\ts += int32(a[r*lda+p]) * int32(b[j*ldb+p])",
		"\t\t\t}",
		fmt.Sprintf("\t\t\tc[r*%d+j] = s", nr),
		"\t\t}",
		"\t}",
		"",
		"in int32 arithmetic that wraps (gemmS8DotGo).")
	kv, a, lda, b, ldb, c := RCX, RAX, R9, RBX, R10, RDI
	Load(Param("kv"), kv)
	Load(Param("a"), a)
	Load(Param("lda"), lda)
	Load(Param("b"), b)
	Load(Param("ldb"), ldb)
	Load(Param("c"), c)
	lda3, ldb3 := R11, R12
	if m == 4 {
		LEAQ(Mem{Base: lda, Index: lda, Scale: 2}, lda3)
	}
	if nr == 4 {
		LEAQ(Mem{Base: ldb, Index: ldb, Scale: 2}, ldb3)
	}
	row := func(base, ld, ld3 GPPhysical, r int) Mem {
		switch r {
		case 0:
			return Mem{Base: base}
		case 3:
			return Mem{Base: base, Index: ld3, Scale: 1}
		}
		return Mem{Base: base, Index: ld, Scale: uint8(r)}
	}
	acc := ymm[:m*nr]
	av := ymm[m*nr : m*nr+m]
	bv, tmp := ymm[m*nr+m], ymm[m*nr+m+1]
	for _, r := range acc {
		VPXOR(r, r, r)
	}
	TESTQ(kv, kv)
	JZ(LabelRef(name + "_reduce"))
	Label(name + "_loop")
	for r := range m {
		VPMOVSXBW(row(a, lda, lda3, r), av[r])
	}
	for j := range nr {
		VPMOVSXBW(row(b, ldb, ldb3, j), bv)
		for r := range m {
			VPMADDWD(bv, av[r], tmp)
			VPADDD(tmp, acc[r*nr+j], acc[r*nr+j])
		}
	}
	ADDQ(U8(16), a)
	ADDQ(U8(16), b)
	DECQ(kv)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_reduce")
	// Sum the eight lanes of each accumulator: halves, then within the
	// last 128 bits.
	for i, r := range acc {
		x := r.AsX()
		VEXTRACTI128(U8(1), r, tmp.AsX())
		VPADDD(tmp.AsX(), x, x)
		VPSHUFD(U8(0x4e), x, tmp.AsX())
		VPADDD(tmp.AsX(), x, x)
		VPSHUFD(U8(0xb1), x, tmp.AsX())
		VPADDD(tmp.AsX(), x, x)
		VMOVD(x, Mem{Base: c, Disp: 4 * i})
	}
	VZEROUPPER()
	RET()
}
