// Package backend is the one interface every compute device of quantkit
// implements (the pure-Go cpu backend, the CUDA gpu backend), and a
// registry through which commands open one by name.
//
// A backend owns its memory: callers allocate Buffers on it (zeroed), upload
// host slices, run operations, and download results. Buffers that are host
// memory (cpu's) are HostBuffers, which host code reads and writes in
// place instead of copying. All matrices are row-major.
// Both GEMM operands are K-contiguous, as tensor-core integer MMA needs and
// as weights are stored ([out, in]): C[m×n] = A[m×k] · B[n×k]ᵀ.
//
// The conformance suite in backendtest states exactly what each operation
// must compute; quant is the reference for quantization.
package backend

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/quant"
)

// DType is the element type of a Buffer.
type DType int

const (
	F32 DType = iota // float32
	S8               // int8
	U8               // uint8, also packed quantization codes
	S32              // int32
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32, S32:
		return 4
	}
	return 1
}

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case S8:
		return "s8"
	case U8:
		return "u8"
	case S32:
		return "s32"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Buffer is memory on a backend.
type Buffer interface {
	DType() DType
	Len() int // elements
	// Slice is a view of elements [off, off+n) sharing the memory.
	Slice(off, n int) Buffer
}

// Epilogue says what GemmS8 does with the int32 accumulators. For each
// output (i, j), with acc = Σ_k A[i,k]·B[j,k] computed exactly in int32:
//
//	a   = acc + ColOffset[j]                       (int32, wrapping; 0 when ColOffset is nil)
//	S32 output: a
//	y   = float32(float32(a) * RowScale[i]) * ColScale[j] + Bias[j]
//	                                                (float32, in this order, no fused multiply-add)
//	y   = max(y, 0) when ReLU
//	F32 output: y
//	S8 output:  quant.QuantizeValue(y, OutScale, OutZeroPoint, -128, 127)
//
// RowScale and ColScale hold one value per row (column), or one value for
// all; nil means 1. Bias is per column or nil. ColOffset carries the
// zero-point correction -zA·Σ_k B[j,k] of asymmetric activations.
type Epilogue struct {
	ColOffset    []int32
	RowScale     []float32
	ColScale     []float32
	Bias         []float32
	ReLU         bool
	OutScale     float32
	OutZeroPoint int32
}

// Check reports whether e fits an m×n output.
func (e *Epilogue) Check(m, n int) error {
	if e == nil {
		return nil
	}
	vec := func(name string, l, want int, perAll bool) error {
		if l == 0 || l == want || (perAll && l == 1) {
			return nil
		}
		return fmt.Errorf("backend: epilogue %s has %d values, want %d", name, l, want)
	}
	if err := vec("ColOffset", len(e.ColOffset), n, false); err != nil {
		return err
	}
	if err := vec("RowScale", len(e.RowScale), m, true); err != nil {
		return err
	}
	if err := vec("ColScale", len(e.ColScale), n, true); err != nil {
		return err
	}
	return vec("Bias", len(e.Bias), n, false)
}

// Backend is a compute device. Every method is mandatory: a backend
// implements every operation, and backendtest.Run checks them all. An
// operation that only some devices implement enters as an optional
// interface (as DeviceTimer and MemoryInfo do), which callers detect with
// a type assertion and fall back from to a generic Go twin in this
// package: the compiler, not a run-time flag, says what a backend can do.
type Backend interface {
	// Name is the device as --device spells it: "cpu", "gpu:0".
	Name() string
	// Describe is one line for people: model, cores or memory.
	Describe() string
	// Alloc allocates n elements of type dt, all zero (+0.0 for F32).
	// Every backend zeroes, so that no caller ever reads what an earlier
	// buffer left in the memory: NaNs that poison an accumulator, or
	// another tensor's values passing for results. It costs the CPU
	// backend nothing extra (Go zeroes new slices) and the GPU backend one
	// cuMemsetD8 queued behind the allocation, a pass at full memory
	// bandwidth, small beside the upload or kernel that fills the buffer.
	Alloc(dt DType, n int) (Buffer, error)
	// Free releases a buffer from Alloc (not a view made by Slice).
	Free(b Buffer) error
	// Upload copies a host slice ([]float32, []int8, []uint8 or []int32,
	// matching the buffer's type and length) into dst.
	Upload(dst Buffer, src any) error
	// Download copies src into a host slice of the same type and length.
	Download(dst any, src Buffer) error

	// GemmF32 is C[m×n] = A[m×k]·B[n×k]ᵀ in float32.
	GemmF32(m, n, k int, a, b, c Buffer) error
	// GemmS8 multiplies int8 A[m×k] by int8 B[n×k]ᵀ with int32
	// accumulation; c's type selects the output (S32, F32 or S8) and ep
	// (which may be nil) the epilogue.
	GemmS8(m, n, k int, a, b, c Buffer, ep *Epilogue) error

	// AbsMax is the largest |x| over the finite values of x, 0 when there
	// are none.
	AbsMax(x Buffer) (float32, error)
	// HistogramAbs adds to counts the number of finite values with
	// floor(|x|/width) = bin, clamping bins past the end to the last one,
	// and returns the number of non-finite values skipped. width is a power
	// of two so that every backend bins identically (see quant.Histogram).
	HistogramAbs(x Buffer, width float32, counts []int64) (nonFinite int64, err error)

	// Quantize writes the codes of x (F32) into codes (U8, packed as quant
	// stores them), exactly as quant.Quantize.
	Quantize(codes, x Buffer, p *quant.Params) error
	// Dequantize writes the values of codes into x, exactly as
	// quant.Dequantize.
	Dequantize(x, codes Buffer, p *quant.Params) error

	// Synchronize waits for queued work.
	Synchronize() error
	Close() error
}

// DeviceTimer is implemented by backends that time work on the device
// itself (CUDA events), which is more precise than the host's clock for
// kernels of microseconds. Elapsed runs fn (which queues work) between two
// device timestamps and returns the seconds between them.
type DeviceTimer interface {
	Elapsed(fn func() error) (seconds float64, err error)
}

// MemoryInfo is implemented by backends with memory of their own, so that
// callers can split work larger than what is free into chunks.
type MemoryInfo interface {
	MemInfo() (free, total uint64, err error)
}

// CheckGemm reports whether m, n and k are valid GEMM dimensions that
// agree with operands of la, lb and lc elements (A is m×k, B n×k, C m×n).
func CheckGemm(m, n, k, la, lb, lc int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("negative dimension in m=%d n=%d k=%d", m, n, k)
	}
	mk, ok1 := mulOK(m, k)
	nk, ok2 := mulOK(n, k)
	mn, ok3 := mulOK(m, n)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("m=%d n=%d k=%d overflows", m, n, k)
	}
	switch {
	case la != mk:
		return fmt.Errorf("A has %d elements, want m·k = %d·%d = %d", la, m, k, mk)
	case lb != nk:
		return fmt.Errorf("B has %d elements, want n·k = %d·%d = %d", lb, n, k, nk)
	case lc != mn:
		return fmt.Errorf("C has %d elements, want m·n = %d·%d = %d", lc, m, n, mn)
	}
	return nil
}

func mulOK(a, b int) (int, bool) {
	if a != 0 && b > math.MaxInt/a {
		return 0, false
	}
	return a * b, true
}

// CheckHistogram reports whether HistogramAbs can bin with width into bins
// counters: width must be a power of two whose reciprocal is a float32
// (2^-126 to 2^127, as quant.Histogram chooses it) and there must be a bin.
func CheckHistogram(width float32, bins int) error {
	frac, exp := math.Frexp(float64(width))
	if frac != 0.5 || exp-1 < -126 || exp-1 > 127 {
		return fmt.Errorf("bin width %g is not a power of two in [2^-126, 2^127]", width)
	}
	if bins == 0 {
		return fmt.Errorf("no bins")
	}
	return nil
}
