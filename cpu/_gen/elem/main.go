// Command elem generates the element-wise kernels of package cpu:
// quantization (AVX2 and AVX-512) and dequantization (AVX2) of float32 to
// 8- and 4-bit codes, the largest finite |x| and the histogram of |x|
// (AVX2). Each kernel handles whole blocks of 32 elements (AVX-512: 64,
// histogram: 128); the Go code in package cpu (elem.go, quant.go,
// reduce.go) does the remainder and every case the kernels leave out.
//
//	cd cpu/_gen && go run ./elem    # or make asm
//
// Every kernel computes exactly what its pure-Go twin in package cpu
// computes, bit for bit; the comments below say why each step is exact.
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
		os.Args = append(os.Args, "-out", "../elem_amd64.s", "-stubs", "../elem_stubs_amd64.go", "-pkg", "cpu")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")

	consts()
	for _, bits := range []int{8, 4} {
		quantize(bits, perRun)
		quantize(bits, perElement)
		quantize(bits, perGroup)
		quantize512(bits, perRun)
		quantize512(bits, perElement)
		quantize512(bits, perGroup)
		quantize512(bits, perGroup32)
	}
	for _, signed := range []bool{false, true} {
		dequantize8(signed, false)
		dequantize8(signed, true)
	}
	dequantize4()
	dequantizeGroups(8, false)
	dequantizeGroups(8, true)
	dequantizeGroups(4, false)
	absMax()
	sqnrSums()
	histogram()

	Generate()
}

// Constant vectors, read from memory by the kernels to leave registers
// for the data.
var (
	packPerm   Mem // dword order that undoes the lane interleaving of VPACK*
	lowBytes   Mem // 0x00FF in every word
	lowNibble  Mem // 0x000F in every word
	highNibble Mem // 0x00F0 in every word
	nibbleMask Mem // 0x0F in every byte
	laneIndex  Mem // 0, 1, 2, 3, 0, 1, 2, 3
	clampLimit Mem // 512.0 in every float
	negLimit   Mem // -512.0 in every float
	absMask    Mem // 0x7FFFFFFF in every dword
	maxFinite  Mem // 0x7F7FFFFF in every dword: the bits of MaxFloat32
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
	packPerm = vector32("elemPackPerm", func(i int) uint32 { return perm[i] })
	lowBytes = splat("elemLowBytes", 0x00FF00FF)
	lowNibble = splat("elemLowNibble", 0x000F000F)
	highNibble = splat("elemHighNibble", 0x00F000F0)
	nibbleMask = splat("elemNibbleMask", 0x0F0F0F0F)
	laneIndex = vector32("elemLaneIndex", func(i int) uint32 { return uint32(i % 4) })
	clampLimit = splat("elemClampLimit", 0x44000000) // 512.0
	negLimit = splat("elemNegLimit", 0xC4000000)     // -512.0
	absMask = splat("elemAbsMask", 0x7FFFFFFF)
	maxFinite = splat("elemMaxFinite", 0x7F7FFFFF)
}

// broadcastF32 loads a float32 argument into every lane of a new register.
func broadcastF32(name string) VecVirtual {
	x := XMM()
	Load(Param(name), x)
	y := YMM()
	VBROADCASTSS(x, y)
	return y
}

// broadcastI32 loads an int32 argument into every lane of a new register.
func broadcastI32(name string) VecVirtual {
	r := GP32()
	Load(Param(name), r)
	x := XMM()
	VMOVD(r, x)
	y := YMM()
	VPBROADCASTD(x, y)
	return y
}

// Ways a quantize kernel takes its scales and zero points.
const (
	perRun     = iota // one of each for all of x
	perElement        // sc[i] and zp[i] for element i
	perGroup          // sc[g] and zp[g] for the g-th run of group elements
	perGroup32        // perGroup with groups of 32, two in each step of 64 (AVX-512)
)

func quantize(bits, mode int) {
	name := fmt.Sprintf("quantize%dAVX2", bits)
	sig := "func(dst []byte, x []float32, sc float32, zp, qmin, qmax int32)"
	doc := fmt.Sprintf("%s is quantize%d on len(x)/32 blocks of 32 elements.", name, bits)
	switch mode {
	case perElement:
		name = fmt.Sprintf("quantize%dVecAVX2", bits)
		sig = "func(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32)"
		doc = name + " quantizes len(x)/32 blocks of 32 elements, element i under sc[i] and zp[i]."
	case perGroup:
		name = fmt.Sprintf("quantize%dGroupsAVX2", bits)
		sig = "func(dst []byte, x []float32, sc []float32, zp []int32, group int, qmin, qmax int32)"
		doc = name + " quantizes len(sc) groups of group elements (a multiple of 32), group g under sc[g] and zp[g]."
	}
	TEXT(name, NOSPLIT, sig)
	Doc(doc)
	dst := Mem{Base: Load(Param("dst").Base(), GP64())}
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	var sc, zp Mem
	if mode != perRun {
		sc = Mem{Base: Load(Param("sc").Base(), GP64())}
		zp = Mem{Base: Load(Param("zp").Base(), GP64())}
	}
	qmin, qmax := broadcastI32("qmin"), broadcastI32("qmax")
	perm := YMM()
	VMOVDQU(packPerm, perm)
	scV, zpV := YMM(), YMM()
	var n, groups, blocks Register
	switch mode {
	case perRun:
		scV, zpV = broadcastF32("sc"), broadcastI32("zp")
		n = Load(Param("x").Len(), GP64())
		SHRQ(U8(5), n)
		JZ(LabelRef("done"))
	case perElement:
		n = Load(Param("x").Len(), GP64())
		SHRQ(U8(5), n)
		JZ(LabelRef("done"))
	case perGroup:
		groups = Load(Param("sc").Len(), GP64())
		blocks = Load(Param("group"), GP64())
		SHRQ(U8(5), blocks)
		TESTQ(groups, groups)
		JZ(LabelRef("done"))
		Label("group")
		VBROADCASTSS(sc, scV)
		VPBROADCASTD(zp, zpV)
		n = GP64()
		MOVQ(blocks, n)
	}

	Label("loop")
	var q [4]VecVirtual
	for j := range q {
		v := YMM()
		VMOVUPS(x.Offset(32*j), v)
		// x/scale: VDIVPS rounds as float32 division does.
		if mode == perElement {
			VDIVPS(sc.Offset(32*j), v, v)
		} else {
			VDIVPS(scV, v, v)
		}
		// NaN to 0, which lands on the zero point below.
		nan := YMM()
		VCMPPS(U8(3), v, v, nan)
		VANDNPS(v, nan, v)
		// Clamp to ±512, past every code range plus zero point; ±Inf
		// and huge quotients saturate as QuantizeValue's do. Clamping to
		// integers commutes with rounding.
		VMAXPS(negLimit, v, v)
		VMINPS(clampLimit, v, v)
		// Round half to even (mode 0), then an exact conversion.
		VROUNDPS(U8(0), v, v)
		q[j] = YMM()
		VCVTTPS2DQ(v, q[j])
		if mode == perElement {
			VPADDD(zp.Offset(32*j), q[j], q[j])
		} else {
			VPADDD(zpV, q[j], q[j])
		}
		VPMAXSD(qmin, q[j], q[j])
		VPMINSD(qmax, q[j], q[j])
	}
	codes.Pack32(q, bits, codes.Masks{LowBytes: lowBytes, LowNibble: lowNibble, HighNibble: highNibble}, perm, dst)
	ADDQ(U32(32*4), x.Base)
	if mode == perElement {
		ADDQ(U32(32*4), sc.Base)
		ADDQ(U32(32*4), zp.Base)
	}
	ADDQ(U32(32*bits/8), dst.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	if mode == perGroup {
		ADDQ(U32(4), sc.Base)
		ADDQ(U32(4), zp.Base)
		DECQ(groups)
		JNZ(LabelRef("group"))
	}

	Label("done")
	VZEROUPPER()
	RET()
}

// quantize512 is quantize on 512-bit registers, 64 elements a step. The
// conversion rounds half to even by its embedded rounding ({rn-sae}, not
// MXCSR) and zeroes the NaN lanes through the mask of ordered lanes;
// VPMOVDB keeps the low byte of each code.
func quantize512(bits, mode int) {
	name := fmt.Sprintf("quantize%dAVX512", bits)
	sig := "func(dst []byte, x []float32, sc float32, zp, qmin, qmax int32)"
	doc := fmt.Sprintf("%s is quantize%d on len(x)/64 blocks of 64 elements.", name, bits)
	switch mode {
	case perElement:
		name = fmt.Sprintf("quantize%dVecAVX512", bits)
		sig = "func(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32)"
		doc = name + " quantizes len(x)/64 blocks of 64 elements, element i under sc[i] and zp[i]."
	case perGroup:
		name = fmt.Sprintf("quantize%dGroupsAVX512", bits)
		sig = "func(dst []byte, x []float32, sc []float32, zp []int32, group int, qmin, qmax int32)"
		doc = name + " quantizes len(sc) groups of group elements (a multiple of 64), group g under sc[g] and zp[g]."
	case perGroup32:
		name = fmt.Sprintf("quantize%dGroups32AVX512", bits)
		sig = "func(dst []byte, x []float32, sc []float32, zp []int32, qmin, qmax int32)"
		doc = name + " quantizes len(sc)/2 pairs of groups of 32 elements, group g under sc[g] and zp[g]."
	}
	TEXT(name, NOSPLIT, sig)
	Doc(doc)
	dst := Mem{Base: Load(Param("dst").Base(), GP64())}
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	var sc, zp Mem
	if mode != perRun {
		sc = Mem{Base: Load(Param("sc").Base(), GP64())}
		zp = Mem{Base: Load(Param("zp").Base(), GP64())}
	}
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
	scV, zpV := ZMM(), ZMM()
	var scV2, zpV2 VecVirtual // the second group of a step (perGroup32)
	var n, groups, blocks Register
	switch mode {
	case perGroup32:
		scV2, zpV2 = ZMM(), ZMM()
		n = Load(Param("sc").Len(), GP64())
		SHRQ(U8(1), n)
		JZ(LabelRef("done"))
	case perRun:
		f := XMM()
		Load(Param("sc"), f)
		VBROADCASTSS(f, scV)
		zpV = bcast("zp")
		n = Load(Param("x").Len(), GP64())
		SHRQ(U8(6), n)
		JZ(LabelRef("done"))
	case perElement:
		n = Load(Param("x").Len(), GP64())
		SHRQ(U8(6), n)
		JZ(LabelRef("done"))
	case perGroup:
		groups = Load(Param("sc").Len(), GP64())
		blocks = Load(Param("group"), GP64())
		SHRQ(U8(6), blocks)
		TESTQ(groups, groups)
		JZ(LabelRef("done"))
		Label("group")
		VBROADCASTSS(sc, scV)
		VPBROADCASTD(zp, zpV)
		n = GP64()
		MOVQ(blocks, n)
	}

	if mode != perGroup32 {
		scV2, zpV2 = scV, zpV
	}

	Label("loop")
	if mode == perGroup32 {
		VBROADCASTSS(sc, scV)
		VPBROADCASTD(zp, zpV)
		VBROADCASTSS(sc.Offset(4), scV2)
		VPBROADCASTD(zp.Offset(4), zpV2)
	}
	var b [4]VecVirtual // the 16 code bytes of each quarter
	for j := range b {
		scJ, zpJ := scV, zpV
		if j >= 2 {
			scJ, zpJ = scV2, zpV2
		}
		v := ZMM()
		VMOVUPS(x.Offset(64*j), v)
		if mode == perElement {
			VDIVPS(sc.Offset(64*j), v, v)
		} else {
			VDIVPS(scJ, v, v)
		}
		ord := K()
		VCMPPS(U8(7), v, v, ord) // not NaN
		VMAXPS(neg, v, v)
		VMINPS(lim, v, v)
		q := ZMM()
		VCVTPS2DQ_RN_SAE_Z(v, ord, q)
		if mode == perElement {
			VPADDD(zp.Offset(64*j), q, q)
		} else {
			VPADDD(zpJ, q, q)
		}
		VPMAXSD(qmin, q, q)
		VPMINSD(qmax, q, q)
		b[j] = XMM()
		VPMOVDB(q, b[j])
		if bits == 8 {
			VMOVDQU(b[j], dst.Offset(16*j))
		}
	}
	if bits == 4 {
		// 64 code bytes in one register, then each word's pair of
		// bytes into one byte, the even element in the low nibble.
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
	switch mode {
	case perElement:
		ADDQ(U32(64*4), sc.Base)
		ADDQ(U32(64*4), zp.Base)
	case perGroup32:
		ADDQ(U32(8), sc.Base)
		ADDQ(U32(8), zp.Base)
	}
	ADDQ(U32(64*bits/8), dst.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	if mode == perGroup {
		ADDQ(U32(4), sc.Base)
		ADDQ(U32(4), zp.Base)
		DECQ(groups)
		JNZ(LabelRef("group"))
	}

	Label("done")
	VZEROUPPER()
	RET()
}

// dequantize8 writes float32(code - zp) * sc, code the sign- or
// zero-extended byte: the difference is a small integer that VCVTDQ2PS
// converts exactly, and VMULPS rounds as a float32 product does.
func dequantize8(signed, vec bool) {
	name, ext := "dequantize8U", VPMOVZXBD
	if signed {
		name, ext = "dequantize8S", VPMOVSXBD
	}
	sig := "func(x []float32, codes []byte, sc float32, zp int32)"
	doc := name + "AVX2 is dequantize8 on len(x)/32 blocks of 32 elements."
	if vec {
		name += "Vec"
		sig = "func(x []float32, codes []byte, sc []float32, zp []int32)"
		doc = name + "AVX2 dequantizes len(x)/32 blocks of 32 elements, element i under sc[i] and zp[i]."
	}
	name += "AVX2"
	TEXT(name, NOSPLIT, sig)
	Doc(doc)
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	c := Mem{Base: Load(Param("codes").Base(), GP64())}
	n := Load(Param("x").Len(), GP64())
	var scV, zpV VecVirtual
	var sc, zp Mem
	if vec {
		sc = Mem{Base: Load(Param("sc").Base(), GP64())}
		zp = Mem{Base: Load(Param("zp").Base(), GP64())}
	} else {
		scV, zpV = broadcastF32("sc"), broadcastI32("zp")
	}
	SHRQ(U8(5), n)
	JZ(LabelRef("done"))
	Label("loop")
	for j := range 4 {
		v := YMM()
		ext(c.Offset(8*j), v)
		if vec {
			VPSUBD(zp.Offset(32*j), v, v)
			VCVTDQ2PS(v, v)
			VMULPS(sc.Offset(32*j), v, v)
		} else {
			VPSUBD(zpV, v, v)
			VCVTDQ2PS(v, v)
			VMULPS(scV, v, v)
		}
		VMOVUPS(v, x.Offset(32*j))
	}
	ADDQ(U32(32), c.Base)
	ADDQ(U32(32*4), x.Base)
	if vec {
		ADDQ(U32(32*4), sc.Base)
		ADDQ(U32(32*4), zp.Base)
	}
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// dequantize4 is dequantize8 on nibbles, the even element in the low one.
// Signed nibbles are n^8 - 8: the caller passes flip = 0x88888888 (xored
// into every byte) and sub = zp + 8 for them, 0 and zp otherwise.
func dequantize4() {
	TEXT("dequantize4AVX2", NOSPLIT, "func(x []float32, codes []byte, sc float32, sub int32, flip uint32)")
	Doc("dequantize4AVX2 is dequantize4 on len(x)/32 blocks of 32 elements: element i is",
		"float32(int32(nibble(i) ^ flip&15) - sub) * sc, with flip 0 or 0x88888888.")
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	c := Mem{Base: Load(Param("codes").Base(), GP64())}
	n := Load(Param("x").Len(), GP64())
	scV, subV, flip := broadcastF32("sc"), broadcastI32("sub"), broadcastI32("flip")
	SHRQ(U8(5), n)
	JZ(LabelRef("done"))
	Label("loop")
	b := XMM()
	VPXOR(c, flip.AsX(), b)
	lo, hi := XMM(), XMM()
	VPAND(nibbleMask, b, lo)
	VPSRLW(U8(4), b, hi)
	VPAND(nibbleMask, hi, hi)
	e := [2]VecVirtual{XMM(), XMM()}
	VPUNPCKLBW(hi, lo, e[0])
	VPUNPCKHBW(hi, lo, e[1])
	for j := range 4 {
		src := e[j/2]
		if j%2 == 1 {
			t := XMM()
			VPSRLDQ(U8(8), src, t)
			src = t
		}
		v := YMM()
		VPMOVZXBD(src, v)
		VPSUBD(subV, v, v)
		VCVTDQ2PS(v, v)
		VMULPS(scV, v, v)
		VMOVUPS(v, x.Offset(32*j))
	}
	ADDQ(U32(16), c.Base)
	ADDQ(U32(32*4), x.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// dequantizeGroups is dequantize8 and dequantize4 for whole groups (a
// multiple of 32 elements), each under its own scale and zero point:
// signed 4-bit codes are flipped (n^8) and offset by 8 as in dequantize4.
func dequantizeGroups(bits int, signed bool) {
	name := fmt.Sprintf("dequantize%dGroupsAVX2", bits)
	sig := "func(x []float32, codes []byte, sc []float32, zp []int32, group int, off int32, flip uint32)"
	doc := []string{name + " dequantizes len(sc) groups of group elements (a multiple of 32),",
		"group g under sc[g] and zp[g] + off, the codes xored with flip (in every byte)."}
	ext := VPMOVZXBD
	if bits == 8 {
		name = "dequantize8UGroupsAVX2"
		if signed {
			name, ext = "dequantize8SGroupsAVX2", VPMOVSXBD
		}
		sig = "func(x []float32, codes []byte, sc []float32, zp []int32, group int)"
		doc = []string{name + " dequantizes len(sc) groups of group elements (a multiple of 32),",
			"group g under sc[g] and zp[g]."}
	}
	TEXT(name, NOSPLIT, sig)
	Doc(doc...)
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	c := Mem{Base: Load(Param("codes").Base(), GP64())}
	sc := Mem{Base: Load(Param("sc").Base(), GP64())}
	zp := Mem{Base: Load(Param("zp").Base(), GP64())}
	groups := Load(Param("sc").Len(), GP64())
	blocks := Load(Param("group"), GP64())
	SHRQ(U8(5), blocks)
	var off, flip VecVirtual
	if bits == 4 {
		off, flip = broadcastI32("off"), broadcastI32("flip")
	}
	scV, subV := YMM(), YMM()
	TESTQ(groups, groups)
	JZ(LabelRef("done"))
	Label("group")
	VBROADCASTSS(sc, scV)
	VPBROADCASTD(zp, subV)
	if bits == 4 {
		VPADDD(off, subV, subV)
	}
	n := GP64()
	MOVQ(blocks, n)
	Label("loop")
	if bits == 8 {
		for j := range 4 {
			v := YMM()
			ext(c.Offset(8*j), v)
			VPSUBD(subV, v, v)
			VCVTDQ2PS(v, v)
			VMULPS(scV, v, v)
			VMOVUPS(v, x.Offset(32*j))
		}
		ADDQ(U32(32), c.Base)
	} else {
		b := XMM()
		VPXOR(c, flip.AsX(), b)
		lo, hi := XMM(), XMM()
		VPAND(nibbleMask, b, lo)
		VPSRLW(U8(4), b, hi)
		VPAND(nibbleMask, hi, hi)
		e := [2]VecVirtual{XMM(), XMM()}
		VPUNPCKLBW(hi, lo, e[0])
		VPUNPCKHBW(hi, lo, e[1])
		for j := range 4 {
			src := e[j/2]
			if j%2 == 1 {
				t := XMM()
				VPSRLDQ(U8(8), src, t)
				src = t
			}
			v := YMM()
			VPMOVZXBD(src, v)
			VPSUBD(subV, v, v)
			VCVTDQ2PS(v, v)
			VMULPS(scV, v, v)
			VMOVUPS(v, x.Offset(32*j))
		}
		ADDQ(U32(16), c.Base)
	}
	ADDQ(U32(32*4), x.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	ADDQ(U32(4), sc.Base)
	ADDQ(U32(4), zp.Base)
	DECQ(groups)
	JNZ(LabelRef("group"))
	Label("done")
	VZEROUPPER()
	RET()
}

// absMax keeps the largest bit pattern of |x| not above that of
// MaxFloat32: the patterns of non-negative floats order as their values.
func absMax() {
	TEXT("absMaxAVX2", NOSPLIT, "func(x []float32) uint32")
	Doc("absMaxAVX2 is absMaxBits on len(x)/32 blocks of 32 elements.")
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	n := Load(Param("x").Len(), GP64())
	var acc [4]VecVirtual
	for j := range acc {
		acc[j] = YMM()
		VPXOR(acc[j], acc[j], acc[j])
	}
	mask, lim := YMM(), YMM()
	VMOVDQU(absMask, mask)
	VMOVDQU(maxFinite, lim)
	SHRQ(U8(5), n)
	JZ(LabelRef("reduce"))
	Label("loop")
	for j := range acc {
		b, nf := YMM(), YMM()
		VPAND(x.Offset(32*j), mask, b)
		VPCMPGTD(lim, b, nf) // b > bits of MaxFloat32: Inf or NaN
		VPANDN(b, nf, b)
		VPMAXUD(b, acc[j], acc[j])
	}
	ADDQ(U32(32*4), x.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("reduce")
	VPMAXUD(acc[1], acc[0], acc[0])
	VPMAXUD(acc[3], acc[2], acc[2])
	VPMAXUD(acc[2], acc[0], acc[0])
	h := XMM()
	VEXTRACTI128(U8(1), acc[0], h)
	VPMAXUD(h, acc[0].AsX(), h)
	t := XMM()
	VPSHUFD(U8(0x4E), h, t)
	VPMAXUD(t, h, h)
	VPSHUFD(U8(0xB1), h, t)
	VPMAXUD(t, h, h)
	r := GP32()
	VMOVD(h, r)
	Store(r, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// sqnrSums adds up Σx² and Σ(x−y)² in float64: each float32 widened
// exactly (VCVTPS2PD), the difference of two widened floats exact, the
// products accumulated with FMA in four accumulators of four lanes each.
func sqnrSums() {
	TEXT("sqnrSumsAVX2", NOSPLIT, "func(x, y []float32) (sig, noise float64)")
	Doc("sqnrSumsAVX2 is Σx[i]² and Σ(x[i]−y[i])² in float64 over len(x)/16 blocks of 16",
		"elements; y holds at least as many.")
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	y := Mem{Base: Load(Param("y").Base(), GP64())}
	n := Load(Param("x").Len(), GP64())
	var sig, noise [4]VecVirtual
	for j := range sig {
		sig[j], noise[j] = YMM(), YMM()
		VXORPD(sig[j], sig[j], sig[j])
		VXORPD(noise[j], noise[j], noise[j])
	}
	SHRQ(U8(4), n)
	JZ(LabelRef("reduce"))
	Label("loop")
	for j := range sig {
		a, b := YMM(), YMM()
		VCVTPS2PD(x.Offset(16*j), a)
		VCVTPS2PD(y.Offset(16*j), b)
		VSUBPD(b, a, b) // b = a − b
		VFMADD231PD(a, a, sig[j])
		VFMADD231PD(b, b, noise[j])
	}
	ADDQ(U32(16*4), x.Base)
	ADDQ(U32(16*4), y.Base)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("reduce")
	for i, acc := range [][4]VecVirtual{sig, noise} {
		VADDPD(acc[1], acc[0], acc[0])
		VADDPD(acc[3], acc[2], acc[2])
		VADDPD(acc[2], acc[0], acc[0])
		h := XMM()
		VEXTRACTF128(U8(1), acc[0], h)
		VADDPD(h, acc[0].AsX(), h)
		t := XMM()
		VUNPCKHPD(h, h, t)
		VADDSD(t, h, h)
		Store(h, ReturnIndex(i))
	}
	VZEROUPPER()
	RET()
}

// histogram adds one to counts[4*bin + i%4] for each element i, bin =
// floor(min(|x|·inv, last)) for finite x and nb for the others. With inv
// an exact power of two the product is |x|/width rounded as the division
// would be; last = nb-1 and nb are exact in float32 (the caller checks),
// so the clamp gives the last bin exactly when the product reaches nb-1,
// and truncation of a non-negative float is floor.
//
// It works in blocks of 128: first the counter indices of the block, into
// a buffer on the stack, then the increments, whose addresses are loads
// from that buffer, ready long before the increments issue (computed
// addresses held the increments back behind the vector arithmetic). The
// four interleaved sub-histograms keep runs of equal values from
// serialising on one counter, with a small enough footprint (16 bytes a
// bin) to stay in the L1 cache. Eight values of one bin (a run of zeros,
// say) take one addition of 8 instead of eight increments. As one counter
// may then count every element, the caller passes fewer than 2^32
// elements at a time.
func histogram() {
	const block = 128 // a larger buffer passes the NOSPLIT stack limit
	TEXT("histogramAVX2", NOSPLIT, "func(x []float32, inv, last float32, nb int32, counts []uint32)")
	Doc("histogramAVX2 counts len(x)/128 blocks of 128 elements into counts, four interleaved",
		"histograms of nb+1 bins, the last for non-finite values: element i goes to",
		"counts[4*bin + i%4], or eight elements of one bin all to counts[4*bin].")
	x := Mem{Base: Load(Param("x").Base(), GP64())}
	counts := Load(Param("counts").Base(), GP64())
	n := Load(Param("x").Len(), GP64())
	inv, last, nb := broadcastF32("inv"), broadcastF32("last"), broadcastI32("nb")
	mask, lim, lane := YMM(), YMM(), YMM()
	VMOVDQU(absMask, mask)
	VMOVDQU(maxFinite, lim)
	VMOVDQU(laneIndex, lane)
	buf := AllocLocal(4 * block)
	same := AllocLocal(block / 8) // 1 where the 8 values of a vector share a bin
	SHRQ(U8(7), n)
	JZ(LabelRef("done"))
	Label("block")
	for j := range block / 8 {
		b, nf, p, idx := YMM(), YMM(), YMM(), YMM()
		VPAND(x.Offset(32*j), mask, b)
		VPCMPGTD(lim, b, nf) // b > bits of MaxFloat32: Inf or NaN
		VMULPS(inv, b, p)
		VMINPS(last, p, p)
		VCVTTPS2DQ(p, idx)
		VPBLENDVB(nf, nb, idx, idx)
		first, eq := YMM(), YMM()
		VPBROADCASTD(idx.AsX(), first)
		VPCMPEQD(first, idx, eq)
		m := GP32()
		VPMOVMSKB(eq, m)
		CMPL(m, U32(0xFFFFFFFF))
		SETEQ(same.Offset(j))
		VPSLLD(U8(2), idx, idx)
		VPADDD(lane, idx, idx)
		VMOVDQU(idx, buf.Offset(32*j))
	}
	for j := range block / 8 {
		one, next := fmt.Sprintf("same%d", j), fmt.Sprintf("next%d", j)
		CMPB(same.Offset(j), U8(0))
		JNE(LabelRef(one))
		for k := range 8 {
			r := GP32()
			MOVL(buf.Offset(32*j+4*k), r)
			INCL(Mem{Base: counts, Index: r.As64(), Scale: 4})
		}
		JMP(LabelRef(next))
		Label(one)
		r := GP32()
		MOVL(buf.Offset(32*j), r)
		ADDL(U8(8), Mem{Base: counts, Index: r.As64(), Scale: 4})
		Label(next)
	}
	ADDQ(U32(4*block), x.Base)
	DECQ(n)
	JNZ(LabelRef("block"))
	Label("done")
	VZEROUPPER()
	RET()
}
