package gptq

import (
	"math"
	"runtime"
	"sync"
)

// The factorisations of a Hessian, in float64 on packed lower-triangular
// storage: row i of an n×n lower-triangular (or symmetric) matrix holds
// its entries (i, 0..i) at offsets i(i+1)/2 … i(i+1)/2+i, so that a
// Hessian of n columns costs n(n+1)/2 float64, half of a square one.
// Both are blocked, as LAPACK's dpotrf and dtrtri are: an unblocked step
// on a diagonal block of cholBlock columns, then the bulk of the work
// (the trailing update) as one matrix product A·Bᵀ of long rows, run by
// ntTile's 4×2 register tile on every core.

// cholBlock is the column block of cholPacked and invLowerPacked: the
// dot products of the trailing updates are this long.
const cholBlock = 96

// cholBlockF32 is their column block when the products are float32
// GEMMs (Options.Gemm): longer sums for the GEMMs, fewer conversions.
// (A variable for the tests.)
var cholBlockF32 = 256

// packedLen is the number of entries of an n×n packed triangle.
func packedLen(n int) int { return n * (n + 1) / 2 }

// rowOff is the offset of row i in packed lower storage.
func rowOff(i int) int { return i * (i + 1) / 2 }

// cholPacked factors the symmetric a [n×n, packed lower] in place into
// its lower Cholesky factor L (a = L·Lᵀ); it reports false, a left
// partly overwritten, when a is not (numerically) positive definite.
// With gemm (C = A·Bᵀ in float32, Options.Gemm) the trailing updates'
// products are float32 GEMMs subtracted from the float64 a (see
// syrkF32); without, everything is float64.
func cholPacked(a []float64, n int, gemm gemmFunc) bool {
	nb := cholBlock
	if gemm != nil {
		nb = cholBlockF32
	}
	panel := make([]float64, 0, n*nb) // A21, then L21, packed [m, nb]
	work := make([]float64, 0, n*nb)
	linv := make([]float64, nb*nb) // L11⁻¹, rows of stride nb
	for k0 := 0; k0 < n; k0 += nb {
		k1 := min(k0+nb, n)
		w := k1 - k0
		// The diagonal block, its updates done: unblocked.
		for j := k0; j < k1; j++ {
			rj := a[rowOff(j)+k0 : rowOff(j)+j+1]
			d := rj[j-k0]
			for _, v := range rj[:j-k0] {
				d -= v * v
			}
			if !(d > 0) || math.IsInf(d, 0) {
				return false
			}
			d = math.Sqrt(d)
			rj[j-k0] = d
			for i := j + 1; i < k1; i++ {
				ri := a[rowOff(i)+k0 : rowOff(i)+i+1]
				s := ri[j-k0]
				for p, v := range rj[:j-k0] {
					s -= ri[p] * v
				}
				ri[j-k0] = s / d
			}
		}
		if k1 == n {
			break
		}
		m := n - k1
		// L21 = A21·L11⁻ᵀ, L21[i, j] = Σ_p A21[i, p]·L11⁻¹[j, p]: a product
		// with the explicit inverse of the small diagonal block.
		clear(linv)
		invLowerSmall(linv, nb, func(i int) []float64 { return a[rowOff(k0+i)+k0 : rowOff(k0+i)+k0+i+1] }, w)
		panel = panel[:m*w]
		for i := range m {
			copy(panel[i*w:(i+1)*w], a[rowOff(k1+i)+k0:rowOff(k1+i)+k1])
		}
		work = work[:m*w]
		if gemm != nil {
			// float32 products: L21 rounded to float32 is what the
			// trailing update multiplies.
			l32 := productF32(panel, m, linv, nb, w, gemm)
			for i, v := range l32 {
				work[i] = float64(v)
			}
			for i := range m {
				copy(a[rowOff(k1+i)+k0:rowOff(k1+i)+k1], work[i*w:(i+1)*w])
			}
			// A22 −= L21·L21ᵀ, its lower triangle.
			syrkF32(a, k1, l32, m, w, gemm)
			continue
		}
		arows := rowsOf(panel, w, m, func(int) int { return w })
		brows := rowsOf(linv, nb, w, func(j int) int { return j + 1 })
		crows := rowsOf(work, w, m, func(int) int { return w })
		ntProduct(crows, arows, brows, 1, false)
		for i := range m {
			copy(a[rowOff(k1+i)+k0:rowOff(k1+i)+k1], work[i*w:(i+1)*w])
		}
		// A22 −= L21·L21ᵀ, its lower triangle.
		lrows := rowsOf(work, w, m, func(int) int { return w })
		trail := make([][]float64, m)
		for i := range m {
			trail[i] = a[rowOff(k1+i)+k1 : rowOff(k1+i)+k1+i+1]
		}
		ntProduct(trail, lrows, lrows, -1, true)
	}
	return true
}

// invLowerSmall writes the inverse of the lower-triangular w×w matrix L
// whose row i (entries 0..i) is row(i) into dst, row-major with stride
// ld: dst[i*ld+j] = L⁻¹[i, j] for j ≤ i, the rest untouched. It is the
// textbook forward substitution, column by column of L⁻¹.
func invLowerSmall(dst []float64, ld int, row func(i int) []float64, w int) {
	for j := range w {
		dst[j*ld+j] = 1 / row(j)[j]
		for i := j + 1; i < w; i++ {
			ri := row(i)
			var s float64
			for p := j; p < i; p++ {
				s += ri[p] * dst[p*ld+j]
			}
			dst[i*ld+j] = -s / ri[i]
		}
	}
}

// invLowerPacked replaces the lower-triangular L [n×n, packed lower] with
// L⁻¹, in place, block column by block column from the last: with L =
// [L11 0; L21 L22] and L22⁻¹ already in place, L⁻¹'s block below L11⁻¹
// is −L22⁻¹·L21·L11⁻¹. It reports false when a diagonal entry is not a
// positive finite number. With gemm, the product L22⁻¹·L21 is float32
// GEMMs summed in float64 (see trmmF32).
func invLowerPacked(a []float64, n int, gemm gemmFunc) bool {
	for i := range n {
		if d := a[rowOff(i)+i]; !(d > 0) || math.IsInf(d, 0) {
			return false
		}
	}
	nb := cholBlock
	if gemm != nil {
		nb = cholBlockF32
	}
	bt := make([]float64, 0, n*nb) // L21ᵀ [w, m]
	t := make([]float64, 0, n*nb)  // L22⁻¹·L21 [m, w]
	minv := make([]float64, nb*nb) // L11⁻¹ rows
	minvT := make([]float64, nb*nb)
	last := (n - 1) / nb * nb
	for k0 := last; k0 >= 0; k0 -= nb {
		k1 := min(k0+nb, n)
		w := k1 - k0
		clear(minv)
		invLowerSmall(minv, nb, func(i int) []float64 { return a[rowOff(k0+i)+k0 : rowOff(k0+i)+k0+i+1] }, w)
		if k1 < n {
			m := n - k1
			bt = bt[:w*m]
			for p := range m {
				for c, v := range a[rowOff(k1+p)+k0 : rowOff(k1+p)+k1] {
					bt[c*m+p] = v
				}
			}
			// T = L22⁻¹·L21: row i of L22⁻¹ has i+1 entries.
			t = t[:m*w]
			if gemm != nil {
				trmmF32(t, a, k1, n, bt, w, gemm)
			} else {
				arows := make([][]float64, m)
				for i := range m {
					arows[i] = a[rowOff(k1+i)+k1 : rowOff(k1+i)+k1+i+1]
				}
				ntProduct(rowsOf(t, w, m, func(int) int { return w }), arows, rowsOf(bt, m, w, func(int) int { return m }), 1, false)
			}
			// L⁻¹'s block = −T·L11⁻¹, (T·L11⁻¹)[i, c] = Σ_p T[i,p]·L11⁻¹[p,c].
			clear(minvT)
			for p := range w {
				for c := 0; c <= p; c++ {
					minvT[c*nb+p] = minv[p*nb+c]
				}
			}
			if gemm != nil {
				o := productF32(t, m, minvT, nb, w, gemm)
				for i := range m {
					row := a[rowOff(k1+i)+k0 : rowOff(k1+i)+k1]
					for c, v := range o[i*w : (i+1)*w] {
						row[c] = -float64(v)
					}
				}
			} else {
				crows := make([][]float64, m)
				for i := range m {
					crows[i] = a[rowOff(k1+i)+k0 : rowOff(k1+i)+k1]
				}
				ntProduct(crows, rowsOf(t, w, m, func(int) int { return w }), rowsOf(minvT, nb, w, func(int) int { return w }), -1, false)
			}
		}
		for i := range w {
			copy(a[rowOff(k0+i)+k0:rowOff(k0+i)+k0+i+1], minv[i*nb:i*nb+i+1])
		}
	}
	return true
}

// productF32 is x·yᵀ [m, w] in float32, a float32 GEMM of x [m, w]
// (float64, row-major) and the w×w y (float64, rows of stride ld), both
// rounded to float32.
func productF32(x []float64, m int, y []float64, ld, w int, gemm gemmFunc) []float32 {
	x32 := make([]float32, m*w)
	for i, v := range x[:m*w] {
		x32[i] = float32(v)
	}
	y32 := make([]float32, w*w)
	for j := range w {
		for p, v := range y[j*ld : j*ld+w] {
			y32[j*w+p] = float32(v)
		}
	}
	out := make([]float32, m*w)
	gemm(m, w, w, x32, y32, out)
	return out
}

// gemmFunc is C[m×n] = A[m×k]·B[n×k]ᵀ in float32 (Options.Gemm).
type gemmFunc func(m, n, k int, a, b, c []float32)

// f32Block is the side of the float32 GEMMs' blocks in syrkF32 and
// trmmF32, and the most terms one of their float32 sums has before it is
// added to a float64 total. (A variable for the tests.)
var f32Block = 512

// syrkF32 is a[k1+i, k1+j] −= Σ_p l[i, p]·l[j, p] for j ≤ i < m (the
// trailing update of cholPacked from L21 = l32 [m, w] row-major), as float32
// GEMMs of f32Block × f32Block blocks on and below the diagonal, each
// block's products (w ≤ cholBlockF32 terms a sum) subtracted from the
// float64 a. The rounding is float32's on each panel's contribution, as
// in torch's float32 Cholesky that the reference GPTQ implementations
// run, while the sum over the panels, the diagonal blocks and the
// triangular solves stay float64.
func syrkF32(a []float64, k1 int, l32 []float32, m, w int, gemm gemmFunc) {
	out := make([]float32, f32Block*f32Block)
	for i0 := 0; i0 < m; i0 += f32Block {
		ni := min(f32Block, m-i0)
		for j0 := 0; j0 <= i0; j0 += f32Block {
			nj := min(f32Block, m-j0)
			o := out[:ni*nj]
			gemm(ni, nj, w, l32[i0*w:(i0+ni)*w], l32[j0*w:(j0+nj)*w], o)
			for i := range ni {
				r := k1 + i0 + i
				hi := min(nj, i0+i-j0+1) // j ≤ i
				row := a[rowOff(r)+k1+j0 : rowOff(r)+k1+j0+hi]
				for j, v := range o[i*nj : i*nj+hi] {
					row[j] -= float64(v)
				}
			}
		}
	}
}

// trmmF32 is t[i, c] = Σ_{p ≤ i} M[i, p]·bt[c, p] for i < m = n − k1, c < w,
// with M = a's trailing triangle from row and column k1 (packed lower)
// and bt [w, m] row-major: float32 GEMMs of f32Block rows by f32Block
// terms, each summed into the float64 t.
func trmmF32(t, a []float64, k1, n int, bt []float64, w int, gemm gemmFunc) {
	m := n - k1
	clear(t[:m*w])
	chunks := (m + f32Block - 1) / f32Block
	// bt in float32, chunk by chunk: chunk q is [w, f32Block] contiguous.
	b32 := make([]float32, chunks*w*f32Block)
	for q := range chunks {
		p0, p1 := q*f32Block, min((q+1)*f32Block, m)
		for c := range w {
			dst := b32[(q*w+c)*f32Block : (q*w+c)*f32Block+p1-p0]
			for p, v := range bt[c*m+p0 : c*m+p1] {
				dst[p] = float32(v)
			}
		}
	}
	a32 := make([]float32, f32Block*f32Block)
	out := make([]float32, f32Block*w)
	for r0 := 0; r0 < m; r0 += f32Block {
		nr := min(f32Block, m-r0)
		for q := 0; q*f32Block < r0+nr; q++ {
			p0, p1 := q*f32Block, min((q+1)*f32Block, m)
			kc := p1 - p0
			ab := a32[:nr*kc]
			for i := range nr {
				r := r0 + i
				row := ab[i*kc : (i+1)*kc]
				lim := min(kc, r+1-p0) // entries p ≤ r
				src := a[rowOff(k1+r)+k1+p0:]
				for p := range max(lim, 0) {
					row[p] = float32(src[p])
				}
				clear(row[max(lim, 0):])
			}
			o := out[:nr*w]
			bq := b32[q*w*f32Block : (q+1)*w*f32Block]
			if kc < f32Block { // the last chunk: its rows are kc long
				bq = make([]float32, w*kc)
				for c := range w {
					copy(bq[c*kc:(c+1)*kc], b32[(q*w+c)*f32Block:(q*w+c)*f32Block+kc])
				}
			}
			gemm(nr, w, kc, ab, bq, o)
			for i, v := range o {
				t[r0*w+i] += float64(v)
			}
		}
	}
}

// rowsOf is the rows of a row-major buffer with stride ld, row i of
// length n(i).
func rowsOf(buf []float64, ld, rows int, n func(i int) int) [][]float64 {
	out := make([][]float64, rows)
	for i := range out {
		out[i] = buf[i*ld : i*ld+n(i)]
	}
	return out
}

// ntProduct is, for every i and every j < len(c[i]), with s the dot
// product of a[i] and b[j] over their common length:
//
//	c[i][j] = s (alpha = 1), −s (alpha = −1, sub false) or c[i][j] − s
//	(alpha = −1, sub true)
//
// the rows of c split between the cores by the work they hold.
func ntProduct(c, a, b [][]float64, alpha float64, sub bool) {
	m := len(c)
	workers := runtime.GOMAXPROCS(0)
	var total int
	for i := range c {
		total += len(c[i]) * len(a[i])
	}
	if workers == 1 || total < 1<<16 {
		ntRows(c, a, b, alpha, sub)
		return
	}
	// Split at rows that are multiples of 4, each part about total/workers.
	var wg sync.WaitGroup
	start, acc, part := 0, 0, 1
	for i := range m {
		acc += len(c[i]) * len(a[i])
		if (i+1)%4 == 0 && acc*workers >= total*part && part < workers {
			r0, r1 := start, i+1
			wg.Add(1)
			go func() { defer wg.Done(); ntRows(c[r0:r1], a[r0:r1], b, alpha, sub) }()
			start, part = i+1, part+1
		}
	}
	ntRows(c[start:], a[start:], b, alpha, sub)
	wg.Wait()
}

// ntRows is ntProduct on one core: 4×2 tiles on the dot products' common
// length, the remainders one by one.
func ntRows(c, a, b [][]float64, alpha float64, sub bool) {
	put := func(i, j int, s float64) {
		switch {
		case sub:
			c[i][j] -= s
		case alpha < 0:
			c[i][j] = -s
		default:
			c[i][j] = s
		}
	}
	m := len(c)
	i := 0
	for ; i+4 <= m; i += 4 {
		nc := len(c[i+3]) // the widest row of the four (c's rows grow or are equal)
		if len(c[i]) != nc || len(a[i]) != len(a[i+3]) {
			// rows of different lengths: a triangle's
			nc = max(len(c[i]), len(c[i+1]), len(c[i+2]), len(c[i+3]))
		}
		ka := min(len(a[i]), len(a[i+1]), len(a[i+2]), len(a[i+3]))
		j := 0
		for ; j+2 <= nc; j += 2 {
			k := min(ka, len(b[j]), len(b[j+1]))
			s := ntTile(a[i][:k], a[i+1][:k], a[i+2][:k], a[i+3][:k], b[j][:k], b[j+1][:k])
			for r := range 4 {
				for q := range 2 {
					if j+q >= len(c[i+r]) {
						continue
					}
					v := s[2*r+q]
					// the rest of the dot product beyond the tile's length
					kk := min(len(a[i+r]), len(b[j+q]))
					for p := k; p < kk; p++ {
						v += a[i+r][p] * b[j+q][p]
					}
					put(i+r, j+q, v)
				}
			}
		}
		for r := range 4 {
			for jj := j; jj < len(c[i+r]); jj++ {
				put(i+r, jj, dot(a[i+r], b[jj]))
			}
		}
	}
	for ; i < m; i++ {
		for j := range c[i] {
			put(i, j, dot(a[i], b[j]))
		}
	}
}

// dot is Σ x[p]·y[p] over their common length.
func dot(x, y []float64) float64 {
	n := min(len(x), len(y))
	x, y = x[:n], y[:n]
	var s0, s1 float64
	p := 0
	for ; p+2 <= n; p += 2 {
		s0 += x[p] * y[p]
		s1 += x[p+1] * y[p+1]
	}
	if p < n {
		s0 += x[p] * y[p]
	}
	return s0 + s1
}

// ntTile is the 4×2 block of dot products of a0..a3 with b0, b1 (all of
// one length), s[2r+q] = a_r·b_q: 8 accumulators in registers, 6 loads for
// 8 multiply-adds.
func ntTile(a0, a1, a2, a3, b0, b1 []float64) (s [8]float64) {
	k := len(a0)
	a1, a2, a3, b0, b1 = a1[:k], a2[:k], a3[:k], b0[:k], b1[:k]
	var s00, s01, s10, s11, s20, s21, s30, s31 float64
	for p, x0 := range a0 {
		y0, y1 := b0[p], b1[p]
		x1, x2, x3 := a1[p], a2[p], a3[p]
		s00 += x0 * y0
		s01 += x0 * y1
		s10 += x1 * y0
		s11 += x1 * y1
		s20 += x2 * y0
		s21 += x2 * y1
		s30 += x3 * y0
		s31 += x3 * y1
	}
	return [8]float64{s00, s01, s10, s11, s20, s21, s30, s31}
}
