package plan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// ErrNonFinite is the error of a weight with NaN or ±Inf values when
// RunOptions.AllowNonFinite is not set.
var ErrNonFinite = errors.New("weight has non-finite values")

// Source is where Run reads input tensors; *checkpoint.Checkpoint is one.
type Source interface {
	Float32(name string) ([]float32, error)
	Bytes(name string) ([]byte, error)
}

// release lets a source that maps its files (*checkpoint.Checkpoint) drop
// the pages of a tensor that has been read, so that memory holds the
// tensors in flight and not all that was read.
func release(src Source, name string) {
	if r, ok := src.(interface{ Release(name string) }); ok {
		r.Release(name)
	}
}

// Sink is where Run writes output tensors, in plan order;
// *checkpoint.Writer and *gguf.Writer are sinks.
type Sink interface {
	WriteTensor(name string, data []byte) error
}

// Kernels are the loops over a whole tensor that Run spends its time in.
// Each must compute exactly what its reference does (ReferenceKernels):
// the output files do not depend on which kernels wrote them. The job
// that runs a plan picks them (the cpu package has SIMD ones, spread over
// the cores); plan itself knows no device.
type Kernels interface {
	// AbsMax is the largest finite |v| of x, 0 when there is none.
	AbsMax(x []float32) float32
	// Quantize writes the codes of x under p, as quant.Quantize.
	Quantize(codes []byte, x []float32, p *quant.Params) error
	// Dequantize writes the values of codes under p, as quant.Dequantize.
	Dequantize(x []float32, codes []byte, p *quant.Params) error
}

// ReferenceKernels are the plain loops of package quant, one goroutine
// each: the kernels every faster set is compared with.
type ReferenceKernels struct{}

// AbsMax is
//
//	var m float32
//	for _, v := range x {
//		if a := abs(v); a <= math.MaxFloat32 && a > m { // skips NaN and ±Inf
//			m = a
//		}
//	}
//	return m
func (ReferenceKernels) AbsMax(x []float32) float32 {
	var m float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a <= math.MaxFloat32 && a > m {
			m = a
		}
	}
	return m
}

// Quantize is quant.Quantize.
func (ReferenceKernels) Quantize(codes []byte, x []float32, p *quant.Params) error {
	return quant.Quantize(codes, x, p)
}

// Dequantize is quant.Dequantize.
func (ReferenceKernels) Dequantize(x []float32, codes []byte, p *quant.Params) error {
	return quant.Dequantize(x, codes, p)
}

// RunOptions tune Run.
type RunOptions struct {
	Workers        int  // items processed at once; 0 means GOMAXPROCS
	AllowNonFinite bool // quantize weights with NaN/Inf (see the package documentation)
	// Kernels do the per-tensor loops; nil means ReferenceKernels (slow:
	// a job passes the cpu package's).
	Kernels Kernels
	// Progress, if not nil, is called from Run's writing goroutine after
	// each item is written.
	Progress func(item int, bytesDone int64, itemsDone int)
}

// Stats measure one processed item.
type Stats struct {
	Item      int
	SQNR      float64 // dB of the dequantized weight against the input; +Inf for kept items
	NonFinite int     // NaN and ±Inf values replaced (AllowNonFinite)
}

// encoded is the result of one item.
type encoded struct {
	tensors [][]byte // parallel to the item's Outputs
	stats   Stats
}

// Run processes the given items of p (indices into p.Items, in the order
// they are written), reading from src and writing each item's outputs to
// sink in that order. It returns the stats of every item, in the same
// order, or the first error (naming the tensor), after which the sink has
// been partly written and must be aborted by the caller.
func Run(ctx context.Context, p *Plan, items []int, src Source, sink Sink, opt RunOptions) ([]Stats, error) {
	row, err := lookupFormat(p.Format)
	if err != nil {
		return nil, err
	}
	if opt.Kernels == nil {
		opt.Kernels = ReferenceKernels{}
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	stats := make([]Stats, len(items))
	var bytesDone int64
	err = Ordered(ctx, len(items), workers, func(i int) (encoded, error) {
		it := &p.Items[items[i]]
		r, err := process(row, p.Scheme, it, src, opt)
		if err != nil {
			return r, fmt.Errorf("tensor %q: %w", it.Name, err)
		}
		r.stats.Item = items[i]
		return r, nil
	}, func(i int, r encoded) error {
		it := &p.Items[items[i]]
		for j, o := range it.Outputs {
			if err := sink.WriteTensor(o.Name, r.tensors[j]); err != nil {
				return err
			}
		}
		release(src, it.Name) // a kept tensor's view is written now
		stats[i] = r.stats
		bytesDone += it.BytesIn
		if opt.Progress != nil {
			opt.Progress(items[i], bytesDone, i+1)
		}
		return nil
	})
	if ex, ok := src.(interface{ Explain(error) error }); ok {
		err = ex.Explain(err)
	}
	if err != nil {
		return nil, err
	}
	// A source rewritten in place while it was read gives no fault, but
	// mixes old and new data.
	if ch, ok := src.(interface{ Changed() error }); ok {
		if err := ch.Changed(); err != nil {
			return nil, err
		}
	}
	return stats, nil
}

// Ordered runs do(i) for i in [0, n) on up to workers goroutines and calls
// emit(i, result) on the calling goroutine in order of i. At most workers+1
// results exist at once, being computed or waiting for emit: an index is
// started only when fewer are in flight. It stops at the first error or
// when ctx is done. A memory fault in do or emit (a memory-mapped input
// truncated meanwhile) is an error (a *fault.Error), not a crash.
func Ordered[R any](ctx context.Context, n, workers int, do func(i int) (R, error), emit func(i int, r R) error) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		i   int
		r   R
		err error
	}
	tokens := make(chan struct{}, workers+1) // one per item in flight
	next := make(chan int)
	results := make(chan result, workers+1)
	var wg sync.WaitGroup
	go func() { // dispatcher
		defer close(next)
		for i := range n {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var r R
				err := fault.Catch(func() (err error) {
					r, err = do(i)
					return err
				})
				select {
				case results <- result{i, r, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	// On return, stop the dispatcher and wait for the workers, so that no
	// do(i) is still reading when the caller closes its source.
	defer func() { cancel(); wg.Wait() }()
	pending := map[int]result{}
	for want := 0; want < n; {
		res, ok := pending[want]
		if !ok {
			select {
			case res = <-results:
			case <-ctx.Done():
				return ctx.Err()
			}
			if res.err != nil {
				return res.err
			}
			pending[res.i] = res
			continue
		}
		delete(pending, want)
		if err := fault.Catch(func() error { return emit(want, res.r) }); err != nil {
			return err
		}
		<-tokens
		want++
	}
	return nil
}

// process reads, quantizes, encodes and measures one item.
func process(row *format, s quant.Scheme, it *Item, src Source, opt RunOptions) (encoded, error) {
	if it.Action == Keep {
		return keep(row, it, src)
	}
	xb, yb := floatBufs.get(), floatBufs.get()
	defer floatBufs.put(xb)
	defer floatBufs.put(yb)
	x, err := readFloat32(src, it.Name, *xb)
	if err != nil {
		return encoded{}, err
	}
	*xb = x
	release(src, it.Name) // x is a copy
	nonFinite := sanitize(x, opt.AllowNonFinite)
	if nonFinite > 0 && !opt.AllowNonFinite {
		return encoded{}, fmt.Errorf("%w: %d NaN or infinite values (--allow-nonfinite quantizes them: NaN as 0, ±Inf saturated)", ErrNonFinite, nonFinite)
	}
	y := (*yb)[:0] // dequantized, for the SQNR; every element is written
	if cap(y) < len(x) {
		y = make([]float32, len(x))
	}
	y = y[:len(x)]
	*yb = y
	var tensors [][]byte
	if row.isGGUF {
		tensors, err = encodeGGUF(row.gguf, it, x, y)
	} else {
		tensors, err = encodeInt(row.name, s, it, x, y, opt.Kernels)
	}
	if err != nil {
		return encoded{}, err
	}
	return encoded{tensors: tensors, stats: Stats{SQNR: quant.SQNR(x, y), NonFinite: nonFinite}}, nil
}

// floatBufs recycles the float32 buffers of process (the tensor read and
// its dequantized copy): allocating them per tensor cleared every byte
// first, which cost as much as reading them.
var floatBufs bufPool

type bufPool struct{ p sync.Pool }

func (b *bufPool) get() *[]float32 {
	if v, ok := b.p.Get().(*[]float32); ok {
		return v
	}
	return new([]float32)
}

func (b *bufPool) put(v *[]float32) { b.p.Put(v) }

// readFloat32 reads the named tensor as float32 into buf's memory where
// the source can (*checkpoint.Checkpoint can), else into a new slice.
func readFloat32(src Source, name string, buf []float32) ([]float32, error) {
	if s, ok := src.(interface {
		Float32Into(name string, dst []float32) ([]float32, error)
	}); ok {
		return s.Float32Into(name, buf)
	}
	return src.Float32(name)
}

// sanitize counts the NaN and ±Inf values of x and, when fix is set,
// replaces NaN with 0 and ±Inf with ± the largest finite |x|.
func sanitize(x []float32, fix bool) int {
	n := countNonFinite(x)
	if n == 0 || !fix {
		return n
	}
	var amax float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax && a <= math.MaxFloat32 {
			amax = a
		}
	}
	for i, v := range x {
		switch {
		case math.IsNaN(float64(v)):
			x[i] = 0
		case math.IsInf(float64(v), 1):
			x[i] = amax
		case math.IsInf(float64(v), -1):
			x[i] = -amax
		}
	}
	return n
}

// countNonFinite is the number of NaN and ±Inf values in x. A float32 is
// not finite when its exponent bits are all ones: adding one to the
// exponent field then carries into bit 31, so the count needs no branch
// (four sums, so that the additions do not wait on each other).
func countNonFinite(x []float32) int {
	const exp, one = 0x7f800000, 0x00800000
	var n0, n1, n2, n3 uint32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		n0 += (math.Float32bits(v[0])&exp + one) >> 31
		n1 += (math.Float32bits(v[1])&exp + one) >> 31
		n2 += (math.Float32bits(v[2])&exp + one) >> 31
		n3 += (math.Float32bits(v[3])&exp + one) >> 31
	}
	n := int(n0) + int(n1) + int(n2) + int(n3)
	for _, v := range x[i:] {
		n += int((math.Float32bits(v)&exp + one) >> 31)
	}
	return n
}

// keep copies a kept tensor: byte for byte, or converted to F32 for a GGUF
// output that has no type for it.
func keep(row *format, it *Item, src Source) (encoded, error) {
	st := Stats{SQNR: math.Inf(1)}
	if it.Outputs[0].Bytes != it.BytesIn {
		x, err := src.Float32(it.Name)
		if err != nil {
			return encoded{}, err
		}
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return encoded{tensors: [][]byte{b}, stats: st}, nil
	}
	b, err := src.Bytes(it.Name)
	if err != nil {
		return encoded{}, err
	}
	return encoded{tensors: [][]byte{b}, stats: st}, nil
}

// fitMinMax is quant.FitMinMax, to the bit; symmetric schemes take their
// scales from k.AbsMax (the cpu package's runs at memory speed) through
// quant.FitAbsMax, where FitMinMax's generic loop took a quarter of a
// checkpoint's quantization time.
func fitMinMax(k Kernels, s quant.Scheme, x []float32, shape []int) (*quant.Params, error) {
	if s.Symmetric {
		return quant.FitAbsMax(s, x, shape, k.AbsMax)
	}
	return quant.FitMinMax(s, x, shape)
}

// encodeInt quantizes x under s for the compressed-tensors and safetensors
// formats, writing the dequantized values into y.
func encodeInt(f Format, s quant.Scheme, it *Item, x, y []float32, k Kernels) ([][]byte, error) {
	p, err := fitMinMax(k, s, x, it.Shape)
	if err != nil {
		return nil, err
	}
	if it.ScaleDType != "F32" {
		if err := ctensors.RoundScales(p, it.ScaleDType); err != nil {
			return nil, err
		}
	}
	codes := make([]byte, s.PackedLen(len(x)))
	if err := k.Quantize(codes, x, p); err != nil {
		return nil, err
	}
	if err := k.Dequantize(y, codes, p); err != nil {
		return nil, err
	}
	if ct, ok := CTFormat(f, s); ok {
		ts, err := ctensors.EncodeWeight(it.Name, codes, p, ct, it.ScaleDType)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(ts))
		for i, t := range ts {
			if t.Name != it.Outputs[i].Name {
				return nil, fmt.Errorf("encoded tensor %q where the plan has %q", t.Name, it.Outputs[i].Name)
			}
			out[i] = t.Data
		}
		return out, nil
	}
	scales := make([]byte, 4*len(p.Scales))
	for i, v := range p.Scales {
		binary.LittleEndian.PutUint32(scales[4*i:], math.Float32bits(v))
	}
	out := [][]byte{codes, scales}
	if !s.Symmetric {
		zp := make([]byte, 4*len(p.ZeroPoints))
		for i, v := range p.ZeroPoints {
			binary.LittleEndian.PutUint32(zp[4*i:], uint32(v))
		}
		out = append(out, zp)
	}
	return out, nil
}

// encodeGGUF quantizes x into GGUF blocks of type t, writing the
// dequantized values into y.
func encodeGGUF(t gguf.Type, it *Item, x, y []float32) ([][]byte, error) {
	b := make([]byte, it.Outputs[0].Bytes)
	switch t {
	case gguf.TypeQ8_0:
		gguf.QuantizeQ8_0(b, x)
		gguf.DequantizeQ8_0(y, b)
	case gguf.TypeQ4_0:
		gguf.QuantizeQ4_0(b, x)
		gguf.DequantizeQ4_0(y, b)
	default:
		return nil, fmt.Errorf("GGUF type %s not supported", t)
	}
	return [][]byte{b}, nil
}
