// Command kdequant generates the AVX2 kernels of package model/gguf's
// K-quant dequantizers (quant_k.go): one super-block of Q4_K, Q5_K or
// Q6_K to 256 float32.
//
//	cd cpu/_gen && go run ./kdequant    # or make asm
//
// The Go caller computes each sub-block's float32 scale d·sc (and
// dmin·m) as ggml does, so the kernels only unpack the codes, which
// VCVTDQ2PS converts exactly, and do ggml's last one or two float32
// operations per weight: (d·sc)·q for Q6_K, (d·sc)·q − dmin·m for Q4_K
// and Q5_K, each one correctly rounded operation as in the scalar code
// (VMULPS, then VSUBPS with the product as first operand, so a NaN
// product's payload wins over a NaN minimum as SUBSS's does). The results
// are bit for bit those of the pure-Go twins (dequantizeQ4_KGo, ...).
package main

import (
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var (
	c15 Mem // 15 in every dword
	c3  Mem // 3 in every dword
	c1  Mem // 1 in every dword
	c32 Mem // 32 in every dword
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
		os.Args = append(os.Args, "-out", "../../model/gguf/kdequant_amd64.s", "-stubs", "../../model/gguf/kdequant_stubs_amd64.go", "-pkg", "gguf")
	}
	ConstraintExpr("!noasm,!gccgo,!safe")
	c15 = splat("kdq15", 15)
	c3 = splat("kdq3", 3)
	c1 = splat("kdq1", 1)
	c32 = splat("kdq32", 32)
	q6K()
	q45K("dequantQ4_KAVX2", false)
	q45K("dequantQ5_KAVX2", true)
	Generate()
}

// q6K: y[128h+32k+l] = s[8h+l/16+2k]·(q−32), q = ql low/high nibble |
// 2 bits of qh << 4, for half h, quarter k, l in 0..31.
func q6K() {
	TEXT("dequantQ6_KAVX2", NOSPLIT, "func(y *[256]float32, b *[210]byte, s *[16]float32)")
	Pragma("noescape")
	Doc("dequantQ6_KAVX2 writes the 256 weights of the Q6_K block b to y: y[i] = s[i/16]·(q[i]−32), s[j] = d·sc[j] computed by the caller.")
	y := Mem{Base: Load(Param("y"), GP64())}
	b := Mem{Base: Load(Param("b"), GP64())}
	s := Mem{Base: Load(Param("s"), GP64())}
	m15, m3, k32 := YMM(), YMM(), YMM()
	VMOVDQU(c15, m15)
	VMOVDQU(c3, m3)
	VMOVDQU(c32, k32)
	for h := range 2 {
		for c := range 4 { // l = 8c .. 8c+7
			l := 8 * c
			a, bb, hh := YMM(), YMM(), YMM()
			VPMOVZXBD(b.Offset(64*h+l), a)
			VPMOVZXBD(b.Offset(64*h+32+l), bb)
			VPMOVZXBD(b.Offset(128+32*h+l), hh)
			for k := range 4 {
				lo := a
				if k == 1 || k == 3 {
					lo = bb
				}
				q, t := YMM(), YMM()
				if k < 2 {
					VPAND(m15, lo, q)
				} else {
					VPSRLD(U8(4), lo, q)
				}
				if k == 0 {
					VPAND(m3, hh, t)
				} else {
					VPSRLD(U8(2*k), hh, t)
					VPAND(m3, t, t)
				}
				VPSLLD(U8(4), t, t)
				VPOR(t, q, q)
				VPSUBD(k32, q, q)
				VCVTDQ2PS(q, q)
				sc := YMM()
				VBROADCASTSS(s.Offset(4*(8*h+c/2+2*k)), sc)
				VMULPS(q, sc, q)
				VMOVUPS(q, y.Offset(4*(128*h+32*k+l)))
			}
		}
	}
	VZEROUPPER()
	RET()
}

// q45K: y[64g+l] = s[2g]·q − m[2g], y[64g+32+l] = s[2g+1]·q' − m[2g+1],
// q = low nibble of ql[32g+l] (+16 if bit 2g of qh[l]), q' = high nibble
// (+16 if bit 2g+1).
func q45K(name string, five bool) {
	TEXT(name, NOSPLIT, "func(y *[256]float32, q *[128]byte, qh *[32]byte, s, m *[8]float32)")
	Pragma("noescape")
	if five {
		Doc(name + " writes the 256 weights of a Q5_K block, nibbles q and fifth bits qh, to y: y[i] = s[i/32]·q[i] − m[i/32], s and m computed by the caller.")
	} else {
		Doc(name + " writes the 256 weights of a Q4_K block, nibbles q, to y: y[i] = s[i/32]·q[i] − m[i/32], s and m computed by the caller; qh is not read.")
	}
	y := Mem{Base: Load(Param("y"), GP64())}
	q := Mem{Base: Load(Param("q"), GP64())}
	var qh Mem
	if five {
		qh = Mem{Base: Load(Param("qh"), GP64())}
	}
	s := Mem{Base: Load(Param("s"), GP64())}
	mn := Mem{Base: Load(Param("m"), GP64())}
	m15, m1 := YMM(), YMM()
	VMOVDQU(c15, m15)
	if five {
		VMOVDQU(c1, m1)
	}
	for g := range 4 {
		s1, s2, n1, n2 := YMM(), YMM(), YMM(), YMM()
		VBROADCASTSS(s.Offset(4*(2*g)), s1)
		VBROADCASTSS(s.Offset(4*(2*g+1)), s2)
		VBROADCASTSS(mn.Offset(4*(2*g)), n1)
		VBROADCASTSS(mn.Offset(4*(2*g+1)), n2)
		for c := range 4 {
			l := 8 * c
			a := YMM()
			VPMOVZXBD(q.Offset(32*g+l), a)
			var hh VecVirtual
			if five {
				hh = YMM()
				VPMOVZXBD(qh.Offset(l), hh)
			}
			for k := range 2 {
				v := YMM()
				if k == 0 {
					VPAND(m15, a, v)
				} else {
					VPSRLD(U8(4), a, v)
				}
				if five {
					t := YMM()
					if sh := 2*g + k; sh > 0 {
						VPSRLD(U8(sh), hh, t)
						VPAND(m1, t, t)
					} else {
						VPAND(m1, hh, t)
					}
					VPSLLD(U8(4), t, t)
					VPOR(t, v, v)
				}
				VCVTDQ2PS(v, v)
				sc, mm := s1, n1
				if k == 1 {
					sc, mm = s2, n2
				}
				VMULPS(v, sc, v)
				VSUBPS(mm, v, v) // v − m, v the first operand
				VMOVUPS(v, y.Offset(4*(64*g+32*k+l)))
			}
		}
	}
	VZEROUPPER()
	RET()
}
