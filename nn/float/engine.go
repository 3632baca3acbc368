package float

import (
	"fmt"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/kernel"
	"github.com/quantkit/quantkit/quant"
)

// Engine runs a Net in float32 on a backend. Between layers it keeps
// activations NHWC (channels innermost), so that:
//
//   - each Conv2D is an im2col whose rows (one per output pixel) are
//     KH runs of KW·InC contiguous values, times the weights repacked once
//     to [OutC][KH·KW·InC], by backend.GemmF32 (C = A·Bᵀ, both operands
//     K-contiguous); the result, [pixel][OutC], is already NHWC and only
//     gets the bias (and a following ReLU) added;
//   - each Dense is one GemmF32 against [Out][In], its columns permuted
//     once to read the NHWC values in the NCHW order of the model's
//     Flatten;
//   - MaxPool takes maxima over contiguous channel vectors; ReLU and
//     Softmax work in place.
//
// Inputs are NCHW and outputs are given back NCHW. On the host the GEMMs
// run over chunks of samples whose im2col fits the L2 cache; on other
// backends one per batch. Buffers are kept between calls.
//
// For a quantized Net (Quant set) it runs the network as the QDQ graph
// that onnxnet.ExportQDQ writes it does: weights fake-quantized per
// output channel (codes·scale), and every activation that Quant.Act
// quantizes passed through quantize→dequantize. That is what ONNX Runtime's reference
// semantics of such a graph compute; integer kernels give the same up to
// float rounding. An Engine is not safe for concurrent use.
type Engine struct {
	be     backend.Backend
	shapes []nn.Shape
	steps  []*step
	act    []nn.ActQuant // fake-quantization before layer i; nil for a float net
	outLen int
	cap    int
	batch  int       // samples per pass
	layers int       // of the net
	x      []float32 // the input, NHWC and fake-quantized as needed
	out    []float32 // the output back in NCHW order
	planar *planar   // the host CPU's path, when the net is a plain CNN
	net    *nn.Net
}

type stepKind int

const (
	conv stepKind = iota
	dense
	pool
	relu
	flatten
	softmax
)

type step struct {
	kind    stepKind
	layer   int
	conv    *nn.Conv2D
	pool    *nn.MaxPool
	in, out nn.Shape
	m1      int // GEMM rows per sample
	k, n    int // GEMM depth and columns
	bias    []float32
	relu    bool           // a following ReLU is fused
	chunk   int            // samples per GEMM call
	w       backend.Buffer // weights, n×k
	a, c    buffer         // GEMM operand and result
	host    []float32      // the step's NHWC output
}

// buffer is a backend buffer and the host slice it is read and written
// through: the buffer's own memory on backends that expose it (cpu), a
// copy moved by Upload and Download elsewhere.
type buffer struct {
	buf    backend.Buffer
	host   []float32
	direct bool
}

func alloc(be backend.Backend, n int) (buffer, error) {
	b, err := be.Alloc(backend.F32, n)
	if err != nil {
		return buffer{}, err
	}
	if h, ok := backend.Host[float32](b); ok {
		return buffer{buf: b, host: h, direct: true}, nil
	}
	return buffer{buf: b, host: make([]float32, n)}, nil
}

func (b *buffer) free(be backend.Backend) {
	if b.buf != nil {
		be.Free(b.buf)
	}
	*b = buffer{}
}

// maxBatch is the most samples one pass takes; Forward splits larger
// batches. 128 keeps the largest im2col of a small CNN near 20 MB.
const maxBatch = 128

// New prepares net to run on be: weights are (fake-quantized
// when net is quantized and) uploaded once.
func New(be backend.Backend, net *nn.Net) (*Engine, error) {
	shapes, err := nn.Shapes(net)
	if err != nil {
		return nil, err
	}
	e := &Engine{be: be, shapes: shapes, outLen: shapes[len(shapes)-1].Size(), layers: len(net.Layers), net: net}
	q := net.Quant
	if q != nil {
		if err := nn.CheckQuant(net); err != nil {
			return nil, err
		}
		e.act = q.Act
	}
	fail := func(err error) (*Engine, error) { e.Close(); return nil, err }
	for i := 0; i < len(net.Layers); i++ {
		st := &step{layer: i, in: shapes[i], out: shapes[i+1]}
		var w []float32
		switch l := net.Layers[i].(type) {
		case *nn.Conv2D:
			st.kind, st.conv, st.bias = conv, l, l.B
			st.m1, st.k, st.n = st.out.H*st.out.W, l.InC*l.KH*l.KW, l.OutC
			w = l.W
		case *nn.Dense:
			st.kind, st.bias = dense, l.B
			st.m1, st.k, st.n = 1, l.In, l.Out
			w = l.W
		case *nn.MaxPool:
			st.kind, st.pool = pool, l
		case *nn.ReLU:
			st.kind = relu
		case *nn.Flatten:
			st.kind = flatten
		case *nn.Softmax:
			if st.in.H != 1 || st.in.W != 1 {
				return fail(fmt.Errorf("nn: layer %d: softmax of a %dx%dx%d tensor (want a vector)", i, st.in.C, st.in.H, st.in.W))
			}
			st.kind = softmax
		}
		if w != nil {
			if q != nil && q.WeightScale[i] != nil {
				w = nn.FakeQuantWeights(w, q.WeightScale[i], q.WeightBits)
			}
			w = nhwcWeights(net.Layers[i], w, shapes[i], flattenedFrom(net, shapes, i))
			if st.w, err = be.Alloc(backend.F32, len(w)); err == nil {
				err = be.Upload(st.w, w)
			}
			if err != nil {
				return fail(fmt.Errorf("nn: layer %d: weights on %s: %w", i, be.Name(), err))
			}
			// Fuse a following ReLU unless its input is fake-quantized
			// (the quantization sits between the two).
			if i+1 < len(net.Layers) {
				if _, ok := net.Layers[i+1].(*nn.ReLU); ok && !e.actQuantized(i+1) {
					st.relu = true
					i++
				}
			}
			st.out = shapes[i+1]
		}
		e.steps = append(e.steps, st)
	}
	// As many samples per pass as keep the largest buffer under
	// nn.MaxSampleSize values, up to maxBatch.
	per := shapes[0].Size()
	for _, st := range e.steps {
		if st.m1*st.k > 4*nn.MaxSampleSize {
			return fail(fmt.Errorf("nn: layer %d: an im2col of %d×%d per sample exceeds the limit of %d values", st.layer, st.m1, st.k, 4*nn.MaxSampleSize))
		}
		per = max(per, st.m1*st.k, st.m1*st.n, st.out.Size())
	}
	e.batch = max(1, min(maxBatch, nn.MaxSampleSize/per))
	if e.planar = newPlanar(be, net, shapes, e.act); e.planar != nil {
		e.batch = e.planar.batch
	}
	return e, nil
}

// flattenedFrom returns the [C,H,W] shape whose NHWC values a Dense at
// layer i reads as its input vector (after a Flatten), or a vector shape
// when no permutation is needed.
func flattenedFrom(net *nn.Net, shapes []nn.Shape, i int) nn.Shape {
	for j := i - 1; j >= 0; j-- {
		if _, ok := net.Layers[j].(*nn.Flatten); ok {
			return shapes[j]
		}
		if _, ok := net.Layers[j].(*nn.Dense); ok {
			break
		}
	}
	return nn.Shape{C: shapes[i].Size(), H: 1, W: 1}
}

// nhwcWeights repacks the weights w of a Conv2D to [OutC][KH][KW][InC],
// and permutes the columns of a Dense that reads the NHWC values of a
// flattened [C,H,W] tensor src into NCHW order.
func nhwcWeights(l nn.Layer, w []float32, in, src nn.Shape) []float32 {
	out := make([]float32, len(w))
	switch l := l.(type) {
	case *nn.Conv2D:
		k := l.InC * l.KH * l.KW
		for o := range l.OutC {
			for c := range l.InC {
				for u := range l.KH {
					for v := range l.KW {
						out[o*k+(u*l.KW+v)*l.InC+c] = w[((o*l.InC+c)*l.KH+u)*l.KW+v]
					}
				}
			}
		}
	case *nn.Dense:
		if src.C == 1 || src.H*src.W == 1 {
			copy(out, w)
			break
		}
		hw := src.H * src.W
		for o := range l.Out {
			for c := range src.C {
				for p := range hw {
					out[o*l.In+p*src.C+c] = w[o*l.In+c*hw+p]
				}
			}
		}
	}
	return out
}

func (e *Engine) actQuantized(i int) bool {
	return e.act != nil && e.act[i].Scale != 0
}

// fakeQuant is x = (clamp(round(x/s)+z, −128, 127) − z)·s, in place.
func fakeQuant(x []float32, a nn.ActQuant) {
	for i, v := range x {
		x[i] = quant.DequantizeValue(quant.QuantizeValue(v, a.Scale, a.ZeroPoint, -128, 127), a.Scale, a.ZeroPoint)
	}
}

// OutLen is the number of outputs per sample.
func (e *Engine) OutLen() int { return e.outLen }

// InLen is the number of inputs per sample.
func (e *Engine) InLen() int { return e.shapes[0].Size() }

// Close frees the engine's backend memory.
func (e *Engine) Close() error {
	for _, st := range e.steps {
		if st.w != nil {
			e.be.Free(st.w)
			st.w = nil
		}
		st.a.free(e.be)
		st.c.free(e.be)
	}
	e.cap = 0
	return nil
}

func (e *Engine) grow(batch int) error {
	if batch <= e.cap {
		return nil
	}
	direct := false
	if b, err := e.be.Alloc(backend.F32, 1); err == nil {
		_, direct = b.(backend.HostBuffer)
		e.be.Free(b)
	}
	for _, st := range e.steps {
		st.a.free(e.be)
		st.c.free(e.be)
		st.host = make([]float32, batch*st.out.Size())
		if st.kind == conv || st.kind == dense {
			// On the host, GEMMs of a few samples whose im2col stays in
			// the L2 cache (about 1 MB); elsewhere one per batch, to
			// keep the transfers few.
			st.chunk = batch
			if direct {
				st.chunk = max(1, min(batch, (1<<18)/(st.m1*st.k)))
			}
			var err error
			if st.a, err = alloc(e.be, st.chunk*st.m1*st.k); err != nil {
				return err
			}
			if st.c, err = alloc(e.be, st.chunk*st.m1*st.n); err != nil {
				return err
			}
		}
	}
	e.x = make([]float32, batch*e.shapes[0].Size())
	e.out = make([]float32, batch*e.outLen)
	e.cap = batch
	return nil
}

// Forward runs batch samples x (NCHW float32, batch times the net's input
// size, already scaled as the net expects) and writes batch·OutLen()
// outputs into out.
func (e *Engine) Forward(x []float32, batch int, out []float32) error {
	in := e.shapes[0].Size()
	if batch < 0 || len(x) != batch*in || len(out) != batch*e.outLen {
		return fmt.Errorf("nn: forward of %d samples: %d inputs (want %d) and %d outputs (want %d)",
			batch, len(x), batch*in, len(out), batch*e.outLen)
	}
	if e.planar != nil {
		e.planar.run(e, e.net, x, batch, out)
		return nil
	}
	for b0 := 0; b0 < batch; b0 += e.batch {
		nb := min(e.batch, batch-b0)
		if err := e.forward(x[b0*in:(b0+nb)*in], nb, out[b0*e.outLen:(b0+nb)*e.outLen]); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) forward(x []float32, nb int, out []float32) error {
	if err := e.grow(nb); err != nil {
		return fmt.Errorf("nn: forward on %s: %w", e.be.Name(), err)
	}
	// NCHW in, NHWC between layers.
	in := e.shapes[0]
	cur := e.x[:nb*in.Size()]
	nchwToNHWC(cur, x, nb, in)
	for _, st := range e.steps {
		if e.actQuantized(st.layer) {
			// cur is the engine's own buffer (the input's copy or a
			// step's output): change it in place.
			kernel.ParallelFor(nb, st.in.Size(), func(n0, n1 int) {
				sz := st.in.Size()
				fakeQuant(cur[n0*sz:n1*sz], e.act[st.layer])
			})
		}
		dst := st.host[:nb*st.out.Size()]
		switch st.kind {
		case conv, dense:
			for n0 := 0; n0 < nb; n0 += st.chunk {
				n1 := min(nb, n0+st.chunk)
				if err := e.gemm(st, cur[n0*st.in.Size():n1*st.in.Size()], n1-n0, dst[n0*st.out.Size():n1*st.out.Size()]); err != nil {
					return err
				}
			}
		case pool:
			maxPool(dst, cur, nb, st)
		case relu:
			for i, v := range cur {
				dst[i] = max(v, 0)
			}
		case flatten:
			copy(dst, cur) // NHWC order; the next Dense's columns follow it
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
	last := e.shapes[len(e.shapes)-1]
	if last.C == 1 || last.H*last.W == 1 {
		copy(out, cur)
		return nil
	}
	nhwcToNCHW(out, cur, nb, last)
	return nil
}

// nchwToNHWC copies nb samples of shape s from NCHW src into NHWC dst.
func nchwToNHWC(dst, src []float32, nb int, s nn.Shape) {
	if s.C == 1 || s.H*s.W == 1 {
		copy(dst, src)
		return
	}
	hw := s.H * s.W
	for n := range nb {
		d, x := dst[n*s.Size():(n+1)*s.Size()], src[n*s.Size():(n+1)*s.Size()]
		for c := range s.C {
			for p, v := range x[c*hw : (c+1)*hw] {
				d[p*s.C+c] = v
			}
		}
	}
}

// nhwcToNCHW copies nb samples of shape s from NHWC src into NCHW dst.
func nhwcToNCHW(dst, src []float32, nb int, s nn.Shape) {
	hw := s.H * s.W
	for n := range nb {
		d, x := dst[n*s.Size():(n+1)*s.Size()], src[n*s.Size():(n+1)*s.Size()]
		for p := range hw {
			for c := range s.C {
				d[c*hw+p] = x[p*s.C+c]
			}
		}
	}
}

// gemm runs a Conv2D or Dense step on nb samples x into dst.
func (e *Engine) gemm(st *step, x []float32, nb int, dst []float32) error {
	m := nb * st.m1
	a := st.a.host[:m*st.k]
	if st.kind == conv {
		im2col(a, x, nb, st)
	} else {
		copy(a, x)
	}
	if !st.a.direct {
		if err := e.be.Upload(st.a.buf.Slice(0, m*st.k), a); err != nil {
			return fmt.Errorf("nn: layer %d: %w", st.layer, err)
		}
	}
	if err := e.be.GemmF32(m, st.n, st.k, st.a.buf.Slice(0, m*st.k), st.w, st.c.buf.Slice(0, m*st.n)); err != nil {
		return fmt.Errorf("nn: layer %d: %w", st.layer, err)
	}
	c := st.c.host[:m*st.n]
	if !st.c.direct {
		if err := e.be.Download(c, st.c.buf.Slice(0, m*st.n)); err != nil {
			return fmt.Errorf("nn: layer %d: %w", st.layer, err)
		}
	}
	// C is [sample][pixel][channel], NHWC already: add the bias.
	ch := st.n
	kernel.ParallelFor(m, ch, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			y, cr := dst[r*ch:(r+1)*ch], c[r*ch:(r+1)*ch]
			for o, b := range st.bias[:ch] {
				v := cr[o] + b
				if st.relu {
					v = max(v, 0)
				}
				y[o] = v
			}
		}
	})
	return nil
}

// im2col writes the im2col matrix of the NHWC x (nb samples) into a:
// row (n, oh, ow) holds the window at that output in (kh, kw, c) order,
// with 0 where the window leaves the image.
func im2col(a, x []float32, nb int, st *step) {
	l, in, out := st.conv, st.in, st.out
	K, C := st.k, in.C
	run := l.KW * C // one kernel row of the window
	kernel.ParallelFor(nb, st.m1*K, func(n0, n1 int) {
		for n := n0; n < n1; n++ {
			xn := x[n*in.Size() : (n+1)*in.Size()]
			for oh := range out.H {
				for ow := range out.W {
					row := a[((n*out.H+oh)*out.W+ow)*K:][:K]
					w0 := ow*l.StrideW - l.PadL
					inside := w0 >= 0 && w0+l.KW <= in.W
					for u := range l.KH {
						dst := row[u*run : (u+1)*run]
						ih := oh*l.StrideH + u - l.PadT
						switch {
						case ih < 0 || ih >= in.H:
							clear(dst)
						case inside && run <= 16:
							// Short runs (a channel or two): a loop beats
							// memmove's call.
							src := xn[(ih*in.W+w0)*C:][:len(dst)]
							for j := range dst {
								dst[j] = src[j]
							}
						case inside:
							copy(dst, xn[(ih*in.W+w0)*C:])
						default:
							xr := xn[ih*in.W*C : (ih+1)*in.W*C]
							for v := range l.KW {
								d := dst[v*C : (v+1)*C]
								if iw := w0 + v; iw >= 0 && iw < in.W {
									copy(d, xr[iw*C:])
								} else {
									clear(d)
								}
							}
						}
					}
				}
			}
		}
	})
}

// maxPool is the window maximum of NHWC x into dst; cells outside the
// image are never chosen, and a NaN in a window is its maximum.
func maxPool(dst, x []float32, nb int, st *step) {
	p, in, out := st.pool, st.in, st.out
	C := in.C
	kernel.ParallelFor(nb*out.H, out.W*p.KH*p.KW*C, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			n, oh := r/out.H, r%out.H
			xn := x[n*in.Size() : (n+1)*in.Size()]
			h0, h1 := max(oh*p.StrideH-p.PadT, 0), min(oh*p.StrideH-p.PadT+p.KH, in.H)
			for ow := range out.W {
				y := dst[((n*out.H+oh)*out.W+ow)*C:][:C]
				w0, w1 := max(ow*p.StrideW-p.PadL, 0), min(ow*p.StrideW-p.PadL+p.KW, in.W)
				first := true
				for h := h0; h < h1; h++ {
					for w := w0; w < w1; w++ {
						v := xn[(h*in.W+w)*C:][:C]
						if first {
							copy(y, v)
							first = false
							continue
						}
						for c, xv := range v {
							if xv > y[c] || xv != xv {
								y[c] = xv
							}
						}
					}
				}
			}
		}
	})
}

// Forward runs batch samples x through net on be with an Engine made
// for the call, and returns batch·(output size) values.
func Forward(be backend.Backend, net *nn.Net, x []float32, batch int) ([]float32, error) {
	e, err := New(be, net)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	out := make([]float32, batch*e.OutLen())
	if err := e.Forward(x, batch, out); err != nil {
		return nil, err
	}
	return out, nil
}
