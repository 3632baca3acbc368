package cpu

// Micro-kernels: the innermost loops of the GEMMs.
//
// These are the generic Go versions, which every processor can run; on
// amd64 the SIMD kernels of gemm_amd64.s (declared in
// gemm_stubs_amd64.go, driven from gemm_simd_amd64.go, whose twin
// gemm_simd_generic.go says "no SIMD" under the opposite build tags)
// take over where the processor has AVX2 or AVX-512. Their blocking
// differs (packed panels of B, whole tiles in vector registers), so they
// are not drop-in replacements of the functions here.
//
// A kernel computes one row of its left operand against a block of rows
// of its right operand, both K-contiguous. The float32 kernel reads the
// rows where they lie (seven rows of B at stride k): measured, packing B
// into interleaved panels bought nothing for the scalar kernel and cost a
// pass over B, which dominates when A has few rows. The int8 kernel reads
// B packed two rows to a float64 (see gemmS8Kernel1x14).
//
// The block is 1×7 because amd64 has 15 usable scalar float registers and
// the compiler schedules a loop's last additions after all its
// multiplications: 7 accumulators and 7 pending products fit, while 2×4
// (8 and 8) spills to the stack. On the machine these kernels were written
// on (an AMD EPYC "Turin", scalar SSE) 1×7 ran 10-15% faster than 2×4 and
// 2×3. Slicing every row to the length of a first lets the compiler drop
// the bounds checks from the loop.

const (
	gemmF32NR = 7 // rows of B (columns of C) per float32 kernel call

	gemmS8Pairs = 7               // float64 lanes per int8 panel
	gemmS8NR    = 2 * gemmS8Pairs // rows of B (columns of C) per int8 panel

	gemmS8DirectNR = 4 // rows of B per call of the unpacked int8 kernel
)

// gemmF32Kernel1x7 is, for one row a of A and the seven rows of B that
// start at b[0], b[k], …, b[6k],
//
//	for q := range 7 {
//		var s float32
//		for p := range a {
//			s += a[p] * b[q*k+p]
//		}
//		c[q] = s
//	}
func gemmF32Kernel1x7(a, b []float32, k int, c *[gemmF32NR]float32) {
	n := len(a)
	b0 := b[0*k:][:n]
	b1 := b[1*k:][:n]
	b2 := b[2*k:][:n]
	b3 := b[3*k:][:n]
	b4 := b[4*k:][:n]
	b5 := b[5*k:][:n]
	b6 := b[6*k:][:n]
	var c0, c1, c2, c3, c4, c5, c6 float32
	for p, v := range a {
		c0 += v * b0[p]
		c1 += v * b1[p]
		c2 += v * b2[p]
		c3 += v * b3[p]
		c4 += v * b4[p]
		c5 += v * b5[p]
		c6 += v * b6[p]
	}
	c[0], c[1], c[2], c[3], c[4], c[5], c[6] = c0, c1, c2, c3, c4, c5, c6
}

// gemmF32KernelTail is gemmF32Kernel1x7 for the last rows < 7 of B:
//
//	for q := range rows {
//		var s float32
//		for p := range a {
//			s += a[p] * b[q*k+p]
//		}
//		c[q] = s
//	}
//
// with each sum split four ways, so that it does not wait on one chain of
// additions.
func gemmF32KernelTail(a, b []float32, k, rows int, c *[gemmF32NR]float32) {
	for q := range rows {
		x, y := a, b[q*k:][:len(a)]
		var s0, s1, s2, s3 float32
		for len(x) >= 4 && len(y) >= 4 {
			s0 += x[0] * y[0]
			s1 += x[1] * y[1]
			s2 += x[2] * y[2]
			s3 += x[3] * y[3]
			x, y = x[4:], y[4:]
		}
		y = y[:len(x)]
		for p, v := range x {
			s0 += v * y[p]
		}
		c[q] = (s0 + s1) + (s2 + s3)
	}
}

// gemmS8LaneShift is the bit offset of the second int8 row of B in a packed
// float64: a pair (b0, b1) is stored as b0 + b1·2^26.
const gemmS8LaneShift = 26

// gemmS8KC bounds the k-steps between lane separations. A lane sums at most
// gemmS8KC products of magnitude ≤ 128·128 = 2^14 and must stay below 2^25
// in magnitude so that it does not borrow into its neighbour (any value up
// to 2047 would do; 256 keeps a panel block in L1). The packed sums then
// stay below 2^52, so that every partial sum is an exact float64 integer.
const gemmS8KC = 256

// gemmS8Kernel1x14 is, for one row a of A and a panel b of fourteen rows of
// B packed in pairs (b[p][q] = B[j0+2q, p] + B[j0+2q+1, p]·2^26),
//
//	for p := range b {
//		for q := range 7 {
//			c[q] += float64(a[p]) * b[p][q]
//		}
//	}
//
// from zero and exactly, when len(b) ≤ gemmS8KC: c[q] is then
// s0 + s1·2^26 where s0 and s1 are the int32 dot products of a with rows
// 2q and 2q+1 of B. addS8Lanes separates them. len(a) must be at least
// len(b).
func gemmS8Kernel1x14(a []int8, b [][gemmS8Pairs]float64, c *[gemmS8Pairs]float64) {
	var c0, c1, c2, c3, c4, c5, c6 float64
	a = a[:len(b)]
	for p := range b {
		a0, bp := float64(a[p]), &b[p]
		c0 += a0 * bp[0]
		c1 += a0 * bp[1]
		c2 += a0 * bp[2]
		c3 += a0 * bp[3]
		c4 += a0 * bp[4]
		c5 += a0 * bp[5]
		c6 += a0 * bp[6]
	}
	c[0], c[1], c[2], c[3], c[4], c[5], c[6] = c0, c1, c2, c3, c4, c5, c6
}

// gemmS8KernelDirect is, for one row a of A and the four rows of B that
// start at b[0], b[k], b[2k], b[3k], with exact int32 arithmetic,
//
//	for q := range 4 {
//		for p := range a {
//			c[q] += int32(a[p]) * int32(b[q*k+p])
//		}
//	}
//
// from zero. It serves GEMMs with very few rows, where packing B would
// cost more than it saves.
func gemmS8KernelDirect(a, b []int8, k int, c *[gemmS8DirectNR]int32) {
	n := len(a)
	b0, b1, b2, b3 := b[0*k:][:n], b[1*k:][:n], b[2*k:][:n], b[3*k:][:n]
	var c0, c1, c2, c3 int32
	for p, v := range a {
		x := int32(v)
		c0 += x * int32(b0[p])
		c1 += x * int32(b1[p])
		c2 += x * int32(b2[p])
		c3 += x * int32(b3[p])
	}
	c[0], c[1], c[2], c[3] = c0, c1, c2, c3
}

// addS8Lanes adds the lanes of the packed sums v to acc, wrapping as int32
// accumulation does: v[q] = s0 + s1·2^26 with |s0|, |s1| < 2^25 adds s0
// to acc[2q] and s1 to acc[2q+1].
func addS8Lanes(v *[gemmS8Pairs]float64, acc *[gemmS8NR]int32) {
	for q, f := range v {
		x := int64(f) // exact: f is an integer below 2^53
		lo := x << (64 - gemmS8LaneShift) >> (64 - gemmS8LaneShift)
		hi := (x - lo) >> gemmS8LaneShift
		acc[2*q] += int32(lo)
		acc[2*q+1] += int32(hi)
	}
}
