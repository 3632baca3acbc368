//go:build !noasm && !gccgo && !safe

package cpu

import (
	"math/rand/v2"
	"testing"
)

// TestS8DotAVX2 holds the AVX2 int8 dot kernels to their Go twin and to
// an int64 loop reduced to int32 at the end (so wrapping sums are
// checked), on random and extreme values, rows longer than 16·kv (the
// kernels must read no further), sums past 2^31, and a C with guard
// values after the m·nr outputs.
func TestS8DotAVX2(t *testing.T) {
	if !hw.AVX2FMA {
		t.Skip("no AVX2")
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	fills := []struct {
		name string
		f    func(i int) int8
	}{
		{"random", func(int) int8 { return int8(rnd.Uint32()) }},
		{"-128", func(int) int8 { return -128 }},
		{"127", func(int) int8 { return 127 }},
		{"mixed", func(i int) int8 { return [...]int8{-128, 127, -128, 1, 0}[i%5] }},
	}
	for m := 1; m <= 4; m++ {
		nr := gemmS8DotNR[m]
		for _, kv := range []int{0, 1, 2, 3, 17, 256, 8200} { // 8200·16·2^14 > 2^31
			for _, fl := range fills {
				lda, ldb := 16*kv+5, 16*kv+11
				a, b := make([]int8, m*lda), make([]int8, nr*ldb)
				for i := range a {
					a[i] = fl.f(i)
				}
				for i := range b {
					b[i] = fl.f(i * 7)
				}
				if fl.name == "mixed" {
					for i := range a {
						a[i] = -128
					}
				}
				const guard = 0x5a5a5a5a
				got := make([]int32, m*nr+4)
				for i := range got {
					got[i] = guard
				}
				s8DotAVX2[m](kv, &a[0], lda, &b[0], ldb, &got[0])
				twin := make([]int32, m*nr)
				gemmS8DotGo(m, nr, kv, a, lda, b, ldb, twin)
				for r := range m {
					for j := range nr {
						var s int64
						for p := range 16 * kv {
							s += int64(a[r*lda+p]) * int64(b[j*ldb+p])
						}
						want := int32(s)
						if got[r*nr+j] != want || twin[r*nr+j] != want {
							t.Fatalf("m=%d kv=%d %s: c[%d,%d] = %d (Go twin %d), want %d", m, kv, fl.name, r, j, got[r*nr+j], twin[r*nr+j], want)
						}
					}
				}
				for i := m * nr; i < len(got); i++ {
					if got[i] != guard {
						t.Fatalf("m=%d kv=%d %s: wrote past C at %d", m, kv, fl.name, i)
					}
				}
			}
		}
	}
}
