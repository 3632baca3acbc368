package integer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/kernel"
)

// Engine runs a quantized Net (one with Quant set, by PTQ or QAT) in
// integer arithmetic on a backend:
//
//   - the float input is quantized once with the parameters of the first
//     Conv2D or Dense input and laid out NHWC;
//   - each Conv2D is an int8 im2col (padding cells hold the zero point's
//     code, which stands for 0) and one backend.GemmS8 against the
//     layer's weight codes, packed K-contiguous in (kh, kw, c) order; each
//     Dense is one GemmS8, its weight columns permuted once so that it
//     reads the NHWC codes in the NCHW order of the model's Flatten;
//   - the GEMM accumulates in int32 and its epilogue adds the zero-point
//     correction −za·Σ_k Wq[o,k], scales by sa·sw[o], adds the float
//     bias, applies a following ReLU and requantizes to the int8
//     parameters of the next Conv2D/Dense input; MaxPool, ReLU and Flatten
//     in between work on the codes, which they commute with;
//   - the last Conv2D/Dense writes float32 (the logits), given back in
//     NCHW order, after which only ReLU, Flatten and Softmax may follow.
//
// Nothing is emulated in float between layers. An Engine is not safe
// for concurrent use.
type Engine struct {
	be     backend.Backend
	in     nn.Shape // one sample of the input, NCHW
	inAct  nn.ActQuant
	steps  []*step
	outLen int
	cap    int  // batch the buffers hold
	host   bool // the backend's buffers are host memory
	codes  []int8

	// trace, when set (by tests), sees each step's output: codes, or
	// float32 for the last GEMM and what follows it.
	trace func(step int, layer int, codes []int8, f32 []float32)

	// On the host, passes of a batch are spread over workers, copies of
	// the engine (serial) that each run their passes' steps on one
	// goroutine.
	net     *nn.Net
	serial  bool
	workers []*Engine
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

// step is one operation of the engine.
type step struct {
	kind    stepKind
	layer   int
	conv    *nn.Conv2D
	pool    *nn.MaxPool
	in, out nn.Shape // per sample; NHWC storage of C×H×W
	zp      int32    // zero point of the codes entering
	final   bool     // GEMM with float32 output; float steps after it
	s32     bool     // GEMM with int32 output, requantized by the max pool after it
	from    *step    // for a max pool of int32 sums: the GEMM whose epilogue it applies
	m1      int      // GEMM rows per sample
	k, n    int      // GEMM depth and columns
	ep      backend.Epilogue
	w       backend.Buffer // weight codes, n×k
	a, c    buffer         // GEMM operand and result
	host    []int8         // output of a step on codes
	f32     []float32      // output of a float step

	// direct, on the host CPU with an int8 dot-product kernel, runs a
	// convolution without im2col on its input copied into padded, whose
	// border holds the zero point's code; sums holds its int32 results
	// for the epilogue when they are not the step's output.
	direct *cpu.ConvS8
	padded []int8
	sums   []int32
	serial bool // the step of a worker's copy: no goroutines of its own

	// sumH and sumW are the rows and columns of the sums a max pool reads
	// (the pool's input shape, or fewer where the convolution before it
	// leaves out what no window reaches).
	sumH, sumW int
}

// buffer is a backend buffer and the host slice it is read and written
// through: the buffer's own memory on backends that expose it (cpu), a
// copy moved by Upload and Download elsewhere.
type buffer struct {
	buf    backend.Buffer
	host   any // []int8, []int32 or []float32
	direct bool
}

func alloc(be backend.Backend, dt backend.DType, n int) (buffer, error) {
	b, err := be.Alloc(dt, n)
	if err != nil {
		return buffer{}, err
	}
	if hb, ok := b.(backend.HostBuffer); ok {
		var h any
		switch dt {
		case backend.S8:
			h = hb.S8()
		case backend.S32:
			h = hb.S32()
		default:
			h = hb.F32()
		}
		return buffer{buf: b, host: h, direct: true}, nil
	}
	var h any
	switch dt {
	case backend.S8:
		h = make([]int8, n)
	case backend.S32:
		h = make([]int32, n)
	default:
		h = make([]float32, n)
	}
	return buffer{buf: b, host: h}, nil
}

func (b *buffer) push(be backend.Backend, n int) error {
	if b.direct {
		return nil
	}
	switch h := b.host.(type) {
	case []int8:
		return be.Upload(b.buf.Slice(0, n), h[:n])
	case []int32:
		return be.Upload(b.buf.Slice(0, n), h[:n])
	case []float32:
		return be.Upload(b.buf.Slice(0, n), h[:n])
	}
	return nil
}

func (b *buffer) pull(be backend.Backend, n int) error {
	if b.direct {
		return nil
	}
	switch h := b.host.(type) {
	case []int8:
		return be.Download(h[:n], b.buf.Slice(0, n))
	case []int32:
		return be.Download(h[:n], b.buf.Slice(0, n))
	case []float32:
		return be.Download(h[:n], b.buf.Slice(0, n))
	}
	return nil
}

func (b *buffer) free(be backend.Backend) {
	if b.buf != nil {
		be.Free(b.buf)
		b.buf, b.host = nil, nil
	}
}

// fusePool makes a GEMM followed by a max pool write int32 sums and
// the pool requantize its maxima (tests turn it off to check the
// requantizing epilogue of the backend on every output).
var fusePool = true

// maxBatch is the most samples one pass of the engine takes; Forward
// splits larger batches. On backends whose memory is the host's, passes
// take hostBatch samples (or fewer), so that each layer's im2col
// matrix and results stay in cache between the steps that write and read
// them.
var maxBatch, hostBatch = 256, 16

// useDirect lets convolutions run as cpu.ConvS8 where it has a kernel
// (tests and benchmarks compare it with im2col and GemmS8), and
// splitPasses spreads the passes of a batch over workers on the host
// (benchmarks compare it with parallel steps).
var useDirect, splitPasses = true, true

// New prepares net, which must be quantized (Quant set), to run
// on be: weight codes are computed, packed and uploaded once.
func New(be backend.Backend, net *nn.Net) (*Engine, error) {
	shapes, err := nn.Shapes(net)
	if err != nil {
		return nil, err
	}
	q := net.Quant
	if q == nil {
		return nil, errors.New("nn: integer inference of a float net (calibrate it first)")
	}
	if q.WeightBits != 8 && q.WeightBits != 4 {
		return nil, fmt.Errorf("nn: %d-bit weights not supported (8 or 4)", q.WeightBits)
	}
	if len(q.Act) < len(net.Layers) || len(q.WeightScale) < len(net.Layers) {
		return nil, fmt.Errorf("nn: quantization holds %d activation and %d weight entries for %d layers",
			len(q.Act), len(q.WeightScale), len(net.Layers))
	}
	var weighted []int
	for i, l := range net.Layers {
		if nn.QuantizedInput(l) {
			weighted = append(weighted, i)
			a := q.Act[i]
			if !(a.Scale > 0) || a.Scale-a.Scale != 0 || a.ZeroPoint < -128 || a.ZeroPoint > 127 {
				return nil, fmt.Errorf("nn: layer %d: input quantization scale %g, zero point %d", i, a.Scale, a.ZeroPoint)
			}
		}
	}
	if len(weighted) == 0 {
		return nil, errors.New("nn: integer inference of a net without Conv2D or Dense layers")
	}
	e := &Engine{be: be, in: shapes[0], inAct: q.Act[weighted[0]], outLen: shapes[len(shapes)-1].Size(), net: net}
	if probe, err := alloc(be, backend.S8, 1); err == nil {
		e.host = probe.direct
		probe.free(be)
	}
	fail := func(err error) (*Engine, error) { e.Close(); return nil, err }

	zp := e.inAct.ZeroPoint
	phys := shapes[0] // the C×H×W the NHWC storage holds
	final := false
	next := 0 // index into weighted of the next GEMM
	for i := 0; i < len(net.Layers); i++ {
		l := net.Layers[i]
		st := &step{layer: i, in: phys, out: phys, zp: zp, final: final}
		switch l := l.(type) {
		case *nn.Conv2D, *nn.Dense:
			sa, za := q.Act[i].Scale, q.Act[i].ZeroPoint
			if za != zp {
				return fail(fmt.Errorf("nn: layer %d: codes of zero point %d enter a layer quantized with %d", i, zp, za))
			}
			w, outC := nn.Weights(l)
			sw := q.WeightScale[i]
			if len(sw) != outC {
				return fail(fmt.Errorf("nn: layer %d: %d weight scales for %d output channels", i, len(sw), outC))
			}
			for o, v := range sw {
				if !(v > 0) || v-v != 0 {
					return fail(fmt.Errorf("nn: layer %d: weight scale %d is %g, want finite and positive", i, o, v))
				}
			}
			codes := nn.WeightCodes(w, sw, q.WeightBits)
			var b []int8
			switch l := l.(type) {
			case *nn.Conv2D:
				if phys != shapes[i] {
					return fail(fmt.Errorf("nn: layer %d: convolution after a Flatten", i))
				}
				st.kind, st.conv = conv, l
				st.out = shapes[i+1]
				st.m1 = st.out.H * st.out.W
				st.k, st.n = l.KH*l.KW*l.InC, l.OutC
				b = make([]int8, st.n*st.k)
				for o := range l.OutC {
					for c := range l.InC {
						for u := range l.KH {
							for v := range l.KW {
								b[o*st.k+(u*l.KW+v)*l.InC+c] = codes[((o*l.InC+c)*l.KH+u)*l.KW+v]
							}
						}
					}
				}
				st.ep.Bias = l.B
			case *nn.Dense:
				st.kind = dense
				st.out = nn.Shape{C: l.Out, H: 1, W: 1}
				st.m1, st.k, st.n = 1, l.In, l.Out
				b = make([]int8, st.n*st.k)
				P := phys
				for o := range l.Out {
					for c := range P.C {
						for h := range P.H {
							for x := range P.W {
								b[o*st.k+(h*P.W+x)*P.C+c] = codes[o*l.In+(c*P.H+h)*P.W+x]
							}
						}
					}
				}
				st.ep.Bias = l.B
			}
			st.ep.ColScale = make([]float32, st.n)
			st.ep.ColOffset = make([]int32, st.n)
			for o := range st.n {
				st.ep.ColScale[o] = sa * sw[o]
				var s int32
				for _, v := range b[o*st.k : (o+1)*st.k] {
					s += int32(v)
				}
				st.ep.ColOffset[o] = -za * s
			}
			if c, ok := l.(*nn.Conv2D); ok && useDirect && e.host && cpu.ConvS8Fast() {
				if _, ok := be.(*cpu.Backend); ok {
					st.direct = &cpu.ConvS8{InC: c.InC, OutC: c.OutC, KH: c.KH, KW: c.KW, StrideH: c.StrideH, StrideW: c.StrideW,
						H: st.in.H + c.PadT + c.PadB, W: st.in.W + c.PadL + c.PadR, OH: st.out.H, OW: st.out.W,
						Weight: b, Offset: st.ep.ColOffset}
				}
			}
			if i+1 < len(net.Layers) {
				if _, ok := net.Layers[i+1].(*nn.ReLU); ok {
					st.ep.ReLU = true
					i++ // fused
				}
			}
			next++
			if next < len(weighted) {
				a := q.Act[weighted[next]]
				st.ep.OutScale, st.ep.OutZeroPoint = a.Scale, a.ZeroPoint
				zp = a.ZeroPoint
			} else {
				st.final, final = true, true
			}
			if fusePool && !st.final && i+1 < len(net.Layers) {
				if _, ok := net.Layers[i+1].(*nn.MaxPool); ok {
					// Requantize after the pool, on a fraction of the sums:
					// the epilogue is monotone in the sum (ColScale > 0),
					// so max then requantize gives exactly the codes of
					// requantize then max.
					st.s32 = true
				}
			}
			wb, err := be.Alloc(backend.S8, len(b))
			if err == nil {
				err = be.Upload(wb, b)
			}
			if err != nil {
				return fail(fmt.Errorf("nn: layer %d: weights on %s: %w", i, be.Name(), err))
			}
			st.w = wb
			phys = st.out
		case *nn.MaxPool:
			if final {
				return fail(fmt.Errorf("nn: layer %d: max pool after the last weighted layer is not supported", i))
			}
			if phys != shapes[i] {
				return fail(fmt.Errorf("nn: layer %d: max pool after a Flatten", i))
			}
			st.kind, st.pool, st.out = pool, l, shapes[i+1]
			if n := len(e.steps); n > 0 && e.steps[n-1].s32 {
				st.from = e.steps[n-1]
			}
			phys = st.out
		case *nn.ReLU:
			st.kind = relu
		case *nn.Flatten:
			st.kind = flatten
		case *nn.Softmax:
			if !final {
				return fail(fmt.Errorf("nn: layer %d: softmax before the last weighted layer", i))
			}
			st.kind = softmax
		}
		e.steps = append(e.steps, st)
	}
	for _, st := range e.steps {
		if st.kind == pool && st.from != nil {
			trimConv(st)
		}
	}
	return e, nil
}

// trimConv leaves out of a direct convolution whose sums the max pool st
// reads the last output rows and columns that no window of the pool
// reaches (a 3×3 pool of stride 3 reads 12 of 14 rows and columns).
func trimConv(st *step) {
	st.sumH, st.sumW = st.in.H, st.in.W
	d, l := st.from.direct, st.pool
	if d == nil || l.PadT != 0 || l.PadL != 0 {
		return
	}
	d.OH = min(d.OH, (st.out.H-1)*l.StrideH+l.KH)
	d.OW = min(d.OW, (st.out.W-1)*l.StrideW+l.KW)
	st.sumH, st.sumW = d.OH, d.OW
}

// OutLen is the number of outputs per sample.
func (e *Engine) OutLen() int { return e.outLen }

// InLen is the number of inputs per sample.
func (e *Engine) InLen() int { return e.in.Size() }

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
	for _, w := range e.workers {
		w.Close()
	}
	e.workers = nil
	e.cap = 0
	return nil
}

// grow makes the buffers hold batch samples.
func (e *Engine) grow(batch int) error {
	if batch <= e.cap {
		return nil
	}
	e.codes = make([]int8, batch*e.in.Size())
	for _, st := range e.steps {
		st.a.free(e.be)
		st.c.free(e.be)
		st.host, st.f32 = nil, nil
		var err error
		switch st.kind {
		case conv, dense:
			m := batch * st.m1
			if st.a, err = alloc(e.be, backend.S8, m*st.k); err != nil {
				return err
			}
			dt := backend.S8
			switch {
			case st.final:
				dt = backend.F32
			case st.s32:
				dt = backend.S32
			}
			if st.c, err = alloc(e.be, dt, m*st.n); err != nil {
				return err
			}
			if d := st.direct; d != nil {
				st.padded = make([]int8, batch*d.H*d.W*d.InC)
				fill(st.padded, int8(st.zp))
				if !st.s32 {
					st.sums = make([]int32, m*st.n)
				}
			}
		default:
			if st.final {
				st.f32 = make([]float32, batch*st.out.Size())
			} else {
				st.host = make([]int8, batch*st.out.Size())
			}
			if st.kind == pool && st.from != nil {
				// The requantized maxima as values, quantized at once.
				st.f32 = make([]float32, batch*st.out.Size())
			}
		}
	}
	e.cap = batch
	return nil
}

// Forward runs batch samples x (NCHW float32, batch times the net's input
// size, already scaled as the net expects) and writes batch·OutLen()
// outputs into out.
func (e *Engine) Forward(x []float32, batch int, out []float32) error {
	if batch < 0 || len(x) != batch*e.in.Size() || len(out) != batch*e.outLen {
		return fmt.Errorf("nn: integer forward of %d samples: %d inputs (want %d) and %d outputs (want %d)",
			batch, len(x), batch*e.in.Size(), len(out), batch*e.outLen)
	}
	pass := maxBatch
	if e.host {
		pass = hostBatch
		if w := min(cpu.Threads(), (batch+pass-1)/pass); w > 1 && splitPasses && e.trace == nil && !e.serial {
			return e.split(x, batch, out, pass, w)
		}
	}
	for b0 := 0; b0 < batch; b0 += pass {
		nb := min(pass, batch-b0)
		if err := e.forward(x[b0*e.in.Size():(b0+nb)*e.in.Size()], nb, out[b0*e.outLen:(b0+nb)*e.outLen]); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) forward(x []float32, nb int, out []float32) error {
	if err := e.grow(nb); err != nil {
		return fmt.Errorf("nn: integer forward on %s: %w", e.be.Name(), err)
	}
	// Quantize NCHW floats into NHWC codes.
	in := e.in
	hw := in.H * in.W
	codes := e.codes[:nb*in.Size()]
	s, z := e.inAct.Scale, e.inAct.ZeroPoint
	pfor(e.serial, nb, in.Size(), func(n0, n1 int) {
		if in.C == 1 { // NCHW is NHWC
			cpu.QuantizeS8(codes[n0*hw:n1*hw], x[n0*hw:n1*hw], s, z)
			return
		}
		for n := n0; n < n1; n++ {
			xs, cs := x[n*in.Size():(n+1)*in.Size()], codes[n*in.Size():(n+1)*in.Size()]
			for c := range in.C {
				for p, v := range xs[c*hw : (c+1)*hw] {
					cs[p*in.C+c] = quantize(v, s, z)
				}
			}
		}
	})
	var f32 []float32
	var sums []int32
	for si, st := range e.steps {
		switch st.kind {
		case conv, dense:
			m := nb * st.m1
			if st.direct != nil {
				codes, f32, sums = e.direct(st, codes, nb)
				break
			}
			a := st.a.host.([]int8)[:m*st.k]
			if st.kind == conv {
				im2col(a, codes, nb, st)
			} else {
				copy(a, codes)
			}
			if err := st.a.push(e.be, m*st.k); err != nil {
				return fmt.Errorf("nn: layer %d: %w", st.layer, err)
			}
			ep := &st.ep
			if st.s32 {
				ep = &backend.Epilogue{ColOffset: st.ep.ColOffset}
			}
			if err := e.be.GemmS8(m, st.n, st.k, st.a.buf.Slice(0, m*st.k), st.w, st.c.buf.Slice(0, m*st.n), ep); err != nil {
				return fmt.Errorf("nn: layer %d: %w", st.layer, err)
			}
			if err := st.c.pull(e.be, m*st.n); err != nil {
				return fmt.Errorf("nn: layer %d: %w", st.layer, err)
			}
			switch {
			case st.final:
				f32 = st.c.host.([]float32)[:m*st.n]
			case st.s32:
				sums = st.c.host.([]int32)[:m*st.n]
				codes = nil
			default:
				codes = st.c.host.([]int8)[:m*st.n]
			}
		case pool:
			dst := st.host[:nb*st.out.Size()]
			if st.from != nil {
				maxPoolRequant(dst, sums, nb, st)
			} else {
				maxPool(dst, codes, nb, st)
			}
			codes = dst
		case relu:
			if st.final {
				for k, v := range f32 {
					f32[k] = max(v, 0)
				}
				break
			}
			dst := st.host[:len(codes)]
			for k, v := range codes {
				dst[k] = max(v, int8(st.zp))
			}
			codes = dst
		case flatten:
		case softmax:
			n1 := st.in.Size()
			for n := range nb {
				kernel.Softmax(f32[n*n1:(n+1)*n1], f32[n*n1:(n+1)*n1])
			}
		}
		if e.trace != nil && !st.s32 {
			if f32 != nil {
				e.trace(si, st.layer, nil, f32)
			} else {
				e.trace(si, st.layer, codes, nil)
			}
		}
	}
	// The float output is NHWC; give it back in NCHW order.
	last := e.steps[len(e.steps)-1].out
	if last.C == 1 || last.H*last.W == 1 {
		copy(out, f32)
		return nil
	}
	hw = last.H * last.W
	for n := range nb {
		src, dst := f32[n*last.Size():(n+1)*last.Size()], out[n*last.Size():(n+1)*last.Size()]
		for p := range hw {
			for c := range last.C {
				dst[c*hw+p] = src[p*last.C+c]
			}
		}
	}
	return nil
}

// im2col writes the im2col matrix of the NHWC codes x (nb samples)
// into a: row (n, oh, ow) holds the window at that output in (kh, kw, c)
// order, with the zero point's code where the window leaves the image.
//
// Rows are written in order, one kernel row (KW·C codes) at a time. A
// kernel row inside the image shorter than 8 codes moves as one 8-byte
// word whose spill into the next kernel row is overwritten when that is
// written (never past the sample's last row, nor reading past x); rows of
// a multiple of 8 codes move word by word.
func im2col(a, x []int8, nb int, st *step) {
	l, in, out := st.conv, st.in, st.out
	C, K := in.C, st.k
	seg := l.KW * C // one kernel row of one window
	pad := int8(st.zp)
	ab, xb := asBytes(a), asBytes(x)
	wide, words := seg < 8, seg%8 == 0
	pfor(st.serial, nb, st.m1*K, func(n0, n1 int) {
		for n := n0; n < n1; n++ {
			xo, ao := n*in.Size(), n*st.m1*K
			end := ao + st.m1*K // the end of this sample's rows
			for oh := range out.H {
				for ow := range out.W {
					row := ao + (oh*out.W+ow)*K
					iw0 := ow*l.StrideW - l.PadL
					v0, v1 := max(0, -iw0), min(l.KW, in.W-iw0) // kernel columns inside
					for u := range l.KH {
						d := row + u*seg
						ih := oh*l.StrideH + u - l.PadT
						if ih < 0 || ih >= in.H || v0 >= v1 {
							fill(a[d:d+seg], pad)
							continue
						}
						if v0 == 0 && v1 == l.KW { // inside the image
							src := xo + (ih*in.W+iw0)*C
							switch {
							case wide && d+8 <= end && src+8 <= len(xb):
								binary.LittleEndian.PutUint64(ab[d:], binary.LittleEndian.Uint64(xb[src:]))
							case words:
								for j := 0; j < seg; j += 8 {
									binary.LittleEndian.PutUint64(ab[d+j:], binary.LittleEndian.Uint64(xb[src+j:]))
								}
							default:
								copy(a[d:d+seg], x[src:src+seg])
							}
							continue
						}
						src := xo + (ih*in.W+iw0+v0)*C
						fill(a[d:d+v0*C], pad)
						copy(a[d+v0*C:d+v1*C], x[src:src+(v1-v0)*C])
						fill(a[d+v1*C:d+seg], pad)
					}
				}
			}
		}
	})
}

// asBytes is s as bytes, the same memory.
func asBytes(s []int8) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

func fill(s []int8, v int8) {
	for i := range s {
		s[i] = v
	}
}

// maxPool is the window maximum of NHWC codes; padding is never
// chosen.
func maxPool(dst, x []int8, nb int, st *step) {
	l, in, out := st.pool, st.in, st.out
	C := in.C
	pfor(st.serial, nb, out.Size()*l.KH*l.KW, func(n0, n1 int) {
		for n := n0; n < n1; n++ {
			xn, yn := x[n*in.Size():(n+1)*in.Size()], dst[n*out.Size():(n+1)*out.Size()]
			for oh := range out.H {
				h0, h1 := max(0, oh*l.StrideH-l.PadT), min(in.H, oh*l.StrideH-l.PadT+l.KH)
				for ow := range out.W {
					w0, w1 := max(0, ow*l.StrideW-l.PadL), min(in.W, ow*l.StrideW-l.PadL+l.KW)
					y := yn[(oh*out.W+ow)*C:][:C]
					fill(y, -128)
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							xs := xn[(ih*in.W+iw)*C:][:C]
							for c, v := range xs {
								y[c] = max(y[c], v)
							}
						}
					}
				}
			}
		}
	})
}

// maxPoolRequant is the window maximum of the int32 sums of the GEMM
// st.from (NHWC, zero-point correction included), each maximum then put
// through that GEMM's epilogue: scale, bias, ReLU, requantization, as
// backend.Epilogue states it.
func maxPoolRequant(dst []int8, x []int32, nb int, st *step) {
	l, in, out := st.pool, st.in, st.out
	C := in.C
	ep := &st.from.ep
	vals := st.f32[:nb*out.Size()] // the values before quantization
	pfor(st.serial, nb, out.Size()*l.KH*l.KW, func(n0, n1 int) {
		var small [64]int32
		m := small[:min(C, len(small))]
		if C > len(small) {
			m = make([]int32, C)
		}
		sz := st.sumH * st.sumW * C
		// Windows inside the rows: the maxima at every pixel of a row
		// (cpu.MaxWindowsS32), of which the stride picks.
		cols := (out.W-1)*l.StrideW + 1
		var wins []int32
		if l.PadL == 0 && cols+l.KW-1 <= st.sumW {
			var buf [1024]int32
			if wins = buf[:]; cols*C > len(buf) {
				wins = make([]int32, cols*C)
			}
			wins = wins[:cols*C]
		}
		for n := n0; n < n1; n++ {
			xn, yn := x[n*sz:(n+1)*sz], vals[n*out.Size():(n+1)*out.Size()]
			for oh := range out.H {
				h0, h1 := max(0, oh*l.StrideH-l.PadT), min(st.sumH, oh*l.StrideH-l.PadT+l.KH)
				if wins != nil && h1 > h0 {
					cpu.MaxWindowsS32(wins, xn[h0*st.sumW*C:], st.sumW*C, h1-h0, l.KW, C)
					for ow := range out.W {
						a, y := wins[ow*l.StrideW*C:][:C], yn[(oh*out.W+ow)*C:][:C]
						for c := range y {
							v := float32(float32(a[c])*ep.ColScale[c]) + ep.Bias[c]
							if ep.ReLU {
								v = max(v, 0)
							}
							y[c] = v
						}
					}
					continue
				}
				for ow := range out.W {
					w0, w1 := max(0, ow*l.StrideW-l.PadL), min(st.sumW, ow*l.StrideW-l.PadL+l.KW)
					for c := range m {
						m[c] = math.MinInt32
					}
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							xs := xn[(ih*st.sumW+iw)*C:][:C]
							for c, v := range xs {
								m[c] = max(m[c], v)
							}
						}
					}
					y := yn[(oh*out.W+ow)*C:][:C]
					for c, a := range m {
						v := float32(float32(a)*ep.ColScale[c]) + ep.Bias[c]
						if ep.ReLU {
							v = max(v, 0)
						}
						y[c] = v
					}
				}
			}
		}
		o0, o1 := n0*out.Size(), n1*out.Size()
		cpu.QuantizeS8(dst[o0:o1], vals[o0:o1], ep.OutScale, ep.OutZeroPoint)
	})
}

// quantize is int8(quant.QuantizeValue(x, scale, zp, -128, 127)) to
// the bit, without the float64 rounding routine (a function call without
// SSE4.1): x/scale in float32 as there, then rounding half to even by
// adding and subtracting 1.5·2^23 in float32, which is exact for
// |v| < 2^22; larger values clip anyway.
func quantize(x, scale float32, zp int32) int8 {
	v := x / scale
	switch {
	case v != v:
		return int8(zp)
	case v >= 512:
		return 127
	case v <= -512:
		return -128
	}
	const magic = 0x1.8p23
	q := int32(float32(float32(v+magic)-magic)) + zp
	return int8(min(max(q, -128), 127))
}

// direct runs a convolution step as cpu.ConvS8 on nb samples of NHWC
// codes x: the codes are copied into the padded buffer, and the sums
// (zero-point correction included) are the step's int32 output, or go
// through the epilogue as backend.Epilogue states it, to codes or (the
// last step) float32.
func (e *Engine) direct(st *step, x []int8, nb int) (codes []int8, f32 []float32, sums []int32) {
	d, l, in := st.direct, st.conv, st.in
	row := in.W * in.C
	for n := range nb {
		for h := range in.H {
			copy(st.padded[((n*d.H+h+l.PadT)*d.W+l.PadL)*in.C:][:row], x[(n*in.H+h)*row:][:row])
		}
	}
	m := nb * st.m1 * st.n
	if st.s32 {
		sums = st.c.host.([]int32)[:m]
		d.Run(sums, st.padded, nb)
		return nil, nil, sums
	}
	acc := st.sums[:m]
	d.Run(acc, st.padded, nb)
	ep, n := &st.ep, st.n
	if st.final {
		f32 = st.c.host.([]float32)[:m]
	} else {
		codes = st.c.host.([]int8)[:m]
	}
	pfor(st.serial, m/n, n, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			for o, a := range acc[r*n : (r+1)*n] {
				v := float32(float32(a)*ep.ColScale[o]) + ep.Bias[o]
				if ep.ReLU {
					v = max(v, 0)
				}
				if f32 != nil {
					f32[r*n+o] = v
				} else {
					codes[r*n+o] = quantize(v, ep.OutScale, ep.OutZeroPoint)
				}
			}
		}
	})
	return codes, f32, nil
}

// split runs batch samples in passes of pass samples on w workers, each
// taking the next pass until none is left.
func (e *Engine) split(x []float32, batch int, out []float32, pass, w int) error {
	for len(e.workers) < w {
		c, err := New(e.be, e.net)
		if err != nil {
			return err
		}
		c.serial = true
		for _, st := range c.steps {
			st.serial = true
			if st.direct != nil {
				st.direct.Threads = 1
			}
		}
		e.workers = append(e.workers, c)
	}
	in := e.in.Size()
	var next atomic.Int64
	errs := make([]error, w)
	var wg sync.WaitGroup
	for k, c := range e.workers[:w] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b0 := int(next.Add(1)-1) * pass
				if b0 >= batch {
					return
				}
				nb := min(pass, batch-b0)
				if err := c.forward(x[b0*in:(b0+nb)*in], nb, out[b0*e.outLen:(b0+nb)*e.outLen]); err != nil {
					errs[k] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pfor is kernel.ParallelFor, or fn(0, n) when serial.
func pfor(serial bool, n, per int, fn func(lo, hi int)) {
	if serial {
		fn(0, n)
		return
	}
	kernel.ParallelFor(n, per, fn)
}
