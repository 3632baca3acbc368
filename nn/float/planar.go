package float

import (
	"sync"
	"sync/atomic"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/kernel"
)

// usePlanar turns the planar path on (tests compare it with the GEMM
// path), and splitPasses its spreading of passes over workers
// (benchmarks compare it with parallel steps).
var usePlanar, splitPasses = true, true

// planar is the Engine's path on the host CPU for a chain of Conv2D,
// ReLU and MaxPool layers, then a Flatten and Dense, ReLU and Softmax
// layers. Image activations are kept channel-major over the pass,
// [C][n][H][W] (a plane per channel and image), written with the zero
// padding of the convolution that reads them, so that:
//
//   - each Conv2D is a cpu.ConvF32, which reads its windows where they
//     lie or gathers them into the GEMM kernel's panels (no im2col
//     matrix, no packing pass) and adds the bias and a following ReLU to
//     the kernel's tiles; before a MaxPool its planes are wide (the
//     kernel's tiles stored where they lie, see cpu.ConvF32.OutStrides);
//   - each MaxPool reads planes and writes the next convolution's padded
//     planes;
//   - the Flatten turns the planes into NCHW rows for the Dense layers,
//     one cpu.GemmF32 each, whose weights need no permutation.
//
// Buffers are kept between calls, sized for the largest pass.
type planar struct {
	steps []*pstep
	in    nn.Shape
	inPad [4]int // the padding the first step reads (top, left, bottom, right)
	x     []float32
	batch int // samples per pass
	cap   int

	// serial marks a worker's copy, which runs its steps on its own
	// goroutine; workers are the copies of a pass split across images.
	serial  bool
	workers []*planar
}

type pstep struct {
	kind    stepKind
	layer   int
	in, out nn.Shape
	pad     [4]int // the zero padding the output planes carry
	conv    cpu.ConvF32
	pool    *nn.MaxPool
	dense   *nn.Dense
	w, bias []float32 // dense
	relu    bool      // a following ReLU is fused
	buf     []float32 // output; nil for in-place steps (relu)
	tmp     []float32 // a convolution's unpadded output, when its planes are padded
}

// newPlanar returns the planar path for net, or nil when the net is not
// such a chain or be is not the host CPU.
func newPlanar(be backend.Backend, net *nn.Net, shapes []nn.Shape, act []nn.ActQuant) *planar {
	if _, ok := be.(*cpu.Backend); !ok || !usePlanar || len(net.Input) != 3 {
		return nil
	}
	quantized := func(i int) bool { return act != nil && act[i].Scale != 0 }
	p := &planar{in: shapes[0]}
	flat := false
	// Weights fake-quantized per output channel when the net is quantized.
	weights := func(i int, w []float32) []float32 {
		if q := net.Quant; q != nil && q.WeightScale[i] != nil {
			return nn.FakeQuantWeights(w, q.WeightScale[i], q.WeightBits)
		}
		return w
	}
	for i := 0; i < len(net.Layers); i++ {
		st := &pstep{layer: i, in: shapes[i], out: shapes[i+1]}
		switch l := net.Layers[i].(type) {
		case *nn.Conv2D:
			if flat {
				return nil
			}
			st.kind = conv
			st.conv = cpu.ConvF32{InC: l.InC, OutC: l.OutC, KH: l.KH, KW: l.KW, StrideH: l.StrideH, StrideW: l.StrideW,
				H: st.in.H + l.PadT + l.PadB, W: st.in.W + l.PadL + l.PadR, OH: st.out.H, OW: st.out.W,
				Weight: weights(i, l.W), Bias: l.B}
		case *nn.MaxPool:
			if flat {
				return nil
			}
			st.kind, st.pool = pool, l
		case *nn.ReLU:
			st.kind = relu
		case *nn.Flatten:
			if flat {
				return nil
			}
			st.kind, flat = flatten, true
		case *nn.Dense:
			if !flat {
				return nil
			}
			st.kind, st.dense, st.w, st.bias = dense, l, weights(i, l.W), l.B
		case *nn.Softmax:
			if !flat {
				return nil
			}
			st.kind = softmax
		default:
			return nil
		}
		if (st.kind == conv || st.kind == dense) && i+1 < len(net.Layers) {
			if _, ok := net.Layers[i+1].(*nn.ReLU); ok && !quantized(i+1) {
				st.relu, st.conv.ReLU = true, true
				i++
				st.out = shapes[i+1]
			}
		}
		p.steps = append(p.steps, st)
	}
	if !flat {
		return nil // image outputs go through the GEMM path
	}
	for k, st := range p.steps[:len(p.steps)-1] {
		if next := p.steps[k+1]; st.kind == conv && next.kind == pool {
			st.conv.Wide = true // the pool reads wide planes
			trimConv(st, next)
		}
	}
	// Each producer of planes writes the padding of the convolution that
	// reads them next (past in-place ReLUs), less the bottom rows and
	// right columns that no window of its (trimmed) output reaches.
	for k, st := range p.steps {
		if st.kind != conv {
			continue
		}
		l, cv := net.Layers[st.layer].(*nn.Conv2D), &st.conv
		pad := [4]int{l.PadT, l.PadL, l.PadB, l.PadR}
		pad[2] = max(0, min(pad[2], (cv.OH-1)*cv.StrideH+cv.KH-st.in.H-pad[0]))
		pad[3] = max(0, min(pad[3], (cv.OW-1)*cv.StrideW+cv.KW-st.in.W-pad[1]))
		cv.H, cv.W = st.in.H+pad[0]+pad[2], st.in.W+pad[1]+pad[3]
		j := k - 1
		for j >= 0 && p.steps[j].kind == relu {
			j--
		}
		if j < 0 {
			p.inPad = pad
		} else {
			p.steps[j].pad = pad
		}
	}
	per := padded(p.in, p.inPad)
	for _, st := range p.steps {
		per = max(per, padded(st.out, st.pad))
	}
	p.batch = max(1, min(maxBatch, planarCache/per))
	return p
}

// trimConv leaves out of a convolution the last output rows and columns
// that the max pool after it never reads (a 3×3 pool of stride 3 reads 12
// of 14 rows): the pool sees the smaller planes.
func trimConv(cv, pool *pstep) {
	p := pool.pool
	if p.PadT != 0 || p.PadL != 0 {
		return
	}
	h, w := (pool.out.H-1)*p.StrideH+p.KH, (pool.out.W-1)*p.StrideW+p.KW
	if h < cv.conv.OH {
		cv.conv.OH, pool.in.H = h, h
	}
	if w < cv.conv.OW {
		cv.conv.OW, pool.in.W = w, w
	}
}

// planarCache is the values of the largest activation of a pass (128 KiB
// values): a pass's working set stays near the L2 cache.
const planarCache = 1 << 17

func padded(s nn.Shape, pad [4]int) int {
	return s.C * (s.H + pad[0] + pad[2]) * (s.W + pad[1] + pad[3])
}

// size is the values of the step's output for batch samples.
func (st *pstep) size(batch int) int {
	if st.kind == conv && st.conv.Wide {
		_, img := st.conv.OutStrides(batch)
		return st.out.C * batch * img
	}
	return batch * padded(st.out, st.pad)
}

// planarSlack is the values past each buffer of planes that the
// convolution kernels' last tiles may read instead of copying their
// windows (see cpu.ConvF32): more than a tile's width and a window row.
const planarSlack = 256

func (p *planar) grow(batch int) {
	if batch <= p.cap {
		return
	}
	p.x = make([]float32, batch*padded(p.in, p.inPad)+planarSlack)
	for _, st := range p.steps {
		if st.kind != relu {
			st.buf = make([]float32, st.size(batch)+planarSlack)
		}
		if st.kind == conv && st.pad != [4]int{} {
			st.tmp = make([]float32, batch*st.out.Size())
		}
	}
	p.cap = batch
}

// forward runs nb samples (NCHW) into out (nb·OutLen values).
func (p *planar) forward(e *Engine, x []float32, nb int, out []float32) {
	p.grow(nb)
	in := p.in
	cur := p.x[:nb*padded(in, p.inPad)]
	toPlanes(cur, x, nb, in, p.inPad)
	// The strides of cur's rows and images' planes (wide after a
	// convolution that a pool reads).
	row, img := 0, 0
	for _, st := range p.steps {
		if e.actQuantized(st.layer) {
			p.pfor(len(cur), 1, func(lo, hi int) { fakeQuant(cur[lo:hi], e.act[st.layer]) })
		}
		var dst []float32
		if st.buf != nil {
			if n := st.size(nb); len(st.buf) < n+planarSlack {
				st.buf = make([]float32, n+planarSlack) // another kernel set's layout
			}
			dst = st.buf[:st.size(nb)]
		}
		prow, pimg := row, img
		row, img = st.out.W+st.pad[1]+st.pad[3], (st.out.H+st.pad[0]+st.pad[2])*(st.out.W+st.pad[1]+st.pad[3])
		switch st.kind {
		case conv:
			if st.conv.Wide {
				row, img = st.conv.OutStrides(nb)
			}
			if st.pad == [4]int{} {
				st.conv.Run(dst, cur, nb)
			} else {
				tmp := st.tmp[:nb*st.out.Size()]
				st.conv.Run(tmp, cur, nb)
				repad(dst, tmp, st.out.C*nb, st.out, st.pad)
			}
		case pool:
			poolPlanes(p, dst, cur, nb, st, prow, pimg)
		case relu:
			for i, v := range cur {
				cur[i] = max(v, 0)
			}
			dst, row, img = cur, prow, pimg
		case flatten:
			s := st.in
			hw := s.H * s.W
			for c := range s.C {
				for n := range nb {
					copy(dst[n*s.Size()+c*hw:][:hw], cur[(c*nb+n)*hw:][:hw])
				}
			}
		case dense:
			l := st.dense
			cpu.GemmF32(nb, l.Out, l.In, cur, st.w, dst)
			for n := range nb {
				y := dst[n*l.Out : (n+1)*l.Out]
				for o, b := range st.bias {
					v := y[o] + b
					if st.relu {
						v = max(v, 0)
					}
					y[o] = v
				}
			}
		case softmax:
			k := st.in.Size()
			for n := range nb {
				kernel.Softmax(dst[n*k:(n+1)*k], cur[n*k:(n+1)*k])
			}
		}
		cur = dst
	}
	if e.actQuantized(e.layers) {
		fakeQuant(cur, e.act[e.layers])
	}
	copy(out, cur)
}

// toPlanes writes nb NCHW samples of shape s into padded planes
// [C][nb][H+pt+pb][W+pl+pr] (the padding zero).
func toPlanes(dst, src []float32, nb int, s nn.Shape, pad [4]int) {
	if pad == [4]int{} && s.C == 1 {
		copy(dst, src)
		return
	}
	hw := s.H * s.W
	for c := range s.C {
		for n := range nb {
			repad(dst[(c*nb+n)*padded(nn.Shape{C: 1, H: s.H, W: s.W}, pad):], src[(n*s.C+c)*hw:], 1, s, pad)
		}
	}
}

// repad copies planes unpadded planes of s.H×s.W from src into dst, each
// with the padding pad around it (left as it is: zero).
func repad(dst, src []float32, planes int, s nn.Shape, pad [4]int) {
	H, W := s.H+pad[0]+pad[2], s.W+pad[1]+pad[3]
	for k := range planes {
		d, x := dst[k*H*W:], src[k*s.H*s.W:]
		for h := range s.H {
			copy(d[(h+pad[0])*W+pad[1]:][:s.W], x[h*s.W:][:s.W])
		}
	}
}

// poolPlanes is the window maximum of nb·C unpadded planes, rows rs
// apart and planes ps apart, into planes with the padding st.pad; cells
// outside the image are never chosen, and a NaN in a window is its
// maximum.
func poolPlanes(pl *planar, dst, x []float32, nb int, st *pstep, rs, ps int) {
	p, in, out := st.pool, st.in, st.out
	H, W := out.H+st.pad[0]+st.pad[2], out.W+st.pad[1]+st.pad[3]
	pl.pfor(in.C*nb, out.H*out.W*p.KH*p.KW, func(k0, k1 int) {
		var fold [256]float32
		for k := k0; k < k1; k++ {
			xs, ys := x[k*ps:][:(in.H-1)*rs+in.W], dst[k*H*W:][:H*W]
			for oh := range out.H {
				h0, h1 := max(oh*p.StrideH-p.PadT, 0), min(oh*p.StrideH-p.PadT+p.KH, in.H)
				y := ys[(oh+st.pad[0])*W+st.pad[1]:][:out.W]
				if p.KH == 2 && p.KW == 2 && p.StrideW == 2 && p.PadL == 0 && h1-h0 == 2 && 2*out.W <= in.W {
					// The common 2×2 pool, its windows inside the rows.
					cpu.MaxPool2x2Row(y, xs[h0*rs:], xs[(h0+1)*rs:])
					continue
				}
				if cols := (out.W-1)*p.StrideW + 1; p.PadL == 0 && cols+p.KW-1 <= in.W && cols+7 <= len(fold) {
					// Windows inside the rows: the maxima of the windows
					// at every column, of which the stride picks; whole
					// vectors where x holds the values they read.
					src := x[k*ps+h0*rs:]
					if n := (cols + 7) &^ 7; (h1-h0-1)*rs+n+p.KW-1 <= len(src) {
						cols = n
					}
					m := fold[:cols]
					cpu.MaxWindows(m, src, rs, h1-h0, p.KW)
					for ow := range y {
						y[ow] = m[ow*p.StrideW]
					}
					continue
				}
				if in.W <= len(fold) {
					// The window's rows folded into one, then its columns.
					m := fold[:in.W]
					copy(m, xs[h0*rs:][:in.W])
					for h := h0 + 1; h < h1; h++ {
						cpu.MaxInto(m, xs[h*rs:])
					}
					for ow := range y {
						w0, w1 := max(ow*p.StrideW-p.PadL, 0), min(ow*p.StrideW-p.PadL+p.KW, in.W)
						v := m[w0]
						for _, u := range m[w0+1 : w1] {
							v = max(v, u)
						}
						y[ow] = v
					}
					continue
				}
				for ow := range out.W {
					w0, w1 := max(ow*p.StrideW-p.PadL, 0), min(ow*p.StrideW-p.PadL+p.KW, in.W)
					m := xs[h0*rs+w0]
					for h := h0; h < h1; h++ {
						for _, v := range xs[h*rs+w0 : h*rs+w1] {
							m = max(m, v) // NaN if either is
						}
					}
					y[ow] = m
				}
			}
		}
	})
}

// pfor is kernel.ParallelFor, or fn(0, n) on a worker's copy.
func (p *planar) pfor(n, per int, fn func(lo, hi int)) {
	if p.serial {
		fn(0, n)
		return
	}
	kernel.ParallelFor(n, per, fn)
}

// run runs batch samples x into out: passes of p.batch samples, spread
// over up to cpu.Threads() workers (each a copy of p running its passes
// on one goroutine) when there are several passes, or one pass at a time
// with each step parallel inside.
func (p *planar) run(e *Engine, net *nn.Net, x []float32, batch int, out []float32) {
	in, k := p.in.Size(), e.outLen
	passes := (batch + p.batch - 1) / p.batch
	w := min(cpu.Threads(), passes)
	if w <= 1 || !splitPasses {
		for b0 := 0; b0 < batch; b0 += p.batch {
			nb := min(p.batch, batch-b0)
			p.forward(e, x[b0*in:(b0+nb)*in], nb, out[b0*k:(b0+nb)*k])
		}
		return
	}
	// As many passes for each worker, of as many samples as they can
	// share: 256 samples are 14 passes of 18 or 19, not 13 of 20 (7 and 6).
	passes = (passes + w - 1) / w * w
	for len(p.workers) < w {
		c := newPlanar(e.be, net, e.shapes, e.act)
		c.serial = true
		for _, st := range c.steps {
			st.conv.Threads = 1
		}
		p.workers = append(p.workers, c)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, c := range p.workers[:w] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= passes {
					return
				}
				b0 := j * batch / passes
				nb := (j+1)*batch/passes - b0
				c.forward(e, x[b0*in:(b0+nb)*in], nb, out[b0*k:(b0+nb)*k])
			}
		}()
	}
	wg.Wait()
}
