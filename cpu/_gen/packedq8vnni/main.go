// Command packedq8vnni generates the AVX-512 VNNI tile kernels of package
// cpu's GemmPacked for many rows of activations (a prefill) on 8-bit
// weights (packedq8_vnni.go): ggml Q8_0 and the symmetric int8
// quant.RowFormat.
//
//	cd cpu/_gen && go run ./packedq8vnni    # or make asm
//
// The weights of a tile of 32 output columns are first interleaved
// (packedQ8VNNIPack, packedQ8VNNIPackQ8_0, or the Go packer): for each
// chunk t of 32 values,
// eight steps of 128 bytes, step s holding for each column r (two groups
// of sixteen, one 512-bit vector each) its codes 4s..4s+3 of the chunk,
// plus 128 (unsigned bytes); then the 32 columns' scales of the chunk's
// block (float32). A tile kernel keeps 2×m int32 accumulators (the 32
// columns of m ≤ 6 activation rows) and m×2 float32 ones: per chunk, the
// int32 ones start at −128·Σx of their activation row's chunk (which
// takes off the 128 added to the weights), VPDPBUSD adds the products of
// the unsigned weight bytes by four activation codes broadcast from
// memory (exactly: |Σ| ≤ 32·255·127), and the sums are converted to
// float32 and multiply-added with the column's scale times the chunk's
// activation scale; where the weight has one scale a row (the int8
// quant.RowFormat per channel, packedQ8VNNICx<m>), the tile holds the 32
// scales once after the last chunk, the sums are multiply-added with the
// activation scale alone and the column scales multiply the results at
// the end. The activation codes are read three rows from each
// of two bases, so that the weight vectors loaded for a step serve all
// m rows; a kernel runs groups of m rows one after the other in one call
// (the Go caller gives it every whole group of six), the tile staying in
// L2 between them. The packers transpose sixteen rows at a time (32 bytes
// of each, VPUNPCK and VPERMI2Q), gather Q8_0's float16 scales, and
// prefetch the 32 rows ahead.
package main

import (
	"fmt"
	"os"

	"github.com/mmcloughlin/avo/ir"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// lanes holds the dwords 0, 1, …, 15; qwordsLo and qwordsHi the
// VPERMI2Q indices that take the first and second 128-bit lanes of a
// transposed step from two half-transposed vectors.
var lanes, qwordsLo, qwordsHi Mem

// maxRows is the most activation rows a tile kernel takes.
const maxRows = 6

// chunkBytes is the size of one chunk of a packed tile: eight steps of
// 128 bytes of codes, then 32 float32 scales.
const chunkBytes = 8*128 + 32*4

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../packedq8vnni_amd64.s", "-stubs", "../packedq8vnni_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	lanes = GLOBL("pkvLanes", RODATA|NOPTR)
	for i := range 16 {
		DATA(4*i, U32(uint32(i)))
	}
	qwordsLo = GLOBL("pkvQwordsLo", RODATA|NOPTR)
	for i, v := range []uint64{0, 1, 8, 9, 4, 5, 12, 13} {
		DATA(8*i, U64(v))
	}
	qwordsHi = GLOBL("pkvQwordsHi", RODATA|NOPTR)
	for i, v := range []uint64{2, 3, 10, 11, 6, 7, 14, 15} {
		DATA(8*i, U64(v))
	}
	for _, pc := range []bool{false, true} {
		for m := 1; m <= maxRows; m++ {
			tile(m, pc)
		}
	}
	pack(false)
	pack(true)
	Generate()
}

var zmm = []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}

// vpdpbusdBcst emits acc += the products of the unsigned bytes of w by the
// four signed bytes at m, broadcast to every lane. avo v0.5.0 lacks the
// instruction; Go's assembler knows it.
func vpdpbusdBcst(m Mem, w, acc VecPhysical) {
	Instruction(&ir.Instruction{
		Opcode: "VPDPBUSD.BCST", Operands: []Op{m, w, acc},
		Inputs: []Op{m, w, acc}, Outputs: []Op{acc}, ISA: []string{"AVX512_VNNI"},
	})
}

// tile generates packedQ8VNNIx<m>, or with perChannel (one scale a
// column for the whole row: the int8 quant.RowFormat per channel)
// packedQ8VNNICx<m>, whose chunks are 1024 bytes of codes, the 32
// columns' scales after the last, and which multiply-adds each chunk's
// sum with the activation scale alone and the column scales at the end.
func tile(m int, perChannel bool) {
	name := fmt.Sprintf("packedQ8VNNIx%d", m)
	cb := chunkBytes
	if perChannel {
		name = fmt.Sprintf("packedQ8VNNICx%d", m)
		cb = 1024
	}
	TEXT(name, NOSPLIT, "func(x *byte, ldx int, w *byte, chunks int, c *float32, ldc int, groups int)")
	if perChannel {
		Doc(fmt.Sprintf("%s sets c[i·ldc+j], for i < %d and j < 32, to the dot product of", name, m),
			"quantized activation row i (chunks records of 40 bytes at x + i·ldx, each",
			"holding −128·Σx where the sum of its codes was) with column j of the packed",
			"tile w (chunks chunks of 1024 bytes, then the columns' scales), summed as",
			"scale·Σ_chunks float32(Σ u·x − 128·Σx)·d_x; and the same for the groups−1",
			fmt.Sprintf("groups of %d rows after them (groups ≥ 1).", m))
	} else {
		Doc(fmt.Sprintf("%s sets c[i·ldc+j], for i < %d and j < 32, to the dot product of", name, m),
			"quantized activation row i (chunks records of 40 bytes at x + i·ldx, each",
			"holding −128·Σx where the sum of its codes was) with column j of the packed",
			"tile w (chunks chunks of 1152 bytes), summed a chunk at a time as",
			"float32(Σ u·x − 128·Σx)·(scale·d_x); and the same for the groups−1",
			fmt.Sprintf("groups of %d rows after them (groups ≥ 1).", m))
	}

	xg := Load(Param("x"), GP64()) // the group's first row
	ld := Load(Param("ldx"), GP64())
	cg := Load(Param("c"), GP64())
	lc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), lc)
	groups := Load(Param("groups"), GP64())
	x0, x3 := GP64(), GP64()
	wp, n := GP64(), GP64()

	Label(name + "_group")
	MOVQ(xg, x0)
	if m > 3 {
		LEAQ(Mem{Base: x0, Index: ld, Scale: 2}, x3)
		ADDQ(ld, x3)
	}
	Load(Param("w"), wp)
	Load(Param("chunks"), n)

	row := func(i, d int) Mem {
		base := x0
		if i >= 3 {
			base, i = x3, i-3
		}
		if i == 0 {
			return Mem{Base: base, Disp: d}
		}
		return Mem{Base: base, Index: ld, Scale: uint8(i), Disp: d}
	}
	acc := func(i, g int) VecPhysical { return zmm[2*i+g] }
	facc := func(i, g int) VecPhysical { return zmm[12+2*i+g] }
	wv := [2]VecPhysical{Z24, Z25}
	tmp := Z28

	for i := range m {
		for g := range 2 {
			VPXORD(facc(i, g), facc(i, g), facc(i, g))
		}
	}
	TESTQ(n, n)
	JZ(LabelRef(name + "_store"))
	Label(name + "_chunk")
	for i := range m {
		for g := range 2 {
			VPBROADCASTD(row(i, 36), acc(i, g))
		}
	}
	for s := range 8 {
		for g := range 2 {
			VMOVDQU32(Mem{Base: wp, Disp: 128*s + 64*g}, wv[g])
		}
		for i := range m {
			for g := range 2 {
				vpdpbusdBcst(row(i, 4*s), wv[g], acc(i, g))
			}
		}
	}
	if perChannel {
		for i := range m {
			for g := range 2 {
				VCVTDQ2PS(acc(i, g), acc(i, g))
				VFMADD231PS_BCST(row(i, 32), acc(i, g), facc(i, g))
			}
		}
	} else {
		for g := range 2 {
			VMOVUPS(Mem{Base: wp, Disp: 1024 + 64*g}, wv[g])
		}
		for i := range m {
			for g := range 2 {
				VMULPS_BCST(row(i, 32), wv[g], tmp)
				VCVTDQ2PS(acc(i, g), acc(i, g))
				VFMADD231PS(tmp, acc(i, g), facc(i, g))
			}
		}
	}
	ADDQ(U32(40), x0)
	if m > 3 {
		ADDQ(U32(40), x3)
	}
	ADDQ(U32(cb), wp)
	DECQ(n)
	JNZ(LabelRef(name + "_chunk"))

	Label(name + "_store")
	if perChannel {
		// wp is at the scales, after the last chunk.
		for g := range 2 {
			VMOVUPS(Mem{Base: wp, Disp: 64 * g}, wv[g])
		}
		for i := range m {
			for g := range 2 {
				VMULPS(wv[g], facc(i, g), facc(i, g))
			}
		}
	}
	for i := range m {
		for g := range 2 {
			VMOVUPS(facc(i, g), Mem{Base: cg, Disp: 64 * g})
		}
		ADDQ(lc, cg)
	}
	// The next group: m rows of x on.
	for range m {
		ADDQ(ld, xg)
	}
	DECQ(groups)
	JNZ(LabelRef(name + "_group"))
	VZEROUPPER()
	RET()
}

// prefetchChunks is how many chunks ahead of the one it gathers a packer
// asks for each row's codes: the 32 rows are 32 streams, more than the
// hardware prefetchers follow.
const prefetchChunks = 8

// pack generates packedQ8VNNIPack, or with q8_0 packedQ8VNNIPackQ8_0,
// which also gathers each chunk's float16 block scales and converts them.
func pack(q8_0 bool) {
	name := "packedQ8VNNIPack"
	if q8_0 {
		name = "packedQ8VNNIPackQ8_0"
		TEXT(name, NOSPLIT, "func(src *byte, rowBytes int, chunks int, dst *byte)")
		Doc(name+" writes the packed tile of 32 rows of ggml Q8_0 blocks at src",
			"(rowBytes apart) to dst, codes and scales (packVNNITileGo's layout) of",
			"chunks blocks.")
	} else {
		TEXT(name, NOSPLIT, "func(src *byte, rowBytes int, chunks int, stride int, dst *byte, dstStride int)")
		Doc(name+" writes the codes of chunks chunks of 32 rows of signed",
			"8-bit weights to the packed tile at dst (chunk t at t·dstStride, scales left",
			"alone): row r's codes of chunk t are the 32 bytes at src + r·rowBytes +",
			"t·stride, and step s of the chunk gets codes 4s..4s+3 of the rows, plus",
			"128, column r at 64·(r/16) + 4·(r%16).")
	}
	src := Load(Param("src"), GP64())
	rb := Load(Param("rowBytes"), GP64()).(GPVirtual)
	n := Load(Param("chunks"), GP64())
	dst := Load(Param("dst"), GP64())
	var stride, dstStride Op
	if q8_0 {
		stride, dstStride = U32(34), U32(chunkBytes)
	} else {
		stride = Load(Param("stride"), GP64())
		dstStride = Load(Param("dstStride"), GP64())
	}
	idx, sign := Z31, Z30
	// idx = lane·rowBytes, for the scales' gathers.
	VPBROADCASTD(rb.As32(), idx)
	VPMULLD(lanes, idx, idx)
	t := GP64()
	MOVL(U32(0x80808080), t.As32())
	VPBROADCASTD(t.As32(), sign)
	perm := [2]VecPhysical{Z28, Z29}
	VMOVDQU64(qwordsLo, perm[0])
	VMOVDQU64(qwordsHi, perm[1])
	rb3, rb4 := GP64(), GP64()
	LEAQ(Mem{Base: rb, Index: rb, Scale: 2}, rb3)
	MOVQ(rb, rb4)
	SHLQ(U8(2), rb4)
	// The distance prefetched ahead, in bytes.
	pf := GP64()
	if q8_0 {
		MOVQ(U32(34*prefetchChunks), pf)
	} else {
		MOVQ(stride, pf)
		SHLQ(U8(3), pf) // prefetchChunks
	}
	q := GP64()
	TESTQ(n, n)
	JZ(LabelRef(name + "_done"))
	Label(name + "_chunk")
	LEAQ(Mem{Base: src, Index: pf, Scale: 1}, q)
	for range 32 {
		PREFETCHT0(Mem{Base: q})
		ADDQ(rb, q)
	}
	codes := 0
	if q8_0 {
		codes = 2
	}
	// A group of sixteen rows at a time: row p (p < 8) in the low half
	// of Z<p>, row p+8 in its high half; three stages of unpacking and
	// a permutation of quadwords transpose the 16×8 dwords into the
	// chunk's eight steps.
	MOVQ(src, q)
	rowAt := func(j int) Mem {
		switch j {
		case 0:
			return Mem{Base: q, Disp: codes}
		case 3:
			return Mem{Base: q, Index: rb3, Scale: 1, Disp: codes}
		}
		return Mem{Base: q, Index: rb, Scale: uint8(j), Disp: codes}
	}
	for g := range 2 {
		for quad := range 4 {
			for j := range 4 {
				r := 4*quad + j
				if r < 8 {
					VMOVDQU(rowAt(j), zmm[r].AsY())
				} else {
					VINSERTI64X4(U8(1), rowAt(j), zmm[r-8], zmm[r-8])
				}
			}
			ADDQ(rb4, q)
		}
		tv := zmm[8:16]
		uv := zmm[16:24]
		for pr := range 4 {
			VPUNPCKLDQ(zmm[2*pr+1], zmm[2*pr], tv[2*pr])
			VPUNPCKHDQ(zmm[2*pr+1], zmm[2*pr], tv[2*pr+1])
		}
		for h := range 2 { // rows 0-3 (t0..t3), rows 4-7 (t4..t7)
			a := tv[4*h:]
			VPUNPCKLQDQ(a[2], a[0], uv[4*h])
			VPUNPCKHQDQ(a[2], a[0], uv[4*h+1])
			VPUNPCKLQDQ(a[3], a[1], uv[4*h+2])
			VPUNPCKHQDQ(a[3], a[1], uv[4*h+3])
		}
		out := Z24
		for s := range 8 {
			e := s % 4
			VMOVDQA64(perm[s/4], out)
			VPERMI2Q(uv[4+e], uv[e], out)
			VPXORD(sign, out, out)
			VMOVDQU32(out, Mem{Base: dst, Disp: 128*s + 64*g})
		}
	}
	if q8_0 {
		// The blocks' float16 scales, in the low half of each dword.
		step := Z25
		MOVQ(src, q)
		for g := range 2 {
			KXNORW(K1, K1, K1)
			VPXORD(step, step, step)
			VPGATHERDD(Mem{Base: q, Index: idx, Scale: 1}, K1, step)
			VPMOVDW(step, step.AsY())
			VCVTPH2PS(step.AsY(), step)
			VMOVUPS(step, Mem{Base: dst, Disp: 1024 + 64*g})
			if g == 0 {
				LEAQ(Mem{Base: q, Index: rb4, Scale: 4}, q)
			}
		}
	}
	ADDQ(stride, src)
	ADDQ(dstStride, dst)
	DECQ(n)
	JNZ(LabelRef(name + "_chunk"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}
