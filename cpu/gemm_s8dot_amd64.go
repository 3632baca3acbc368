//go:build !noasm && !gccgo && !safe

package cpu

// gemmS8DotNR is the rows of B the AVX2 int8 dot kernel for m rows of A
// (gemmS8Dot{m}x{nr}AVX2, s8dot_amd64.s) takes per call.
var gemmS8DotNR = [...]int{0, 4, 4, 2, 2}

// gemmS8DotGo is the Go twin of the AVX2 int8 dot kernels: for m rows of
// A and nr rows of B where they lie (a[r*lda+p] = A[r, p], b[j*ldb+p] =
// B[j, p]) and k = 16·kv, c[r*nr+j] = Σ_p A[r, p]·B[j, p] in int32
// arithmetic that wraps.
func gemmS8DotGo(m, nr, kv int, a []int8, lda int, b []int8, ldb int, c []int32) {
	k := 16 * kv
	for r := range m {
		ar := a[r*lda:][:k]
		for j := range nr {
			bj := b[j*ldb:][:k]
			var s int32
			for p, v := range ar {
				s += int32(v) * int32(bj[p])
			}
			c[r*nr+j] = s
		}
	}
}
