// Command qgroup generates the fused kernels of package cpu's symmetric
// per-group quantization (FitQuantizeGroups, quantgroups.go): the largest
// finite |x| of each group, and in one pass over a group already fitted
// its codes (8 or 4 bits, packed) with the two sums its SQNR needs, in
// AVX2 and AVX-512. Each kernel takes whole groups of a multiple of 32
// elements (AVX-512: 64); the Go code in package cpu does every other
// case.
//
//	cd cpu/_gen && go run ./qgroup    # or make asm
//
// The codes are those of quant.Quantize bit for bit (the rounding and
// clamping steps are the ones cpu/_gen/elem's quantize kernels use, with
// the zero point 0 of a symmetric scheme); the sums are in float32 over
// one group, in another order than the Go twins', so they agree with them
// to rounding, not to the bit.
package main

import (
	"fmt"
	"os"

	"github.com/quantkit/quantkit/cpu/_gen/internal/codes"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../qgroup_amd64.s", "-stubs", "../qgroup_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")

	consts()
	absMaxGroupsAVX2()
	absMaxGroupsAVX512()
	for _, bits := range []int{8, 4} {
		quantSumsAVX2(bits)
		quantSumsAVX512(bits)
	}
	Generate()
}

// Constant vectors, read from memory by the kernels.
var (
	packPerm   Mem // dword order that undoes the lane interleaving of VPACK*
	lowBytes   Mem // 0x00FF in every word
	lowNibble  Mem // 0x000F in every word
	highNibble Mem // 0x00F0 in every word
	clampLimit Mem // 512.0 in every float
	negLimit   Mem // -512.0 in every float
	absMask    Mem // 0x7FFFFFFF in every dword
	expOne     Mem // 0x00800000 in every dword: one in the exponent field
	expMax     Mem // 253 in every dword: the largest exponent field of 1/m
	expTop     Mem // 254 in every dword
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

func consts() {
	perm := []uint32{0, 4, 1, 5, 2, 6, 3, 7}
	packPerm = vector32("qgroupPackPerm", func(i int) uint32 { return perm[i] })
	lowBytes = splat("qgroupLowBytes", 0x00FF00FF)
	lowNibble = splat("qgroupLowNibble", 0x000F000F)
	highNibble = splat("qgroupHighNibble", 0x00F000F0)
	clampLimit = splat("qgroupClampLimit", 0x44000000) // 512.0
	negLimit = splat("qgroupNegLimit", 0xC4000000)     // -512.0
	absMask = splat("qgroupAbsMask", 0x7FFFFFFF)
	expOne = splat("qgroupExpOne", 0x00800000)
	expMax = splat("qgroupExpMax", 253)
	expTop = splat("qgroupExpTop", 254)
}

// powerOf sets m to 2^−min(e, 126) in every lane, e the exponent of the
// positive normal scale in sc: the factor that brings the group's values
// near 1 exactly (a power of two), whatever the scale. With f = e + 127
// the exponent field of sc, m's is 254 − min(f, 253).
func powerOf(sc, m VecVirtual, wide bool) {
	if wide {
		VPSRLD(U8(23), sc, m)
		VPMINUD_BCST(expMax, m, m)
		t := ZMM()
		VPBROADCASTD(expTop, t)
		VPSUBD(m, t, m)
		VPSLLD(U8(23), m, m)
		return
	}
	VPSRLD(U8(23), sc, m)
	VPMINUD(expMax, m, m)
	t := YMM()
	VMOVDQU(expTop, t)
	VPSUBD(m, t, m)
	VPSLLD(U8(23), m, m)
}

// finiteAbs leaves in b the bits of |v| for the finite v it holds and 0
// for NaN and ±Inf: of |v|'s bits, adding one to the exponent field
// carries into bit 31 exactly when that field is all ones. For
// non-negative floats the order of the bits is the order of the values,
// so an unsigned integer maximum of them is the largest finite |v|.
func finiteAbs(b, t VecVirtual, wide bool) {
	if wide {
		VPANDD_BCST(absMask, b, b)
		VPADDD_BCST(expOne, b, t)
		VPSRAD(U8(31), t, t)
		VPANDND(b, t, b) // b &^ t
		return
	}
	VPAND(absMask, b, b)
	VPADDD(expOne, b, t)
	VPSRAD(U8(31), t, t)
	VPANDN(b, t, b)
}

func absMaxGroupsAVX2() {
	TEXT("absMaxGroupsAVX2", NOSPLIT, "func(amax []float32, x []float32, group int)")
	Doc("absMaxGroupsAVX2 sets amax[g] to the largest finite |v| (0 when none) of the",
		"g-th run of group elements of x, for len(amax) groups; group is a multiple of 32.")
	out := Mem{Base: Load(Param("amax").Base(), GP64())}
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	groups := Load(Param("amax").Len(), GP64())
	blocks := Load(Param("group"), GP64())
	SHRQ(U8(5), blocks)
	TESTQ(groups, groups)
	JZ(LabelRef("done"))
	TESTQ(blocks, blocks)
	JZ(LabelRef("done"))
	Label("group")
	var acc [2]VecVirtual
	for j := range acc {
		acc[j] = YMM()
		VPXOR(acc[j], acc[j], acc[j])
	}
	n := GP64()
	MOVQ(blocks, n)
	Label("loop")
	for j := range 4 {
		b, t := YMM(), YMM()
		VMOVDQU(x.Offset(32*j), b)
		finiteAbs(b, t, false)
		VPMAXUD(b, acc[j%2], acc[j%2])
	}
	ADDQ(U32(32*4), x.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	VPMAXUD(acc[1], acc[0], acc[0])
	h, t := XMM(), XMM()
	VEXTRACTI128(U8(1), acc[0], h)
	VPMAXUD(h, acc[0].AsX(), h)
	VPSHUFD(U8(0x4E), h, t)
	VPMAXUD(t, h, h)
	VPSHUFD(U8(0xB1), h, t)
	VPMAXUD(t, h, h)
	VMOVD(h, out)
	ADDQ(U32(4), out.Base)
	DECQ(groups)
	JNZ(LabelRef("group"))
	Label("done")
	VZEROUPPER()
	RET()
}

func absMaxGroupsAVX512() {
	TEXT("absMaxGroupsAVX512", NOSPLIT, "func(amax []float32, x []float32, group int)")
	Doc("absMaxGroupsAVX512 is absMaxGroupsAVX2 for groups of a multiple of 64.")
	out := Mem{Base: Load(Param("amax").Base(), GP64())}
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	groups := Load(Param("amax").Len(), GP64())
	blocks := Load(Param("group"), GP64())
	SHRQ(U8(6), blocks)
	TESTQ(groups, groups)
	JZ(LabelRef("done"))
	TESTQ(blocks, blocks)
	JZ(LabelRef("done"))
	Label("group")
	var acc [2]VecVirtual
	for j := range acc {
		acc[j] = ZMM()
		VPXORD(acc[j], acc[j], acc[j])
	}
	n := GP64()
	MOVQ(blocks, n)
	Label("loop")
	for j := range 4 {
		b, t := ZMM(), ZMM()
		VMOVDQU32(x.Offset(64*j), b)
		finiteAbs(b, t, true)
		VPMAXUD(b, acc[j%2], acc[j%2])
	}
	ADDQ(U32(64*4), x.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	// EVEX forms throughout: the registers may be any of the 32.
	VPMAXUD(acc[1], acc[0], acc[0])
	y := YMM()
	VEXTRACTI64X4(U8(1), acc[0], y)
	VPMAXUD(y, acc[0].AsY(), y)
	h, t := XMM(), XMM()
	VEXTRACTI32X4(U8(1), y, h)
	VPMAXUD(h, y.AsX(), h)
	VPSHUFD(U8(0x4E), h, t)
	VPMAXUD(t, h, h)
	VPSHUFD(U8(0xB1), h, t)
	VPMAXUD(t, h, h)
	VMOVD(h, out)
	ADDQ(U32(4), out.Base)
	DECQ(groups)
	JNZ(LabelRef("group"))
	Label("done")
	VZEROUPPER()
	RET()
}

// quantSumsDoc is the doc comment of a quantize-and-sum kernel.
func quantSumsDoc(name string, bits, block int) {
	Doc(fmt.Sprintf("%s writes the %d-bit codes of len(sc) groups of group elements of x", name, bits),
		fmt.Sprintf("(group a multiple of %d), group g under scale sc[g] and zero point 0, as", block),
		"quant.Quantize does, and sets sums[2g] to Σ(m·x)² and sums[2g+1] to Σ(m·(x−x̂))²",
		"over the group, x̂ = float32(q)·sc[g] the dequantized value of code q and m the",
		"power of two 2^−min(e, 126), e the exponent of sc[g].")
}

// quantSumsAVX2 quantizes as cpu/_gen/elem's quantize (AVX2, perGroup)
// does with zero points 0, and sums each group's (m·x)² and (m·(x−x̂))²
// in float32 with FMA. x̂ is the product quant.Dequantize rounds, and x−x̂
// is within a rounding of itself (exact where x̂ is within a factor 2 of
// x), so the sums mean what float64 sums over the dequantized values
// mean; m, a power of two, scales exactly (down to subnormal values) and
// keeps the squares of a group far from overflow, except where a scale
// was rounded far below the group's values. NaN or ±Inf in x make both
// sums NaN or +Inf.
func quantSumsAVX2(bits int) {
	name := fmt.Sprintf("quant%dGroupsSumsAVX2", bits)
	TEXT(name, NOSPLIT, "func(dst []byte, x []float32, sc []float32, group int, qmin, qmax int32, sums []float32)")
	quantSumsDoc(name, bits, 32)
	dst := Mem{Base: Load(Param("dst").Base(), GP64())}
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	sc := Mem{Base: Load(Param("sc").Base(), GP64())}
	sums := Mem{Base: Load(Param("sums").Base(), GP64())}
	qmin, qmax := YMM(), YMM()
	for _, p := range []struct {
		name string
		v    VecVirtual
	}{{"qmin", qmin}, {"qmax", qmax}} {
		r := GP32()
		Load(Param(p.name), r)
		t := XMM()
		VMOVD(r, t)
		VPBROADCASTD(t, p.v)
	}
	perm := YMM()
	VMOVDQU(packPerm, perm)
	groups := Load(Param("sc").Len(), GP64())
	blocks := Load(Param("group"), GP64())
	SHRQ(U8(5), blocks)
	TESTQ(groups, groups)
	JZ(LabelRef("done"))
	TESTQ(blocks, blocks)
	JZ(LabelRef("done"))

	Label("group")
	scV, mV := YMM(), YMM()
	VBROADCASTSS(sc, scV)
	powerOf(scV, mV, false)
	sv, sn := YMM(), YMM()
	VXORPS(sv, sv, sv)
	VXORPS(sn, sn, sn)
	n := GP64()
	MOVQ(blocks, n)

	Label("loop")
	var q [4]VecVirtual
	for j := range q {
		xv, v, c := YMM(), YMM(), YMM()
		VMOVUPS(x.Offset(32*j), xv)
		VDIVPS(scV, xv, v)
		// NaN to 0, clamp to ±512, round half to even, convert.
		VCMPPS(U8(3), v, v, c)
		VANDNPS(v, c, c)
		VMAXPS(negLimit, c, c)
		VMINPS(clampLimit, c, c)
		VROUNDPS(U8(0), c, c)
		q[j] = YMM()
		VCVTTPS2DQ(c, q[j])
		VPMAXSD(qmin, q[j], q[j])
		VPMINSD(qmax, q[j], q[j])
		VCVTDQ2PS(q[j], c)
		VMULPS(scV, c, c) // x̂
		VSUBPS(c, xv, c)  // x − x̂
		VMULPS(mV, c, c)
		VMULPS(mV, xv, xv)
		VFMADD231PS(xv, xv, sv)
		VFMADD231PS(c, c, sn)
	}
	codes.Pack32(q, bits, codes.Masks{LowBytes: lowBytes, LowNibble: lowNibble, HighNibble: highNibble}, perm, dst)
	ADDQ(U32(32*4), x.Base)
	ADDQ(U32(32*bits/8), dst.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))

	// The group's two sums, pairwise.
	h := YMM()
	VHADDPS(sn, sv, h) // per half: s0+s1, s2+s3, n0+n1, n2+n3
	hx := XMM()
	VEXTRACTF128(U8(1), h, hx)
	VADDPS(hx, h.AsX(), hx)
	VHADDPS(hx, hx, hx) // the two sums, twice
	VMOVQ(hx, sums)
	ADDQ(U32(8), sums.Base)
	ADDQ(U32(4), sc.Base)
	DECQ(groups)
	JNZ(LabelRef("group"))

	Label("done")
	VZEROUPPER()
	RET()
}

// quantSumsAVX512 is quantSumsAVX2 on 512-bit registers, 64 elements a
// step: the conversion rounds half to even by its embedded rounding
// ({rn-sae}) and zeroes the NaN lanes through the mask of ordered lanes,
// as cpu/_gen/elem's quantize512. Constants come from memory by broadcast
// and the reductions use EVEX forms, so that any of the 32 registers
// serves.
func quantSumsAVX512(bits int) {
	name := fmt.Sprintf("quant%dGroupsSumsAVX512", bits)
	TEXT(name, NOSPLIT, "func(dst []byte, x []float32, sc []float32, group int, qmin, qmax int32, sums []float32)")
	quantSumsDoc(name, bits, 64)
	dst := Mem{Base: Load(Param("dst").Base(), GP64())}
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	sc := Mem{Base: Load(Param("sc").Base(), GP64())}
	sums := Mem{Base: Load(Param("sums").Base(), GP64())}
	bcast := func(name string) VecVirtual {
		r := GP32()
		Load(Param(name), r)
		z := ZMM()
		VPBROADCASTD(r, z)
		return z
	}
	qmin, qmax := bcast("qmin"), bcast("qmax")
	lim, neg := ZMM(), ZMM()
	VBROADCASTSS(clampLimit, lim)
	VBROADCASTSS(negLimit, neg)
	var nib, lowN VecVirtual
	if bits == 4 {
		nib, lowN = ZMM(), ZMM()
		VBROADCASTSS(highNibble, nib)
		VBROADCASTSS(lowNibble, lowN)
	}
	groups := Load(Param("sc").Len(), GP64())
	blocks := Load(Param("group"), GP64())
	SHRQ(U8(6), blocks)
	TESTQ(groups, groups)
	JZ(LabelRef("done"))
	TESTQ(blocks, blocks)
	JZ(LabelRef("done"))

	Label("group")
	scV, mV := ZMM(), ZMM()
	VBROADCASTSS(sc, scV)
	powerOf(scV, mV, true)
	var sv, sn [2]VecVirtual
	for j := range sv {
		sv[j], sn[j] = ZMM(), ZMM()
		VXORPS(sv[j], sv[j], sv[j])
		VXORPS(sn[j], sn[j], sn[j])
	}
	n := GP64()
	MOVQ(blocks, n)

	Label("loop")
	var b [4]VecVirtual // the 16 code bytes of each quarter
	for j := range b {
		xv, v := ZMM(), ZMM()
		VMOVUPS(x.Offset(64*j), xv)
		VDIVPS(scV, xv, v)
		ord := K()
		VCMPPS(U8(7), v, v, ord) // not NaN
		c := ZMM()
		VMAXPS(neg, v, c)
		VMINPS(lim, c, c)
		q := ZMM()
		VCVTPS2DQ_RN_SAE_Z(c, ord, q)
		VPMAXSD(qmin, q, q)
		VPMINSD(qmax, q, q)
		VCVTDQ2PS(q, c)
		VMULPS(scV, c, c) // x̂
		VSUBPS(c, xv, c)  // x − x̂
		VMULPS(mV, c, c)
		VMULPS(mV, xv, xv)
		VFMADD231PS(xv, xv, sv[j%2])
		VFMADD231PS(c, c, sn[j%2])
		b[j] = XMM()
		VPMOVDB(q, b[j])
		if bits == 8 {
			VMOVDQU(b[j], dst.Offset(16*j))
		}
	}
	if bits == 4 {
		a := ZMM()
		VINSERTI32X4(U8(1), b[1], b[0].AsZ(), a)
		VINSERTI32X4(U8(2), b[2], a, a)
		VINSERTI32X4(U8(3), b[3], a, a)
		t := ZMM()
		VPSRLW(U8(4), a, t)
		VPANDD(nib, t, t)
		VPANDD(lowN, a, a)
		VPORD(t, a, a)
		VPMOVWB(a, dst)
	}
	ADDQ(U32(64*4), x.Base)
	ADDQ(U32(64*bits/8), dst.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))

	for i, acc := range [][2]VecVirtual{sv, sn} {
		VADDPS(acc[1], acc[0], acc[0])
		y := YMM()
		VEXTRACTF64X4(U8(1), acc[0], y)
		VADDPS(y, acc[0].AsY(), y)
		h, t := XMM(), XMM()
		VEXTRACTF32X4(U8(1), y, h)
		VADDPS(h, y.AsX(), h)
		VSHUFPS(U8(0x4E), h, h, t)
		VADDPS(t, h, h)
		VSHUFPS(U8(0xB1), h, h, t)
		VADDSS(t, h, h)
		VMOVSS(h, sums.Offset(4*i))
	}
	ADDQ(U32(8), sums.Base)
	ADDQ(U32(4), sc.Base)
	DECQ(groups)
	JNZ(LabelRef("group"))

	Label("done")
	VZEROUPPER()
	RET()
}
