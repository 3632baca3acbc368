// Command packedq8 generates the integer kernels of package cpu's
// GemmPacked for few rows of activations (packedq8.go): dot products of
// up to four rows of activations, quantized to 8 bits in blocks of 32 as
// llama.cpp's Q8_0 (quantizeQ8), with rows of weights kept in a block
// format, read straight from the packed bytes, summed in integers.
//
//	cd cpu/_gen && go run ./packedq8    # or make asm
//
// For each chunk of 32 values, the 8-bit and ggml Q4_0 weight codes are
// brought to signed bytes s (q itself, q − 128 for uint8, q − 8 for
// Q4_0) and the sign trick makes them unsigned (VPSIGNB: |s|, and the
// activation codes x times the sign of s); the 4-bit quant.RowFormat
// codes are taken unsigned (s = q, q + 8 for int4). VPMADDUBSW and
// VPMADDWD sum the 32 products s·x into eight int32 lanes (exactly:
// |x| ≤ 127, |s| ≤ 128, so a pair of products stays inside int16), which
// are converted to float32 and multiply-added with the block's weight
// scale times the chunk's activation scale. Where the weight's true code
// is s + c (c = 128 for uint8, −8 for int4, minus the zero point), each
// block adds c·scale·Σ(d_x·Σx) once, from the activation's per-block
// sums. Chunks go two a pass, into two sets of accumulators.
//
// The activations of one row (stride ldx bytes) are kc records of 40
// bytes, chunk t at 40t: 32 int8 codes, the chunk's scale d_x (float32)
// and the sum of its codes Σx (int32); then, at byte sums, one float32 per weight block: the sum
// over the block's whole chunks of d_x·Σx. The 4-bit quant.RowFormat
// kernels take each chunk's codes in the order of its even elements,
// then its odd ones (a byte's low nibble, then its high one). A kernel
// takes whole chunks of 32 elements: every block but a row's last must
// be a whole number of them (group a multiple of 32), and of the last
// block (last elements) it does the first last&^31; the Go caller adds
// the rest.
//
// The 4-bit formats also have kernels on rows repacked in groups of eight
// (dotRows8), which compute eight rows' dot products a pass in the eight
// lanes of one vector.
package main

import (
	"fmt"
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

// offset is the c of the true code s + c that the format itself (its
// zero point aside) adds to the code s the kernel multiplies: 128 for
// uint8 (taken as signed q − 128), −8 for the int4 quant.RowFormat (taken
// as unsigned q + 8).
func (s spec) offset() int32 {
	switch {
	case s.bits == 8 && !s.signed:
		return 128
	case s.bits == 4 && s.signed && !s.split:
		return -8
	}
	return 0
}

// unsigned says the kernel takes the codes as unsigned bytes, straight
// into VPMADDUBSW (the 4-bit ones, 0..15; Q4_0's q + 8, whose 8·Σx it
// subtracts from each chunk's sum), rather than as signed ones made
// unsigned by the sign trick.
func (s spec) unsigned() bool { return s.bits == 4 }

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
	flip      Mem // 0x88 in every byte
	shifts    Mem // dword shift counts 0 (low lane) and 4 (high lane)
	absMask   Mem // 0x7FFFFFFF in every dword
	maxFinite Mem // the largest finite float32's bits in every dword
	f127, f1  Mem // float32 127 and 1
	natural   Mem // VPERMD indices that put VPACKSSWB's dwords in order
	evenOdd   Mem // VPSHUFB indices: a lane's even bytes, then its odd ones
	mask30    Mem // 0x30 in every byte
	thirtyTwo Mem // 0x20 in every byte
	q6Shuf    Mem // eight VPSHUFB controls: the scales of chunk g's two halves, eight bytes each
	k4Shift   Mem // Q4_K scale unpacking (ggml's utmp): per-dword shifts,
	k4Low     Mem // masks of the low bits
	k4High    Mem // and of the high bits
	signBit   Mem // 0x80 in every byte
	ones      Mem // 1 in every int16
	minus8    Mem // float32 −8 in every dword
)

// paramMem is the memory of an argument, read where it lies.
func paramMem(name string) Mem {
	b, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

func dwords(name string, v ...uint32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i, x := range v {
		DATA(4*i, U32(x))
	}
	return m
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
	flip = splat("pkqFlip", 0x88888888)
	shifts = GLOBL("pkqShifts", RODATA|NOPTR)
	for i := range 8 {
		DATA(4*i, U32(uint32(4*(i/4))))
	}
	signBit = splat("pkqSignBit", 0x80808080)
	ones = splat("pkqOnes", 0x00010001)
	absMask = splat("pkqAbs", 0x7FFFFFFF)
	maxFinite = splat("pkqMaxFinite", 0x7F7FFFFF)
	f127 = GLOBL("pkqF127", RODATA|NOPTR)
	DATA(0, U32(0x42FE0000)) // 127
	f1 = GLOBL("pkqF1", RODATA|NOPTR)
	DATA(0, U32(0x3F800000)) // 1
	natural = GLOBL("pkqNatural", RODATA|NOPTR)
	for i, v := range []uint32{0, 4, 1, 5, 2, 6, 3, 7} {
		DATA(4*i, U32(v))
	}
	evenOdd = GLOBL("pkqEvenOdd", RODATA|NOPTR)
	for l := range 2 {
		for i := range 16 {
			DATA(16*l+i, U8(2*(i%8)+i/8))
		}
	}
	for _, s := range specs {
		for m := 1; m <= 4; m++ {
			dot(s, m)
		}
	}
	mask30 = splat("pkqMask30", 0x30303030)
	thirtyTwo = splat("pkqThirtyTwo", 0x20202020)
	q6Shuf = GLOBL("pkqQ6Shuf", RODATA|NOPTR)
	for g := range 8 {
		for i := range 16 {
			DATA(16*g+i, U8(2*g+i/8))
		}
	}
	for m := 1; m <= 4; m++ {
		dotQ6K(m)
	}
	minus8 = splat("pkqMinus8", 0xC1000000)
	for _, s := range r8Specs {
		for m := 1; m <= 4; m++ {
			dotRows8(s, m)
		}
	}
	k4Shift = dwords("pkqK4Shift", 0, 0, 0, 4)
	k4Low = dwords("pkqK4Low", 0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F)
	k4High = dwords("pkqK4High", 0, 0x03030303, 0, 0x03030303)
	for m := 1; m <= 4; m++ {
		dotQ4K(m)
	}
	quantize(false)
	quantize(true)
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

	// Two sets of accumulators, for even and odd chunks: two chains of
	// multiply-adds a row.
	acc := [2][]VecVirtual{make([]VecVirtual, m), make([]VecVirtual, m)}
	for h := range acc {
		for r := range acc[h] {
			acc[h][r] = YMM()
		}
	}
	one := YMM()
	VMOVDQU(ones, one)
	p, ap := GP64(), GP64()

	// scale loads the block scale at p+disp, broadcast, into a new
	// register; for one row of a ggml format, times the scale of the
	// activation chunk at ap+xd (scaled says so).
	scale := func(disp, xd int) (v VecVirtual, scaled bool) {
		v = YMM()
		if !s.f16 {
			VBROADCASTSS(Mem{Base: p, Disp: disp}, v)
			return v, false
		}
		VCVTPH2PS(Mem{Base: p, Disp: disp}, v.AsX())
		if m == 1 {
			VMULSS(arow(ap, 0, xd+32), v.AsX(), v.AsX())
		}
		VBROADCASTSS(v.AsX(), v)
		return v, m == 1
	}

	// chunk multiplies the 32 codes at p+wd by the activation chunk at
	// ap+xd of each row, into accumulator set h, with the block scale dw.
	chunk := func(wd, xd, h int, dw VecVirtual, scaled bool) {
		sw := YMM()
		switch {
		case s.bits == 8:
			VMOVDQU(Mem{Base: p, Disp: wd}, sw)
			if !s.signed {
				VPXOR(signBit, sw, sw) // q − 128
			}
		default:
			// Sixteen bytes: low nibbles to the low lane, high ones to the
			// high lane (elements 0..15, 16..31 for Q4_0; the even then the
			// odd elements for quant.RowFormat).
			VBROADCASTI128(Mem{Base: p, Disp: wd}, sw)
			if s.signed && !s.split {
				VPXOR(flip, sw, sw) // q + 8, both nibbles
			}
			VPSRLVD(shifts, sw, sw)
			VPAND(lowNibble, sw, sw)
		}
		var aw VecVirtual
		if !s.unsigned() {
			aw = YMM()
			VPSIGNB(sw, sw, aw) // |s|
		}
		for r := range m {
			xr := YMM()
			if s.unsigned() {
				VPMADDUBSW(arow(ap, r, xd), sw, xr)
			} else {
				VMOVDQU(arow(ap, r, xd), xr)
				VPSIGNB(sw, xr, xr) // x·sign(s)
				VPMADDUBSW(xr, aw, xr)
			}
			VPMADDWD(one, xr, xr)
			if s.split {
				// Q4_0's codes are q + 8: take 8·Σx off, Σx a lane.
				t := YMM()
				VPBROADCASTD(arow(ap, r, xd+36), t)
				VPSUBD(t, xr, xr)
			}
			VCVTDQ2PS(xr, xr)
			sc := dw
			if !scaled {
				sc = YMM()
				VBROADCASTSS(arow(ap, r, xd+32), sc)
				VMULPS(dw, sc, sc)
			}
			VFMADD231PS(sc, xr, acc[h][r])
		}
	}
	cb := 4 * s.bits // bytes of a chunk's codes

	Label("row")
	MOVQ(rowp, p)
	MOVQ(x0, ap)
	for h := range acc {
		for _, a := range acc[h] {
			VXORPS(a, a, a)
		}
	}
	nb := Load(Param("blocks"), GP64())

	if s.f16 {
		// ggml: blocks of one chunk, two a pass.
		bb := s.hdr() + cb
		SUBQ(U8(2), nb)
		JB(LabelRef("one"))
		Label("pair")
		for h := range 2 {
			dw, scaled := scale(h*bb, h*q8Rec)
			chunk(h*bb+s.hdr(), h*q8Rec, h, dw, scaled)
		}
		ADDQ(U8(2*bb), p)
		ADDQ(U8(2*q8Rec), ap)
		SUBQ(U8(2), nb)
		JAE(LabelRef("pair"))
		Label("one")
		CMPQ(nb, I8(-1))
		JNE(LabelRef("sum"))
		dw, scaled := scale(0, 0)
		chunk(s.hdr(), 0, 0, dw, scaled)
	} else {
		var bp GPVirtual
		if corr {
			bp = GP64()
			MOVQ(x0, bp)
			ADDQ(paramMem("sums"), bp)
		}
		nch := GP64()
		Label("block")
		dw, _ := scale(0, 0)
		// cdw is c·scale in lane 0, zeros elsewhere.
		var cdw VecVirtual
		if corr {
			// In 64 bits: a zero point may be any int32.
			cdw = YMM()
			MOVQ(I32(int32(s.offset())), nch)
			if s.zp {
				zp := GP64()
				MOVLQSX(Mem{Base: p, Disp: 4}, zp)
				SUBQ(zp, nch)
			}
			VXORPS(cdw, cdw, cdw)
			VCVTSI2SSQ(nch, cdw.AsX(), cdw.AsX())
			VMULSS(dw.AsX(), cdw.AsX(), cdw.AsX())
		}
		ADDQ(U8(s.hdr()), p)
		// Chunks of 32 in this block: group's, or last's in the row's last;
		// two a pass, then one if odd.
		Load(Param("group"), nch)
		CMPQ(nb, U8(1))
		JNE(LabelRef("chunks"))
		Load(Param("last"), nch)
		Label("chunks")
		SHRQ(U8(5), nch)
		SUBQ(U8(2), nch)
		JB(LabelRef("odd"))
		Label("chunk2")
		chunk(0, 0, 0, dw, false)
		chunk(cb, q8Rec, 1, dw, false)
		ADDQ(U8(2*cb), p)
		ADDQ(U8(2*q8Rec), ap)
		SUBQ(U8(2), nch)
		JAE(LabelRef("chunk2"))
		Label("odd")
		CMPQ(nch, I8(-1))
		JNE(LabelRef("blockdone"))
		chunk(0, 0, 0, dw, false)
		ADDQ(U8(cb), p)
		ADDQ(U8(q8Rec), ap)

		Label("blockdone")
		if corr {
			for r := range m {
				t := YMM()
				VBROADCASTSS(arow(bp, r, 0), t)
				VFMADD231PS(t, cdw, acc[1][r])
			}
			ADDQ(U8(4), bp)
		}
		DECQ(nb)
		JNZ(LabelRef("block"))
	}

	// Sum each row's accumulators and store the row's dot product.
	Label("sum")
	ldc := GP64()
	Load(Param("ldc"), ldc)
	SHLQ(U8(2), ldc)
	for r := range m {
		y := acc[0][r]
		VADDPS(acc[1][r], y, y)
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

// q8Rec is the size of an activation chunk's record: 32 codes, a scale.
const q8Rec = 40

// quantize generates quantizeQ8ChunksAVX2 (eo false) or
// quantizeQ8ChunksEvenOddAVX2 (eo true).
func quantize(eo bool) {
	name := "quantizeQ8ChunksAVX2"
	order := "in order"
	if eo {
		name = "quantizeQ8ChunksEvenOddAVX2"
		order = "even elements first, then odd ones"
	}
	TEXT(name, NOSPLIT, "func(x *float32, chunks int, dst *byte)")
	Doc(fmt.Sprintf("%s writes chunks records of 40 bytes to dst, one for each", name),
		"32 values of x: the codes round(v·(1/d)) (to nearest even) "+order+", the",
		"scale d = max|v|/127 (float32) and the sum of the codes (int32); a chunk",
		"holding a NaN or an infinity gets d = NaN and codes 0.")
	xp := Load(Param("x"), GP64())
	n := Load(Param("chunks"), GP64())
	dp := Load(Param("dst"), GP64())
	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("chunk")
	v := make([]VecVirtual, 4)
	a := make([]VecVirtual, 4)
	bad := YMM()
	for i := range v {
		v[i], a[i] = YMM(), YMM()
		VMOVUPS(Mem{Base: xp, Disp: 32 * i}, v[i])
		VANDPS(absMask, v[i], a[i])
		if i == 0 {
			VPCMPGTD(maxFinite, a[i], bad)
		} else {
			t := YMM()
			VPCMPGTD(maxFinite, a[i], t)
			VPOR(t, bad, bad)
		}
	}
	VPTEST(bad, bad)
	JNZ(LabelRef("bad"))
	VMAXPS(a[1], a[0], a[0])
	VMAXPS(a[3], a[2], a[2])
	VMAXPS(a[2], a[0], a[0])
	h := XMM()
	VEXTRACTF128(U8(1), a[0], h)
	VMAXPS(h, a[0].AsX(), h)
	t := XMM()
	VMOVHLPS(h, h, t)
	VMAXPS(t, h, h)
	VMOVSHDUP(h, t)
	VMAXSS(t, h, h)
	d := XMM()
	VDIVSS(f127, h, d) // d = amax/127
	VMOVSS(d, Mem{Base: dp, Disp: 32})
	id := YMM()
	VMOVSS(f1, id.AsX())
	VDIVSS(d, id.AsX(), id.AsX()) // 1/d
	z := XMM()
	VXORPS(z, z, z)
	VCMPSS(U8(4), z, d, z) // d ≠ 0
	VANDPS(z, id.AsX(), id.AsX())
	VBROADCASTSS(id.AsX(), id)
	for i := range v {
		VMULPS(id, v[i], v[i])
		VCVTPS2DQ(v[i], v[i]) // to nearest even
	}
	sum := YMM()
	VPADDD(v[1], v[0], sum)
	VPADDD(v[2], sum, sum)
	VPADDD(v[3], sum, sum)
	sx := XMM()
	VEXTRACTI128(U8(1), sum, sx)
	VPADDD(sum.AsX(), sx, sx)
	VPSHUFD(U8(0x4E), sx, t)
	VPADDD(t, sx, sx)
	VPSHUFD(U8(0xB1), sx, t)
	VPADDD(t, sx, sx)
	VMOVD(sx, Mem{Base: dp, Disp: 36})
	VPACKSSDW(v[1], v[0], v[0])
	VPACKSSDW(v[3], v[2], v[2])
	VPACKSSWB(v[2], v[0], v[0])
	perm := YMM()
	VMOVDQU(natural, perm)
	VPERMD(v[0], perm, v[0])
	if eo {
		VPSHUFB(evenOdd, v[0], v[0])
		VPERMQ(U8(0xD8), v[0], v[0]) // qwords 0, 2, 1, 3
	}
	VMOVDQU(v[0], Mem{Base: dp})
	Label("next")
	ADDQ(U8(128), xp)
	ADDQ(U8(q8Rec), dp)
	DECQ(n)
	JNZ(LabelRef("chunk"))
	Label("done")
	VZEROUPPER()
	RET()

	Label("bad")
	zero := YMM()
	VXORPS(zero, zero, zero)
	VMOVDQU(zero, Mem{Base: dp})
	MOVL(U32(0x7FC00000), Mem{Base: dp, Disp: 32}) // NaN
	MOVL(U32(0), Mem{Base: dp, Disp: 36})
	JMP(LabelRef("next"))
}

// dotQ6K generates packedQ8Q6_Kx<m>AVX2, for ggml's Q6_K: super-blocks of
// 256 values, 210 bytes: ql[128] (low four bits), qh[64] (high two),
// sixteen int8 scales of 16 values each, float16 d; value
// d·scale·(q − 32). Chunk c of the 32 in each half h of 128 values has
// the low bits of ql[64h + 32(c&1):][:32] (the high nibbles for c ≥ 2)
// and the bits 2c, 2c+1 of qh[32h:][:32], in order, and the scales
// 8h + 2c (its first 16 values) and 8h + 2c + 1: VPMADDWD multiplies the
// pair sums by them, so that a chunk's int32 lanes are Σ scale·(q−32)·x.
func dotQ6K(m int) {
	name := fmt.Sprintf("packedQ8Q6_Kx%dAVX2", m)
	TEXT(name, NOSPLIT, "func(x *byte, ldx, sums int, w *byte, rowBytes, rows, group, blocks, last int, c *float32, ldc int)")
	Doc(fmt.Sprintf("%s sets c[i·ldc+j] to the dot product of quantized activation row i", name),
		"(at x + i·ldx) with packed Q6_K row j (at w + j·rowBytes), for",
		fmt.Sprintf("i < %d and j < rows: blocks super-blocks of 256 (sums, group and last unused).", m))
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
	sets := 2
	if m > 2 {
		sets = 1
	}
	acc := make([][]VecVirtual, sets)
	for h := range acc {
		acc[h] = make([]VecVirtual, m)
		for r := range acc[h] {
			acc[h][r] = YMM()
		}
	}
	p, ap := GP64(), GP64()
	Label("row")
	MOVQ(rowp, p)
	MOVQ(x0, ap)
	for h := range acc {
		for _, a := range acc[h] {
			VXORPS(a, a, a)
		}
	}
	nb := Load(Param("blocks"), GP64())
	Label("block")
	dw := YMM()
	VCVTPH2PS(Mem{Base: p, Disp: 208 - 6}, dw.AsX()) // d is the fourth of these four halves
	VPERMILPS(U8(0xFF), dw.AsX(), dw.AsX())
	VBROADCASTSS(dw.AsX(), dw)
	scales := XMM()
	VMOVDQU(Mem{Base: p, Disp: 192}, scales)
	for h := range 2 {
		for c := range 4 {
			g := 4*h + c
			q, t := YMM(), YMM()
			VMOVDQU(Mem{Base: p, Disp: 64*h + 32*(c&1)}, q)
			if c >= 2 {
				VPSRLW(U8(4), q, q)
			}
			VPAND(lowNibble, q, q)
			VMOVDQU(Mem{Base: p, Disp: 128 + 32*h}, t)
			switch sh := 4 - 2*c; {
			case sh > 0:
				VPSLLW(U8(sh), t, t)
			case sh < 0:
				VPSRLW(U8(-sh), t, t)
			}
			VPAND(mask30, t, t)
			VPOR(t, q, q)
			VPSUBB(thirtyTwo, q, q) // q − 32
			aw := YMM()
			VPSIGNB(q, q, aw) // |q − 32|
			sc16 := YMM()
			VPSHUFB(q6Shuf.Offset(16*g), scales, sc16.AsX())
			VPMOVSXBW(sc16.AsX(), sc16)
			for r := range m {
				xr, sc := YMM(), YMM()
				VMOVDQU(arow(ap, r, q8Rec*g), xr)
				VPSIGNB(q, xr, xr)
				VPMADDUBSW(xr, aw, xr)
				VPMADDWD(sc16, xr, xr)
				VCVTDQ2PS(xr, xr)
				VBROADCASTSS(arow(ap, r, q8Rec*g+32), sc)
				VMULPS(dw, sc, sc)
				VFMADD231PS(sc, xr, acc[g%sets][r])
			}
		}
	}
	ADDQ(U32(210), p)
	ADDQ(U32(8*q8Rec), ap)
	DECQ(nb)
	JNZ(LabelRef("block"))

	ldc := GP64()
	Load(Param("ldc"), ldc)
	SHLQ(U8(2), ldc)
	for r := range m {
		y := acc[0][r]
		if sets == 2 {
			VADDPS(acc[1][r], y, y)
		}
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

// dotQ4K generates packedQ8Q4_Kx<m>AVX2, for ggml's Q4_K: super-blocks of
// 256 values, 144 bytes: float16 d and dmin, twelve bytes of eight 6-bit
// scales and mins, then qs[128]; value d·scale_j·q − dmin·min_j in
// sub-block j of 32 (the low nibbles of qs[32i:][:32] are sub-block 2i,
// the high ones 2i+1, in order). Each sub-block is one activation chunk:
// it adds float32(Σ q·x)·(d_x·d·scale_j) and, once a super-block, the
// eight d_x·Σx of its chunks (the activations' per-chunk sums, at byte
// sums) times dmin·min_j are taken off.
func dotQ4K(m int) {
	name := fmt.Sprintf("packedQ8Q4_Kx%dAVX2", m)
	TEXT(name, NOSPLIT, "func(x *byte, ldx, sums int, w *byte, rowBytes, rows, group, blocks, last int, c *float32, ldc int)")
	Doc(fmt.Sprintf("%s sets c[i·ldc+j] to the dot product of quantized activation row i", name),
		"(at x + i·ldx, its per-chunk sums at byte sums of it) with packed Q4_K row j",
		fmt.Sprintf("(at w + j·rowBytes), for i < %d and j < rows: blocks/8 super-blocks of 256", m),
		"(group and last unused).")
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
	sets := 2
	if m > 2 {
		sets = 1
	}
	acc := make([][]VecVirtual, sets)
	for h := range acc {
		acc[h] = make([]VecVirtual, m)
		for r := range acc[h] {
			acc[h][r] = YMM()
		}
	}
	one := YMM()
	VMOVDQU(ones, one)
	local := AllocLocal(32)
	p, ap, sp := GP64(), GP64(), GP64()
	Label("row")
	MOVQ(rowp, p)
	MOVQ(x0, ap)
	MOVQ(x0, sp)
	ADDQ(paramMem("sums"), sp)
	for h := range acc {
		for _, a := range acc[h] {
			VXORPS(a, a, a)
		}
	}
	nb := Load(Param("blocks"), GP64())
	SHRQ(U8(3), nb)
	Label("block")
	// d and dmin.
	dd := XMM()
	VCVTPH2PS(Mem{Base: p}, dd)
	dv, dm := YMM(), YMM()
	VBROADCASTSS(dd, dv)
	VMOVSHDUP(dd, dd)
	VBROADCASTSS(dd, dm)
	// Scales and mins: ggml's utmp, dwords [u0&3f, u2&0f | (u0>>6&3)<<4,
	// u1&3f, u2>>4&0f | (u1>>6&3)<<4] of u = the twelve bytes.
	u, a, b := XMM(), XMM(), XMM()
	VMOVDQU(Mem{Base: p, Disp: 4}, u)
	VPSHUFD(U8(0x98), u, a) // u0 u2 u1 u2
	VPSRLVD(k4Shift, a, a)
	VPAND(k4Low, a, a)
	VPSHUFD(U8(0x50), u, b) // u0 u0 u1 u1
	VPSRLD(U8(6), b, b)
	VPAND(k4High, b, b)
	VPSLLD(U8(4), b, b)
	VPOR(b, a, a)
	sc, mn := YMM(), YMM()
	VPMOVZXBD(a, sc)
	VCVTDQ2PS(sc, sc)
	VMULPS(dv, sc, sc)
	VMOVUPS(sc, local)
	VPSHUFD(U8(0x0E), a, a)
	VPMOVZXBD(a, mn)
	VCVTDQ2PS(mn, mn)
	VMULPS(dm, mn, mn)
	for r := range m {
		t := YMM()
		VMOVUPS(arow(sp, r, 0), t)
		VFNMADD231PS(t, mn, acc[0][r]) // − dmin·min_j·d_x·Σx
	}
	for i := range 4 {
		q := YMM()
		VMOVDQU(Mem{Base: p, Disp: 16 + 32*i}, q)
		for h := range 2 {
			j := 2*i + h
			w := YMM()
			if h == 0 {
				VPAND(lowNibble, q, w)
			} else {
				VPSRLW(U8(4), q, w)
				VPAND(lowNibble, w, w)
			}
			sj := YMM()
			VBROADCASTSS(local.Offset(4*j), sj)
			for r := range m {
				xr, s := YMM(), YMM()
				VPMADDUBSW(arow(ap, r, q8Rec*j), w, xr)
				VPMADDWD(one, xr, xr)
				VCVTDQ2PS(xr, xr)
				VBROADCASTSS(arow(ap, r, q8Rec*j+32), s)
				VMULPS(sj, s, s)
				VFMADD231PS(s, xr, acc[j%sets][r])
			}
		}
	}
	ADDQ(U32(144), p)
	ADDQ(U32(8*q8Rec), ap)
	ADDQ(U8(32), sp)
	DECQ(nb)
	JNZ(LabelRef("block"))

	ldc := GP64()
	Load(Param("ldc"), ldc)
	SHLQ(U8(2), ldc)
	for r := range m {
		y := acc[0][r]
		if sets == 2 {
			VADDPS(acc[1][r], y, y)
		}
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

// r8Specs are the 4-bit formats with kernels on rows interleaved in groups
// of eight (dotRows8).
var r8Specs = []spec{
	{name: "RF4S", bits: 4, signed: true},
	{name: "RF4U", bits: 4},
	{name: "RF4SZ", bits: 4, signed: true, zp: true},
	{name: "RF4UZ", bits: 4, zp: true},
	{name: "Q4_0", bits: 4, f16: true, split: true},
}

// dotRows8 generates packedQ8<name>R8x<m>AVX2, the kernel of the 4-bit
// formats on rows repacked in groups of eight (package cpu's
// repackRows8): eight rows' dot products a pass, the activations'
// codes broadcast four at a time and shared by the eight rows.
//
// A group of eight rows holds, block after block, the eight rows' scales
// (float32, or float16 for Q4_0) and, where the format has them, their
// int32 zero points, then each whole chunk of 32 values as
// 128 bytes: four words of 32 bytes, byte 4r+i of word w holding row r's
// unsigned codes u of elements 8w+i (low nibble) and 8w+4+i (high
// nibble), u = q + 8 for the signed formats (Q4_0's stored nibble), u = q
// for uint4; the last block's codes past its whole chunks follow, row
// after row, in the format's own order (the Go caller takes them).
//
// For word w, VPMADDUBSW multiplies the low nibbles by the activation
// codes 8w..8w+3 broadcast (signed) and the high ones by 8w+4..8w+7: int16
// pairs of row r in dword r. The eight such products of a chunk are
// summed in int16, exactly (|u·x + u·x| ≤ 2·15·127, eight of them 30480),
// and VPMADDWD against ones gives row r's Σu·x in lane r. Converted to
// float32, it is multiply-added with the rows' scales times the chunk's
// activation scale d_x; the offset c (−8 for the signed formats) minus
// the zero point adds (c − zp)·scale·Σ(d_x·Σx) once a block, from the
// activations' block sums. No
// lane is reduced across: the eight rows' results are stored as one
// vector.
func dotRows8(s spec, m int) {
	name := fmt.Sprintf("packedQ8%sR8x%dAVX2", s.name, m)
	TEXT(name, NOSPLIT, "func(x *byte, ldx, sums int, w *byte, rowBytes, rows, group, blocks, last int, c *float32, ldc int)")
	Doc(fmt.Sprintf("%s sets c[i·ldc+j] to the dot product of quantized activation row i", name),
		"(at x + i·ldx, its block sums at byte sums of it, codes in order) with row j of",
		fmt.Sprintf("%s rows interleaved in groups of eight (group g at w + 8g·rowBytes), for i < %d", s.name, m),
		"and j < rows, a multiple of 8: blocks blocks, the first blocks−1 of group",
		"elements, of the last its first last&^31.")
	corr := s.signed || s.split || s.zp // c = −8, or a zero point
	x0 := Load(Param("x"), GP64())
	ld := Load(Param("ldx"), GP64())
	var ld3 GPVirtual
	if m == 4 {
		ld3 = GP64()
		LEAQ(Mem{Base: ld, Index: ld, Scale: 2}, ld3)
	}
	rowp := Load(Param("w"), GP64())
	ngrp := Load(Param("rows"), GP64())
	cp := Load(Param("c"), GP64())
	SHRQ(U8(3), ngrp)
	JZ(LabelRef("done"))
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
	p, ap := GP64(), GP64()
	var bp GPVirtual
	if corr {
		bp = GP64()
	}

	Label("group")
	MOVQ(rowp, p)
	MOVQ(x0, ap)
	if corr {
		MOVQ(x0, bp)
		ADDQ(paramMem("sums"), bp)
	}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	nb := Load(Param("blocks"), GP64())
	nch := GP64()

	Label("block")
	dw := YMM()
	if s.f16 {
		VCVTPH2PS(Mem{Base: p}, dw)
		ADDQ(U8(16), p)
	} else {
		VMOVUPS(Mem{Base: p}, dw)
		ADDQ(U8(32), p)
	}
	var cdw VecVirtual
	if corr {
		// (c − zp)·scale, as c·scale − zp·scale rounded once (exact
		// but for that rounding where |zp| < 2^24).
		cdw = YMM()
		if s.signed || s.split {
			VMULPS(minus8, dw, cdw)
		} else {
			VXORPS(cdw, cdw, cdw)
		}
		if s.zp {
			z := YMM()
			VCVTDQ2PS(Mem{Base: p}, z)
			VFNMADD231PS(z, dw, cdw)
			ADDQ(U8(32), p)
		}
	}
	Load(Param("group"), nch)
	CMPQ(nb, U8(1))
	JNE(LabelRef("chunks"))
	Load(Param("last"), nch)
	Label("chunks")
	SHRQ(U8(5), nch)
	JZ(LabelRef("blockdone"))

	Label("chunk")
	sum := make([]VecVirtual, m)
	for w := range 4 {
		hi, lo := YMM(), YMM()
		VMOVDQU(Mem{Base: p, Disp: 32 * w}, hi)
		VPAND(lowNibble, hi, lo)
		VPSRLW(U8(4), hi, hi)
		VPAND(lowNibble, hi, hi)
		for r := range m {
			t := YMM()
			VPBROADCASTD(arow(ap, r, 8*w), t)
			VPMADDUBSW(t, lo, t)
			if w == 0 {
				sum[r] = t
			} else {
				VPADDW(t, sum[r], sum[r])
			}
			u := YMM()
			VPBROADCASTD(arow(ap, r, 8*w+4), u)
			VPMADDUBSW(u, hi, u)
			VPADDW(u, sum[r], sum[r])
		}
	}
	for r := range m {
		VPMADDWD(ones, sum[r], sum[r])
		VCVTDQ2PS(sum[r], sum[r])
		sc := YMM()
		VBROADCASTSS(arow(ap, r, 32), sc)
		VMULPS(dw, sc, sc)
		VFMADD231PS(sc, sum[r], acc[r])
	}
	ADDQ(U8(128), p)
	ADDQ(U8(q8Rec), ap)
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

	// Row r's eight results, one vector.
	ldc := GP64()
	Load(Param("ldc"), ldc)
	SHLQ(U8(2), ldc)
	for r := range m {
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
		VMOVUPS(acc[r], dst)
	}
	ADDQ(U8(32), cp)
	step := GP64()
	Load(Param("rowBytes"), step)
	SHLQ(U8(3), step)
	ADDQ(step, rowp)
	DECQ(ngrp)
	JNZ(LabelRef("group"))

	Label("done")
	VZEROUPPER()
	RET()
}
