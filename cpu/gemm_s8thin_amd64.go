//go:build !noasm && !gccgo && !safe

package cpu

// The int8 GEMM for few rows of A (a language model's W8A8 decode step:
// a token row, or a handful, times a weight matrix) reads both operands
// where they lie, with the dot kernels (AVX-512 VNNI, or else AVX2:
// s8dot_amd64.s), four rows of B at a time: packing B, as the GEMM for
// many rows does, is a pass over the whole weight per call, which costs
// more than the product when A has few rows.

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
// the dot kernels and reports true, or reports false where they cannot
// run (no AVX2, k = 0). Each task takes a range of blocks of four rows of
// B, a tile of gemmS8ThinTile bytes at a time, and runs each group of
// four rows of A over the tile; the sums go through the epilogue four
// outputs at a time. No matrix is packed or copied.
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
	if vnni {
		for r := range m {
			comp[r] = -128 * sumS8(a[r*k:(r+1)*k])
		}
	}
	blocks := ceilDiv(n, gemmDotNR)
	tile := max(1, gemmS8ThinTile/(gemmDotNR*k)) // blocks of B per tile
	w := workers(blocks, m*n*k, gemmS8ThinMinWork)
	parallelRange(w, blocks, 1, func(_, lo, hi int) {
		var t [4 * gemmDotNR]int32
		for b0 := lo; b0 < hi; b0 += tile {
			j0, j1 := b0*gemmDotNR, min(min(b0+tile, hi)*gemmDotNR, n)
			for i0 := 0; i0 < m; i0 += 4 {
				mg := min(4, m-i0)
				ai := a[i0*k : (i0+mg)*k]
				for j := j0; j < j1; j += gemmDotNR {
					cols := min(gemmDotNR, n-j)
					bj := b[j*k : (j+cols)*k]
					switch {
					case cols < gemmDotNR:
						s8DotGoAll(mg, cols, k, ai, bj, t[:])
					case vnni:
						s8DotBlockVNNI(mg, k, ai, bj, comp[i0:i0+mg], &t)
					default:
						s8DotBlockAVX2(mg, k, ai, bj, &t)
					}
					for r := range mg {
						out.finish(i0+r, j, t[r*cols:(r+1)*cols])
					}
				}
			}
		}
	})
	return true
}

// s8DotBlockVNNI sets t[r*4+q] = Σ_p a[r*k+p]·b[q*k+p] for r < mg ≤ 4, q < 4
// with the AVX-512 VNNI kernel for mg rows, comp[r] being −128·Σ_p
// a[r*k+p].
func s8DotBlockVNNI(mg, k int, a, b []int8, comp []int32, t *[4 * gemmDotNR]int32) {
	s8Dot[mg](k/64, uint64(1)<<(k%64)-1, &a[0], k, &b[0], k, &t[0])
	for r := range mg {
		row := t[r*gemmDotNR : (r+1)*gemmDotNR]
		for q := range row {
			row[q] += comp[r]
		}
	}
}

// s8DotBlockAVX2 sets t[r*4+q] = Σ_p a[r*k+p]·b[q*k+p] for r < mg ≤ 4, q < 4
// with the AVX2 kernel for mg rows (once, or twice where it takes two
// rows of B) over the first 16·⌊k/16⌋ steps and Go over the rest.
func s8DotBlockAVX2(mg, k int, a, b []int8, t *[4 * gemmDotNR]int32) {
	fn, nr := s8DotAVX2[mg], gemmS8DotNR[mg]
	kv := k / 16
	if nr == gemmDotNR {
		fn(kv, &a[0], k, &b[0], k, &t[0])
	} else {
		var h [2][4 * 2]int32
		fn(kv, &a[0], k, &b[0], k, &h[0][0])
		fn(kv, &a[0], k, &b[2*k], k, &h[1][0])
		for r := range mg {
			t[r*4], t[r*4+1] = h[0][r*2], h[0][r*2+1]
			t[r*4+2], t[r*4+3] = h[1][r*2], h[1][r*2+1]
		}
	}
	if k0 := 16 * kv; k0 < k {
		for r := range mg {
			ar := a[r*k+k0 : (r+1)*k]
			for q := range gemmDotNR {
				bq := b[q*k+k0 : (q+1)*k]
				s := t[r*gemmDotNR+q]
				for p, v := range ar {
					s += int32(v) * int32(bq[p])
				}
				t[r*gemmDotNR+q] = s
			}
		}
	}
}

// s8DotGoAll sets t[r*cols+q] = Σ_p a[r*k+p]·b[q*k+p] for r < mg,
// q < cols in Go (the last, partial block of B).
func s8DotGoAll(mg, cols, k int, a, b []int8, t []int32) {
	for r := range mg {
		ar := a[r*k : (r+1)*k]
		for q := range cols {
			bq := b[q*k : (q+1)*k]
			var s int32
			for p, v := range ar {
				s += int32(v) * int32(bq[p])
			}
			t[r*cols+q] = s
		}
	}
}
