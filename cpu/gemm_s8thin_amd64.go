//go:build !noasm && !gccgo && !safe

package cpu

// The int8 GEMM for few rows of A (a language model's W8A8 decode step:
// a token row, or a handful, times a weight matrix) reads B where it lies
// with the row kernels (s8rows_amd64.s, made by _gen/s8rows: AVX-512 VNNI,
// or else AVX2), which take up to four rows of A against a run of rows of
// B, each row of B read in order from its first byte to its last: B, the
// weight, streams from memory once, in order, as the hardware prefetchers
// expect. Packing B, as the GEMM for many rows does, is a pass over the
// whole weight per call, which costs more than the product when A has few
// rows; reading four rows of B side by side (the dot kernels of
// gemmF32Thin) leaves the prefetchers behind: measured streaming 64
// different 576×1536 weights, one row of A, one thread, AMD EPYC (Zen 5),
// 3–7 GB/s against 21–25 for the integer kernels of GemmPacked.

// gemmS8ThinMinWork is the multiply-adds below which the thin int8 GEMM
// is not worth another goroutine: gemmMinWork, as for the integer
// kernels of GemmPacked (a weight-only int8 decode step), far below
// gemmThinMinWork. Two goroutines stream a weight matrix from memory
// faster than one, and the helpers are already running (parallel.go):
// every projection of a 150M model's decode step (576×576 and up) runs
// on two.
const gemmS8ThinMinWork = gemmMinWork

// gemmS8ThinTile is the bytes of B a task multiplies by every group of
// rows of A before it moves on, so that the groups after the first read
// it from L2 rather than from memory.
const gemmS8ThinTile = 256 << 10

// gemmS8Thin computes the int8 GEMM of m ≤ gemmS8ThinMax rows of A with
// the row kernels and reports true, or reports false where they cannot
// run (no AVX2, k = 0). Each task takes a contiguous range of rows of B,
// a tile of about gemmS8ThinTile bytes at a time, runs each group of up
// to four rows of A over the tile into int32 sums, and sends each row of
// sums through the epilogue. Nothing is packed: with AVX2 only A is
// copied, widened to int16.
func gemmS8Thin(m, n, k int, a, b []int8, out *s8Out) bool {
	if m < 1 || m > gemmS8ThinMax || k == 0 {
		return false
	}
	vnni := use.AVX512VNNI
	if !vnni && !use.AVX2FMA {
		return false
	}
	// VPDPBUSD multiplies unsigned bytes by signed ones: the VNNI kernels
	// take B+128 (its sign bit flipped) and each sum is corrected by
	// −128·Σ_p A[i, p], exactly, modulo 2^32.
	var comp [gemmS8ThinMax]int32
	var a16 []int16
	if vnni {
		for r := range m {
			comp[r] = -128 * sumS8(a[r*k:(r+1)*k])
		}
	} else {
		a16 = poolS16Pack.get(m * k)
		defer poolS16Pack.put(a16)
		for i, v := range a {
			a16[i] = int16(v)
		}
	}
	tile := max(1, min(n, gemmS8ThinTile/k)) // rows of B
	w := workers(ceilDiv(n, 8), m*n*k, gemmS8ThinMinWork)
	parallelRange(w, n, 8, func(_, lo, hi int) {
		rows := min(tile, hi-lo)
		t := poolS32.get(4 * rows)
		defer poolS32.put(t)
		for j0 := lo; j0 < hi; j0 += rows {
			nj := min(rows, hi-j0)
			bj := b[j0*k : (j0+nj)*k]
			for i0 := 0; i0 < m; i0 += 4 {
				mg := min(4, m-i0)
				if vnni {
					s8RowsVNNI(mg, k, a[i0*k:(i0+mg)*k], bj, nj, t, nj)
				} else {
					s8RowsAVX2(mg, k, a[i0*k:(i0+mg)*k], a16[i0*k:(i0+mg)*k], bj, nj, t, nj)
				}
				for r := range mg {
					sums := t[r*nj : (r+1)*nj]
					if vnni {
						for q := range sums {
							sums[q] += comp[i0+r]
						}
					}
					out.finish(i0+r, j0, sums)
				}
			}
		}
	})
	return true
}

// s8RowsVNNI sets c[r*ldc+j] = Σ_p a[r*k+p]·(b[j*k+p]+128) for r < mg ≤ 4,
// j < rows, with the AVX-512 VNNI row kernel.
func s8RowsVNNI(mg, k int, a, b []int8, rows int, c []int32, ldc int) {
	_ = c[(mg-1)*ldc+rows-1]
	_ = b[rows*k-1]
	s8RowsVNNIKernels[mg](k/64, uint64(1)<<(k%64)-1, &a[0], k, &b[0], k, rows, &c[0], ldc)
}

// s8RowsAVX2 sets c[r*ldc+j] = Σ_p a[r*k+p]·b[j*k+p] for r < mg ≤ 4,
// j < rows, with the AVX2 row kernel over the first 16·⌊k/16⌋ steps (A
// widened to int16 in a16) and Go over the rest.
func s8RowsAVX2(mg, k int, a []int8, a16 []int16, b []int8, rows int, c []int32, ldc int) {
	_ = c[(mg-1)*ldc+rows-1]
	_ = b[rows*k-1]
	_ = a16[mg*k-1]
	kv := k / 16
	s8RowsAVX2Kernels[mg](kv, &a16[0], k, &b[0], k, rows, &c[0], ldc)
	if k0 := 16 * kv; k0 < k {
		for r := range mg {
			ar := a[r*k+k0 : (r+1)*k]
			for j := range rows {
				bj := b[j*k+k0 : (j+1)*k]
				s := c[r*ldc+j]
				for p, v := range ar {
					s += int32(v) * int32(bj[p])
				}
				c[r*ldc+j] = s
			}
		}
	}
}

var (
	// s8RowsAVX2Kernels[m] is the AVX2 row kernel for m rows of A.
	s8RowsAVX2Kernels = [...]func(kv int, a *int16, lda int, b *int8, ldb int, rows int, c *int32, ldc int){
		nil, gemmS8Rows1AVX2, gemmS8Rows2AVX2, gemmS8Rows3AVX2, gemmS8Rows4AVX2,
	}
	// s8RowsVNNIKernels[m] is the AVX-512 VNNI row kernel for m rows of A.
	s8RowsVNNIKernels = [...]func(kv int, tail uint64, a *int8, lda int, b *int8, ldb int, rows int, c *int32, ldc int){
		nil, gemmS8Rows1AVX512VNNI, gemmS8Rows2AVX512VNNI, gemmS8Rows3AVX512VNNI, gemmS8Rows4AVX512VNNI,
	}
)

// gemmS8RowsAVX2Go is the Go twin of the AVX2 row kernels: for m rows of
// A as int16 and rows rows of B (a[r*lda+p] = A[r, p], b[j*ldb+p] =
// B[j, p]) and k = 16·kv, c[r*ldc+j] = Σ_p A[r, p]·B[j, p] in int32
// arithmetic that wraps.
func gemmS8RowsAVX2Go(m, kv int, a []int16, lda int, b []int8, ldb, rows int, c []int32, ldc int) {
	k := 16 * kv
	for r := range m {
		ar := a[r*lda:][:k]
		for j := range rows {
			bj := b[j*ldb:][:k]
			var s int32
			for p, v := range ar {
				s += int32(v) * int32(bj[p])
			}
			c[r*ldc+j] = s
		}
	}
}

// gemmS8RowsVNNIGo is the Go twin of the AVX-512 VNNI row kernels: for m
// rows of A and rows rows of B (a[r*lda+p] = A[r, p], b[j*ldb+p] =
// B[j, p]) and k steps, c[r*ldc+j] = Σ_p A[r, p]·(B[j, p]+128) in int32
// arithmetic that wraps.
func gemmS8RowsVNNIGo(m, k int, a []int8, lda int, b []int8, ldb, rows int, c []int32, ldc int) {
	for r := range m {
		ar := a[r*lda:][:k]
		for j := range rows {
			bj := b[j*ldb:][:k]
			var s int32
			for p, v := range ar {
				s += int32(v) * (int32(bj[p]) + 128)
			}
			c[r*ldc+j] = s
		}
	}
}
