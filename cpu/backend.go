package cpu

import (
	"errors"
	"fmt"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/cpuinfo"
	"github.com/quantkit/quantkit/quant"
)

func init() {
	backend.Register("cpu", func(int) (backend.Backend, error) { return New(), nil })
}

// Backend runs the kernels of this package on host memory. Its Buffers
// are Go slices; operations run synchronously.
type Backend struct{}

var _ backend.Backend = (*Backend)(nil)

// New returns the CPU backend. It holds no resources; Threads and
// SetThreads govern its parallelism.
func New() *Backend { return &Backend{} }

// Name is "cpu".
func (*Backend) Name() string { return "cpu" }

// Describe names the processor (the model name of /proc/cpuinfo where
// there is one), the number of threads kernels use and how packed weights
// are multiplied ("packed: 8-bit activations" by default, "packed: exact"
// after SetExactPacked(true)).
func (*Backend) Describe() string {
	packed := "8-bit activations"
	if exactPacked.Load() {
		packed = "exact"
	}
	return fmt.Sprintf("%s, %d threads, packed: %s", cpuinfo.Read().Model, Threads(), packed)
}

// Buffer is memory of the CPU backend: a Go slice of the buffer's type.
type Buffer struct {
	dt  backend.DType
	f32 []float32
	s8  []int8
	u8  []uint8
	s32 []int32
	// rows8 marks a packed weight's bytes in RepackPacked's layout
	// (WrapRepacked), which GemmPacked reads.
	rows8 bool
}

var _ backend.HostBuffer = (*Buffer)(nil)

// DType is the element type.
func (b *Buffer) DType() backend.DType { return b.dt }

// Len is the number of elements.
func (b *Buffer) Len() int {
	switch b.dt {
	case backend.F32:
		return len(b.f32)
	case backend.S8:
		return len(b.s8)
	case backend.U8:
		return len(b.u8)
	}
	return len(b.s32)
}

// Slice is a view of elements [off, off+n); it panics when they are not
// inside the buffer.
func (b *Buffer) Slice(off, n int) backend.Buffer {
	if off < 0 || n < 0 || off > b.Len()-n {
		panic(fmt.Sprintf("cpu: Slice(%d, %d) of a %d-element %v buffer", off, n, b.Len(), b.dt))
	}
	v := &Buffer{dt: b.dt}
	switch b.dt {
	case backend.F32:
		v.f32 = b.f32[off : off+n : off+n]
	case backend.S8:
		v.s8 = b.s8[off : off+n : off+n]
	case backend.U8:
		v.u8 = b.u8[off : off+n : off+n]
	default:
		v.s32 = b.s32[off : off+n : off+n]
	}
	return v
}

// F32 is the buffer's memory when it is F32, nil otherwise.
func (b *Buffer) F32() []float32 { return b.f32 }

// S8 is the buffer's memory when it is S8, nil otherwise.
func (b *Buffer) S8() []int8 { return b.s8 }

// U8 is the buffer's memory when it is U8, nil otherwise.
func (b *Buffer) U8() []uint8 { return b.u8 }

// S32 is the buffer's memory when it is S32, nil otherwise.
func (b *Buffer) S32() []int32 { return b.s32 }

// data is the slice the buffer is, as GemmS8 takes its output.
func (b *Buffer) data() any {
	switch b.dt {
	case backend.F32:
		return b.f32
	case backend.S8:
		return b.s8
	case backend.U8:
		return b.u8
	}
	return b.s32
}

// Alloc makes a buffer of n zeros (Go zeroes new slices).
func (*Backend) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cpu: Alloc of %d elements", n)
	}
	b := &Buffer{dt: dt}
	switch dt {
	case backend.F32:
		b.f32 = make([]float32, n)
	case backend.S8:
		b.s8 = make([]int8, n)
	case backend.U8:
		b.u8 = make([]uint8, n)
	case backend.S32:
		b.s32 = make([]int32, n)
	default:
		return nil, fmt.Errorf("cpu: Alloc of unknown type %v", dt)
	}
	return b, nil
}

// Free does nothing: the garbage collector reclaims buffers.
func (*Backend) Free(backend.Buffer) error { return nil }

// buf returns b as a CPU buffer of type dt.
func buf(op, name string, b backend.Buffer, dt backend.DType) (*Buffer, error) {
	cb, ok := b.(*Buffer)
	if !ok || cb == nil {
		return nil, fmt.Errorf("cpu: %s: %s is a %T, not a cpu buffer", op, name, b)
	}
	if cb.dt != dt {
		return nil, fmt.Errorf("cpu: %s: %s is %v, want %v", op, name, cb.dt, dt)
	}
	return cb, nil
}

// Upload copies a host slice of the buffer's type and length into dst.
func (*Backend) Upload(dst backend.Buffer, src any) error {
	d, ok := dst.(*Buffer)
	if !ok || d == nil {
		return fmt.Errorf("cpu: Upload: destination is a %T, not a cpu buffer", dst)
	}
	return transfer("Upload", d, src, true)
}

// Download copies src into a host slice of its type and length.
func (*Backend) Download(dst any, src backend.Buffer) error {
	s, ok := src.(*Buffer)
	if !ok || s == nil {
		return fmt.Errorf("cpu: Download: source is a %T, not a cpu buffer", src)
	}
	return transfer("Download", s, dst, false)
}

// transfer copies between b and host slice h, into b when up.
func transfer(op string, b *Buffer, h any, up bool) error {
	var hl int
	var hdt backend.DType
	switch h := h.(type) {
	case []float32:
		hl, hdt = len(h), backend.F32
	case []int8:
		hl, hdt = len(h), backend.S8
	case []uint8:
		hl, hdt = len(h), backend.U8
	case []int32:
		hl, hdt = len(h), backend.S32
	default:
		return fmt.Errorf("cpu: %s: host value is a %T, want []float32, []int8, []uint8 or []int32", op, h)
	}
	if hdt != b.dt {
		return fmt.Errorf("cpu: %s: host slice is %v, buffer is %v", op, hdt, b.dt)
	}
	if hl != b.Len() {
		return fmt.Errorf("cpu: %s: host slice has %d elements, buffer %d", op, hl, b.Len())
	}
	switch h := h.(type) {
	case []float32:
		copyDir(b.f32, h, up)
	case []int8:
		copyDir(b.s8, h, up)
	case []uint8:
		copyDir(b.u8, h, up)
	case []int32:
		copyDir(b.s32, h, up)
	}
	return nil
}

func copyDir[T any](b, h []T, up bool) {
	if up {
		copy(b, h)
	} else {
		copy(h, b)
	}
}

// GemmF32 is C[m×n] = A[m×k]·B[n×k]ᵀ in float32; see the function GemmF32.
func (*Backend) GemmF32(m, n, k int, a, b, c backend.Buffer) error {
	ab, err := buf("GemmF32", "A", a, backend.F32)
	if err != nil {
		return err
	}
	bb, err := buf("GemmF32", "B", b, backend.F32)
	if err != nil {
		return err
	}
	cb, err := buf("GemmF32", "C", c, backend.F32)
	if err != nil {
		return err
	}
	if err := gemmDimsError(m, n, k, ab.Len(), bb.Len(), cb.Len()); err != nil {
		return fmt.Errorf("cpu: GemmF32: %w", err)
	}
	GemmF32(m, n, k, ab.f32, bb.f32, cb.f32)
	return nil
}

// GemmS8 is the int8 GEMM with epilogue; see the function GemmS8.
func (*Backend) GemmS8(m, n, k int, a, b, c backend.Buffer, ep *backend.Epilogue) error {
	ab, err := buf("GemmS8", "A", a, backend.S8)
	if err != nil {
		return err
	}
	bb, err := buf("GemmS8", "B", b, backend.S8)
	if err != nil {
		return err
	}
	cb, ok := c.(*Buffer)
	if !ok || cb == nil {
		return fmt.Errorf("cpu: GemmS8: C is a %T, not a cpu buffer", c)
	}
	if cb.dt == backend.U8 {
		return errors.New("cpu: GemmS8: C is u8, want s32, f32 or s8")
	}
	return GemmS8(m, n, k, ab.s8, bb.s8, cb.data(), ep)
}

// AbsMax is the largest finite |x|; see the function AbsMax.
func (*Backend) AbsMax(x backend.Buffer) (float32, error) {
	xb, err := buf("AbsMax", "x", x, backend.F32)
	if err != nil {
		return 0, err
	}
	return AbsMax(xb.f32), nil
}

// HistogramAbs adds the |x| histogram to counts; see the function
// HistogramAbs.
func (*Backend) HistogramAbs(x backend.Buffer, width float32, counts []int64) (int64, error) {
	xb, err := buf("HistogramAbs", "x", x, backend.F32)
	if err != nil {
		return 0, err
	}
	if err := backend.CheckHistogram(width, len(counts)); err != nil {
		return 0, fmt.Errorf("cpu: HistogramAbs: %w", err)
	}
	return HistogramAbs(xb.f32, width, counts), nil
}

// Quantize writes the codes of x into codes; see the function Quantize.
func (*Backend) Quantize(codes, x backend.Buffer, p *quant.Params) error {
	cb, err := buf("Quantize", "codes", codes, backend.U8)
	if err != nil {
		return err
	}
	xb, err := buf("Quantize", "x", x, backend.F32)
	if err != nil {
		return err
	}
	return Quantize(cb.u8, xb.f32, p)
}

// Dequantize writes the values of codes into x; see the function
// Dequantize.
func (*Backend) Dequantize(x, codes backend.Buffer, p *quant.Params) error {
	xb, err := buf("Dequantize", "x", x, backend.F32)
	if err != nil {
		return err
	}
	cb, err := buf("Dequantize", "codes", codes, backend.U8)
	if err != nil {
		return err
	}
	return Dequantize(xb.f32, cb.u8, p)
}

// Synchronize returns at once: operations are synchronous.
func (*Backend) Synchronize() error { return nil }

// Close does nothing.
func (*Backend) Close() error { return nil }
