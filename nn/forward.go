package nn

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/quant"
)

// MaxSampleSize is the most values one sample's tensor may have between
// layers (64 Mi); larger networks are refused rather than run out of
// memory.
const MaxSampleSize = 1 << 26

// sampleShape is one sample's tensor between layers, C×H×W; a feature vector
// is F×1×1.
type sampleShape struct{ C, H, W int }

func (s sampleShape) size() int { return s.C * s.H * s.W }

// chainShapes checks that the layers of net chain and returns the shape
// entering each layer and, last, the output's (len(Layers)+1 shapes).
func chainShapes(net *Net) ([]sampleShape, error) {
	if net == nil {
		return nil, errors.New("nn: nil net")
	}
	var s sampleShape
	switch len(net.Input) {
	case 3:
		s = sampleShape{net.Input[0], net.Input[1], net.Input[2]}
	case 1:
		s = sampleShape{net.Input[0], 1, 1}
	default:
		return nil, fmt.Errorf("nn: input shape %v: want [C,H,W] or [F]", net.Input)
	}
	if s.C <= 0 || s.H <= 0 || s.W <= 0 {
		return nil, fmt.Errorf("nn: input shape %v", net.Input)
	}
	out := func(in, k, stride, a, b int) int { return (in+a+b-k)/stride + 1 }
	shapes := []sampleShape{s}
	for i, l := range net.Layers {
		switch l := l.(type) {
		case *Conv2D:
			if l.InC != s.C || l.OutC <= 0 || l.KH <= 0 || l.KW <= 0 || l.StrideH <= 0 || l.StrideW <= 0 ||
				min(l.PadT, l.PadL, l.PadB, l.PadR) < 0 || len(l.W) != l.OutC*l.InC*l.KH*l.KW || len(l.B) != l.OutC ||
				s.H+l.PadT+l.PadB < l.KH || s.W+l.PadL+l.PadR < l.KW {
				return nil, fmt.Errorf("nn: layer %d (conv %s): %d→%d channels, kernel %dx%d, stride %dx%d, %d weights, %d biases on an input of %dx%dx%d",
					i, l.Name, l.InC, l.OutC, l.KH, l.KW, l.StrideH, l.StrideW, len(l.W), len(l.B), s.C, s.H, s.W)
			}
			s = sampleShape{l.OutC, out(s.H, l.KH, l.StrideH, l.PadT, l.PadB), out(s.W, l.KW, l.StrideW, l.PadL, l.PadR)}
		case *Dense:
			if l.In != s.size() || l.Out <= 0 || len(l.W) != l.In*l.Out || len(l.B) != l.Out {
				return nil, fmt.Errorf("nn: layer %d (dense %s): %d→%d with %d weights and %d biases on an input of %d values",
					i, l.Name, l.In, l.Out, len(l.W), len(l.B), s.size())
			}
			s = sampleShape{l.Out, 1, 1}
		case *MaxPool:
			if l.KH <= 0 || l.KW <= 0 || l.StrideH <= 0 || l.StrideW <= 0 || min(l.PadT, l.PadL, l.PadB, l.PadR) < 0 ||
				l.PadT >= l.KH || l.PadB >= l.KH || l.PadL >= l.KW || l.PadR >= l.KW ||
				s.H+l.PadT+l.PadB < l.KH || s.W+l.PadL+l.PadR < l.KW {
				return nil, fmt.Errorf("nn: layer %d (max pool): kernel %dx%d, stride %dx%d, pads %d,%d,%d,%d on %dx%d",
					i, l.KH, l.KW, l.StrideH, l.StrideW, l.PadT, l.PadL, l.PadB, l.PadR, s.H, s.W)
			}
			s = sampleShape{s.C, out(s.H, l.KH, l.StrideH, l.PadT, l.PadB), out(s.W, l.KW, l.StrideW, l.PadL, l.PadR)}
		case *Flatten:
			s = sampleShape{s.size(), 1, 1}
		case *ReLU, *Softmax:
		default:
			return nil, fmt.Errorf("nn: layer %d: unsupported layer %T", i, l)
		}
		if !sizeWithin(s, MaxSampleSize) {
			return nil, fmt.Errorf("nn: layer %d: output of %dx%dx%d exceeds the limit of %d values per sample", i, s.C, s.H, s.W, MaxSampleSize)
		}
		shapes = append(shapes, s)
	}
	return shapes, nil
}

// sizeWithin reports whether C·H·W ≤ limit, without overflowing.
func sizeWithin(s sampleShape, limit int64) bool {
	n := int64(1)
	for _, d := range []int{s.C, s.H, s.W} {
		if d <= 0 || int64(d) > limit/n {
			return false
		}
		n *= int64(d)
	}
	return true
}

// OutputShape is the shape of one sample of net's output: [C,H,W], or [F]
// after a Dense or Flatten.
func OutputShape(net *Net) ([]int, error) {
	shapes, err := chainShapes(net)
	if err != nil {
		return nil, err
	}
	s := shapes[len(shapes)-1]
	if s.H == 1 && s.W == 1 {
		return []int{s.C}, nil
	}
	return []int{s.C, s.H, s.W}, nil
}

// FloatEngine runs a Net in float32 on a backend. Between layers it keeps
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
// ExportQDQ writes it does: weights fake-quantized per output channel
// (codes·scale), and every activation that Quant.Act quantizes passed
// through quantize→dequantize. That is what ONNX Runtime's reference
// semantics of such a graph compute; integer kernels give the same up to
// float rounding. A FloatEngine is not safe for concurrent use.
type FloatEngine struct {
	be     backend.Backend
	shapes []sampleShape
	steps  []*f32Step
	act    []ActQuant // fake-quantization before layer i; nil for a float net
	outLen int
	cap    int
	batch  int       // samples per pass
	layers int       // of the net
	x      []float32 // the input, NHWC and fake-quantized as needed
	out    []float32 // the output back in NCHW order
}

type f32Kind int

const (
	f32Conv f32Kind = iota
	f32Dense
	f32Pool
	f32ReLU
	f32Flatten
	f32Softmax
)

type f32Step struct {
	kind    f32Kind
	layer   int
	conv    *Conv2D
	pool    *MaxPool
	in, out sampleShape
	m1      int // GEMM rows per sample
	k, n    int // GEMM depth and columns
	bias    []float32
	relu    bool           // a following ReLU is fused
	chunk   int            // samples per GEMM call
	w       backend.Buffer // weights, n×k
	a, c    f32Buf         // GEMM operand and result
	host    []float32      // the step's NHWC output
}

// f32Buf is a backend buffer and the host slice it is read and written
// through: the buffer's own memory on backends that expose it (cpu), a
// copy moved by Upload and Download elsewhere.
type f32Buf struct {
	buf    backend.Buffer
	host   []float32
	direct bool
}

func f32Alloc(be backend.Backend, n int) (f32Buf, error) {
	b, err := be.Alloc(backend.F32, n)
	if err != nil {
		return f32Buf{}, err
	}
	if d, ok := b.(interface{ Data() any }); ok {
		if h, ok := d.Data().([]float32); ok {
			return f32Buf{buf: b, host: h, direct: true}, nil
		}
	}
	return f32Buf{buf: b, host: make([]float32, n)}, nil
}

func (b *f32Buf) free(be backend.Backend) {
	if b.buf != nil {
		be.Free(b.buf)
	}
	*b = f32Buf{}
}

// f32MaxBatch is the most samples one pass takes; Forward splits larger
// batches. 128 keeps the largest im2col of a small CNN near 20 MB.
const f32MaxBatch = 128

// NewFloatEngine prepares net to run on be: weights are (fake-quantized
// when net is quantized and) uploaded once.
func NewFloatEngine(be backend.Backend, net *Net) (*FloatEngine, error) {
	shapes, err := chainShapes(net)
	if err != nil {
		return nil, err
	}
	e := &FloatEngine{be: be, shapes: shapes, outLen: shapes[len(shapes)-1].size(), layers: len(net.Layers)}
	q := net.Quant
	if q != nil {
		if err := checkQuant(net); err != nil {
			return nil, err
		}
		e.act = q.Act
	}
	fail := func(err error) (*FloatEngine, error) { e.Close(); return nil, err }
	for i := 0; i < len(net.Layers); i++ {
		st := &f32Step{layer: i, in: shapes[i], out: shapes[i+1]}
		var w []float32
		switch l := net.Layers[i].(type) {
		case *Conv2D:
			st.kind, st.conv, st.bias = f32Conv, l, l.B
			st.m1, st.k, st.n = st.out.H*st.out.W, l.InC*l.KH*l.KW, l.OutC
			w = l.W
		case *Dense:
			st.kind, st.bias = f32Dense, l.B
			st.m1, st.k, st.n = 1, l.In, l.Out
			w = l.W
		case *MaxPool:
			st.kind, st.pool = f32Pool, l
		case *ReLU:
			st.kind = f32ReLU
		case *Flatten:
			st.kind = f32Flatten
		case *Softmax:
			if st.in.H != 1 || st.in.W != 1 {
				return fail(fmt.Errorf("nn: layer %d: softmax of a %dx%dx%d tensor (want a vector)", i, st.in.C, st.in.H, st.in.W))
			}
			st.kind = f32Softmax
		}
		if w != nil {
			if q != nil && q.WeightScale[i] != nil {
				w = FakeQuantWeights(w, q.WeightScale[i], q.WeightBits)
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
				if _, ok := net.Layers[i+1].(*ReLU); ok && !e.actQuantized(i+1) {
					st.relu = true
					i++
				}
			}
			st.out = shapes[i+1]
		}
		e.steps = append(e.steps, st)
	}
	// As many samples per pass as keep the largest buffer under
	// MaxSampleSize values, up to f32MaxBatch.
	per := shapes[0].size()
	for _, st := range e.steps {
		if st.m1*st.k > 4*MaxSampleSize {
			return fail(fmt.Errorf("nn: layer %d: an im2col of %d×%d per sample exceeds the limit of %d values", st.layer, st.m1, st.k, 4*MaxSampleSize))
		}
		per = max(per, st.m1*st.k, st.m1*st.n, st.out.size())
	}
	e.batch = max(1, min(f32MaxBatch, MaxSampleSize/per))
	return e, nil
}

// flattenedFrom returns the [C,H,W] shape whose NHWC values a Dense at
// layer i reads as its input vector (after a Flatten), or a vector shape
// when no permutation is needed.
func flattenedFrom(net *Net, shapes []sampleShape, i int) sampleShape {
	for j := i - 1; j >= 0; j-- {
		if _, ok := net.Layers[j].(*Flatten); ok {
			return shapes[j]
		}
		if _, ok := net.Layers[j].(*Dense); ok {
			break
		}
	}
	return sampleShape{shapes[i].size(), 1, 1}
}

// nhwcWeights repacks the weights w of a Conv2D to [OutC][KH][KW][InC],
// and permutes the columns of a Dense that reads the NHWC values of a
// flattened [C,H,W] tensor src into NCHW order.
func nhwcWeights(l Layer, w []float32, in, src sampleShape) []float32 {
	out := make([]float32, len(w))
	switch l := l.(type) {
	case *Conv2D:
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
	case *Dense:
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

// checkQuant reports whether net.Quant fits net.
func checkQuant(net *Net) error {
	q := net.Quant
	if q.WeightBits != 8 && q.WeightBits != 4 {
		return fmt.Errorf("nn: %d-bit weights (want 8 or 4)", q.WeightBits)
	}
	if len(q.WeightScale) != len(net.Layers) || len(q.Act) != len(net.Layers)+1 {
		return fmt.Errorf("nn: quantization holds %d weight and %d activation entries for %d layers",
			len(q.WeightScale), len(q.Act), len(net.Layers))
	}
	for i, l := range net.Layers {
		_, outC := weightsOf(l)
		if s := q.WeightScale[i]; s != nil {
			if len(s) != outC {
				return fmt.Errorf("nn: layer %d: %d weight scales for %d output channels", i, len(s), outC)
			}
			for _, v := range s {
				if !(v > 0) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("nn: layer %d: weight scale %g", i, v)
				}
			}
		}
	}
	for i, a := range q.Act {
		if a.Scale != 0 && (!(a.Scale > 0) || math.IsInf(float64(a.Scale), 0) || a.ZeroPoint < -128 || a.ZeroPoint > 127) {
			return fmt.Errorf("nn: activation %d: scale %g, zero point %d", i, a.Scale, a.ZeroPoint)
		}
	}
	return nil
}

func (e *FloatEngine) actQuantized(i int) bool {
	return e.act != nil && e.act[i].Scale != 0
}

// weightsOf returns the weights of a Conv2D or Dense layer and its number
// of output channels (rows); nil and 0 for other layers.
func weightsOf(l Layer) ([]float32, int) {
	switch l := l.(type) {
	case *Conv2D:
		return l.W, l.OutC
	case *Dense:
		return l.W, l.Out
	}
	return nil, 0
}

// WeightCodes quantizes w (rows of len(w)/len(scales)) row by row:
// clamp(round(w/scale), −qmax, qmax), qmax = 2^(bits−1)−1, ties to even.
func WeightCodes(w, scales []float32, bits int) []int8 {
	qmax := int32(1)<<(bits-1) - 1
	k := len(w) / len(scales)
	c := make([]int8, len(w))
	for i, v := range w {
		c[i] = int8(quant.QuantizeValue(v, scales[i/k], 0, -qmax, qmax))
	}
	return c
}

// FakeQuantWeights is codes·scale for the WeightCodes of w.
func FakeQuantWeights(w, scales []float32, bits int) []float32 {
	codes := WeightCodes(w, scales, bits)
	k := len(w) / len(scales)
	out := make([]float32, len(w))
	for i, c := range codes {
		out[i] = float32(c) * scales[i/k]
	}
	return out
}

// fakeQuant is x = (clamp(round(x/s)+z, −128, 127) − z)·s, in place.
func fakeQuant(x []float32, a ActQuant) {
	for i, v := range x {
		x[i] = quant.DequantizeValue(quant.QuantizeValue(v, a.Scale, a.ZeroPoint, -128, 127), a.Scale, a.ZeroPoint)
	}
}

// OutLen is the number of outputs per sample.
func (e *FloatEngine) OutLen() int { return e.outLen }

// InLen is the number of inputs per sample.
func (e *FloatEngine) InLen() int { return e.shapes[0].size() }

// Close frees the engine's backend memory.
func (e *FloatEngine) Close() error {
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

func (e *FloatEngine) grow(batch int) error {
	if batch <= e.cap {
		return nil
	}
	direct := false
	if b, err := e.be.Alloc(backend.F32, 1); err == nil {
		_, direct = b.(interface{ Data() any })
		e.be.Free(b)
	}
	for _, st := range e.steps {
		st.a.free(e.be)
		st.c.free(e.be)
		st.host = make([]float32, batch*st.out.size())
		if st.kind == f32Conv || st.kind == f32Dense {
			// On the host, GEMMs of a few samples whose im2col stays in
			// the L2 cache (about 1 MB); elsewhere one per batch, to
			// keep the transfers few.
			st.chunk = batch
			if direct {
				st.chunk = max(1, min(batch, (1<<18)/(st.m1*st.k)))
			}
			var err error
			if st.a, err = f32Alloc(e.be, st.chunk*st.m1*st.k); err != nil {
				return err
			}
			if st.c, err = f32Alloc(e.be, st.chunk*st.m1*st.n); err != nil {
				return err
			}
		}
	}
	e.x = make([]float32, batch*e.shapes[0].size())
	e.out = make([]float32, batch*e.outLen)
	e.cap = batch
	return nil
}

// Forward runs batch samples x (NCHW float32, batch times the net's input
// size, already scaled as the net expects) and writes batch·OutLen()
// outputs into out.
func (e *FloatEngine) Forward(x []float32, batch int, out []float32) error {
	in := e.shapes[0].size()
	if batch < 0 || len(x) != batch*in || len(out) != batch*e.outLen {
		return fmt.Errorf("nn: forward of %d samples: %d inputs (want %d) and %d outputs (want %d)",
			batch, len(x), batch*in, len(out), batch*e.outLen)
	}
	for b0 := 0; b0 < batch; b0 += e.batch {
		nb := min(e.batch, batch-b0)
		if err := e.forward(x[b0*in:(b0+nb)*in], nb, out[b0*e.outLen:(b0+nb)*e.outLen]); err != nil {
			return err
		}
	}
	return nil
}

func (e *FloatEngine) forward(x []float32, nb int, out []float32) error {
	if err := e.grow(nb); err != nil {
		return fmt.Errorf("nn: forward on %s: %w", e.be.Name(), err)
	}
	// NCHW in, NHWC between layers.
	in := e.shapes[0]
	cur := e.x[:nb*in.size()]
	nchwToNHWC(cur, x, nb, in)
	for _, st := range e.steps {
		if e.actQuantized(st.layer) {
			// cur is the engine's own buffer (the input's copy or a
			// step's output): change it in place.
			f32Parallel(nb, st.in.size(), func(n0, n1 int) {
				sz := st.in.size()
				fakeQuant(cur[n0*sz:n1*sz], e.act[st.layer])
			})
		}
		dst := st.host[:nb*st.out.size()]
		switch st.kind {
		case f32Conv, f32Dense:
			for n0 := 0; n0 < nb; n0 += st.chunk {
				n1 := min(nb, n0+st.chunk)
				if err := e.gemm(st, cur[n0*st.in.size():n1*st.in.size()], n1-n0, dst[n0*st.out.size():n1*st.out.size()]); err != nil {
					return err
				}
			}
		case f32Pool:
			f32MaxPool(dst, cur, nb, st)
		case f32ReLU:
			for i, v := range cur {
				dst[i] = max(v, 0)
			}
		case f32Flatten:
			copy(dst, cur) // NHWC order; the next Dense's columns follow it
		case f32Softmax:
			k := st.in.size()
			for n := range nb {
				softmaxRow(dst[n*k:(n+1)*k], cur[n*k:(n+1)*k])
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
func nchwToNHWC(dst, src []float32, nb int, s sampleShape) {
	if s.C == 1 || s.H*s.W == 1 {
		copy(dst, src)
		return
	}
	hw := s.H * s.W
	for n := range nb {
		d, x := dst[n*s.size():(n+1)*s.size()], src[n*s.size():(n+1)*s.size()]
		for c := range s.C {
			for p, v := range x[c*hw : (c+1)*hw] {
				d[p*s.C+c] = v
			}
		}
	}
}

// nhwcToNCHW copies nb samples of shape s from NHWC src into NCHW dst.
func nhwcToNCHW(dst, src []float32, nb int, s sampleShape) {
	hw := s.H * s.W
	for n := range nb {
		d, x := dst[n*s.size():(n+1)*s.size()], src[n*s.size():(n+1)*s.size()]
		for p := range hw {
			for c := range s.C {
				d[c*hw+p] = x[p*s.C+c]
			}
		}
	}
}

// gemm runs a Conv2D or Dense step on nb samples x into dst.
func (e *FloatEngine) gemm(st *f32Step, x []float32, nb int, dst []float32) error {
	m := nb * st.m1
	a := st.a.host[:m*st.k]
	if st.kind == f32Conv {
		f32Im2col(a, x, nb, st)
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
	f32Parallel(m, ch, func(r0, r1 int) {
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

// f32Im2col writes the im2col matrix of the NHWC x (nb samples) into a:
// row (n, oh, ow) holds the window at that output in (kh, kw, c) order,
// with 0 where the window leaves the image.
func f32Im2col(a, x []float32, nb int, st *f32Step) {
	l, in, out := st.conv, st.in, st.out
	K, C := st.k, in.C
	run := l.KW * C // one kernel row of the window
	f32Parallel(nb, st.m1*K, func(n0, n1 int) {
		for n := n0; n < n1; n++ {
			xn := x[n*in.size() : (n+1)*in.size()]
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

// f32MaxPool is the window maximum of NHWC x into dst; cells outside the
// image are never chosen, and a NaN in a window is its maximum.
func f32MaxPool(dst, x []float32, nb int, st *f32Step) {
	p, in, out := st.pool, st.in, st.out
	C := in.C
	f32Parallel(nb*out.H, out.W*p.KH*p.KW*C, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			n, oh := r/out.H, r%out.H
			xn := x[n*in.size() : (n+1)*in.size()]
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

// softmaxRow is y = exp(x − max x) / Σ exp(x − max x); y may be x.
func softmaxRow(y, x []float32) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	var s float64
	for i, v := range x {
		e := math.Exp(float64(v - m))
		y[i] = float32(e)
		s += e
	}
	for i := range y {
		y[i] = float32(float64(y[i]) / s)
	}
}

// f32Parallel runs fn over [0, n) in contiguous pieces on up to
// GOMAXPROCS goroutines when the work (per item) makes it worth it.
func f32Parallel(n, per int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n, max(1, n*per/(1<<15)))
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for k := range w {
		lo, hi := n*k/w, n*(k+1)/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// Forward runs batch samples x through net on be with a FloatEngine made
// for the call, and returns batch·(output size) values.
func (net *Net) Forward(be backend.Backend, x []float32, batch int) ([]float32, error) {
	e, err := NewFloatEngine(be, net)
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
