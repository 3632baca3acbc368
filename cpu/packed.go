package cpu

import (
	"fmt"
	"unsafe"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/gguf"
)

// packedTileBytes is the float32 size of the tile of decoded weight rows
// one task holds: it stays in L2 while the rows of A go by.
const packedTileBytes = 1 << 20

// poolPackedTile holds the tiles of decoded rows (and their products)
// between calls; its own pool, as the SIMD GEMMs' packing pool is not in
// every build.
var poolPackedTile pool[float32]

// poolPackedQ8 holds the quantized activations of the integer kernels.
var poolPackedQ8 pool[byte]

// Packs reports true: the CPU runs every PackedFormat, decoding tiles of
// rows with the format's own DecodeRows.
func (*Backend) Packs(backend.PackedFormat) bool { return true }

// GemmPacked is c = a·Wᵀ for a packed W; see the function GemmPacked.
func (*Backend) GemmPacked(m int, a backend.Buffer, w *backend.Packed, c backend.Buffer) error {
	ab, err := buf("GemmPacked", "A", a, backend.F32)
	if err != nil {
		return err
	}
	db, err := buf("GemmPacked", "W", w.Data, backend.U8)
	if err != nil {
		return err
	}
	cb, err := buf("GemmPacked", "C", c, backend.F32)
	if err != nil {
		return err
	}
	rb, err := w.Format.RowBytes(w.K)
	if err != nil {
		return fmt.Errorf("cpu: GemmPacked: %v: %w", w.Format, err)
	}
	if ab.Len() != m*w.K || db.Len() != w.N*rb || cb.Len() != m*w.N {
		return fmt.Errorf("cpu: GemmPacked: A %d, W %d bytes, C %d elements for m=%d n=%d k=%d", ab.Len(), db.Len(), cb.Len(), m, w.N, w.K)
	}
	if _, ok := rows8Layout(w.Format, w.K); db.rows8 && !ok {
		return fmt.Errorf("cpu: GemmPacked: W from WrapRepacked in %v, which RepackPacked keeps in its own layout", w.Format)
	}
	gemmPacked(m, w.N, w.K, ab.f32, w.Format, db.u8, cb.f32, db.rows8)
	return nil
}

// RepacksPacked reports whether RepackPacked puts n rows of k values in
// format f in a layout of its own: ggml Q4_0 and the 4-bit
// quant.RowFormat (int4 and uint4, with or without zero points, groups a
// multiple of 32 where a row has several), at least eight rows, whose
// rows it interleaves in groups of eight for the integer kernels that
// compute eight outputs a pass (packedq8_rows8.go). It reports false
// while SetExactPacked is on: the float kernels read the format's own
// layout (on repacked rows GemmPacked is exact too, but it puts each tile
// of rows back in order first, which is slow).
func (*Backend) RepacksPacked(f backend.PackedFormat, n, k int) bool {
	_, ok := rows8Layout(f, k)
	return ok && n >= 8 && !exactPacked.Load()
}

// RepackPacked writes the n rows of k values in format f held by src to
// dst (as long; dst may be src) in the layout that RepacksPacked says
// GemmPacked multiplies faster: the same bytes, permuted, so the repacked
// weight takes the memory the original did. The result must be placed
// with WrapRepacked.
func (b *Backend) RepackPacked(dst, src []byte, f backend.PackedFormat, n, k int) error {
	if !b.RepacksPacked(f, n, k) {
		return fmt.Errorf("cpu: RepackPacked: %v [%d, %d] keeps its own layout", f, n, k)
	}
	l, _ := rows8Layout(f, k)
	rb, _ := f.RowBytes(k)
	if len(src) != n*rb || len(dst) != len(src) {
		return fmt.Errorf("cpu: RepackPacked: %v [%d, %d]: %d bytes in, %d out, want %d·%d", f, n, k, len(src), len(dst), n, rb)
	}
	repackRows8(l, dst, src, n, rb)
	return nil
}

// WrapRepacked is Wrap for the bytes of a weight that RepackPacked wrote:
// a U8 buffer that GemmPacked reads in the repacked layout (any other
// operation sees its bytes as they are).
func (*Backend) WrapRepacked(data []byte) (backend.Buffer, error) {
	return &Buffer{dt: backend.U8, u8: data, rows8: true}, nil
}

// Wrap makes a buffer of the host slice x without copying it
// (backend.HostWrapper): the model loaders hand weights they read or
// mapped to the backend this way, so that they are in memory once.
func (*Backend) Wrap(x any) (backend.Buffer, error) {
	switch x := x.(type) {
	case []float32:
		return &Buffer{dt: backend.F32, f32: x}, nil
	case []int8:
		return &Buffer{dt: backend.S8, s8: x}, nil
	case []uint8:
		return &Buffer{dt: backend.U8, u8: x}, nil
	case []int32:
		return &Buffer{dt: backend.S32, s32: x}, nil
	}
	return nil, fmt.Errorf("cpu: Wrap of %T, want a []float32, []int8, []uint8 or []int32", x)
}

var (
	_ backend.PackedGemmer = (*Backend)(nil)
	_ backend.HostWrapper  = (*Backend)(nil)
)

// GemmPacked computes c [m, n] = a [m, k] · Wᵀ, where W [n, k] is data in
// format f (backend.GemmPackedF32, which it equals up to the order of the
// sums), without a float copy of W.
//
// For at most packedFusedRows rows of a (a language model's decode step)
// in a format with fused kernels (quant.RowFormat's int8/uint8/int4/uint4
// with and without zero points, gguf Q8_0, Q4_0, F16 and BF16), each
// thread takes a contiguous range of rows of W and computes their dot
// products with the rows of a straight from the packed bytes, so that the
// weight streams through once at the width it is stored in. For the
// integer formats (all those but F16 and BF16, groups a multiple of 32
// where a row has several, and ggml Q4_K and Q6_K too) and any number of
// rows of a (decode and prefill), the rows of a are first rounded to 8 bits in
// blocks of 32, once per call, and the products summed in integers
// (packedq8.go, as llama.cpp does; past packedFusedRows rows, in groups of
// rows over tiles of W that stay in L2, and for Q8_0 and symmetric int8
// with AVX-512 VNNI from vnniMinRows rows, in tiles of 32 columns of W
// interleaved per call, packedq8_vnni.go): the result differs from the
// exact one by the rounding of the activations (see
// backend.PackedGemmer). SetExactPacked(true) keeps the float kernels
// (packed_kernels.go), which widen each code to float32.
//
// Otherwise (the other formats, and everything with SetExactPacked) each task decodes a tile of rows of W
// (packedTileBytes of float32, so that it stays in L2, at most a share of
// n that keeps every thread busy) into a buffer of its own with
// f.DecodeRows (SIMD for quant.RowFormat), multiplies a by it with the single-threaded GEMM kernels,
// and scatters the m×rows result into c. The packed bytes are read once,
// which is what a memory-bound decode step needs; the decoding is
// amortized over the m rows of a.
func GemmPacked(m, n, k int, a []float32, f backend.PackedFormat, data []byte, c []float32) {
	gemmPacked(m, n, k, a, f, data, c, false)
}

// gemmPacked is GemmPacked, on data whose rows RepackPacked interleaved
// where rows8: the integer kernels run them in that layout, and the
// float path (SetExactPacked) decodes tiles of rows a multiple of 8 after
// putting their bytes back in the format's order.
func gemmPacked(m, n, k int, a []float32, f backend.PackedFormat, data []byte, c []float32, rows8 bool) {
	rb, err := f.RowBytes(k)
	if err != nil {
		panic(fmt.Sprintf("cpu: GemmPacked: %v", err))
	}
	if len(a) != m*k || len(data) != n*rb || len(c) != m*n {
		panic(fmt.Sprintf("cpu: GemmPacked: lengths %d, %d, %d for m=%d n=%d k=%d, %d bytes a row", len(a), len(data), len(c), m, n, k, rb))
	}
	if m == 0 || n == 0 {
		return
	}
	l, ok := q8LayoutOf(f, k)
	var l8 pkLayout // the layout of rows8's interleaved groups
	if rows8 {
		if l8, ok = rows8Layout(f, k); !ok {
			panic(fmt.Sprintf("cpu: GemmPacked: %v rows of %d values are never repacked", f, k))
		}
		l = l8
	}
	if ok && m <= packedQ8Rows && !exactPacked.Load() {
		lay := newQ8Layout(l, k)
		x := poolPackedQ8.get(m * lay.ldx)
		defer poolPackedQ8.put(x)
		quantizeQ8(x, a, m, k, l, lay)
		thr := workers(n, m*n*k, gemmMinWork)
		if useVNNI(l, m) {
			negateQ8Sums(x, m, lay)
			parallelRange(thr, n, vnniCols, func(_, lo, hi int) {
				tile := poolPackedQ8.get(l.vnniTileBytes())
				defer poolPackedQ8.put(tile)
				packedDotQ8VNNI(l, m, n, x, lay, data, rb, c, lo, hi, tile)
			})
			return
		}
		parallelRange(thr, n, 8, func(_, lo, hi int) {
			if m <= packedFusedRows {
				packedDotQ8(l, m, n, x, lay, data, rb, c, lo, hi)
				return
			}
			// Groups of packedFusedRows rows of a over a tile of W
			// that stays in L2 between them.
			tr := max(8, packedTileBytes/4/rb&^7) // whole groups of rows8
			for j := lo; j < hi; j += tr {
				for i := 0; i < m; i += packedFusedRows {
					mg := min(packedFusedRows, m-i)
					packedDotQ8(l, mg, n, x[i*lay.ldx:], lay, data, rb, c[i*n:], j, min(j+tr, hi))
				}
			}
		})
		return
	}
	if l, ok := packedLayout(f, k); ok && m <= packedFusedRows && !rows8 {
		var ak []float32
		if l.evenOdd() && packedKernelFor(l, m) != nil {
			ak = poolPackedTile.get(m * k)
			defer poolPackedTile.put(ak)
			packedEvenOdd(ak, a, m, k)
		}
		thr := workers(n, m*n*k, gemmMinWork)
		parallelRange(thr, n, 8, func(_, lo, hi int) {
			packedDot(l, m, n, k, a, ak, data, rb, c, lo, hi)
		})
		return
	}
	// The work of a tile: m·rows·k multiply-adds and rows·k decodes.
	thr := workers(n, (m+1)*n*k, gemmMinWork)
	tr := max(1, min(packedTileBytes/(4*max(k, 1)), 256))
	if thr > 1 {
		tr = min(tr, ceilDiv(n, 2*thr)) // two tiles a thread at least
	}
	tr = max(tr, 1)
	if rows8 {
		tr = (tr + 7) &^ 7
	}
	tiles := ceilDiv(n, tr)
	scratch := make([][]float32, thr)
	parallelTasks(thr, tiles, func(worker, t int) {
		j0 := t * tr
		rows := min(tr, n-j0)
		s := scratch[worker]
		if s == nil {
			s = poolPackedTile.get(tr*k + m*tr)
			scratch[worker] = s
		}
		wt, ct := s[:rows*k], s[tr*k:tr*k+m*rows]
		src := data[j0*rb : (j0+rows)*rb]
		if rows8 {
			plain := poolPackedQ8.get(len(src))
			defer poolPackedQ8.put(plain)
			unpackRows8(l8, plain, src, rows, rb)
			src = plain
		}
		decodeRowsFast(f, wt, src, k)
		gemmF32On(1, m, rows, k, a, wt, ct)
		for i := range m {
			copy(c[i*n+j0:i*n+j0+rows], ct[i*rows:(i+1)*rows])
		}
	})
	for _, s := range scratch {
		if s != nil {
			poolPackedTile.put(s)
		}
	}
}

// gemmF32Few computes GemmF32 for m ≤ packedFusedRows rows of A with the
// fused kernels, B's rows read as packed F32 rows, and reports true; it
// reports false when there is no kernel for it. It is the decode step's
// product (one token's activations by a float32 weight) on processors
// without the AVX-512 dot kernels, where the generic 1×7 kernel would run.
func gemmF32Few(thr, m, n, k int, a, b, c []float32) bool {
	if m > packedFusedRows || k == 0 || n == 0 {
		return false
	}
	l, ok := packedLayout(gguf.TypeF32, k)
	if !ok || packedKernelFor(l, m) == nil {
		return false
	}
	w := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), 4*len(b))
	parallelRange(workersOf(thr, n, m*n*k, gemmMinWork), n, 8, func(_, lo, hi int) {
		packedDot(l, m, n, k, a, nil, w, 4*k, c, lo, hi)
	})
	return true
}
