package plan

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/quantkit/quantkit/internal/fault"
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
	Workers        int  // blocks processed at once; 0 means GOMAXPROCS
	AllowNonFinite bool // quantize weights with NaN/Inf (see the package documentation)
	// MaxMemory is the memory budget the blocks are sized to (see
	// Plan.Stream); 0 means DefaultMaxMemory.
	MaxMemory int64
	// Kernels do the per-block loops; nil means ReferenceKernels (slow:
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

// Run processes the given items of p (indices into p.Items, in the order
// they are written), reading from src and writing each item's outputs to
// sink in that order, a block of rows at a time within opt.MaxMemory (see
// Plan.Stream and the package documentation). It returns the stats of
// every item, in the same order, or the first error (naming the tensor),
// after which the sink has been partly written and must be aborted by the
// caller.
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
	sch, err := p.Stream(items, workers, opt.MaxMemory)
	if err != nil {
		return nil, err
	}
	opt.Workers = workers
	return runStream(ctx, p, row, items, src, sink, opt, sch)
}

// runStream is Run with the blocks of sch.
func runStream(ctx context.Context, p *Plan, row *format, items []int, src Source, sink Sink, opt RunOptions, sch *Streaming) ([]Stats, error) {
	r, err := newStreamRun(p, row, items, src, sink, opt, sch)
	if err != nil {
		return nil, err
	}
	err = OrderedWindow(ctx, len(r.blocks), opt.Workers, sch.InFlight, r.do, r.emit)
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
	return r.stats, nil
}

// Ordered runs do(i) for i in [0, n) on up to workers goroutines and calls
// emit(i, result) on the calling goroutine in order of i. At most workers+1
// results exist at once, being computed or waiting for emit: an index is
// started only when fewer are in flight. It stops at the first error or
// when ctx is done. A memory fault in do or emit (a memory-mapped input
// truncated meanwhile) is an error (a *fault.Error), not a crash.
func Ordered[R any](ctx context.Context, n, workers int, do func(i int) (R, error), emit func(i int, r R) error) error {
	return OrderedWindow(ctx, n, workers, workers+1, do, emit)
}

// OrderedWindow is Ordered with at most window results at once (at least
// workers+1): a window wider than the workers lets them run ahead of an
// emit that stalls (a write waiting on the disk) by that many results.
func OrderedWindow[R any](ctx context.Context, n, workers, window int, do func(i int) (R, error), emit func(i int, r R) error) error {
	if workers < 1 {
		workers = 1
	}
	window = max(window, workers+1)
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		i   int
		r   R
		err error
	}
	tokens := make(chan struct{}, window) // one per item in flight
	next := make(chan int)
	results := make(chan result, window)
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

// countNonFinite is the number of NaN and ±Inf values in x. A float32 is
// not finite when its exponent bits are all ones: adding one to the
// exponent field then carries into bit 31, so the count needs no branch.
// Two values are tested in each 64-bit word (the carry of the low one
// stops at bit 31), in four words at a time, so that the additions do
// not wait on each other.
func countNonFinite(x []float32) int {
	const exp, one = 0x7f800000, 0x00800000
	n := 0
	for len(x) > 0 && uintptr(unsafe.Pointer(&x[0]))%8 != 0 {
		n += int((math.Float32bits(x[0])&exp + one) >> 31)
		x = x[1:]
	}
	if len(x) >= 8 {
		const exp2, one2, lanes = exp<<32 | exp, one<<32 | one, 1<<32 | 1
		w := unsafe.Slice((*uint64)(unsafe.Pointer(&x[0])), len(x)/2)
		var c0, c1, c2, c3 uint64 // a count in each 32-bit half
		i := 0
		for ; i+4 <= len(w); i += 4 {
			v := w[i : i+4 : i+4]
			c0 += (v[0]&exp2 + one2) >> 31 & lanes
			c1 += (v[1]&exp2 + one2) >> 31 & lanes
			c2 += (v[2]&exp2 + one2) >> 31 & lanes
			c3 += (v[3]&exp2 + one2) >> 31 & lanes
		}
		for _, c := range [4]uint64{c0, c1, c2, c3} {
			n += int(c&0xffffffff) + int(c>>32)
		}
		x = x[2*i:]
	}
	for _, v := range x {
		n += int((math.Float32bits(v)&exp + one) >> 31)
	}
	return n
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
