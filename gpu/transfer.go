//go:build cuda

package gpu

import (
	"fmt"
	"math"
	"sort"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/gpu/internal/cudrv"
)

// Host <-> device transfers.
//
// Copies from and to pageable memory (an ordinary Go slice) are not
// asynchronous in CUDA: the driver stages them through its own buffers
// while the host waits. Upload and Download of at least stageMin bytes
// therefore go through two page-locked staging buffers of stageChunk
// bytes each, in turns: the host copies chunk i+1 into one while the DMA
// engine moves chunk i from the other (an event per buffer says when its
// DMA is done), so the host copy and the transfer overlap. A slice from
// AllocPinned needs no staging: the DMA engine reads or writes it
// directly, and UploadAsync / DownloadAsync queue such copies on streams
// of their own, one per direction (GPUs have a copy engine for each), where
// they overlap the kernels of the compute stream and each other.
const (
	stageChunk = 4 << 20
	stageMin   = 1 << 20
)

// pinnedBlock is one AllocPinned allocation.
type pinnedBlock struct {
	p     unsafe.Pointer
	bytes int
}

// transfers is the transfer state of a Backend, owned by the owner
// goroutine.
type transfers struct {
	pinned []pinnedBlock // sorted by address
	stage  [2]unsafe.Pointer
	staged [2]cu.Event // DMA of stage[i] done
	ready  bool        // stage and staged made

	up, down    copyStream // UploadAsync, DownloadAsync
	computeMark cu.Event   // recorded on the compute stream before a DownloadAsync
}

// copyStream is a stream of async copies and the event recorded after its
// last one.
type copyStream struct {
	s       cu.Stream
	done    cu.Event
	pending bool // the compute stream has not waited for done yet
}

// AllocPinned allocates n elements of dt in page-locked host memory
// (cuMemAllocHost), zeroed, as a []float32, []int8, []uint8 or []int32.
// Upload and Download copy such slices directly, without staging; free
// releases the memory once the copies queued on it are done, and Close
// releases what is left. The slice must not be used after either.
func (b *Backend) AllocPinned(dt backend.DType, n int) (host any, free func() error, err error) {
	switch dt {
	case backend.F32, backend.S8, backend.U8, backend.S32:
	default:
		return nil, nil, b.errorf("AllocPinned of unknown type %v", dt)
	}
	if n <= 0 || n > math.MaxInt/dt.Size() {
		return nil, nil, b.errorf("AllocPinned of %d %v elements", n, dt)
	}
	bytes := n * dt.Size()
	var p unsafe.Pointer
	err = b.do(func() error {
		var err error
		if p, err = cudrv.MemAllocHost(bytes); err != nil {
			return b.errorf("AllocPinned of %d %v (%d bytes of page-locked host memory): %w", n, dt, bytes, err)
		}
		clear(unsafe.Slice((*byte)(p), bytes))
		b.xfer.addPinned(pinnedBlock{p, bytes})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	switch dt {
	case backend.F32:
		host = unsafe.Slice((*float32)(p), n)
	case backend.S8:
		host = unsafe.Slice((*int8)(p), n)
	case backend.U8:
		host = unsafe.Slice((*uint8)(p), n)
	default:
		host = unsafe.Slice((*int32)(p), n)
	}
	freed := false
	free = func() error {
		return b.do(func() error {
			if freed {
				return b.errorf("AllocPinned memory freed twice")
			}
			freed = true
			// Copies queued on it, on either stream, must end first.
			if err := b.sync(); err != nil {
				return err
			}
			b.xfer.removePinned(p)
			if err := cudrv.MemFreeHost(p); err != nil {
				return b.errorf("freeing %d bytes of page-locked memory: %w", bytes, err)
			}
			return nil
		})
	}
	return host, free, nil
}

var _ backend.PinnedAllocator = (*Backend)(nil)

func (t *transfers) addPinned(blk pinnedBlock) {
	i := sort.Search(len(t.pinned), func(i int) bool { return uintptr(t.pinned[i].p) > uintptr(blk.p) })
	t.pinned = append(t.pinned, pinnedBlock{})
	copy(t.pinned[i+1:], t.pinned[i:])
	t.pinned[i] = blk
}

func (t *transfers) removePinned(p unsafe.Pointer) {
	for i, blk := range t.pinned {
		if blk.p == p {
			t.pinned = append(t.pinned[:i], t.pinned[i+1:]...)
			return
		}
	}
}

// isPinned reports whether [p, p+bytes) lies in one AllocPinned block.
func (t *transfers) isPinned(p unsafe.Pointer, bytes int64) bool {
	a := uintptr(p)
	i := sort.Search(len(t.pinned), func(i int) bool { return uintptr(t.pinned[i].p) > a }) - 1
	if i < 0 {
		return false
	}
	blk := t.pinned[i]
	return a+uintptr(bytes) <= uintptr(blk.p)+uintptr(blk.bytes)
}

// setupStaging makes the staging buffers and their events, once.
func (b *Backend) setupStaging() error {
	t := &b.xfer
	if t.ready {
		return nil
	}
	for i := range t.stage {
		p, err := cudrv.MemAllocHost(stageChunk)
		if err != nil {
			t.freeStaging()
			return b.errorf("allocating a %d-byte page-locked staging buffer: %w", stageChunk, err)
		}
		t.stage[i] = p
		if t.staged[i], err = cu.MakeEvent(cu.DisableTiming); err != nil {
			t.freeStaging()
			return b.errorf("creating an event: %w", cuErr(err))
		}
	}
	t.ready = true
	return nil
}

// freeStaging releases what setupStaging made; the streams must be idle.
func (t *transfers) freeStaging() {
	for i := range t.stage {
		if t.stage[i] != nil {
			cudrv.MemFreeHost(t.stage[i])
			t.stage[i] = nil
		}
		if t.staged[i] != (cu.Event{}) {
			cu.DestroyEvent(&t.staged[i])
		}
	}
	t.ready = false
}

// freeAll releases every transfer resource, at teardown (streams idle).
func (t *transfers) freeAll() {
	t.freeStaging()
	for _, blk := range t.pinned {
		cudrv.MemFreeHost(blk.p)
	}
	t.pinned = nil
	if t.computeMark != (cu.Event{}) {
		cu.DestroyEvent(&t.computeMark)
	}
	for _, c := range []*copyStream{&t.up, &t.down} {
		if c.done != (cu.Event{}) {
			cu.DestroyEvent(&c.done)
		}
		if c.s != (cu.Stream{}) {
			c.s.Destroy()
		}
		*c = copyStream{}
	}
}

// syncCopies waits for both copy streams (teardown).
func (t *transfers) syncCopies() {
	for _, c := range []*copyStream{&t.up, &t.down} {
		if c.s != (cu.Stream{}) {
			c.s.Synchronize()
		}
	}
}

// upload copies bytes from host p to device dst on the compute stream:
// directly from pinned memory or below stageMin, else through the staging
// buffers. It returns with the copies queued; the caller synchronizes (and
// keeps p alive until then).
func (b *Backend) upload(dst cu.DevicePtr, p unsafe.Pointer, bytes int64, what string) error {
	if bytes < stageMin || b.xfer.isPinned(p, bytes) {
		if err := cu.MemcpyHtoDAsync(dst, p, bytes, b.stream); err != nil {
			return b.asyncErr(what, err)
		}
		return nil
	}
	if err := b.setupStaging(); err != nil {
		return err
	}
	t := &b.xfer
	for off, i := int64(0), 0; off < bytes; off, i = off+stageChunk, i^1 {
		n := min(stageChunk, bytes-off)
		// The DMA that last read stage[i], two chunks ago, must be done.
		if err := t.staged[i].Synchronize(); err != nil {
			return b.asyncErr(what, err)
		}
		copy(unsafe.Slice((*byte)(t.stage[i]), n), unsafe.Slice((*byte)(unsafe.Add(p, off)), n))
		if err := cu.MemcpyHtoDAsync(dst+cu.DevicePtr(off), t.stage[i], n, b.stream); err != nil {
			return b.asyncErr(what, err)
		}
		if err := t.staged[i].Record(b.stream); err != nil {
			return b.errorf("%s: recording an event: %w", what, cuErr(err))
		}
	}
	return nil
}

// download copies bytes from device src to host p on the compute stream
// and waits for them: directly into pinned memory or below stageMin, else
// through the staging buffers, the DMA of the next chunk running while the
// host copies out the last one.
func (b *Backend) download(p unsafe.Pointer, src cu.DevicePtr, bytes int64, what string) error {
	if bytes < stageMin || b.xfer.isPinned(p, bytes) {
		if err := cu.MemcpyDtoHAsync(p, src, bytes, b.stream); err != nil {
			return b.asyncErr(what, err)
		}
		return b.sync()
	}
	if err := b.setupStaging(); err != nil {
		return err
	}
	t := &b.xfer
	queue := func(off int64, i int) error {
		n := min(stageChunk, bytes-off)
		if err := cu.MemcpyDtoHAsync(t.stage[i], src+cu.DevicePtr(off), n, b.stream); err != nil {
			return b.asyncErr(what, err)
		}
		if err := t.staged[i].Record(b.stream); err != nil {
			return b.errorf("%s: recording an event: %w", what, cuErr(err))
		}
		return nil
	}
	if err := queue(0, 0); err != nil {
		return err
	}
	for off, i := int64(0), 0; off < bytes; off, i = off+stageChunk, i^1 {
		if next := off + stageChunk; next < bytes {
			if err := queue(next, i^1); err != nil {
				return err
			}
		}
		if err := t.staged[i].Synchronize(); err != nil {
			return b.asyncErr(what, err)
		}
		n := min(stageChunk, bytes-off)
		copy(unsafe.Slice((*byte)(unsafe.Add(p, off)), n), unsafe.Slice((*byte)(t.stage[i]), n))
	}
	return b.sync()
}

// setupCopies makes the copy streams and their events, once.
func (b *Backend) setupCopies() error {
	t := &b.xfer
	if t.computeMark != (cu.Event{}) {
		return nil
	}
	for _, c := range []*copyStream{&t.up, &t.down} {
		var err error
		if c.done, err = cu.MakeEvent(cu.DisableTiming); err != nil {
			return b.errorf("creating an event: %w", cuErr(err))
		}
		if c.s, err = cu.MakeStream(cu.NonBlocking); err != nil {
			return b.errorf("creating a copy stream: %w", cuErr(err))
		}
	}
	var err error
	if t.computeMark, err = cu.MakeEvent(cu.DisableTiming); err != nil {
		return b.errorf("creating an event: %w", cuErr(err))
	}
	return nil
}

// joinCopies makes the compute stream wait for the async copies queued so
// far, before the work queued next; every operation that queues work on
// the compute stream calls it first.
func (b *Backend) joinCopies() error {
	for _, c := range []*copyStream{&b.xfer.up, &b.xfer.down} {
		if !c.pending {
			continue
		}
		if err := b.stream.Wait(c.done, 0); err != nil {
			return b.errorf("waiting for a copy stream: %w", cuErr(err))
		}
		c.pending = false
	}
	return nil
}

// pinnedHost checks that host slice h fits x and lies in AllocPinned
// memory.
func (b *Backend) pinnedHost(op string, x *Buffer, h any) (unsafe.Pointer, error) {
	p, err := b.checkHost(op, x, h)
	if err != nil {
		return nil, err
	}
	if x.n > 0 && !b.xfer.isPinned(p, x.Bytes()) {
		return nil, b.errorf("%s: the host slice is not memory from AllocPinned", op)
	}
	return p, nil
}

// UploadAsync queues a copy of src, a slice from AllocPinned, into dst on
// the backend's upload stream and returns at once. The copy does not wait
// for the work queued before it, which it may overlap: dst must be memory
// that work does not use (a second buffer while a kernel reads the first).
// Work queued after it waits for it. src must keep its values until the
// copy is done (Synchronize).
func (b *Backend) UploadAsync(dst backend.Buffer, src any) error {
	x, err := b.own("UploadAsync", "destination", dst)
	if err != nil {
		return err
	}
	p, err := b.pinnedHost("UploadAsync", x, src)
	if err != nil || x.n == 0 {
		return err
	}
	return b.do(func() error {
		if err := b.setupCopies(); err != nil {
			return err
		}
		up := &b.xfer.up
		if err := cu.MemcpyHtoDAsync(x.ptr(), p, x.Bytes(), up.s); err != nil {
			return b.asyncErr(fmt.Sprintf("UploadAsync of %d %v", x.n, x.dt), err)
		}
		return b.markCopy(up)
	})
}

// DownloadAsync queues a copy of src into dst, a slice from AllocPinned,
// on the backend's download stream, after the work queued before on the
// compute stream, and returns at once; dst holds the values once
// Synchronize returns. Work queued after it does not wait for it, and may
// overlap it: that work must not write src. Uploads queued later do not
// wait for it either.
func (b *Backend) DownloadAsync(dst any, src backend.Buffer) error {
	x, err := b.own("DownloadAsync", "source", src)
	if err != nil {
		return err
	}
	p, err := b.pinnedHost("DownloadAsync", x, dst)
	if err != nil || x.n == 0 {
		return err
	}
	return b.do(func() error {
		if err := b.setupCopies(); err != nil {
			return err
		}
		t := &b.xfer
		// After the compute stream's work, and so after the uploads it
		// waits for.
		if err := b.joinCopies(); err != nil {
			return err
		}
		if err := t.computeMark.Record(b.stream); err != nil {
			return b.errorf("recording an event: %w", cuErr(err))
		}
		if err := t.down.s.Wait(t.computeMark, 0); err != nil {
			return b.errorf("ordering the download stream: %w", cuErr(err))
		}
		if err := cu.MemcpyDtoHAsync(p, x.ptr(), x.Bytes(), t.down.s); err != nil {
			return b.asyncErr(fmt.Sprintf("DownloadAsync of %d %v", x.n, x.dt), err)
		}
		return b.markCopy(&t.down)
	})
}

// markCopy records c.done after the copy just queued on c; the compute
// stream waits for it before its next work (joinCopies).
func (b *Backend) markCopy(c *copyStream) error {
	if err := c.done.Record(c.s); err != nil {
		return b.errorf("recording an event: %w", cuErr(err))
	}
	c.pending = true
	return nil
}
