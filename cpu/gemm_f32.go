package cpu

import (
	"unsafe"

	"github.com/quantkit/quantkit/model/gguf"
)

const (
	gemmF32KC = 256 // k-steps per block: seven rows of B take 7 KiB of L1
	gemmMC    = 64  // rows of A per task: 64 KiB of float32 (kc steps) in L2

	// gemmF32FewRows is the most rows of A for which k is not blocked.
	gemmF32FewRows = 4

	// gemmMinWork is the number of multiply-adds below which a GEMM is not
	// worth another goroutine.
	gemmMinWork = 1 << 17
)

// GemmF32 computes C[m×n] = A[m×k]·B[n×k]ᵀ in float32, with all three
// matrices row-major and both operands K-contiguous. It is
//
//	for i := range m {
//		for j := range n {
//			var s float32
//			for p := range k {
//				s += a[i*k+p] * b[j*k+p]
//			}
//			c[i*n+j] = s
//		}
//	}
//
// except that the sum is formed in another order (blocks of k steps;
// fused multiply-adds in the SIMD kernels, and in the Go ones where the
// compiler emits them, as with GOAMD64=v3), so that it differs from that
// loop by rounding only. NaN and Inf propagate as IEEE arithmetic says.
// GemmF32 panics unless len(a) = m·k, len(b) = n·k and len(c) = m·n.
//
// On amd64 with AVX2 or AVX-512 it runs the SIMD kernels (see the package
// documentation and gemm_simd_amd64.go) unless m or n is at most
// gemmF32FewRows. Otherwise, in Go: each task takes gemmMC rows of A and
// a range of column blocks and, one block of gemmF32KC steps of k at a
// time, runs the 1×7 micro-kernel for every row against every block of
// seven rows of B, so that those seven row pieces (7 KiB) stay in L1
// while the rows of A (64 KiB, in L2) go by. When C has fewer than seven columns and more rows
// than columns the roles of A and B swap (Cᵀ = B·Aᵀ), so that the kernel
// runs full.
func GemmF32(m, n, k int, a, b, c []float32) {
	checkGemm("GemmF32", m, n, k, len(a), len(b), len(c))
	gemmF32On(Threads(), m, n, k, a, b, c)
}

// GemmF32Serial is GemmF32 on the caller's goroutine alone, for callers
// that run several at once on goroutines of their own (a nested parallel
// GEMM would spin for helpers that are busy with the caller's siblings).
func GemmF32Serial(m, n, k int, a, b, c []float32) {
	checkGemm("GemmF32Serial", m, n, k, len(a), len(b), len(c))
	gemmF32On(1, m, n, k, a, b, c)
}

// gemmF32On is GemmF32 on thr goroutines at most (the caller's among
// them): 1 runs it on the caller's alone, for callers that parallelize
// around it.
func gemmF32On(thr, m, n, k int, a, b, c []float32) {
	switch {
	case m == 0 || n == 0:
	case k == 0:
		clear(c)
	case gemmF32Balanced(thr, m, n, k, a, b, c):
	case gemmF32SIMD(thr, m, n, k, a, b, c):
	case n < gemmF32NR && m > n:
		gemmF32(thr, n, m, k, b, a, c, 1, n)
	default:
		gemmF32(thr, m, n, k, a, b, c, n, 1)
	}
}

// gemmF32 computes c[i*rs+j*cs] = Σ_p a[i*k+p]·b[j*k+p] for i < m, j < n.
func gemmF32(thr, m, n, k int, a, b, c []float32, rs, cs int) {
	np := ceilDiv(n, gemmF32NR)
	w := workersOf(thr, m*np, m*n*k, gemmMinWork)
	mb, nb, ppb := gemmTasks(m, np, gemmMC, w)
	parallelTasks(w, mb*nb, func(_, t int) {
		i0 := t / nb * gemmMC
		j0 := t % nb * ppb * gemmF32NR
		gemmF32Block(i0, min(i0+gemmMC, m), j0, min(j0+ppb*gemmF32NR, n), k, a, b, c, rs, cs)
	})
}

// gemmF32Block computes the block i ∈ [i0, i1), j ∈ [j0, j1) of
// gemmF32, one block of k at a time, storing the first block's sums and
// adding the others'.
func gemmF32Block(i0, i1, j0, j1, k int, a, b, c []float32, rs, cs int) {
	var t [gemmF32NR]float32
	kc := gemmF32KC
	if i1-i0 <= gemmF32FewRows {
		kc = k // nothing to reuse the rows of B for: stream them whole
	}
	for k0 := 0; k0 < k; k0 += kc {
		k1 := min(k0+kc, k)
		first := k0 == 0
		for j := j0; j < j1; j += gemmF32NR {
			cols := min(gemmF32NR, j1-j)
			bj := b[j*k+k0 : (j+cols-1)*k+k1]
			for i := i0; i < i1; i++ {
				ai := a[i*k+k0 : i*k+k1]
				if cols == gemmF32NR {
					gemmF32Kernel1x7(ai, bj, k, &t)
				} else {
					gemmF32KernelTail(ai, bj, k, cols, &t)
				}
				if cs == 1 && cols == gemmF32NR {
					r := (*[gemmF32NR]float32)(c[i*rs+j:])
					if first {
						*r = t
					} else {
						r[0] += t[0]
						r[1] += t[1]
						r[2] += t[2]
						r[3] += t[3]
						r[4] += t[4]
						r[5] += t[5]
						r[6] += t[6]
					}
					continue
				}
				for q, v := range t[:cols] {
					x := &c[i*rs+(j+q)*cs]
					if first {
						*x = v
					} else {
						*x += v
					}
				}
			}
		}
	}
}

// gemmF32Balanced is gemmF32Few (the fused dot kernels of the packed
// GEMMs, on float32 rows, for m ≤ 4) with the rows of B in chunks of at
// least gemmF32ChunkRows claimed one at a time, about
// gemmF32ChunksPerWorker a worker, instead of one chunk a worker. A
// decode step is a chain of such GEMVs of 50-200 µs, and a parked helper
// joins a call tens of µs late (see SetSpin); with one chunk each, the
// caller then waits for the helper's whole chunk, or runs it too, after
// its own. With several, whoever is free takes the next. On the 150M
// model's decode (2 vCPUs shared at a load average of about 9, 8
// interleaved runs of 40 tokens) the median step went from 48 to 45 ms,
// within the noise: kept as no worse, and better by construction. It
// runs with AVX-512 too, before the AVX-512 dot kernels (gemmF32Thin),
// which read four rows of B side by side, 64 bytes of each in turn, and
// which the hardware prefetchers follow poorly: on a quiet 2-vCPU Zen 4
// the 150M model's FP32 decode went from 33 to 65 tokens/s.
func gemmF32Balanced(thr, m, n, k int, a, b, c []float32) bool {
	if m > packedFusedRows || k == 0 || n == 0 {
		return false
	}
	l, ok := packedLayout(gguf.TypeF32, k)
	if !ok || l.evenOdd() || packedKernelFor(l, m) == nil {
		return gemmF32Few(thr, m, n, k, a, b, c)
	}
	w := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), 4*len(b))
	thr = workersOf(thr, n, m*n*k, gemmMinWork)
	chunk := max(gemmF32ChunkRows, ceilDiv(ceilDiv(n, thr*gemmF32ChunksPerWorker), 8)*8)
	parallelTasks(thr, ceilDiv(n, chunk), func(_, t int) {
		lo := t * chunk
		packedDot(l, m, n, k, a, nil, w, 4*k, c, lo, min(lo+chunk, n))
	})
	return true
}

// gemmF32Balanced's chunks: at least 32 rows (74 KiB of B at k = 576),
// about 4 a worker.
const (
	gemmF32ChunkRows       = 32
	gemmF32ChunksPerWorker = 4
)
