//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
	_ "github.com/quantkit/quantkit/gpu/preflight" // explains a missing GPU before cu's init exits
)

func init() {
	backend.Register("gpu", func(i int) (backend.Backend, error) { return Open(i) })
}

// Backend is one CUDA device. A goroutine of its own holds the device's
// context on a locked OS thread and runs every CUDA call; the methods send
// it closures and wait for them, so a Backend may be used from any number
// of goroutines (their operations run one at a time, in the order they
// arrive). Kernels run on one stream, in order: GEMMs, Quantize and
// Dequantize return once queued, Upload, Download, AbsMax and
// HistogramAbs once done. UploadAsync and DownloadAsync queue copies
// from and to AllocPinned memory on two more streams (transfer.go).
type Backend struct {
	index int
	name  string // "gpu:N"

	// Set once by Open, read-only after.
	devName string
	desc    string

	mu     sync.RWMutex // guards closed and sends on work
	closed bool
	work   chan func()
	done   chan struct{}

	// Owned by the owner goroutine.
	dev        cu.Device
	ctx        cu.CUContext
	retained   bool
	stream     cu.Stream
	mods       []cu.Module
	k          kernels
	jitInfo    string
	code       string        // which code of the fatbins runs (cuda.CodeName)
	loadTime   time.Duration // loading the modules (a JIT takes seconds, SASS milliseconds)
	ccMajor    int           // compute capability
	ccMinor    int
	sms        int // multiprocessors
	maxGridY   int
	start      cu.Event // Elapsed's events
	stop       cu.Event
	events     bool
	live       map[*allocation]struct{}
	scratch    scratchBuffers
	xfer       transfers   // staging buffers, pinned allocations, the copy stream
	lastLaunch string      // the last kernel queued, for errors at synchronization
	vendor     vendorState // cuBLAS and cuBLASLt (vendor.go)
}

var (
	_ backend.Backend     = (*Backend)(nil)
	_ backend.DeviceTimer = (*Backend)(nil)
	_ backend.MemoryInfo  = (*Backend)(nil)
)

// Open opens CUDA device index: it starts the goroutine that owns the
// device, creates (retains) its primary context, loads the kernels of
// package cuda (the SASS for the GPU, or the PTX, JIT-compiled, where none
// fits: Code) and creates a stream. The error of a failed
// step names the device and, for a kernel that does not compile, carries
// the JIT compiler's log.
func Open(index int) (*Backend, error) {
	b := &Backend{
		index: index,
		name:  fmt.Sprintf("gpu:%d", index),
		work:  make(chan func()),
		done:  make(chan struct{}),
		live:  map[*allocation]struct{}{},
	}
	if index < 0 {
		return nil, fmt.Errorf("%s: negative device index", b.name)
	}
	ready := make(chan error, 1)
	go b.run(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return b, nil
}

// run is the owner goroutine: it locks its OS thread, sets the device up,
// reports to ready, then runs closures until work is closed.
func (b *Backend) run(ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(b.done)
	if err := b.setup(); err != nil {
		b.teardown()
		ready <- err
		return
	}
	ready <- nil
	for fn := range b.work {
		fn()
	}
	b.teardown()
}

// setup runs on the owner goroutine.
func (b *Backend) setup() error {
	count, err := cu.NumDevices()
	if err != nil {
		return b.errorf("counting CUDA devices: %w", cuErr(err))
	}
	if b.index >= count {
		return b.errorf("no such device (%d CUDA devices)", count)
	}
	if b.dev, err = cu.GetDevice(b.index); err != nil {
		return b.errorf("%w", cuErr(err))
	}
	if b.devName, err = b.dev.Name(); err != nil {
		return b.errorf("reading the device name: %w", cuErr(err))
	}
	if b.ctx, err = b.dev.RetainPrimaryCtx(); err != nil {
		return b.errorf("retaining the primary context: %w", cuErr(err))
	}
	b.retained = true
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return b.errorf("making the context current: %w", cuErr(err))
	}
	attrs, err := b.dev.Attributes(cu.MultiprocessorCount, cu.MaxGridDimY, cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor)
	if err != nil {
		return b.errorf("reading device attributes: %w", cuErr(err))
	}
	b.sms, b.maxGridY = attrs[0], attrs[1]
	major, minor := attrs[2], attrs[3]
	b.ccMajor, b.ccMinor = major, minor
	if major < 8 {
		return b.errorf("compute capability %d.%d: the kernels need 8.0 or newer (Ampere, Hopper, Ada, Blackwell)", major, minor)
	}
	total, err := b.dev.TotalMem()
	if err != nil {
		return b.errorf("reading the memory size: %w", cuErr(err))
	}
	b.desc = fmt.Sprintf("%s, %s, compute capability %d.%d, %d SMs, CUDA driver %s",
		b.devName, gib(uint64(total)), major, minor, b.sms, driverVersion(cu.Version()))
	start := time.Now()
	if err := b.loadKernels(); err != nil {
		return b.errorf("%w", err)
	}
	b.loadTime = time.Since(start)
	b.desc += ", kernels: " + b.code
	if b.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return b.errorf("creating a stream: %w", cuErr(err))
	}
	return nil
}

// teardown frees everything setup and the operations made; it runs on the
// owner goroutine, last.
func (b *Backend) teardown() {
	if b.retained {
		if b.stream != (cu.Stream{}) {
			b.joinCopies()
			b.stream.Synchronize()
		}
		b.vendor.destroy()
		b.xfer.syncCopies()
		b.xfer.freeAll()
		for a := range b.live {
			if a.ptr != 0 {
				cu.MemFree(a.ptr)
			}
			a.freed.Store(true)
		}
		clear(b.live)
		b.scratch.free()
		if b.events {
			cu.DestroyEvent(&b.start)
			cu.DestroyEvent(&b.stop)
		}
		if b.stream != (cu.Stream{}) {
			b.stream.Destroy()
		}
		for _, m := range b.mods {
			m.Unload()
		}
		b.mods = nil
		cu.SetCurrentContext(cu.CUContext{})
		b.dev.ReleasePrimaryCtx()
		b.retained = false
	}
}

// errClosed is returned by the methods of a closed Backend.
var errClosed = errors.New("backend is closed")

// do runs fn on the owner goroutine and returns its error. A panic in fn
// is returned as an error.
func (b *Backend) do(fn func() error) error {
	res := make(chan error, 1)
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return b.errorf("%w", errClosed)
	}
	b.work <- func() {
		defer func() {
			if r := recover(); r != nil {
				res <- b.errorf("panic: %v", r)
			}
		}()
		res <- fn()
	}
	b.mu.RUnlock()
	return <-res
}

// Name is "gpu:N".
func (b *Backend) Name() string { return b.name }

// Describe is the device's name, memory, compute capability, number of
// multiprocessors, the driver's CUDA version and the kernels' code (Code).
func (b *Backend) Describe() string { return b.desc }

// Index is the CUDA device number.
func (b *Backend) Index() int { return b.index }

// DeviceName is the device's name as the driver reports it ("NVIDIA H100
// 80GB HBM3").
func (b *Backend) DeviceName() string { return b.devName }

// SMs is the number of multiprocessors.
func (b *Backend) SMs() int { return b.sms }

// Code says which code of the embedded fatbins runs on this GPU: "SASS
// sm_90" (compiled ahead for its architecture) or "PTX JIT from
// compute_80" (compiled by the driver at Open, slower to start and not the
// code make cuda-check inspected).
func (b *Backend) Code() string { return b.code }

// LoadTime is how long Open took to load the kernels: milliseconds for
// SASS, seconds where the driver JIT-compiled the PTX.
func (b *Backend) LoadTime() time.Duration { return b.loadTime }

// JITLog is what the JIT compiler said, module by module, when it compiled
// the kernels (registers, spills), empty when it said nothing.
func (b *Backend) JITLog() string { return b.jitInfo }

// Synchronize waits for the queued work; an error of a kernel that failed
// while running is reported here (or by the next operation that waits),
// with the last kernel queued.
func (b *Backend) Synchronize() error {
	return b.do(b.sync)
}

// sync waits for the stream and the async copies, on the owner goroutine.
func (b *Backend) sync() error {
	if err := b.joinCopies(); err != nil {
		return err
	}
	if err := b.stream.Synchronize(); err != nil {
		if b.lastLaunch != "" {
			return b.errorf("synchronizing after %s: %w", b.lastLaunch, cuErr(err))
		}
		return b.errorf("synchronizing: %w", cuErr(err))
	}
	return nil
}

// Close waits for queued work, frees every buffer and scratch buffer,
// unloads the kernels, releases the context and stops the owner
// goroutine. Buffers of a closed Backend must not be used; its methods
// return errors. Closing twice does nothing.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var err error
	res := make(chan error, 1)
	b.work <- func() { res <- b.sync() }
	close(b.work)
	b.mu.Unlock()
	err = <-res
	<-b.done
	return err
}

// MemInfo is the free and total memory of the device, in bytes.
func (b *Backend) MemInfo() (free, total uint64, err error) {
	err = b.do(func() error {
		f, t, err := cu.MemInfo()
		if err != nil {
			return b.errorf("reading free memory: %w", cuErr(err))
		}
		free, total = uint64(f), uint64(t)
		return nil
	})
	return free, total, err
}

// Elapsed runs fn, which queues work on this backend, between two events
// recorded on the stream and returns the device time between them in
// seconds. Work that other goroutines queue meanwhile is timed too. fn
// runs on the calling goroutine (it calls the backend's methods like any
// caller).
func (b *Backend) Elapsed(fn func() error) (float64, error) {
	err := b.do(func() error {
		if !b.events {
			var err error
			if b.start, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
				return b.errorf("creating an event: %w", cuErr(err))
			}
			if b.stop, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
				cu.DestroyEvent(&b.start)
				return b.errorf("creating an event: %w", cuErr(err))
			}
			b.events = true
		}
		if err := b.start.Record(b.stream); err != nil {
			return b.errorf("recording an event: %w", cuErr(err))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	var ms float64
	err = b.do(func() error {
		if err := b.stop.Record(b.stream); err != nil {
			return b.errorf("recording an event: %w", cuErr(err))
		}
		if err := b.stop.Synchronize(); err != nil {
			if b.lastLaunch != "" {
				return b.errorf("synchronizing after %s: %w", b.lastLaunch, cuErr(err))
			}
			return b.errorf("synchronizing: %w", cuErr(err))
		}
		var err error
		if ms, err = b.start.Elapsed(b.stop); err != nil {
			return b.errorf("reading the elapsed time: %w", cuErr(err))
		}
		return nil
	})
	return ms / 1e3, err
}

// gib formats bytes as GiB.
func gib(bytes uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(bytes)/(1<<30))
}

// driverVersion formats cuDriverGetVersion's 12080 as "12.8".
func driverVersion(v int) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}
