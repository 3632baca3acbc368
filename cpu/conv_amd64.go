//go:build !noasm && !gccgo && !safe

package cpu

// convMinWork is the multiply-adds below which a convolution runs on one
// goroutine.
const convMinWork = 1 << 19

// convF32SIMD is ConvF32.Run on a micro-kernel of the f32 GEMM kernel's
// instruction set (convKernelFor): A is the weight rows (padded to the
// kernel's mr), B a panel of nr positions of the output gathered from the
// planes in the weight's (c, u, v) order.
//
// At strides of 1 the positions run over whole rows of the input planes
// (W columns, of which the last KW−1 are not outputs and are dropped):
// a window row of consecutive positions is then one contiguous run of a
// plane across its rows, and a panel row is copied in one piece. Other
// strides take the output pixels themselves, gathered one by one. Where
// the panel lies in x the kernel reads its rows in place; the kernel
// adds the bias and the ReLU, and with cv.Wide stores its tiles straight
// into dst (a tile of nr positions is a run of the wide planes).
func convF32SIMD(cv *ConvF32, dst, x []float32, n int) bool {
	kern := f32Kernel()
	if kern == nil {
		return false
	}
	ck := convKernelFor(kern, cv, n)
	mr, nr := ck.mr, ck.nr
	K := cv.InC * cv.KH * cv.KW
	mp := ceilDiv(cv.OutC, mr)
	if len(cv.packed) != mp*mr*K {
		cv.packed = make([]float32, mp*mr*K)
		copy(cv.packed, cv.Weight[:cv.OutC*K])
		cv.bias = make([]float32, mp*mr)
		copy(cv.bias, cv.Bias[:cv.OutC])
	}
	P, opix, plane := n*cv.OH*cv.OW, cv.OH*cv.OW, cv.H*cv.W
	wd := cv.OW // positions per row
	unit := cv.StrideH == 1 && cv.StrideW == 1
	if unit {
		wd = cv.W
	}
	D := cv.OH * wd // positions per image
	if unit {
		// Whole panels per image, so that none straddles two images and
		// every panel's positions are consecutive; the few positions
		// past the last row are dropped like the columns past OW.
		D = ceilDiv(D, nr) * nr
	}
	np := ceilDiv(n*D, nr)
	// Wide output planes are the positions themselves, D apart: a tile of
	// whole rows of output channels is stored where it lies.
	wide := cv.Wide && unit
	nD := n * D
	thr := cv.Threads
	if thr <= 0 {
		thr = Threads()
	}
	w := workersOf(thr, np, P*K*cv.OutC, convMinWork)
	for len(cv.scratch) < w {
		cv.scratch = append(cv.scratch, make([]float32, K*nr))
	}
	// The offset in x of each weight step's (c, u, v) window cell.
	if len(cv.steps) != K {
		cv.steps = make([]int, 0, K)
		for c := range cv.InC {
			for u := range cv.KH {
				for v := range cv.KW {
					cv.steps = append(cv.steps, c*n*plane+u*cv.W+v)
				}
			}
		}
		cv.stepsN = n
	}
	if cv.stepsN != n {
		for q := range cv.steps {
			c, uv := q/(cv.KH*cv.KW), q%(cv.KH*cv.KW)
			cv.steps[q] = c*n*plane + uv/cv.KW*cv.W + uv%cv.KW
		}
		cv.stepsN = n
	}
	if len(cv.panelQ) != K || cv.panelQ[K-1] != (K-1)*nr {
		cv.panelQ = make([]int, K)
		for q := range cv.panelQ {
			cv.panelQ[q] = q * nr
		}
	}
	reach := cv.steps[K-1] + nr // past the last read of a run from offset 0
	parallelRange(w, np, 1, func(worker, lo, hi int) {
		panel := cv.scratch[worker]
		if len(panel) < K*nr {
			panel = make([]float32, K*nr)
			cv.scratch[worker] = panel
		}
		var offs [gemmTileMax]int
		off := offs[:nr]
		// Runs of positions that are consecutive outputs: columns
		// [segs[k].r0, segs[k].r1) of a tile go to output pixels from
		// segs[k].at on.
		type seg struct{ r0, r1, at int }
		var segBuf [gemmTileMax]seg
		var tile [gemmTileMax]float32
		for jp := lo; jp < hi; jp++ {
			d := jp * nr
			i, rem := d/D, d%D
			segs := segBuf[:0]
			if unit {
				// Panels lie whole in an image's rows: the positions are
				// consecutive offsets, and the outputs among them are the
				// first OW of each row's.
				o := i*plane + rem
				for r := range off {
					off[r] = o + r
				}
				// Wide output takes whole tile rows: no runs to find.
				for p, end := rem, rem+nr; p < end && !wide; {
					oh, ow := p/cv.W, p%cv.W
					if oh >= cv.OH {
						break
					}
					next := min(end, (oh+1)*cv.W)
					if ow < cv.OW {
						sg := seg{p - rem, min(next, oh*cv.W+cv.OW) - rem, i*opix + oh*cv.OW + ow}
						if k := len(segs) - 1; k >= 0 && segs[k].r1 == sg.r0 && segs[k].at+sg.r0-segs[k].r0 == sg.at {
							segs[k].r1 = sg.r1
						} else {
							segs = append(segs, sg)
						}
					}
					p = next
				}
			} else {
				oh, ow := rem/wd, rem%wd
				for r := range nr {
					if i >= n { // past the last image: repeat, drop
						off[r] = off[max(r-1, 0)]
						continue
					}
					off[r] = i*plane + oh*cv.StrideH*cv.W + ow*cv.StrideW
					if oh < cv.OH && ow < cv.OW {
						at := i*opix + oh*cv.OW + ow
						if k := len(segs) - 1; k >= 0 && segs[k].r1 == r && segs[k].at+r-segs[k].r0 == at {
							segs[k].r1++
						} else {
							segs = append(segs, seg{r, r + 1, at})
						}
					}
					if ow++; ow == wd {
						ow, oh = 0, oh+1
					}
					if rem++; rem == D {
						rem, oh, ow, i = 0, 0, 0, i+1
					}
				}
			}
			// A run of nr consecutive offsets inside x (or its capacity,
			// past the last plane): the kernel reads the window rows
			// where they lie.
			inPlace := convInPlace && unit && off[nr-1] == off[0]+nr-1 && off[0]+reach <= cap(x)
			src, srcSteps := &panel[0], &cv.panelQ[0]
			switch {
			case inPlace:
				src, srcSteps = &x[off[0]], &cv.steps[0]
			case unit:
				copyPanel(panel[:K*nr], x, off, cv, n*plane)
			default:
				gatherPanel(panel[:K*nr], x, off, cv, n*plane)
			}
			for ip := range mp {
				o0 := ip * mr
				a := &cv.packed[o0*K]
				biased := inPlace || ck.panel == nil
				switch {
				case biased && wide && o0+mr <= cv.OutC:
					ck.rows(K, a, K, src, srcSteps, &dst[o0*nD+d], nD, &cv.bias[o0], cv.ReLU)
					continue
				case biased:
					ck.rows(K, a, K, src, srcSteps, &tile[0], nr, &cv.bias[o0], cv.ReLU)
				default:
					ck.panel(K, a, K, &panel[0], &tile[0], nr, false)
				}
				for rr := range min(mr, cv.OutC-o0) {
					o := o0 + rr
					b, row := cv.Bias[o], tile[rr*nr:][:nr]
					if wide {
						convEpilogue(dst[o*nD+d:][:nr], row, b, cv.ReLU, biased)
						continue
					}
					out := dst[o*P : (o+1)*P]
					for _, sg := range segs {
						convEpilogue(out[sg.at:][:sg.r1-sg.r0], row[sg.r0:sg.r1], b, cv.ReLU, biased)
					}
				}
			}
		}
	})
	return true
}

// convEpilogue writes a tile row t to y: as it is when biased (the kernel
// added the bias and applied the ReLU), else with the bias b added and,
// with relu, the ReLU applied.
func convEpilogue(y, t []float32, b float32, relu, biased bool) {
	y = y[:len(t)]
	switch {
	case biased:
		copy(y, t)
	case relu:
		for r, v := range t {
			y[r] = convReLU(v + b)
		}
	default:
		for r, v := range t {
			y[r] = v + b
		}
	}
}

// convWideStrides is ConvF32.OutStrides with Wide set: at strides of 1,
// rows W apart and images D apart, the positions of an image rounded up
// to whole tiles of the kernel Run takes.
func convWideStrides(cv *ConvF32, n int) (row, img int, ok bool) {
	kern := f32Kernel()
	if kern == nil || cv.StrideH != 1 || cv.StrideW != 1 {
		return 0, 0, false
	}
	nr := convKernelFor(kern, cv, n).nr
	return cv.W, ceilDiv(cv.OH*cv.W, nr) * nr, true
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

// copyPanel is gatherPanel for positions that run along the rows of the
// planes: it copies runs of consecutive offsets, a whole panel row at once
// where the run is the panel. Reads past x (from positions that are not
// outputs, at the end of the last plane) repeat its last value.
func copyPanel(panel, x []float32, off []int, cv *ConvF32, cstride int) {
	nr := len(off)
	// Runs of consecutive offsets: [r0, r1) reads x from off[r0] on.
	var runs [gemmTileMax + 1]int
	nrun := 0
	for r := range nr {
		if r == 0 || off[r] != off[r-1]+1 {
			runs[nrun] = r
			nrun++
		}
	}
	runs[nrun] = nr
	q := 0
	for c := range cv.InC {
		for u := range cv.KH {
			for v := range cv.KW {
				d := panel[q*nr : (q+1)*nr]
				base := c*cstride + u*cv.W + v
				q++
				if nrun == 1 && base+off[0]+nr <= len(x) {
					src := x[base+off[0]:]
					switch nr {
					case 48:
						*(*[48]float32)(d) = *(*[48]float32)(src)
						continue
					case 32:
						*(*[32]float32)(d) = *(*[32]float32)(src)
						continue
					case 16:
						*(*[16]float32)(d) = *(*[16]float32)(src)
						continue
					}
				}
				for k := range nrun {
					r0, r1 := runs[k], runs[k+1]
					s0 := base + off[r0]
					dd := d[r0:r1]
					if s0+len(dd) > len(x) {
						for j := range dd {
							dd[j] = x[min(s0+j, len(x)-1)]
						}
						continue
					}
					// Runs are short (at most a panel): a loop beats
					// memmove's call.
					src := x[s0 : s0+len(dd)]
					for j := range dd {
						dd[j] = src[j]
					}
				}
			}
		}
	}
}

// convKern is a micro-kernel of ConvF32 and its tile of mr output
// channels by nr positions: rows reads B's rows at the offsets of a
// table and adds the bias (and the ReLU), panel (nil if there is none) a
// packed panel of B.
type convKern struct {
	mr, nr int
	rows   func(kc int, a *float32, lda int, b *float32, steps *int, c *float32, ldc int, bias *float32, relu bool)
	panel  func(kc int, a *float32, lda int, b, c *float32, ldc int, accumulate bool)
}

// convFewMaxOut is the most output channels for which ConvF32 takes a
// kernel of few rows: a few-row tile reads its panel once per mr
// channels, which many channels would make the larger cost.
const convFewMaxOut = 16

// convKernelFor is the kernel of the instruction set of the f32 GEMM
// kernel kern that computes the fewest padded values (output channels
// rounded up to its mr, positions to its nr) for cv on n images: the GEMM
// kernel's tile, or, for few output channels, a tile of fewer rows (the 8
// or 16 channels of a small CNN's convolutions would fill 57 % of the
// AVX-512 kernel's 14 rows).
func convKernelFor(kern *f32Kern, cv *ConvF32, n int) convKern {
	best := convKern{kern.mr, kern.nr, nil, kern.fn}
	var few []convKern
	switch kern {
	case &f32AVX512:
		best.rows = convF32Kernel14x32AVX512
		few = []convKern{{8, 48, convF32Kernel8x48AVX512, nil}, {8, 32, convF32Kernel8x32AVX512, nil}}
	case &f32AVX2:
		best.rows = convF32Kernel6x16AVX2
		few = []convKern{{4, 24, convF32Kernel4x24AVX2, nil}}
	}
	if cv.OutC > convFewMaxOut {
		return best
	}
	cost := convPadded(cv, n, best.mr, best.nr)
	for _, k := range few {
		if c := convPadded(cv, n, k.mr, k.nr); c < cost {
			best, cost = k, c
		}
	}
	return best
}

// convPadded is the values that tiles of mr output channels by nr
// positions compute for cv on n images, padding included.
func convPadded(cv *ConvF32, n, mr, nr int) int {
	pos := ceilDiv(n*cv.OH*cv.OW, nr) * nr
	if cv.StrideH == 1 && cv.StrideW == 1 {
		pos = n * ceilDiv(cv.OH*cv.W, nr) * nr
	}
	return ceilDiv(cv.OutC, mr) * mr * pos
}
