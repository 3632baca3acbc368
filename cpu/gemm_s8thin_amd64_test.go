//go:build !noasm && !gccgo && !safe

package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestS8RowsKernels holds the int8 row kernels (AVX2 and AVX-512 VNNI,
// where the processor has them) to their Go twins and to an int64 loop
// reduced to int32 at the end (so wrapping sums are checked), on random
// and extreme values, strides longer than k (the kernels must read no
// further than k), k around their vectors of 16 and 64, sums past 2^31,
// and a C with guard values around the m rows of outputs.
func TestS8RowsKernels(t *testing.T) {
	rnd := rand.New(rand.NewPCG(9, 9))
	fills := []struct {
		name string
		a, b func(i int) int8
	}{
		{"random", func(int) int8 { return int8(rnd.Uint32()) }, func(int) int8 { return int8(rnd.Uint32()) }},
		{"-128", func(int) int8 { return -128 }, func(int) int8 { return -128 }},
		{"127", func(int) int8 { return 127 }, func(int) int8 { return 127 }},
		{"mixed", func(int) int8 { return -128 }, func(i int) int8 { return [...]int8{-128, 127, -128, 1, 0}[i%5] }},
	}
	const guard = 0x5a5a5a5a
	for _, vnni := range []bool{false, true} {
		if vnni && !hw.AVX512VNNI || !vnni && !hw.AVX2FMA {
			continue
		}
		for m := 1; m <= 4; m++ {
			for _, k := range []int{1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 577, 8200 * 16} { // 8200·16·2^14 > 2^31
				for _, fl := range fills {
					rows := 1 + rnd.IntN(9)
					if k > 10000 {
						rows = 2
					}
					lda, ldb, ldc := k+5, k+11, rows+3
					a, b := make([]int8, m*lda), make([]int8, rows*ldb)
					for i := range a {
						a[i] = fl.a(i)
					}
					for i := range b {
						b[i] = fl.b(i * 7)
					}
					got := make([]int32, m*ldc+4)
					for i := range got {
						got[i] = guard
					}
					twin := make([]int32, m*ldc)
					full := k // the steps the kernel takes
					if vnni {
						s8RowsVNNIKernels[m](k/64, uint64(1)<<(k%64)-1, &a[0], lda, &b[0], ldb, rows, &got[0], ldc)
						gemmS8RowsVNNIGo(m, k, a, lda, b, ldb, rows, twin, ldc)
					} else {
						full = k / 16 * 16
						a16 := make([]int16, len(a))
						for i, v := range a {
							a16[i] = int16(v)
						}
						s8RowsAVX2Kernels[m](k/16, &a16[0], lda, &b[0], ldb, rows, &got[0], ldc)
						gemmS8RowsAVX2Go(m, k/16, a16, lda, b, ldb, rows, twin, ldc)
					}
					name := fmt.Sprintf("vnni=%v m=%d k=%d %s", vnni, m, k, fl.name)
					for r := range m {
						for j := range rows {
							var s int64
							for p := range full {
								off := int64(0)
								if vnni {
									off = 128
								}
								s += int64(a[r*lda+p]) * (int64(b[j*ldb+p]) + off)
							}
							want := int32(s)
							if got[r*ldc+j] != want || twin[r*ldc+j] != want {
								t.Fatalf("%s: c[%d,%d] = %d (Go twin %d), want %d", name, r, j, got[r*ldc+j], twin[r*ldc+j], want)
							}
						}
						for j := rows; j < ldc; j++ {
							if got[r*ldc+j] != guard {
								t.Fatalf("%s: wrote c[%d,%d] past the rows", name, r, j)
							}
						}
					}
					for i := m * ldc; i < len(got); i++ {
						if got[i] != guard {
							t.Fatalf("%s: wrote past C at %d", name, i)
						}
					}
				}
			}
		}
	}
}
