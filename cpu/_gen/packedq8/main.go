// Command packedq8 generates the integer kernels of package cpu's
// GemmPacked for few rows of activations (packedq8.go): dot products of
// up to four rows of activations, quantized to 8 bits in blocks of 32 as
// llama.cpp's Q8_0 (quantizeQ8), with rows of weights kept in a block
// format, read straight from the packed bytes, summed in integers.
//
//	cd cpu/_gen && go run ./packedq8    # or make asm
//
// For each chunk of 32 values, the weight codes are brought to signed
// bytes s (q itself, q − 128 for uint8, q − 8 for ggml Q4_0), the sign
// trick makes them unsigned (VPSIGNB: |s|, and the activation codes x
// times the sign of s), VPMADDUBSW and VPMADDWD sum the 32 products
// s·x into eight int32 lanes (exactly: |x| ≤ 127, |s| ≤ 128, so a pair
// of products stays inside int16), which are converted to float32 and
// multiply-added with the block's weight scale times the chunk's
// activation scale. Where the weight's true code is s + c (c = 128 for
// uint8, c = −zero point, or both), each block adds c·scale·Σ(d_x·Σx)
// once, from the activation's per-block sums.
//
// The activations of one row (stride ldx bytes) are kc records of 36
// bytes, chunk t at 36t: 32 int8 codes, then the chunk's scale d_x
// (float32); then, at byte sums, one float32 per weight block: the sum
// over the block's whole chunks of d_x·Σx. The 4-bit quant.RowFormat
// kernels take each chunk's codes in the order of its even elements,
// then its odd ones (a byte's low nibble, then its high one). A kernel
// takes whole chunks of 32 elements: every block but a row's last must
// be a whole number of them (group a multiple of 32), and of the last
// block (last elements) it does the first last&^31; the Go caller adds
// the rest.
package main

import (
	"fmt"
	"math"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// spec is a weight block format.
type spec struct {
	name   string
	bits   int
	signed bool
	zp     bool // an int32 zero point follows the scale
	f16    bool // the scale is float16 (ggml), else float32
	split  bool // ggml Q4_0: byte j holds elements j (low) and j+16 (high), codes q − 8
}

func (s spec) hdr() int {
	switch {
	case s.f16:
		return 2
	case s.zp:
		return 8
	}
	return 4
}

// offset is the c of the true code s + c that the format's own (without
// zero point) adds: 128 for uint8, whose codes are taken as q − 128.
func (s spec) offset() int32 {
	if s.bits == 8 && !s.signed {
		return 128
	}
	return 0
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
}

var (
	lowNibble Mem // 0x0F in every byte
	eight     Mem // 0x08 in every byte
	signBit   Mem // 0x80 in every byte
	ones      Mem // 1 in every int16
	f128      Mem // float32 128
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
		os.Args = append(os.Args, "-out", "../packedq8_amd64.s", "-stubs", "../packedq8_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	lowNibble = splat("pkqLowNibble", 0x0F0F0F0F)
	eight = splat("pkqEight", 0x08080808)
	signBit = splat("pkqSignBit", 0x80808080)
	ones = splat("pkqOnes", 0x00010001)
	f128 = GLOBL("pkqF128", RODATA|NOPTR)
	DATA(0, U32(math.Float32bits(128)))
	for _, s := range specs {
		for m := 1; m <= 4; m++ {
			dot(s, m)
		}
	}
	Generate()
}

// dot generates packedQ8<name>x<m>AVX2.
func dot(s spec, m int) {
	name := fmt.Sprintf("packedQ8%sx%dAVX2", s.name, m)
	TEXT(name, NOSPLIT, "func(x *byte, ldx, sums int, w *byte, rowBytes, rows, group, blocks, last int, c *float32, ldc int)")
	Doc(fmt.Sprintf("%s sets c[i·ldc+j] to the dot product of quantized activation row i", name),
		fmt.Sprintf("(at x + i·ldx, its block sums at byte sums of it) with packed %s row j (at", s.name),
		fmt.Sprintf("w + j·rowBytes), for i < %d and j < rows: blocks blocks, the first blocks−1", m),
		"of group elements, of the last its first last&^31.")

	corr := s.zp || s.offset() != 0
	x0 := Load(Param("x"), GP64())
	ld := Load(Param("ldx"), GP64())
	var ld3 GPVirtual
	if m == 4 {
		ld3 = GP64()
		LEAQ(Mem{Base: ld, Index: ld, Scale: 2}, ld3)
	}
	rowp := Load(Param("w"), GP64())
	nrow := Load(Param("rows"), GP64())
	cp := Load(Param("c"), GP64())
	TESTQ(nrow, nrow)
	JZ(LabelRef("done"))

	// Row r of the activations at offset d from the running pointer ap.
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

	acc := make([]VecVirtual, m)
	for r := range acc {
		acc[r] = YMM()
	}
	one := YMM()
	VMOVDQU(ones, one)
	dw := YMM()

	Label("row")
	p, ap := GP64(), GP64()
	MOVQ(rowp, p)
	MOVQ(x0, ap)
	var bp GPVirtual
	if corr {
		bp = GP64()
		MOVQ(x0, bp)
		ADDQ(paramMem("sums"), bp)
	}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	nb := Load(Param("blocks"), GP64())
	nch := GP64()

	Label("block")
	if s.f16 {
		MOVWLZX(Mem{Base: p}, nch.As32())
		t := XMM()
		VMOVD(nch.As32(), t)
		VCVTPH2PS(t, t)
		VBROADCASTSS(t, dw)
	} else {
		VBROADCASTSS(Mem{Base: p}, dw)
	}
	// cdw is c·scale in lane 0, zeros elsewhere.
	var cdw VecVirtual
	if corr {
		cdw = YMM()
		if s.zp {
			MOVL(U32(uint32(s.offset())), nch.As32())
			SUBL(Mem{Base: p, Disp: 4}, nch.As32())
			VXORPS(cdw, cdw, cdw)
			VCVTSI2SSL(nch.As32(), cdw.AsX(), cdw.AsX())
		} else {
			VMOVSS(f128, cdw.AsX())
		}
		VMULSS(dw.AsX(), cdw.AsX(), cdw.AsX())
	}
	ADDQ(U8(s.hdr()), p)
	// Chunks of 32 in this block: group's, or last's in the row's last.
	Load(Param("group"), nch)
	CMPQ(nb, U8(1))
	JNE(LabelRef("chunks"))
	Load(Param("last"), nch)
	Label("chunks")
	SHRQ(U8(5), nch)
	JZ(LabelRef("blockdone"))

	Label("chunk")
	sw, aw := YMM(), YMM()
	switch {
	case s.bits == 8:
		VMOVDQU(Mem{Base: p}, sw)
		if !s.signed {
			VPXOR(signBit, sw, sw) // q − 128
		}
	default:
		// Sixteen bytes: low nibbles to the low lane, high ones to the
		// high lane (elements 0..15, 16..31 for Q4_0; the even then the
		// odd elements for quant.RowFormat).
		t := XMM()
		VMOVDQU(Mem{Base: p}, sw.AsX())
		VPSRLW(U8(4), sw.AsX(), t)
		VINSERTI128(U8(1), t, sw, sw)
		VPAND(lowNibble, sw, sw)
		switch {
		case s.split:
			VPSUBB(eight, sw, sw) // q − 8
		case s.signed:
			VPXOR(eight, sw, sw) // sign-extend the nibble
			VPSUBB(eight, sw, sw)
		}
	}
	VPSIGNB(sw, sw, aw) // |s|
	for r := range m {
		xr, sc := YMM(), YMM()
		VMOVDQU(arow(ap, r, 0), xr)
		VPSIGNB(sw, xr, xr) // x·sign(s)
		VPMADDUBSW(xr, aw, xr)
		VPMADDWD(one, xr, xr)
		VCVTDQ2PS(xr, xr)
		VBROADCASTSS(arow(ap, r, 32), sc)
		VMULPS(dw, sc, sc)
		VFMADD231PS(sc, xr, acc[r])
	}
	ADDQ(U8(4*s.bits), p)
	ADDQ(U8(36), ap)
	DECQ(nch)
	JNZ(LabelRef("chunk"))

	Label("blockdone")
	if corr {
		for r := range m {
			t := YMM()
			VBROADCASTSS(arow(bp, r, 0), t)
			VFMADD231PS(t, cdw, acc[r])
		}
		ADDQ(U8(4), bp)
	}
	DECQ(nb)
	JNZ(LabelRef("block"))

	// Sum each row's accumulator and store the row's dot product.
	ldc := nch
	Load(Param("ldc"), ldc)
	SHLQ(U8(2), ldc)
	for r := range m {
		y := acc[r]
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
			l3 := GP64()
			LEAQ(Mem{Base: ldc, Index: ldc, Scale: 2}, l3)
			dst = Mem{Base: cp, Index: l3, Scale: 1}
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
