// Command legacy generates the kernels of package model/gguf's
// block-at-a-time encoders: the Q8_0 and Q4_0 quantizers (quant.go) and
// the F16 and BF16 encoders (types.go), with AVX2 and F16C.
//
//	cd cpu/_gen && go run ./legacy    # or make asm
//
// Every kernel computes exactly what its pure-Go twin
// (legacy_kernels.go) computes, bit for bit; the comments below say why
// each step is exact. The quantizers take whole blocks in order and stop
// at the first block they cannot do exactly (a NaN or Inf in it, or a
// scale d that is subnormal), returning how many they did; the Go code
// does that block and calls them again.
package main

import (
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var (
	absMask  Mem // 0x7FFFFFFF in every dword
	signMask Mem // 0x80000000 in every dword
	halfV    Mem // 0.5 in every float
	c8_5     Mem // 8.5 in every float
	c15      Mem // 15 in every dword
	qNaN     Mem // 0x7FC00000 in every dword: the quiet NaN, no payload
	bf16Rnd  Mem // 0x7FFF in every dword
	one      Mem // 1 in every dword
	bf16Q    Mem // 0x40 in every dword: BF16's quiet bit
	infBits  Mem // 0x7F800000 in every dword
	packPerm Mem // dword order that undoes the lane interleaving of VPACK*
	f127     Mem // 127.0 (scalar)
	fNeg8    Mem // -8.0 (scalar)
	f1       Mem // 1.0 (scalar)
)

func vector32(name string, v func(i int) uint32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := range 8 {
		DATA(4*i, U32(v(i)))
	}
	return m
}

func splat(name string, v uint32) Mem {
	return vector32(name, func(int) uint32 { return v })
}

func scalar(name string, v uint32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	DATA(0, U32(v))
	return m
}

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../../model/gguf/legacy_amd64.s", "-stubs", "../../model/gguf/legacy_stubs_amd64.go", "-pkg", "gguf")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	absMask = splat("lqAbsMask", 0x7fffffff)
	signMask = splat("lqSignMask", 0x80000000)
	halfV = splat("lqHalf", 0x3f000000)
	c8_5 = splat("lq8_5", 0x41080000)
	c15 = splat("lq15", 15)
	qNaN = splat("lqQNaN", 0x7fc00000)
	bf16Rnd = splat("lqBF16Rnd", 0x7fff)
	one = splat("lqOne", 1)
	bf16Q = splat("lqBF16Q", 0x40)
	infBits = splat("lqInf", 0x7f800000)
	packPerm = vector32("lqPackPerm", func(i int) uint32 { return uint32([]int{0, 4, 1, 5, 2, 6, 3, 7}[i]) })
	f127 = scalar("lqF127", 0x42fe0000)
	fNeg8 = scalar("lqFNeg8", 0xc1000000)
	f1 = scalar("lqF1", 0x3f800000)
	quantizeQ8_0()
	quantizeQ4_0()
	encodeF16()
	encodeBF16()
	Generate()
}

// absMax loads the block of 32 floats at x, leaves |x| in the four
// registers it returns and the largest |x| in the low lane of the XMM
// register it returns, both as bits. The bits of non-negative floats
// order as their values (+0 < subnormals < normals < Inf < NaNs), so the
// integer maximum is the float maximum for finite blocks and a NaN or
// Inf bit pattern otherwise, whatever the order of the elements.
func absMax(x Mem, abs VecVirtual) ([4]VecVirtual, VecVirtual) {
	var ax [4]VecVirtual
	for k := range ax {
		ax[k] = YMM()
		VANDPS(x.Offset(32*k), abs, ax[k])
	}
	m, m2 := YMM(), YMM()
	VPMAXSD(ax[1], ax[0], m)
	VPMAXSD(ax[3], ax[2], m2)
	VPMAXSD(m2, m, m)
	r, s := XMM(), XMM()
	VEXTRACTI128(U8(1), m, r)
	VPMAXSD(r, m.AsX(), r)
	VPSHUFD(U8(0x4e), r, s)
	VPMAXSD(s, r, r)
	VPSHUFD(U8(0xb1), r, s)
	VPMAXSD(s, r, r)
	return ax, r
}

// scaleOK jumps to bail unless the float d in the low lane of dx is ±0
// or normal and finite (|d| in [2^-126, Inf)). Then id = 1/d is finite
// and |x·id| is within 3 ulps of 127 (Q8_0) or 8 (Q4_0), which the
// kernels' conversions rely on; a subnormal d or a NaN/Inf block is left
// to the Go code.
func scaleOK(dx VecVirtual, bail string) {
	b, t := GP32(), GP32()
	VMOVD(dx, b)
	ANDL(U32(0x7fffffff), b)
	MOVL(b, t)
	SUBL(U32(0x00800000), t)
	CMPL(t, U32(0x7f800000-0x00800000))
	JB(LabelRef("ok_" + bail))
	TESTL(b, b)
	JNZ(LabelRef(bail))
	Label("ok_" + bail)
}

// inverse returns id = 1/d broadcast, or 0 where d is ±0, as
// `id := 0; if d != 0 { id = 1 / d }`.
func inverse(dx VecVirtual) VecVirtual {
	id, z, nz := XMM(), XMM(), XMM()
	VMOVSS(f1, id)
	VDIVSS(dx, id, id)
	VXORPS(z, z, z)
	VCMPSS(U8(4), z, dx, nz) // d != 0 (NEQ_UQ)
	VANDPS(nz, id, id)
	idB := YMM()
	VBROADCASTSS(id, idB)
	return idB
}

// storeScale writes float16(d), d in the low lane of dx, to m. VCVTPS2PH
// with immediate 0 rounds to nearest, ties to even, producing subnormals
// and infinities as internal/half does; d is never NaN here.
func storeScale(dx VecVirtual, m Mem) {
	h := XMM()
	VCVTPS2PH(U8(0), dx, h)
	r := GP32()
	VMOVD(h, r)
	MOVW(r.As16(), m)
}

func quantizeQ8_0() {
	TEXT("quantizeQ8_0AVX2", NOSPLIT, "func(dst []byte, x []float32) int")
	Pragma("noescape")
	Doc("quantizeQ8_0AVX2 is quantizeQ8_0Go up to the first block whose scale is",
		"subnormal or whose values are not all finite: it quantizes the leading",
		"blocks of x into dst (len(dst) ≥ 34·len(x)/32) and returns how many.")
	dst := Load(Param("dst").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	SHRQ(U8(5), n)
	i := GP64()
	XORQ(i, i)
	abs := YMM()
	VMOVDQU(absMask, abs)
	perm := YMM()
	VMOVDQU(packPerm, perm)

	Label("q8loop")
	CMPQ(i, n)
	JAE(LabelRef("q8done"))
	xm := Mem{Base: x}
	ax, amax := absMax(xm, abs)
	// d = amax/127 and id = 1/d, as float32 divisions like Go's.
	d := XMM()
	VDIVSS(f127, amax, d)
	scaleOK(d, "q8done")
	idB := inverse(d)
	storeScale(d, Mem{Base: dst})
	// q = roundf(x·id): with a = |x|·id = |x·id| (id ≥ 0, and rounding is
	// symmetric), t = trunc(a) and f = a − t are exact (f is a's fraction
	// bits), so roundf(a) = t + (f ≥ 0.5) exactly: half away from zero,
	// with no float addition to round; a ≤ 127 + 3 ulps, so t + 1 ≤ 127.
	// VPSIGND then gives q the sign of x (x = ±0 gives q = 0, as roundf).
	var q [4]VecVirtual
	for k := range q {
		a, t, f := YMM(), YMM(), YMM()
		VMULPS(idB, ax[k], a)
		VROUNDPS(U8(3), a, t) // toward zero
		VSUBPS(t, a, f)
		VCMPPS(U8(0x0d), halfV, f, f) // f ≥ 0.5 (GE_OS): all ones
		q[k] = YMM()
		VCVTTPS2DQ(t, q[k])
		VPSUBD(f, q[k], q[k])
		VPSIGND(xm.Offset(32*k), q[k], q[k])
	}
	// |q| ≤ 127: the packs' saturation never applies.
	VPACKSSDW(q[1], q[0], q[0])
	VPACKSSDW(q[3], q[2], q[2])
	VPACKSSWB(q[2], q[0], q[0])
	VPERMD(q[0], perm, q[0])
	VMOVDQU(q[0], Mem{Base: dst, Disp: 2})
	ADDQ(U8(34), dst)
	ADDQ(U32(128), x)
	INCQ(i)
	JMP(LabelRef("q8loop"))

	Label("q8done")
	Store(i, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func quantizeQ4_0() {
	TEXT("quantizeQ4_0AVX2", NOSPLIT, "func(dst []byte, x []float32) int")
	Pragma("noescape")
	Doc("quantizeQ4_0AVX2 is quantizeQ4_0Go up to the first block whose scale is",
		"subnormal or whose values are not all finite: it quantizes the leading",
		"blocks of x into dst (len(dst) ≥ 18·len(x)/32) and returns how many.")
	dst := Load(Param("dst").Base(), GP64())
	x := Load(Param("x").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	SHRQ(U8(5), n)
	i := GP64()
	XORQ(i, i)
	abs := YMM()
	VMOVDQU(absMask, abs)

	Label("q4loop")
	CMPQ(i, n)
	JAE(LabelRef("q4done"))
	xm := Mem{Base: x}
	ax, amax := absMax(xm, abs)
	// max is the first x[j] with |x[j]| = amax (`if amax < |v|` keeps the
	// first), or +0 when amax is 0 (the loop never assigns then).
	mb := YMM()
	VPBROADCASTD(amax, mb)
	mask, r := GP32(), GP32()
	XORL(mask, mask)
	for k := 3; k >= 0; k-- {
		e := YMM()
		VPCMPEQD(mb, ax[k], e)
		VMOVMSKPS(e, r)
		SHLL(U8(8), mask)
		ORL(r, mask)
	}
	j, vmax, zero := GP32(), GP32(), GP32()
	BSFL(mask, j) // mask ≠ 0: amax is one of the |x[j]|
	MOVL(Mem{Base: x, Index: j.As64(), Scale: 4}, vmax)
	XORL(zero, zero)
	ab := GP32()
	VMOVD(amax, ab)
	TESTL(ab, ab)
	CMOVLEQ(zero, vmax)
	d := XMM()
	VMOVD(vmax, d)
	VDIVSS(fNeg8, d, d) // d = max / -8
	scaleOK(d, "q4done")
	idB := inverse(d)
	storeScale(d, Mem{Base: dst})
	// q = min(15, trunc(x·id + 8.5)), the product and the sum each rounded
	// to float32 as in Go; |x·id| ≤ 8 + 3 ulps, so the sum lies in
	// (0.49, 16.51) and truncates to 0..16 as int8() does.
	var q [4]VecVirtual
	for k := range q {
		q[k] = YMM()
		VMULPS(xm.Offset(32*k), idB, q[k])
		VADDPS(c8_5, q[k], q[k])
		VCVTTPS2DQ(q[k], q[k])
		VPMINSD(c15, q[k], q[k])
	}
	// byte j = q[j] | q[j+16]<<4
	VPSLLD(U8(4), q[2], q[2])
	VPSLLD(U8(4), q[3], q[3])
	VPOR(q[2], q[0], q[0])
	VPOR(q[3], q[1], q[1])
	VPACKSSDW(q[1], q[0], q[0])  // words: q0[0:4] q1[0:4] | q0[4:8] q1[4:8]
	VPERMQ(U8(0xd8), q[0], q[0]) // q0[0:8] | q1[0:8]
	hi := XMM()
	VEXTRACTI128(U8(1), q[0], hi)
	VPACKUSWB(hi, q[0].AsX(), hi) // values ≤ 255: no saturation
	VMOVDQU(hi, Mem{Base: dst, Disp: 2})
	ADDQ(U8(18), dst)
	ADDQ(U32(128), x)
	INCQ(i)
	JMP(LabelRef("q4loop"))

	Label("q4done")
	Store(i, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

func encodeF16() {
	TEXT("encodeF16AVX2", NOSPLIT, "func(dst []byte, src []float32)")
	Pragma("noescape")
	Doc("encodeF16AVX2 is encodeF16Go for the first len(src)&^7 values (len(dst) ≥ 2·len(src)).")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())
	SHRQ(U8(3), n)
	sign, qn := YMM(), YMM()
	VMOVDQU(signMask, sign)
	VMOVDQU(qNaN, qn)
	// One group of 8: VCVTPS2PH rounds to nearest, ties to even, as
	// internal/half does for every non-NaN; a NaN becomes the quiet NaN
	// with its sign first (what fp16 writes, sign|0x7e00), since
	// VCVTPS2PH would keep its payload.
	group := func(k int) {
		v, nan, s := YMM(), YMM(), YMM()
		VMOVUPS(Mem{Base: src, Disp: 32 * k}, v)
		VCMPPS(U8(3), v, v, nan) // unordered: NaN
		VANDPS(sign, v, s)
		VORPS(qn, s, s)
		VBLENDVPS(nan, s, v, v)
		h := XMM()
		VCVTPS2PH(U8(0), v, h)
		VMOVDQU(h, Mem{Base: dst, Disp: 16 * k})
	}
	Label("f16loop4")
	CMPQ(n, U8(4))
	JB(LabelRef("f16loop1"))
	for k := range 4 {
		group(k)
	}
	ADDQ(U32(128), src)
	ADDQ(U8(64), dst)
	SUBQ(U8(4), n)
	JMP(LabelRef("f16loop4"))
	Label("f16loop1")
	TESTQ(n, n)
	JZ(LabelRef("f16done"))
	group(0)
	ADDQ(U8(32), src)
	ADDQ(U8(16), dst)
	DECQ(n)
	JMP(LabelRef("f16loop1"))
	Label("f16done")
	VZEROUPPER()
	RET()
}

func encodeBF16() {
	TEXT("encodeBF16AVX2", NOSPLIT, "func(dst []byte, src []float32)")
	Pragma("noescape")
	Doc("encodeBF16AVX2 is encodeBF16Go for the first len(src)&^15 values (len(dst) ≥ 2·len(src)).")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())
	SHRQ(U8(4), n)
	abs, inf := YMM(), YMM()
	VMOVDQU(absMask, abs)
	VMOVDQU(infBits, inf)
	// h = (u + 0x7fff + (u>>16)&1) >> 16 in uint32 arithmetic (the carry
	// into Inf included), or u>>16 | 0x40 for a NaN; either fits 16 bits,
	// so VPACKUSDW keeps it.
	conv := func(k int) VecVirtual {
		u, hi, t, nan := YMM(), YMM(), YMM(), YMM()
		VMOVDQU(Mem{Base: src, Disp: 32 * k}, u)
		VPSRLD(U8(16), u, hi)
		VPAND(one, hi, t)
		VPADDD(bf16Rnd, t, t)
		VPADDD(u, t, t)
		VPSRLD(U8(16), t, t)
		VPAND(abs, u, u)
		VPCMPGTD(inf, u, nan) // |u| > 0x7f800000, signed: both non-negative
		VPOR(bf16Q, hi, hi)
		VPBLENDVB(nan, hi, t, t)
		return t
	}
	Label("bf16loop")
	TESTQ(n, n)
	JZ(LabelRef("bf16done"))
	a := conv(0)
	b := conv(1)
	VPACKUSDW(b, a, a)     // a[0:4] b[0:4] | a[4:8] b[4:8]
	VPERMQ(U8(0xd8), a, a) // a[0:8] | b[0:8]
	VMOVDQU(a, Mem{Base: dst})
	ADDQ(U8(64), src)
	ADDQ(U8(32), dst)
	DECQ(n)
	JMP(LabelRef("bf16loop"))
	Label("bf16done")
	VZEROUPPER()
	RET()
}
