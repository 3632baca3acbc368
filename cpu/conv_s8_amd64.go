//go:build !noasm && !gccgo && !safe

package cpu

import "unsafe"

// convS8MinWork is the multiply-adds below which an int8 convolution runs
// on one goroutine: lower than ConvF32's, as one image of the MNIST CNN's
// layers (250,000 and 627,000) ran faster on two goroutines in int8
// (15,200 → 18,500 images/s at batch 1) but slower in float.
const convS8MinWork = 1 << 17

// convS8Kernel reports whether an int8 kernel that reads B in words of
// four codes (VPDPBUSD) is in use.
func convS8Kernel() bool {
	k := s8Kernel()
	return k != nil && k.fn4 != nil
}

// convS8SIMD is ConvS8.Run on the VNNI GEMM micro-kernel: A is the
// weight rows, each kernel row's KW·InC codes padded with zero weights
// to a whole number of words (R codes), and B a panel of nr output pixels
// whose window rows are read four codes at a time (the codes past a
// window row that a padded word reads meet zero weights).
func convS8SIMD(cv *ConvS8, dst []int32, x []int8, n int) bool {
	kern := s8Kernel()
	if kern == nil || kern.fn4 == nil {
		return false
	}
	mr, nr := kern.mr, kern.nr
	C := cv.InC
	run := cv.KW * C
	R := (run + 3) / 4 * 4
	Kp := cv.KH * R
	G := Kp / 4 // words per position
	mp := ceilDiv(cv.OutC, mr)
	if len(cv.packed) != mp*mr*Kp {
		cv.packed = make([]int8, mp*mr*Kp)
		cv.init = make([]int32, mp*mr)
		for o := range cv.OutC {
			var s int32
			for u := range cv.KH {
				src := cv.Weight[(o*cv.KH+u)*run:][:run]
				copy(cv.packed[o*Kp+u*R:], src)
				for _, v := range src {
					s += int32(v)
				}
			}
			cv.init[o] = -128 * s
			if cv.Offset != nil {
				cv.init[o] += cv.Offset[o]
			}
		}
	}
	P, opix := n*cv.OH*cv.OW, cv.OH*cv.OW
	np := ceilDiv(P, nr)
	thr := cv.Threads
	if thr <= 0 {
		thr = Threads()
	}
	w := workersOf(thr, np, P*Kp*cv.OutC, convS8MinWork)
	for len(cv.scratch) < w {
		cv.scratch = append(cv.scratch, make([]uint32, G*nr))
	}
	xb := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), len(x))
	rowBytes := cv.W * C
	parallelRange(w, np, 1, func(worker, lo, hi int) {
		panel := cv.scratch[worker]
		if len(panel) < G*nr {
			panel = make([]uint32, G*nr)
			cv.scratch[worker] = panel
		}
		var offs [gemmTileMax]int
		off := offs[:nr]
		var tile [gemmTileMax]int32
		for jp := lo; jp < hi; jp++ {
			p0 := jp * nr
			live := min(nr, P-p0)
			last := 0
			// The window origin of each position, stepping along the
			// output rows (columns past the end repeat the last).
			i, rem := p0/opix, p0%opix
			oh, ow := rem/cv.OW, rem%cv.OW
			for r := range nr {
				if r >= live {
					off[r] = off[r-1]
					continue
				}
				off[r] = ((i*cv.H+oh*cv.StrideH)*cv.W + ow*cv.StrideW) * C
				last = max(last, off[r])
				if ow++; ow == cv.OW {
					if ow, oh = 0, oh+1; oh == cv.OH {
						oh, i = 0, i+1
					}
				}
			}
			// The words of window row u, group g of position r are the
			// four codes at off[r] + u·W·C + 4g, offset by 128.
			fast := last+(cv.KH-1)*rowBytes+R <= len(xb)
			for u := range cv.KH {
				if fast && R%8 == 0 {
					// Two words from one 8-byte load.
					for g := 0; g < R/4; g += 2 {
						d0, d1 := panel[(u*R/4+g)*nr:][:nr], panel[(u*R/4+g+1)*nr:][:nr]
						base := unsafe.Add(unsafe.Pointer(unsafe.SliceData(xb)), u*rowBytes+4*g)
						for r, o := range off {
							v := *(*uint64)(unsafe.Add(base, o)) ^ 0x8080808080808080
							d0[r], d1[r] = uint32(v), uint32(v>>32)
						}
					}
					continue
				}
				for g := range R / 4 {
					d := panel[(u*R/4+g)*nr:][:nr]
					b := u*rowBytes + 4*g
					if fast {
						// In bounds (fast): unaligned little-endian loads
						// without the checks.
						base := unsafe.Add(unsafe.Pointer(unsafe.SliceData(xb)), b)
						for r, o := range off {
							d[r] = *(*uint32)(unsafe.Add(base, o)) ^ 0x80808080
						}
						continue
					}
					for r, o := range off {
						var v uint32
						for t := range 4 {
							v |= uint32(xb[min(o+b+t, len(xb)-1)]) << (8 * t)
						}
						d[r] = v ^ 0x80808080
					}
				}
			}
			for ip := range mp {
				kern.fn4(G, &cv.packed[ip*mr*Kp], Kp, &panel[0], &tile[0], nr, false, &cv.init[ip*mr])
				rows := min(mr, cv.OutC-ip*mr)
				for r := range live {
					y := dst[(p0+r)*cv.OutC+ip*mr:][:rows]
					for rr := range y {
						y[rr] = tile[rr*nr+r]
					}
				}
			}
		}
	})
	return true
}
