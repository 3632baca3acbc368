// Command kquant generates the trial kernels of package model/gguf's
// K-quant quantizers (quant_k.go): the trial scales of ggml's
// make_qkx2_quants (Q4_K, Q5_K) and make_qx_quants (Q6_K), 24 trials at
// once, one trial in each float32 lane of three AVX2 registers.
//
//	cd cpu/_gen && go run ./kquant    # or make asm
//
// ggml's sums over a block are chains of dependent float32 additions in
// element order; each lane here adds its own trial's terms in that same
// order, with the same roundings (every product and sum a separate VEX
// instruction, never fused), so every lane computes exactly what its
// pure-Go twin (kquant_kernels.go) and ggml compute. Codes are rounded
// and clamped on the bits of t + 1.5·2^23, which the callers keep in
// [2^23, 2^24) (see kCodes in quant_k.go).
package main

import (
	"fmt"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const magic = 0x4b400000 // the bits of 1.5·2^23 = 12582912

var (
	magicV Mem // 1.5·2^23 in every lane
	q6Lo   Mem // the bits of 1.5·2^23 − 32
	q6Hi   Mem // the bits of 1.5·2^23 + 31
)

func splat(name string, v uint32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := range 8 {
		DATA(4*i, U32(v))
	}
	return m
}

func main() {
	if len(os.Args) == 1 {
		os.Args = append(os.Args, "-out", "../../model/gguf/kquant_amd64.s", "-stubs", "../../model/gguf/kquant_stubs_amd64.go", "-pkg", "gguf")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	magicV = splat("kqMagic", magic)
	q6Lo = splat("kqQ6Lo", magic-32)
	q6Hi = splat("kqQ6Hi", magic+31)
	kTrials()
	kErrs()
	q6Trials()
	Generate()
}

// code leaves in t the clamped code of lane t·(the broadcast element):
// t+1.5·2^23, clamped on its bits to [lo, hi], minus 1.5·2^23.
func code(t VecVirtual, lo, hi Mem) {
	VADDPS(magicV, t, t)
	VPMAXSD(lo, t, t)
	VPMINSD(hi, t, t)
	VSUBPS(magicV, t, t)
}

// groupsSwitch jumps to label g1, g2 or g3 by the argument groups (g3
// for anything but 1 and 2).
func groupsSwitch() {
	g := Load(Param("groups"), GP64())
	CMPQ(g, U8(1))
	JE(LabelRef("g1"))
	CMPQ(g, U8(2))
	JE(LabelRef("g2"))
	JMP(LabelRef("g3"))
}

// hiLocal broadcasts the uint32 argument name into a 32-byte stack slot,
// for use as a memory operand.
func hiLocal(name string) Mem {
	r := Load(Param(name), GP32())
	x := XMM()
	VMOVD(r, x)
	y := YMM()
	VPBROADCASTD(x, y)
	m := AllocLocal(32)
	VMOVDQU(y, m)
	return m
}

func kTrials() {
	TEXT("kTrialsAVX2", NOSPLIT, "func(groups int, xm, x, w *[32]float32, iscale *[24]float32, hi uint32, sumL, sumL2, sumXL *[24]float32)")
	Pragma("noescape")
	Doc("kTrialsAVX2 is kTrialsGo: for each trial t, the sums Σw·l, Σ(w·l)·l and Σ(w·l)·x of make_qkx2_quants over the codes l of xm under iscale[t], for the first 8·groups trials.")
	hi := hiLocal("hi")
	groupsSwitch()
	for _, G := range []int{1, 2, 3} {
		kTrialsBody(G, hi)
	}
}

func kTrialsBody(G int, hi Mem) {
	Label(fmt.Sprintf("g%d", G))
	xm := Load(Param("xm"), GP64())
	x := Load(Param("x"), GP64())
	w := Load(Param("w"), GP64())
	is := Mem{Base: Load(Param("iscale"), GP64())}
	sl, sl2, sxl := make([]VecVirtual, G), make([]VecVirtual, G), make([]VecVirtual, G)
	for g := range G {
		sl[g], sl2[g], sxl[g] = YMM(), YMM(), YMM()
		VXORPS(sl[g], sl[g], sl[g])
		VXORPS(sl2[g], sl2[g], sl2[g])
		VXORPS(sxl[g], sxl[g], sxl[g])
	}
	i := GP64()
	XORQ(i, i)
	Label(fmt.Sprintf("loop%d", G))
	xmB, xB, wB := YMM(), YMM(), YMM()
	VBROADCASTSS(Mem{Base: xm, Index: i, Scale: 4}, xmB)
	VBROADCASTSS(Mem{Base: x, Index: i, Scale: 4}, xB)
	VBROADCASTSS(Mem{Base: w, Index: i, Scale: 4}, wB)
	for g := range G {
		t, u := YMM(), YMM()
		VMULPS(is.Offset(32*g), xmB, t) // iscale·(x−min)
		code(t, magicV, hi)             // l in [0, nmax]
		VMULPS(t, wB, u)                // w·l
		VADDPS(u, sl[g], sl[g])         // sum_l += w·l
		VMULPS(u, t, t)                 // (w·l)·l
		VADDPS(t, sl2[g], sl2[g])       // sum_l2 += w·l·l
		VMULPS(xB, u, u)                // (w·l)·x
		VADDPS(u, sxl[g], sxl[g])       // sum_xl += w·l·x
	}
	INCQ(i)
	CMPQ(i, U8(32))
	JNE(LabelRef(fmt.Sprintf("loop%d", G)))
	for k, name := range []string{"sumL", "sumL2", "sumXL"} {
		p := Load(Param(name), GP64())
		acc := [][]VecVirtual{sl, sl2, sxl}[k]
		for g := range G {
			VMOVUPS(acc[g], Mem{Base: p, Disp: 32 * g})
		}
	}
	VZEROUPPER()
	RET()
}

func kErrs() {
	TEXT("kErrsAVX2", NOSPLIT, "func(groups int, xm, x, w *[32]float32, iscale, scale, vmin *[24]float32, hi uint32, err *[24]float32)")
	Pragma("noescape")
	Doc("kErrsAVX2 is kErrsGo: for each trial t, make_qkx2_quants' error Σw·(scale[t]·l+vmin[t]−x)² over the codes l of xm under iscale[t], for the first 8·groups trials.")
	hi := hiLocal("hi")
	groupsSwitch()
	for _, G := range []int{1, 2, 3} {
		kErrsBody(G, hi)
	}
}

func kErrsBody(G int, hi Mem) {
	Label(fmt.Sprintf("g%d", G))
	xm := Load(Param("xm"), GP64())
	x := Load(Param("x"), GP64())
	w := Load(Param("w"), GP64())
	is := Mem{Base: Load(Param("iscale"), GP64())}
	sc := Mem{Base: Load(Param("scale"), GP64())}
	mn := Mem{Base: Load(Param("vmin"), GP64())}
	acc := make([]VecVirtual, G)
	for g := range G {
		acc[g] = YMM()
		VXORPS(acc[g], acc[g], acc[g])
	}
	i := GP64()
	XORQ(i, i)
	Label(fmt.Sprintf("loop%d", G))
	xmB, xB, wB := YMM(), YMM(), YMM()
	VBROADCASTSS(Mem{Base: xm, Index: i, Scale: 4}, xmB)
	VBROADCASTSS(Mem{Base: x, Index: i, Scale: 4}, xB)
	VBROADCASTSS(Mem{Base: w, Index: i, Scale: 4}, wB)
	for g := range G {
		t := YMM()
		VMULPS(is.Offset(32*g), xmB, t)
		code(t, magicV, hi)
		VMULPS(sc.Offset(32*g), t, t) // scale·l
		VADDPS(mn.Offset(32*g), t, t) // + min
		VSUBPS(xB, t, t)              // − x
		VMULPS(t, t, t)               // diff²
		VMULPS(t, wB, t)              // w·diff²
		VADDPS(t, acc[g], acc[g])
	}
	INCQ(i)
	CMPQ(i, U8(32))
	JNE(LabelRef(fmt.Sprintf("loop%d", G)))
	p := Load(Param("err"), GP64())
	for g := range G {
		VMOVUPS(acc[g], Mem{Base: p, Disp: 32 * g})
	}
	VZEROUPPER()
	RET()
}

func q6Trials() {
	TEXT("q6TrialsAVX2", NOSPLIT, "func(x, w, wx *[16]float32, iscale *[24]float32, sumLX, sumL2 *[24]float32)")
	Pragma("noescape")
	Doc("q6TrialsAVX2 is q6TrialsGo: for each trial t, make_qx_quants' sums Σ(w·x)·l and Σ(w·l)·l over the codes l, in [-32, 31], of x under iscale[t].")
	x := Load(Param("x"), GP64())
	w := Load(Param("w"), GP64())
	wx := Load(Param("wx"), GP64())
	is := Mem{Base: Load(Param("iscale"), GP64())}
	var slx, sl2 [3]VecVirtual
	for g := range 3 {
		slx[g], sl2[g] = YMM(), YMM()
		VXORPS(slx[g], slx[g], slx[g])
		VXORPS(sl2[g], sl2[g], sl2[g])
	}
	i := GP64()
	XORQ(i, i)
	Label("loop")
	xB, wB, wxB := YMM(), YMM(), YMM()
	VBROADCASTSS(Mem{Base: x, Index: i, Scale: 4}, xB)
	VBROADCASTSS(Mem{Base: w, Index: i, Scale: 4}, wB)
	VBROADCASTSS(Mem{Base: wx, Index: i, Scale: 4}, wxB)
	for g := range 3 {
		t, u := YMM(), YMM()
		VMULPS(is.Offset(32*g), xB, t) // iscale·x
		code(t, q6Lo, q6Hi)            // l in [-32, 31]
		VMULPS(t, wxB, u)              // (w·x)·l
		VADDPS(u, slx[g], slx[g])
		VMULPS(t, wB, u) // w·l
		VMULPS(t, u, u)  // (w·l)·l
		VADDPS(u, sl2[g], sl2[g])
	}
	INCQ(i)
	CMPQ(i, U8(16))
	JNE(LabelRef("loop"))
	for k, name := range []string{"sumLX", "sumL2"} {
		p := Load(Param(name), GP64())
		acc := [][3]VecVirtual{slx, sl2}[k]
		for g := range 3 {
			VMOVUPS(acc[g], Mem{Base: p, Disp: 32 * g})
		}
	}
	VZEROUPPER()
	RET()
}
