package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/quant"
)

// MemoryOps are the memory-bound kernels Memory knows, each with the bytes
// it reads and writes per element (float32 values, packed codes).
var MemoryOps = []memoryOp{
	{"absmax", 4},
	{"histogram", 4},
	{"quantize-int8", 4 + 1},
	{"quantize-int4-g128", 4 + 0.5},
	{"dequantize-int8", 1 + 4},
	// Host <-> device transfers of float32 arrays (Upload, Download), each
	// byte counted once, as a link's rate is; timed like the kernels (CUDA
	// events on a GPU), in rows of their own. A backend with page-locked
	// host memory (backend.PinnedAllocator) adds a row from and to such
	// memory, Impl "quantkit-pinned".
	{"upload", 4},
	{"download", 4},
}

type memoryOp struct {
	Name         string
	BytesPerElem float64
}

// MemoryOpNames lists the names of MemoryOps.
func MemoryOpNames() []string {
	var ns []string
	for _, op := range MemoryOps {
		ns = append(ns, op.Name)
	}
	return ns
}

// MemoryOptions selects what Memory measures.
type MemoryOptions struct {
	Sizes []int // elements
	Ops   []string
	// Copy adds a device-to-device copy of the float32 input at each size
	// (op "copy", 8 bytes an element) where the backend has one
	// (backend.DeviceCopier), and each kernel's rate over it (VsCopy).
	Copy     bool
	Timing   Timing
	Energy   *EnergyOptions
	Progress func(done, total int, what string)
}

// Memory measures the memory-bound kernels on b over Gaussian data of each
// size. Rates are in bytes read plus bytes written per second, so they
// compare directly with a copy's (which reads and writes each byte once).
// Cancelling ctx stops it before the next measurement, with ctx's error.
func Memory(ctx context.Context, b backend.Backend, opt MemoryOptions) (*Report, error) {
	ops := make([]memoryOp, 0, len(opt.Ops))
	for _, name := range opt.Ops {
		found := false
		for _, op := range MemoryOps {
			if op.Name == name {
				ops, found = append(ops, op), true
			}
		}
		if !found {
			return nil, fmt.Errorf("bench: unknown memory op %q (want one of %v)", name, MemoryOpNames())
		}
	}
	rep := &Report{Date: time.Now().UTC(), Machine: ThisMachine(), Device: b.Describe()}
	copier, _ := b.(backend.DeviceCopier)
	if !opt.Copy {
		copier = nil
	}
	done, total := 0, memoryCases(opt.Sizes, len(ops), copier != nil)
	for _, n := range opt.Sizes {
		if n <= 0 {
			return nil, fmt.Errorf("bench: size %d must be positive", n)
		}
		env, err := newMemoryEnv(b, n)
		if err != nil {
			return nil, fmt.Errorf("bench: %d elements on %s: %w", n, b.Name(), err)
		}
		if copier != nil {
			if err := ctx.Err(); err != nil {
				env.free()
				return nil, fmt.Errorf("bench: %w", err)
			}
			if opt.Progress != nil {
				opt.Progress(done, total, fmt.Sprintf("copy %d", n))
			}
			done++
			bytes := 8 * float64(n)
			run := func() error { return copier.CopyDevice(env.y, env.x) }
			sec, reps, e, err := measureKernel(b, opt.Timing, opt.Energy, run, bytes)
			if err != nil {
				env.free()
				return nil, fmt.Errorf("bench: copy of %d elements on %s: %w", n, b.Name(), err)
			}
			rep.Results = append(rep.Results, Result{Op: CopyOp, Impl: "device", Device: b.Name(), DType: "fp32",
				Elements: n, Seconds: sec, Reps: reps, BytesPerSecond: bytes / sec, Energy: e})
		}
		for _, op := range ops {
			if err := ctx.Err(); err != nil {
				env.free()
				return nil, fmt.Errorf("bench: %w", err)
			}
			if opt.Progress != nil {
				opt.Progress(done, total, fmt.Sprintf("%s %d", op.Name, n))
			}
			done++
			bytes := op.BytesPerElem * float64(n)
			sec, reps, e, err := measureKernel(b, opt.Timing, opt.Energy, env.run(op.Name), bytes)
			if err != nil {
				env.free()
				return nil, fmt.Errorf("bench: %s of %d elements on %s: %w", op.Name, n, b.Name(), err)
			}
			rep.Results = append(rep.Results, Result{Op: op.Name, Impl: "quantkit", Device: b.Name(), DType: "fp32",
				Elements: n, Seconds: sec, Reps: reps, BytesPerSecond: bytes / sec, Energy: e})
			if run := env.runPinned(op.Name); run != nil {
				sec, reps, e, err := measureKernel(b, opt.Timing, opt.Energy, run, bytes)
				if err != nil {
					env.free()
					return nil, fmt.Errorf("bench: %s of %d elements from pinned memory on %s: %w", op.Name, n, b.Name(), err)
				}
				rep.Results = append(rep.Results, Result{Op: op.Name, Impl: "quantkit-pinned", Device: b.Name(), DType: "fp32",
					Elements: n, Seconds: sec, Reps: reps, BytesPerSecond: bytes / sec, Energy: e})
			}
		}
		env.free()
	}
	relateToCopy(rep.Results)
	return rep, nil
}

// CopyOp is the Op of the device-to-device copy rows.
const CopyOp = "copy"

// memoryCases is the number of measurements of a memory suite.
func memoryCases(sizes []int, ops int, copy bool) int {
	if copy {
		ops++
	}
	return len(sizes) * ops
}

// memoryEnv holds one size's buffers on the device.
type memoryEnv struct {
	b            backend.Backend
	x, y, c8, c4 backend.Buffer
	p8, p4       *quant.Params
	counts       []int64
	width        float32
	bufs         []backend.Buffer
	host, out    []float32 // Go slices for upload and download
	pinned       []float32 // page-locked, when the backend has such memory
	freePinned   func() error
}

func newMemoryEnv(b backend.Backend, n int) (_ *memoryEnv, err error) {
	e := &memoryEnv{b: b, counts: make([]int64, quant.DefaultBins)}
	defer func() {
		if err != nil {
			e.free()
		}
	}()
	alloc := func(dt backend.DType, n int) backend.Buffer {
		if err != nil {
			return nil
		}
		var buf backend.Buffer
		buf, err = b.Alloc(dt, n)
		e.bufs = append(e.bufs, buf)
		return buf
	}
	e.x, e.y = alloc(backend.F32, n), alloc(backend.F32, n)
	e.c8, e.c4 = alloc(backend.U8, n), alloc(backend.U8, (n+1)/2)
	if err != nil {
		return nil, err
	}
	host := randF32(rand.New(rand.NewPCG(2, uint64(n))), n)
	if err = b.Upload(e.x, host); err != nil {
		return nil, err
	}
	e.host, e.out = host, make([]float32, n)
	if e.p8, err = quant.FitMinMax(quant.Int8PerTensor, host, []int{n}); err != nil {
		return nil, err
	}
	g := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 128}
	if e.p4, err = quant.FitMinMax(g, host, []int{n}); err != nil {
		return nil, err
	}
	h := quant.NewHistogram(quant.DefaultBins)
	h.Add(host)
	e.width = float32(h.Width())
	return e, nil
}

func (e *memoryEnv) run(op string) func() error {
	b := e.b
	switch op {
	case "absmax":
		return func() error { _, err := b.AbsMax(e.x); return err }
	case "histogram":
		return func() error { _, err := b.HistogramAbs(e.x, e.width, e.counts); return err }
	case "quantize-int8":
		return func() error { return b.Quantize(e.c8, e.x, e.p8) }
	case "quantize-int4-g128":
		return func() error { return b.Quantize(e.c4, e.x, e.p4) }
	case "dequantize-int8":
		return func() error { return b.Dequantize(e.y, e.c8, e.p8) }
	case "upload":
		return func() error { return b.Upload(e.y, e.host) }
	case "download":
		return func() error { return b.Download(e.out, e.x) }
	}
	panic("bench: memory op " + op)
}

// runPinned is op from and to page-locked host memory, for the transfer
// ops on a backend that has it (allocated on first use); nil otherwise.
func (e *memoryEnv) runPinned(op string) func() error {
	pa, ok := e.b.(backend.PinnedAllocator)
	if !ok || (op != "upload" && op != "download") {
		return nil
	}
	if e.pinned == nil {
		h, free, err := pa.AllocPinned(backend.F32, len(e.host))
		if err != nil {
			return func() error { return err }
		}
		e.pinned, e.freePinned = h.([]float32), free
		copy(e.pinned, e.host)
	}
	if op == "upload" {
		return func() error { return e.b.Upload(e.y, e.pinned) }
	}
	return func() error { return e.b.Download(e.pinned, e.x) }
}

func (e *memoryEnv) free() {
	if e.freePinned != nil {
		e.freePinned()
		e.pinned, e.freePinned = nil, nil
	}
	for _, buf := range e.bufs {
		if buf != nil {
			e.b.Free(buf)
		}
	}
	e.bufs = nil
}
