//go:build !noasm && !gccgo && !safe

package cpu

// convMinWork is the multiply-adds below which a convolution runs on one
// goroutine.
const convMinWork = 1 << 19

// convF32SIMD is ConvF32.Run on the f32 GEMM micro-kernel: A is the
// weight rows (padded to the kernel's mr), B a panel of nr output pixels
// gathered from the planes in the weight's (c, u, v) order.
func convF32SIMD(cv *ConvF32, dst, x []float32, n int) bool {
	kern := f32Kernel()
	if kern == nil {
		return false
	}
	mr, nr := kern.mr, kern.nr
	K := cv.InC * cv.KH * cv.KW
	mp := ceilDiv(cv.OutC, mr)
	if len(cv.packed) != mp*mr*K {
		cv.packed = make([]float32, mp*mr*K)
		copy(cv.packed, cv.Weight[:cv.OutC*K])
	}
	P, opix, plane := n*cv.OH*cv.OW, cv.OH*cv.OW, cv.H*cv.W
	np := ceilDiv(P, nr)
	w := workersOf(Threads(), np, P*K*cv.OutC, convMinWork)
	for len(cv.scratch) < w {
		cv.scratch = append(cv.scratch, make([]float32, K*nr))
	}
	parallelRange(w, np, 1, func(worker, lo, hi int) {
		panel := cv.scratch[worker]
		if len(panel) < K*nr {
			panel = make([]float32, K*nr)
			cv.scratch[worker] = panel
		}
		var offs [gemmTileMax]int
		off := offs[:nr]
		var tile [gemmTileMax]float32
		for jp := lo; jp < hi; jp++ {
			p0 := jp * nr
			live := min(nr, P-p0)
			for r := range nr {
				p := p0 + min(r, live-1) // columns past the end repeat the last
				i, rem := p/opix, p%opix
				off[r] = i*plane + rem/cv.OW*cv.StrideH*cv.W + rem%cv.OW*cv.StrideW
			}
			gatherPanel(panel[:K*nr], x, off, cv, n*plane)
			for ip := range mp {
				kern.fn(K, &cv.packed[ip*mr*K], K, &panel[0], &tile[0], nr, false)
				for rr := range min(mr, cv.OutC-ip*mr) {
					o := ip*mr + rr
					b, row := cv.Bias[o], tile[rr*nr:][:live]
					out := dst[o*P+p0:][:live]
					if cv.ReLU {
						for r, v := range row {
							out[r] = max(v+b, 0)
						}
					} else {
						for r, v := range row {
							out[r] = v + b
						}
					}
				}
			}
		}
	})
	return true
}

// gatherPanel writes the packed panel of nr output pixels whose window
// origins (in a plane) off holds: panel[q·nr + r] = x[c·cstride +
// u·W + v + off[r]] for q = (c, u, v).
func gatherPanel(panel, x []float32, off []int, cv *ConvF32, cstride int) {
	nr := len(off)
	q := 0
	for c := range cv.InC {
		for u := range cv.KH {
			for v := range cv.KW {
				d := panel[q*nr : (q+1)*nr]
				xs := x[c*cstride+u*cv.W+v:]
				for r, f := range off {
					d[r] = xs[f]
				}
				q++
			}
		}
	}
}
