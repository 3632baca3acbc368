// Command attn generates the attention kernels of package cpu (AVX2 and
// FMA): the scaled dot products of a query with a run of key rows, the
// exponentials of a run of scores less their maximum, and the weighted
// sum of a run of value rows into an accumulator; and, sharing their
// exponential, the gated activation of the MLP (SwiGLU). Each kernel takes whole
// rows of any length: the last len%8 elements go through masked loads
// and stores (VMASKMOVPS), which neither read nor write past a row.
//
//	cd cpu/_gen && go run ./attn    # or make asm
//
// The pure-Go twins in package cpu (attention_noasm.go, attention.go)
// compute the same functions with the same algorithm; they differ from
// the assembly by the order of the additions and by FMA's single rounding
// only, which the tests bound.
package main

import (
	"math"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../attention_amd64.s", "-stubs", "../attention_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	consts()
	dots()
	expSum()
	accum()
	swiglu()
	Generate()
}

// Constants, read from memory.
var (
	tailMask Mem // eight dwords of all ones then eight of zeros
	negInf   Mem // -Inf in four floats
	posInf   Mem // +Inf in eight floats
	expLo    Mem // the smallest argument of exp, below which it is 0
	expHi    Mem // the largest argument of exp kept finite
	log2e    Mem
	half     Mem
	one      Mem
	expC1    Mem // ln 2 in two parts, C1 + C2 (Cephes expf)
	expC2    Mem
	expP     [6]Mem // the polynomial of exp on [-ln2/2, ln2/2]
	bias127  Mem    // 127 in every dword
)

func splatF(name string, f float32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := range 8 {
		DATA(4*i, U32(math.Float32bits(f)))
	}
	return m
}

func consts() {
	tailMask = GLOBL("attnTailMask", RODATA|NOPTR)
	for i := range 16 {
		v := uint32(0)
		if i < 8 {
			v = 0xFFFFFFFF
		}
		DATA(4*i, U32(v))
	}
	negInf = splatF("attnNegInf", float32(math.Inf(-1)))
	posInf = splatF("attnPosInf", float32(math.Inf(1)))
	expLo = splatF("attnExpLo", ExpLo)
	expHi = splatF("attnExpHi", ExpHi)
	log2e = splatF("attnLog2e", Log2e)
	half = splatF("attnHalf", 0.5)
	one = splatF("attnOne", 1)
	expC1 = splatF("attnExpC1", ExpC1)
	expC2 = splatF("attnExpC2", ExpC2)
	for i, p := range ExpP {
		expP[i] = splatF("attnExpP"+string(rune('0'+i)), p)
	}
	bias127 = GLOBL("attnBias127", RODATA|NOPTR)
	for i := range 8 {
		DATA(4*i, U32(127))
	}
}

// The constants of exp, as package cpu's expF32 has them (Cephes expf).
const (
	ExpLo = -88.3762626647949
	ExpHi = 88.3762626647949
	Log2e = 1.44269504088896341
	ExpC1 = 0.693359375
	ExpC2 = -2.12194440e-4
)

// ExpP are the coefficients of the polynomial, highest degree first.
var ExpP = [6]float32{1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1}

// maskFor loads into a new register the mask of the first r lanes, r in
// 1..7 held in a general register.
func maskFor(r Register) VecVirtual {
	t := GP64()
	MOVQ(U32(8), t)
	SUBQ(r, t)
	base := GP64()
	LEAQ(tailMask, base)
	m := YMM()
	VMOVUPS(Mem{Base: base, Index: t, Scale: 4}, m)
	return m
}

// dots: s[j] = scale·Σ_i q[i]·k[j·stride+i] for j < len(s), i < len(q);
// it returns the largest s[j] (-Inf when s is empty).
func dots() {
	TEXT("attnDotsAVX2", NOSPLIT, "func(s, q, k []float32, stride int, scale float32) float32")
	Doc("attnDotsAVX2 is attnDots: s[j] = scale·Σ_i q[i]·k[j·stride+i], the largest s[j] returned.")
	sp := Load(Param("s").Base(), GP64())
	n := Load(Param("s").Len(), GP64())
	qp := Load(Param("q").Base(), GP64())
	d := Load(Param("q").Len(), GP64())
	kp := Load(Param("k").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), stride)
	sx := XMM()
	Load(Param("scale"), sx)
	scale := XMM()
	VBROADCASTSS(sx, scale)
	maxV := XMM()
	VMOVUPS(negInf, maxV)

	r := GP64()
	MOVQ(d, r)
	ANDQ(U8(7), r)
	d8 := GP64() // bytes of the whole vectors of a row
	MOVQ(d, d8)
	SUBQ(r, d8)
	SHLQ(U8(2), d8)
	mask, qt := YMM(), YMM()
	VXORPS(mask, mask, mask)
	VXORPS(qt, qt, qt)
	TESTQ(r, r)
	JZ(LabelRef("nomask"))
	m := maskFor(r)
	VMOVUPS(m, mask)
	VMASKMOVPS(Mem{Base: qp, Index: d8, Scale: 1}, mask, qt)
	Label("nomask")

	// Four keys at a time: each load of q serves four rows.
	Label("keys4")
	CMPQ(n, U8(4))
	JL(LabelRef("keys1"))
	k1, k2, k3 := GP64(), GP64(), GP64()
	LEAQ(Mem{Base: kp, Index: stride, Scale: 1}, k1)
	LEAQ(Mem{Base: k1, Index: stride, Scale: 1}, k2)
	LEAQ(Mem{Base: k2, Index: stride, Scale: 1}, k3)
	rows := []Register{kp, k1, k2, k3}
	var acc [4]VecVirtual
	for i := range acc {
		acc[i] = YMM()
		VXORPS(acc[i], acc[i], acc[i])
	}
	i := GP64()
	XORQ(i, i)
	Label("d4")
	CMPQ(i, d8)
	JGE(LabelRef("d4tail"))
	qv := YMM()
	VMOVUPS(Mem{Base: qp, Index: i, Scale: 1}, qv)
	for c := range acc {
		VFMADD231PS(Mem{Base: rows[c], Index: i, Scale: 1}, qv, acc[c])
	}
	ADDQ(U8(32), i)
	JMP(LabelRef("d4"))
	Label("d4tail")
	TESTQ(r, r)
	JZ(LabelRef("d4sum"))
	for c := range acc {
		t := YMM()
		VMASKMOVPS(Mem{Base: rows[c], Index: d8, Scale: 1}, mask, t)
		VFMADD231PS(t, qt, acc[c])
	}
	Label("d4sum")
	// [Σacc0, Σacc1, Σacc2, Σacc3] in one register.
	h01, h23 := YMM(), YMM()
	VHADDPS(acc[1], acc[0], h01)
	VHADDPS(acc[3], acc[2], h23)
	VHADDPS(h23, h01, h01)
	hi := XMM()
	VEXTRACTF128(U8(1), h01, hi)
	sum := h01.AsX()
	VADDPS(hi, sum, sum)
	VMULPS(scale, sum, sum)
	VMOVUPS(sum, Mem{Base: sp})
	VMAXPS(sum, maxV, maxV)
	ADDQ(U8(16), sp)
	LEAQ(Mem{Base: k3, Index: stride, Scale: 1}, kp)
	SUBQ(U8(4), n)
	JMP(LabelRef("keys4"))

	Label("keys1")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	a := YMM()
	VXORPS(a, a, a)
	j := GP64()
	XORQ(j, j)
	Label("d1")
	CMPQ(j, d8)
	JGE(LabelRef("d1tail"))
	q1 := YMM()
	VMOVUPS(Mem{Base: qp, Index: j, Scale: 1}, q1)
	VFMADD231PS(Mem{Base: kp, Index: j, Scale: 1}, q1, a)
	ADDQ(U8(32), j)
	JMP(LabelRef("d1"))
	Label("d1tail")
	TESTQ(r, r)
	JZ(LabelRef("d1sum"))
	t := YMM()
	VMASKMOVPS(Mem{Base: kp, Index: d8, Scale: 1}, mask, t)
	VFMADD231PS(t, qt, a)
	Label("d1sum")
	hi1 := XMM()
	VEXTRACTF128(U8(1), a, hi1)
	s1 := a.AsX()
	VADDPS(hi1, s1, s1)
	VHADDPS(s1, s1, s1)
	VHADDPS(s1, s1, s1)
	VMULSS(scale, s1, s1)
	VMOVSS(s1, Mem{Base: sp})
	VBROADCASTSS(s1, s1)
	VMAXPS(s1, maxV, maxV)
	ADDQ(U8(4), sp)
	ADDQ(stride, kp)
	DECQ(n)
	JMP(LabelRef("keys1"))

	Label("done")
	// The largest of maxV's four lanes.
	t2 := XMM()
	VMOVHLPS(maxV, maxV, t2)
	VMAXPS(t2, maxV, maxV)
	VMOVSHDUP(maxV, t2)
	VMAXSS(t2, maxV, maxV)
	VZEROUPPER()
	Store(maxV, ReturnIndex(0))
	RET()
}

// expRegs are the constants exp keeps in registers: the clamps, which
// must be the first operand of VMAXPS/VMINPS so that NaN passes through.
type expRegs struct{ lo, hi VecVirtual }

// exp replaces x (finite or not) with exp(x) as Cephes expf computes it:
// n = ⌊x·log2e + ½⌋, r = x − n·C1 − n·C2, exp(r) by a polynomial, times
// 2ⁿ. Arguments below ExpLo give 0 (n = −127 encodes 0), NaN gives NaN.
func exp(x VecVirtual, c expRegs) {
	VMAXPS(x, c.lo, x)
	VMINPS(x, c.hi, x)
	fx := YMM()
	VMOVUPS(half, fx)
	VFMADD231PS(log2e, x, fx)
	VROUNDPS(U8(1), fx, fx) // toward -Inf
	VFNMADD231PS(expC1, fx, x)
	VFNMADD231PS(expC2, fx, x)
	y := YMM()
	VMOVUPS(expP[0], y)
	for _, p := range expP[1:] {
		VFMADD213PS(p, x, y) // y = y·x + p
	}
	z := YMM()
	VMULPS(x, x, z)
	VFMADD213PS(x, z, y) // y·x² + x
	VADDPS(one, y, y)
	n := YMM()
	VCVTTPS2DQ(fx, n)
	VPADDD(bias127, n, n)
	VPSLLD(U8(23), n, n)
	VMULPS(n, y, x)
}

// expSum: s[j] = exp(s[j] − m); it returns Σ_j s[j].
func expSum() {
	TEXT("attnExpAVX2", NOSPLIT, "func(s []float32, m float32) float32")
	Doc("attnExpAVX2 is attnExp: s[j] = exp(s[j]−m), Σ_j s[j] returned.")
	sp := Load(Param("s").Base(), GP64())
	n := Load(Param("s").Len(), GP64())
	mx := XMM()
	Load(Param("m"), mx)
	mv := YMM()
	VBROADCASTSS(mx, mv)
	c := expRegs{YMM(), YMM()}
	VMOVUPS(expLo, c.lo)
	VMOVUPS(expHi, c.hi)
	sum := YMM()
	VXORPS(sum, sum, sum)
	Label("loop")
	CMPQ(n, U8(8))
	JL(LabelRef("tail"))
	x := YMM()
	VMOVUPS(Mem{Base: sp}, x)
	VSUBPS(mv, x, x)
	exp(x, c)
	VMOVUPS(x, Mem{Base: sp})
	VADDPS(x, sum, sum)
	ADDQ(U8(32), sp)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop"))
	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	mask := maskFor(n)
	xt := YMM()
	VMASKMOVPS(Mem{Base: sp}, mask, xt)
	VSUBPS(mv, xt, xt)
	exp(xt, c)
	VMASKMOVPS(xt, mask, Mem{Base: sp})
	VANDPS(mask, xt, xt)
	VADDPS(xt, sum, sum)
	Label("done")
	hi := XMM()
	VEXTRACTF128(U8(1), sum, hi)
	s := sum.AsX()
	VADDPS(hi, s, s)
	VHADDPS(s, s, s)
	VHADDPS(s, s, s)
	VZEROUPPER()
	Store(s, ReturnIndex(0))
	RET()
}

// accum: o[i] = f·o[i] + Σ_j p[j]·v[j·stride+i] for i < len(o), j < len(p),
// the sum over j in order, one FMA each.
func accum() {
	TEXT("attnAccumAVX2", NOSPLIT, "func(o, p, v []float32, stride int, f float32)")
	Doc("attnAccumAVX2 is attnAccum: o[i] = f·o[i] + Σ_j p[j]·v[j·stride+i].")
	op := Load(Param("o").Base(), GP64())
	rem := Load(Param("o").Len(), GP64())
	pp := Load(Param("p").Base(), GP64())
	n := Load(Param("p").Len(), GP64())
	vp := Load(Param("v").Base(), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), stride)
	fx := XMM()
	Load(Param("f"), fx)
	f := YMM()
	VBROADCASTSS(fx, f)

	// A pass over the value rows for each chunk of o of width vectors.
	chunk := func(name string, width int) {
		Label(name)
		CMPQ(rem, U8(8*width))
		JL(LabelRef(name + "end"))
		acc := make([]VecVirtual, width)
		for c := range acc {
			acc[c] = YMM()
			VMULPS(Mem{Base: op, Disp: 32 * c}, f, acc[c])
		}
		pj, vr, cnt := GP64(), GP64(), GP64()
		MOVQ(pp, pj)
		MOVQ(vp, vr)
		MOVQ(n, cnt)
		Label(name + "j")
		TESTQ(cnt, cnt)
		JZ(LabelRef(name + "store"))
		pb := YMM()
		VBROADCASTSS(Mem{Base: pj}, pb)
		for c := range acc {
			VFMADD231PS(Mem{Base: vr, Disp: 32 * c}, pb, acc[c])
		}
		ADDQ(U8(4), pj)
		ADDQ(stride, vr)
		DECQ(cnt)
		JMP(LabelRef(name + "j"))
		Label(name + "store")
		for c := range acc {
			VMOVUPS(acc[c], Mem{Base: op, Disp: 32 * c})
		}
		ADDQ(U32(32*width), op)
		ADDQ(U32(32*width), vp)
		SUBQ(U32(8*width), rem)
		JMP(LabelRef(name))
		Label(name + "end")
	}
	chunk("c4", 4)
	chunk("c1", 1)

	TESTQ(rem, rem)
	JZ(LabelRef("done"))
	mask := maskFor(rem)
	acc := YMM()
	VMASKMOVPS(Mem{Base: op}, mask, acc)
	VMULPS(acc, f, acc)
	Label("tj")
	TESTQ(n, n)
	JZ(LabelRef("tstore"))
	pb, t := YMM(), YMM()
	VBROADCASTSS(Mem{Base: pp}, pb)
	VMASKMOVPS(Mem{Base: vp}, mask, t)
	VFMADD231PS(t, pb, acc)
	ADDQ(U8(4), pp)
	ADDQ(stride, vp)
	DECQ(n)
	JMP(LabelRef("tj"))
	Label("tstore")
	VMASKMOVPS(acc, mask, Mem{Base: op})
	Label("done")
	VZEROUPPER()
	RET()
}

// swiglu: dst[i] = g / (1 + exp(−g)) · up[i], g = gate[i], with exp as
// exp computes it except that it is +Inf where −g > ExpHi (where float32
// exp overflows, as the Go twin's math.Exp rounded to float32 does, near
// enough: the silu of such a g is below 2^−119 in magnitude), so that
// silu is −0 there, and NaN for g = −Inf, as in the twin. dst may be
// gate or up.
func swiglu() {
	TEXT("swigluAVX2", NOSPLIT, "func(dst, gate, up []float32)")
	Doc("swigluAVX2 is swigluGo: dst[i] = g/(1+exp(−g))·up[i], g = gate[i], exp(−g) = +Inf past ExpHi.")
	dp := Load(Param("dst").Base(), GP64())
	n := Load(Param("dst").Len(), GP64())
	gp := Load(Param("gate").Base(), GP64())
	up := Load(Param("up").Base(), GP64())
	c := expRegs{YMM(), YMM()}
	VMOVUPS(expLo, c.lo)
	VMOVUPS(expHi, c.hi)
	inf, zero := YMM(), YMM()
	VMOVUPS(posInf, inf)
	VXORPS(zero, zero, zero)
	// silu replaces g (kept in x) with silu(g)·u, u a register or memory.
	silu := func(g VecVirtual, u Op) {
		x := YMM()
		VSUBPS(g, zero, x) // −g
		over := YMM()
		VCMPPS(U8(0x1E), c.hi, x, over) // −g > ExpHi (false for NaN)
		exp(x, c)
		VBLENDVPS(over, inf, x, x)
		VADDPS(one, x, x)
		VDIVPS(x, g, g)
		VMULPS(u, g, g)
	}
	Label("loop")
	CMPQ(n, U8(8))
	JL(LabelRef("tail"))
	g := YMM()
	VMOVUPS(Mem{Base: gp}, g)
	silu(g, Mem{Base: up})
	VMOVUPS(g, Mem{Base: dp})
	ADDQ(U8(32), dp)
	ADDQ(U8(32), gp)
	ADDQ(U8(32), up)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop"))
	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	mask := maskFor(n)
	gt, ut := YMM(), YMM()
	VMASKMOVPS(Mem{Base: gp}, mask, gt)
	VMASKMOVPS(Mem{Base: up}, mask, ut)
	silu(gt, ut)
	VMASKMOVPS(gt, mask, Mem{Base: dp})
	Label("done")
	VZEROUPPER()
	RET()
}
