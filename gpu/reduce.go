//go:build cuda

package gpu

import (
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
)

// AbsMax is the largest |x| over the finite values of x, 0 when there are
// none (absmax_f32). It waits for the result.
func (b *Backend) AbsMax(x backend.Buffer) (float32, error) {
	X, err := b.typed("AbsMax", "x", x, backend.F32)
	if err != nil {
		return 0, err
	}
	if X.n == 0 {
		return 0, nil
	}
	var bits [1]uint32
	err = b.do(func() error {
		what := fmt.Sprintf("n=%d", X.n)
		out, err := b.ensure(&b.scratch.reduce, 4, "AbsMax")
		if err != nil {
			return err
		}
		if err := cu.MemsetD32Async(out, 0, 1, b.stream); err != nil {
			return b.asyncErr("AbsMax "+what, err)
		}
		if err := b.launch(&b.k.absMax, b.absMaxGrid(X.n), 1, absMaxThreads, 0, what,
			ptrArg(X.ptr()), longArg(X.n), ptrArg(out)); err != nil {
			return err
		}
		if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&bits[0]), out, 4, b.stream); err != nil {
			return b.asyncErr("AbsMax "+what+": reading the result", err)
		}
		return b.sync()
	})
	if err != nil {
		return 0, err
	}
	return math.Float32frombits(bits[0]), nil
}

// HistogramAbs adds to counts the number of finite values of x with
// floor(|x|/width) = bin, clamping bins past the end to the last one, and
// returns the number of non-finite values. width must be a power of two in
// [2^-126, 2^127]. Up to histSmemMaxBins bins are counted in shared memory
// (hist_abs_f32), more in global memory (hist_abs_f32_global). It waits
// for the result.
func (b *Backend) HistogramAbs(x backend.Buffer, width float32, counts []int64) (int64, error) {
	X, err := b.typed("HistogramAbs", "x", x, backend.F32)
	if err != nil {
		return 0, err
	}
	if err := backend.CheckHistogram(width, len(counts)); err != nil {
		return 0, b.errorf("HistogramAbs: %w", err)
	}
	bins := len(counts)
	if bins > math.MaxInt32-1 {
		return 0, b.errorf("HistogramAbs: %d bins exceed the kernels' 32-bit sizes", bins)
	}
	if X.n == 0 {
		return 0, nil
	}
	// counts[0:bins], then the non-finite count.
	dev := make([]uint64, bins+1)
	err = b.do(func() error {
		what := fmt.Sprintf("n=%d bins=%d", X.n, bins)
		nbytes := int64(bins+1) * 8
		out, err := b.ensure(&b.scratch.reduce, nbytes, "HistogramAbs")
		if err != nil {
			return err
		}
		if err := cu.MemsetD32Async(out, 0, nbytes/4, b.stream); err != nil {
			return b.asyncErr("HistogramAbs "+what, err)
		}
		args := []arg{ptrArg(X.ptr()), longArg(X.n), f32Arg(1 / width), intArg(bins),
			ptrArg(out), ptrArg(out + cu.DevicePtr(bins*8))}
		if bins <= histSmemMaxBins {
			if err := b.launch(&b.k.hist, b.histGrid(X.n), 1, histThreads, bins*4, what, args...); err != nil {
				return err
			}
		} else if err := b.launch(&b.k.histGlobal, b.histGrid(X.n), 1, histThreads, 0, what, args...); err != nil {
			return err
		}
		if err := cu.MemcpyDtoHAsync(unsafe.Pointer(unsafe.SliceData(dev)), out, nbytes, b.stream); err != nil {
			return b.asyncErr("HistogramAbs "+what+": reading the counts", err)
		}
		return b.sync()
	})
	if err != nil {
		return 0, err
	}
	for i, c := range dev[:bins] {
		counts[i] += int64(c)
	}
	return int64(dev[bins]), nil
}
