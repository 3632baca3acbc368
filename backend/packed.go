package backend

import (
	"fmt"
)

// PackedFormat is a block format in which a weight matrix is stored row
// by row: each row of k values is RowBytes(k) bytes that decode on their
// own (scales and codes of its blocks together), so that a kernel streams
// the packed bytes and never holds a float copy of the matrix. Formats
// come from the packages that define them: quant.RowFormat (quantkit's
// int8/int4 per-channel and per-group codes) and gguf.Type (llama.cpp's
// block types); the interface is all a backend needs to run a format it
// has no kernel of its own for.
type PackedFormat interface {
	// String names the format for people ("Q4_K", "int4 g32").
	String() string
	// RowBytes is the size of one row of k values, or an error when k does
	// not fit the format (not a whole number of its blocks).
	RowBytes(k int) (int, error)
	// DecodeRows writes len(dst)/k rows of k values, decoded from src
	// (that many rows of RowBytes(k) bytes), into dst.
	DecodeRows(dst []float32, src []byte, k int)
}

// Packed is a weight matrix W [N, K] on a backend in a PackedFormat: row j
// is bytes [j·RowBytes(K), (j+1)·RowBytes(K)) of Data, a U8 buffer of
// N·RowBytes(K) bytes.
type Packed struct {
	N, K   int
	Format PackedFormat
	Data   Buffer
}

// Check reports whether w is consistent: positive sizes, K fits the
// format, and Data is U8 of N rows.
func (w *Packed) Check() error {
	if w == nil || w.Format == nil || w.Data == nil {
		return fmt.Errorf("packed weight: missing format or data")
	}
	if w.N <= 0 || w.K <= 0 {
		return fmt.Errorf("packed weight [%d, %d]: sizes must be positive", w.N, w.K)
	}
	rb, err := w.Format.RowBytes(w.K)
	if err != nil {
		return fmt.Errorf("packed weight [%d, %d] %v: %w", w.N, w.K, w.Format, err)
	}
	if n, ok := mulOK(w.N, rb); !ok || w.Data.DType() != U8 || w.Data.Len() != n {
		return fmt.Errorf("packed weight [%d, %d] %v: data is %v of %d elements, want U8 of %d·%d bytes",
			w.N, w.K, w.Format, w.Data.DType(), w.Data.Len(), w.N, rb)
	}
	return nil
}

// PackedGemmer is implemented by backends that multiply by packed weights
// on their own memory. It is optional: GemmPacked falls back to the Go
// twin through host memory. A backend may run some formats only: Packs
// says which, and a model loader keeps a weight packed only where Packs
// is true (it dequantizes the others once, at load).
type PackedGemmer interface {
	// Packs reports whether GemmPacked runs weights of format f.
	Packs(f PackedFormat) bool
	// GemmPacked is GemmPackedF32 on buffers (a and c F32): c [m, w.N] =
	// a [m, w.K] · Wᵀ, where W is w decoded.
	//
	// It may round the activations to 8 bits first, as llama.cpp does to
	// multiply by quantized weights with integer dot products: each block
	// of 32 consecutive values of a row of a (the last one shorter) as
	// q·d, d = max|x|/127 over the block, q = round(x/d) in [−127, 127].
	// An output then differs from GemmPackedF32's by at most
	//
	//	Σ_blocks (d/2)·Σ_{p in block} |w_p|
	//
	// (W's row decoded), a few float32 roundings of each x more, and the
	// rounding of the sums: backendtest.ActQ8Bound. The cpu backend does
	// so for decode steps (m ≤ 8) over its integer formats, unless told
	// to keep float activations (cpu.SetExactPacked).
	GemmPacked(m int, a Buffer, w *Packed, c Buffer) error
}

// Packs reports whether b multiplies by weights of format f on its own
// memory (a PackedGemmer whose Packs says so). GemmPacked runs any format
// on any backend, but where Packs is false it moves the weight through
// the host on every call.
func Packs(b Backend, f PackedFormat) bool {
	pg, ok := b.(PackedGemmer)
	return ok && pg.Packs(f)
}

// GemmPacked computes c [m, w.N] = a [m, w.K] · Wᵀ on b, where W is the
// packed weight w decoded (GemmPackedF32). It calls b's method when b
// packs w.Format, which may round the activations to 8 bits
// (PackedGemmer says how far that moves the result), and otherwise runs
// the twin on the buffers' host memory, or on host copies moved with
// Download and Upload.
func GemmPacked(b Backend, m int, a Buffer, w *Packed, c Buffer) error {
	if err := w.Check(); err != nil {
		return fmt.Errorf("gemm packed: %w", err)
	}
	if err := checkF32(a, c); err != nil {
		return fmt.Errorf("gemm packed: %w", err)
	}
	if err := CheckGemm(m, w.N, w.K, a.Len(), w.N*w.K, c.Len()); err != nil {
		return fmt.Errorf("gemm packed: %w", err)
	}
	if pg, ok := b.(PackedGemmer); ok && pg.Packs(w.Format) {
		return pg.GemmPacked(m, a, w, c)
	}
	data, ok := Host[uint8](w.Data)
	if !ok {
		data = make([]uint8, w.Data.Len())
		if err := b.Download(data, w.Data); err != nil {
			return err
		}
	}
	return viaHost(b, c, []Buffer{a}, func(out []float32, in [][]float32) {
		GemmPackedF32(m, w.N, w.K, in[0], w.Format, data, out)
	})
}

// GemmPackedF32 is the generic Go twin of GemmPacked: c [m, n] = a [m, k]
// · Wᵀ, where W [n, k] is data decoded by f, row by row:
//
//	for j := range n {
//		f.DecodeRows(row, data[j·RowBytes(k):][:RowBytes(k)], k)
//		for i := range m {
//			var s float32
//			for p := range k {
//				s += a[i*k+p] * row[p]
//			}
//			c[i*n+j] = s
//		}
//	}
//
// Implementations may sum in another order (blocks, SIMD lanes, fused
// multiply-adds) and so differ from it by rounding only, as GemmF32 may;
// they must decode to exactly the values f.DecodeRows gives. It is the
// exact reference: a PackedGemmer may also round the activations to 8
// bits, within the bound its doc states. It panics when the lengths do
// not match.
func GemmPackedF32(m, n, k int, a []float32, f PackedFormat, data []byte, c []float32) {
	rb, err := f.RowBytes(k)
	if err != nil {
		panic(fmt.Sprintf("backend: GemmPackedF32: %v", err))
	}
	if len(a) != m*k || len(data) != n*rb || len(c) != m*n {
		panic(fmt.Sprintf("backend: GemmPackedF32: lengths %d, %d, %d for m=%d n=%d k=%d, %d bytes a row",
			len(a), len(data), len(c), m, n, k, rb))
	}
	row := make([]float32, k)
	for j := range n {
		f.DecodeRows(row, data[j*rb:(j+1)*rb], k)
		for i := range m {
			var s float32
			for p, x := range a[i*k : (i+1)*k] {
				s += x * row[p]
			}
			c[i*n+j] = s
		}
	}
}

// HostWrapper is implemented by backends whose buffers are host memory
// (the cpu backend): Wrap makes a buffer of a host slice ([]float32,
// []int8, []uint8 or []int32) without copying it, so that weights read or
// converted on the host (or mapped from a file) are used in place rather
// than held twice. The buffer shares the slice's memory for as long as it
// is used; the caller keeps the memory valid and must not Free the
// buffer's slice elsewhere. An operation never writes a buffer that is
// only read (a weight), so a read-only mapping may be wrapped.
type HostWrapper interface {
	Wrap(x any) (Buffer, error)
}

// Place returns a buffer of b holding x: x itself when b wraps host memory
// (HostWrapper), otherwise a new buffer with x uploaded. owned says whether
// the buffer came from Alloc (and is to be freed with Free).
func Place(b Backend, x any) (buf Buffer, owned bool, err error) {
	if hw, ok := b.(HostWrapper); ok {
		buf, err = hw.Wrap(x)
		return buf, false, err
	}
	var dt DType
	var n int
	switch x := x.(type) {
	case []float32:
		dt, n = F32, len(x)
	case []int8:
		dt, n = S8, len(x)
	case []uint8:
		dt, n = U8, len(x)
	case []int32:
		dt, n = S32, len(x)
	default:
		return nil, false, fmt.Errorf("place: %T is not a buffer element slice", x)
	}
	buf, err = b.Alloc(dt, n)
	if err != nil {
		return nil, false, err
	}
	if err := b.Upload(buf, x); err != nil {
		return nil, false, fmt.Errorf("%w (and free: %v)", err, b.Free(buf))
	}
	return buf, true, nil
}
