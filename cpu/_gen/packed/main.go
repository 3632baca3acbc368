// Command packed generates the fused kernels of package cpu's GemmPacked
// (packed.go): dot products of up to four rows of float32 activations
// with rows of weights kept in a block format, read straight from the
// packed bytes. Each code is widened to float32 in a register and
// multiplied by its block's scale there, which gives exactly the value
// the format's DecodeRows writes (float32(q − zero point) · scale: the
// integer difference wraps as Go's int32 does, VCVTDQ2PS rounds to
// nearest even as Go's conversion does, VMULPS rounds once as Go's
// float32 product does), then multiply-added into float32 accumulators:
// the kernels differ from backend.GemmPackedF32 in the order of the sums
// only (weight-only W8A16/W4A16, no activation quantization).
//
//	cd cpu/_gen && go run ./packed    # or make asm
//
// Formats, one kernel for each and for each number of activation rows
// m = 1..4 (AVX2 and FMA; the ggml ones F16C too):
//
//	RF8S, RF8U, RF8SZ, RF8UZ  quant.RowFormat, 8-bit codes (S signed, U unsigned, Z with zero points)
//	RF4S, RF4U, RF4SZ, RF4UZ  quant.RowFormat, 4-bit codes, element 2i in the low nibble of byte i
//	Q8_0                      ggml: float16 d, 32 int8 codes
//	Q4_0                      ggml: float16 d, 16 bytes; byte j holds elements j (low) and j+16 (high), value (q − 8)·d
//	F16, BF16                 16-bit floats (one block a row, no scale), widened exactly (VCVTPH2PS quiets a NaN as ggml does)
//
// The 4-bit quant.RowFormat kernels take the activations with each run of
// sixteen in the order of its even elements, then its odd ones
// (packedEvenOdd), which puts them beside the codes' low and high nibbles
// without shuffles. A kernel takes whole chunks of 32 elements: every block but a row's
// last must be a whole number of them (group a multiple of 32), and of the
// last block (last elements) it does the first last&^31; the Go caller
// adds the rest.
package main

import (
	"fmt"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// spec is a block format.
type spec struct {
	name   string
	bits   int
	signed bool
	zp     bool   // an int32 zero point follows the scale
	f16    bool   // the scale is float16 (ggml), else float32
	split  bool   // ggml Q4_0's nibble order, codes q − 8
	wide   string // "F16", "BF16" or "F32": floats, no blocks, widened exactly (F32: loaded)
}

func (s spec) hdr() int {
	switch {
	case s.wide != "":
		return 0
	case s.f16:
		return 2
	case s.zp:
		return 8
	}
	return 4
}

var specs = []spec{
	{name: "RF8S", bits: 8, signed: true},
	{name: "RF8U", bits: 8},
	{name: "RF8SZ", bits: 8, signed: true, zp: true},
	{name: "RF8UZ", bits: 8, zp: true},
	{name: "RF4S", bits: 4, signed: true},
	{name: "RF4U", bits: 4},
	{name: "RF4SZ", bits: 4, signed: true, zp: true},
	{name: "RF4UZ", bits: 4, zp: true},
	{name: "Q8_0", bits: 8, signed: true, f16: true},
	{name: "Q4_0", bits: 4, f16: true, split: true},
	{name: "F16", bits: 16, wide: "F16"},
	{name: "BF16", bits: 16, wide: "BF16"},
	{name: "F32", bits: 32, wide: "F32"},
}

var (
	lowNibble Mem // 0x0F in every dword
	eight     Mem // 8 in every dword
)

// paramMem is the memory of an argument, read where it lies.
func paramMem(name string) Mem {
	b, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

func splat(name string, v uint32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := range 8 {
		DATA(4*i, U32(v))
	}
	return m
}

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../packed_amd64.s", "-stubs", "../packed_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	lowNibble = splat("pkLowNibble", 0x0F)
	eight = splat("pkEight", 8)
	for _, s := range specs {
		for m := 1; m <= 4; m++ {
			dot(s, m)
		}
	}
	Generate()
}

// dot generates packedDot<name>x<m>AVX2.
func dot(s spec, m int) {
	name := fmt.Sprintf("packedDot%sx%dAVX2", s.name, m)
	TEXT(name, NOSPLIT, "func(a *float32, lda int, w *byte, rowBytes, rows, group, blocks, last int, c *float32, ldc int)")
	Doc(fmt.Sprintf("%s sets c[i·ldc+j] to the dot product of row i of a (stride lda) with", name),
		fmt.Sprintf("packed %s row j (at w + j·rowBytes), for i < %d and j < rows: blocks blocks,", s.name, m),
		"the first blocks−1 of group elements, of the last its first last&^31.")

	ap0 := Load(Param("a"), GP64())
	ld := Load(Param("lda"), GP64())
	SHLQ(U8(2), ld)
	var ld3 GPVirtual
	if m == 4 {
		ld3 = GP64()
		LEAQ(Mem{Base: ld, Index: ld, Scale: 2}, ld3)
	}
	rowp := Load(Param("w"), GP64())
	nrow := Load(Param("rows"), GP64())
	cp := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	var ldc3 GPVirtual
	if m == 4 {
		ldc3 = GP64()
		LEAQ(Mem{Base: ldc, Index: ldc, Scale: 2}, ldc3)
	}
	TESTQ(nrow, nrow)
	JZ(LabelRef("done"))

	// Row r of a at offset d from the running pointer ap.
	arow := func(ap GPVirtual, r, d int) Mem {
		switch r {
		case 0:
			return Mem{Base: ap, Disp: d}
		case 1:
			return Mem{Base: ap, Index: ld, Scale: 1, Disp: d}
		case 2:
			return Mem{Base: ap, Index: ld, Scale: 2, Disp: d}
		}
		return Mem{Base: ap, Index: ld3, Scale: 1, Disp: d}
	}

	// Accumulators: four a row for one or two rows (FMA latency), two for more.
	nacc := 4
	if m > 2 {
		nacc = 2
	}
	acc := make([][]VecVirtual, m)
	for r := range acc {
		acc[r] = make([]VecVirtual, nacc)
		for v := range acc[r] {
			acc[r][v] = YMM()
		}
	}
	sc, zp := YMM(), YMM()
	sub := s.zp

	Label("row")
	p, ap := GP64(), GP64()
	MOVQ(rowp, p)
	MOVQ(ap0, ap)
	for r := range acc {
		for _, x := range acc[r] {
			VXORPS(x, x, x)
		}
	}
	nb := Load(Param("blocks"), GP64())
	nch := GP64()

	Label("block")
	switch {
	case s.wide != "":
	case s.f16:
		MOVWLZX(Mem{Base: p}, nch.As32())
		t := XMM()
		VMOVD(nch.As32(), t)
		VCVTPH2PS(t, t)
		VBROADCASTSS(t, sc)
	default:
		VBROADCASTSS(Mem{Base: p}, sc)
	}
	if s.zp {
		VPBROADCASTD(Mem{Base: p, Disp: 4}, zp)
	}
	if s.hdr() > 0 {
		ADDQ(U8(s.hdr()), p)
	}
	// Chunks of 32 in this block: group's, or last's in the row's last.
	Load(Param("group"), nch)
	CMPQ(nb, U8(1))
	JNE(LabelRef("chunks"))
	Load(Param("last"), nch)
	Label("chunks")
	SHRQ(U8(5), nch)
	JZ(LabelRef("blockdone"))

	Label("chunk")
	w0, w1 := YMM(), YMM()
	for h := range 2 { // halves of 16 elements
		switch {
		case s.wide == "F16":
			VCVTPH2PS(Mem{Base: p, Disp: 32 * h}, w0)
			VCVTPH2PS(Mem{Base: p, Disp: 32*h + 16}, w1)
		case s.wide == "F32":
			VMOVUPS(Mem{Base: p, Disp: 64 * h}, w0)
			VMOVUPS(Mem{Base: p, Disp: 64*h + 32}, w1)
		case s.wide == "BF16":
			// A bfloat16 is the high half of its float32.
			VPMOVZXWD(Mem{Base: p, Disp: 32 * h}, w0)
			VPMOVZXWD(Mem{Base: p, Disp: 32*h + 16}, w1)
			VPSLLD(U8(16), w0, w0)
			VPSLLD(U8(16), w1, w1)
		case s.bits == 8 && s.signed:
			VPMOVSXBD(Mem{Base: p, Disp: 16 * h}, w0)
			VPMOVSXBD(Mem{Base: p, Disp: 16*h + 8}, w1)
		case s.bits == 8:
			VPMOVZXBD(Mem{Base: p, Disp: 16 * h}, w0)
			VPMOVZXBD(Mem{Base: p, Disp: 16*h + 8}, w1)
		case s.split:
			// Byte j holds elements j (low nibble) and j+16 (high): eight
			// bytes widened give w0 elements 8h.. and w1 elements 16+8h..
			VPMOVZXBD(Mem{Base: p, Disp: 8 * h}, w1)
			VPAND(lowNibble, w1, w0)
			VPSRLD(U8(4), w1, w1)
		default:
			// Eight bytes, one a dword: w0 gets the low nibbles (elements
			// 0, 2, .., 14 of the sixteen), w1 the high ones (1, 3, ..,
			// 15), which meet the activations in the order the caller
			// lays them out in (evens, then odds, in each run of sixteen):
			// no shuffle but the widening load.
			VPMOVZXBD(Mem{Base: p, Disp: 8 * h}, w1)
			if s.signed {
				VPSLLD(U8(28), w1, w0)
				VPSRAD(U8(28), w0, w0)
				VPSLLD(U8(24), w1, w1)
				VPSRAD(U8(28), w1, w1)
			} else {
				VPAND(lowNibble, w1, w0)
				VPSRLD(U8(4), w1, w1)
			}
		}
		for _, w := range []VecVirtual{w0, w1} {
			if s.wide != "" {
				break
			}
			if sub {
				VPSUBD(zp, w, w)
			}
			if s.split {
				VPSUBD(eight, w, w) // q − 8
			}
			VCVTDQ2PS(w, w)
			VMULPS(sc, w, w)
		}
		for r := range m {
			for v, w := range []VecVirtual{w0, w1} {
				x := acc[r][(2*h+v)%nacc]
				off := 64*h + 32*v
				if s.split {
					off = 32*h + 64*v
				}
				VFMADD231PS(arow(ap, r, off), w, x)
			}
		}
	}
	ADDQ(U8(4*s.bits), p)
	ADDQ(U32(128), ap)
	DECQ(nch)
	JNZ(LabelRef("chunk"))

	Label("blockdone")
	DECQ(nb)
	JNZ(LabelRef("block"))

	// Sum each row's accumulators and store the row's dot product.
	for r := range m {
		x := acc[r]
		for len(x) > 1 {
			h := len(x) / 2
			for i := range h {
				VADDPS(x[i+h], x[i], x[i])
			}
			x = x[:h]
		}
		y := x[0]
		t := XMM()
		VEXTRACTF128(U8(1), y, t)
		VADDPS(t, y.AsX(), t)
		u := XMM()
		VMOVHLPS(t, t, u)
		VADDPS(u, t, t)
		VMOVSHDUP(t, u)
		VADDSS(u, t, t)
		var dst Mem
		switch r {
		case 0:
			dst = Mem{Base: cp}
		case 1:
			dst = Mem{Base: cp, Index: ldc, Scale: 1}
		case 2:
			dst = Mem{Base: cp, Index: ldc, Scale: 2}
		default:
			dst = Mem{Base: cp, Index: ldc3, Scale: 1}
		}
		VMOVSS(t, dst)
	}
	ADDQ(U8(4), cp)
	ADDQ(paramMem("rowBytes"), rowp)
	DECQ(nrow)
	JNZ(LabelRef("row"))

	Label("done")
	VZEROUPPER()
	RET()
}
