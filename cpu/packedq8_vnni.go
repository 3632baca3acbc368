package cpu

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/quantkit/quantkit/internal/half"
)

// The integer kernels of GemmPacked for many rows of A (a language model's
// prefill) on 8-bit weights, ggml Q8_0 and the symmetric int8
// quant.RowFormat, with AVX-512 VNNI: a tile of 32 output columns at a
// time, whose weight codes are interleaved once per call into a buffer
// that stays in L2 (packVNNITile), then multiplied by every row of A,
// up to six rows a pass, in 32×m int32 accumulators (VPDPBUSD: one
// 512-bit instruction adds the products of four codes of sixteen columns
// by four codes of one activation row broadcast to all of them). This is
// what llama.cpp's repacked Q8_0 GEMM does (block_q8_0x4 and its
// AVX-512 kernels), with the weights interleaved per call rather than at
// load, so that the decode step keeps the rows as they are stored.
//
// VPDPBUSD multiplies unsigned bytes by signed ones: the weight codes q
// are stored as u = q + 128 and each chunk's integer sum starts at
// −128·Σx, which takes the 128 off exactly, so that the sum is
// Σ q·x in int32, as packedDotQ8Go's. Per chunk of 32 the sum is
// converted to float32 and multiply-added with the weight block's scale
// times the chunk's activation scale (one rounding where packedDotQ8Go
// has two); the values of the last block past its whole chunks are
// packedTailQ8Go's. The kernels are made by _gen/packedq8vnni;
// packedQ8VNNIGo and packVNNITileGo are their Go twins.

const (
	vnniCols       = 32           // output columns of a tile
	vnniRows       = 6            // most rows of A a tile kernel takes
	vnniCodeBytes  = 8 * 128      // the codes of a chunk of a packed tile
	vnniChunkBytes = 8*128 + 32*4 // a chunk of a packed tile: codes, then scales
)

// vnniMinRows is the fewest rows of A for which GemmPacked runs the VNNI
// tiles: all past the few the decode kernels take (packedFusedRows), which
// stream the weight once as stored. Measured on a 2048×2048 Q8_0 weight,
// one thread, CPU time per call (quantizing the activations and packing
// the tiles included, the packing about 0.17 ms): 5 rows 0.53 ms with
// the AVX2 row kernels against 0.31 ms in tiles; 8 rows 0.82 against
// 0.38; 16 rows 1.65 against 0.59.
const vnniMinRows = packedFusedRows + 1

// vnni reports whether the VNNI tile kernels run layout l: Q8_0 and the
// symmetric int8 quant.RowFormat, every block but the last a whole number
// of chunks.
func (l pkLayout) vnni() bool {
	return (l.kind == pkQ8_0 || l.kind == pkRF8S) && !l.rows8 && l.q8()
}

// vnniChunks is the number of whole chunks of 32 values of a row in
// layout l that the tile kernels take: all but the values of the last
// block past its whole chunks.
func (l pkLayout) vnniChunks() int {
	return (l.blocks-1)*l.group/32 + l.last/32
}

// vnniPerChannel says the rows of l have one scale each (the int8
// quant.RowFormat per channel): their tiles hold the 32 scales once, after
// the last chunk, and the kernels apply them at the end.
func (l pkLayout) vnniPerChannel() bool { return l.kind == pkRF8S && l.blocks == 1 }

// vnniStride is the size of a chunk of a packed tile of layout l.
func (l pkLayout) vnniStride() int {
	if l.vnniPerChannel() {
		return vnniCodeBytes
	}
	return vnniChunkBytes
}

// vnniTileBytes is the size of a packed tile of layout l.
func (l pkLayout) vnniTileBytes() int {
	n := l.vnniChunks() * l.vnniStride()
	if l.vnniPerChannel() {
		n += 4 * vnniCols
	}
	return max(n, 1)
}

// useVNNI reports whether GemmPacked runs the VNNI tiles for m rows of A
// in layout l on this processor.
func useVNNI(l pkLayout, m int) bool {
	return use.AVX512VNNI && packedQ8VNNIAsm && m >= vnniMinRows && l.vnni()
}

// negateQ8Sums replaces the sum Σx of each chunk record of the m rows of
// x (as quantizeQ8 wrote them) by −128·Σx, where the tile kernels start
// each chunk's integer sum. The block sums after the records stay.
func negateQ8Sums(x []byte, m int, lay q8Layout) {
	for i := range m {
		row := x[i*lay.ldx:]
		for t := range lay.kc {
			rec := row[q8Rec*t+36:]
			binary.LittleEndian.PutUint32(rec, uint32(-128*int32(binary.LittleEndian.Uint32(rec))))
		}
	}
}

// vnniChunkAt returns where the codes of chunk t of a row in layout l
// start (bytes from the row's start) and the offset of its block's scale.
func vnniChunkAt(l pkLayout, t int) (codes, scale int) {
	if l.kind == pkQ8_0 {
		return 34*t + 2, 34 * t
	}
	if l.blocks == 1 {
		return 4 + 32*t, 0
	}
	gc := l.group / 32
	b := t / gc
	bb := 4 + l.group
	return b*bb + 4 + 32*(t-b*gc), b * bb
}

// vnniScale reads the block scale at blk.
func vnniScale(l pkLayout, blk []byte) float32 {
	if l.kind == pkQ8_0 {
		return half.Float16ToFloat32(binary.LittleEndian.Uint16(blk))
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(blk))
}

// packVNNITileGo writes to tile (l.vnniTileBytes()) the packed tile of
// the cols ≤ 32 rows of W at w (rowBytes apart) in layout l: for chunk t
// (l.vnniStride() bytes), step s (of 8) and column r, at
// 128s + 64·(r/16) + 4·(r%16), the codes 4s..4s+3 of the chunk plus 128,
// then at 1024 + 4r the scale of the chunk's block; or, per channel, the
// row scales once after the last chunk. Columns past cols get codes 0
// (stored 128) and scale 0.
func packVNNITileGo(l pkLayout, tile, w []byte, rowBytes, cols int) {
	chunks, stride := l.vnniChunks(), l.vnniStride()
	for t := range chunks {
		ct := tile[t*stride : (t+1)*stride]
		co, _ := vnniChunkAt(l, t)
		for r := range vnniCols {
			for s := range 8 {
				v := uint32(0x80808080)
				if r < cols {
					v ^= binary.LittleEndian.Uint32(w[r*rowBytes+co+4*s:])
				}
				binary.LittleEndian.PutUint32(ct[128*s+64*(r/16)+4*(r%16):], v)
			}
		}
	}
	vnniScales(l, tile, w, rowBytes, cols)
}

// vnniScales writes the scales of the packed tile of the cols ≤ 32 rows
// at w (packVNNITileGo's), 0 past cols.
func vnniScales(l pkLayout, tile, w []byte, rowBytes, cols int) {
	chunks, stride := l.vnniChunks(), l.vnniStride()
	put := func(at []byte, so int) {
		for r := range vnniCols {
			var sc float32
			if r < cols {
				sc = vnniScale(l, w[r*rowBytes+so:])
			}
			binary.LittleEndian.PutUint32(at[4*r:], math.Float32bits(sc))
		}
	}
	if l.vnniPerChannel() {
		put(tile[chunks*stride:], 0)
		return
	}
	for t := range chunks {
		_, so := vnniChunkAt(l, t)
		put(tile[t*stride+vnniCodeBytes:], so)
	}
}

// packVNNITile is packVNNITileGo, with the assembly packing the codes of
// a whole tile (and Q8_0's scales) where the processor has it.
func packVNNITile(l pkLayout, tile, w []byte, rowBytes, cols int) {
	chunks, stride := l.vnniChunks(), l.vnniStride()
	if cols < vnniCols || !use.AVX512VNNI || !packedQ8VNNIAsm || chunks == 0 {
		packVNNITileGo(l, tile, w, rowBytes, cols)
		return
	}
	_ = tile[l.vnniTileBytes()-1]
	_ = w[(vnniCols-1)*rowBytes+rowBytes-1]
	switch {
	case l.kind == pkQ8_0:
		packedQ8VNNIPackQ8_0(&w[0], rowBytes, chunks, &tile[0])
		return
	case l.blocks == 1:
		packedQ8VNNIPack(&w[4], rowBytes, chunks, 32, &tile[0], stride)
	default:
		gc := l.group / 32
		for t := 0; t < chunks; t += gc {
			co, _ := vnniChunkAt(l, t)
			packedQ8VNNIPack(&w[co], rowBytes, min(gc, chunks-t), 32, &tile[t*stride], stride)
		}
	}
	vnniScales(l, tile, w, rowBytes, cols)
}

// packedQ8VNNIGo is the Go twin of the tile kernels: for i < m and
// j < 32, c[i·ldc+j] is the sum over the chunks t < chunks of
// float32(−128·Σx + Σ u·x)·(scale·d_x), u the packed codes of column j,
// x, d_x and −128·Σx from chunk t's record of activation row i (at
// x[i·ldx:], as negateQ8Sums left it); per channel (l.vnniPerChannel()),
// scale·Σ_t float32(−128·Σx + Σ u·x)·d_x.
func packedQ8VNNIGo(l pkLayout, m int, x []byte, ldx int, tile []byte, chunks int, c []float32, ldc int) {
	stride, pc := l.vnniStride(), l.vnniPerChannel()
	for i := range m {
		for j := range vnniCols {
			var acc float32
			for t := range chunks {
				rec := x[i*ldx+q8Rec*t:]
				ct := tile[t*stride:]
				s := int32(binary.LittleEndian.Uint32(rec[36:]))
				for e := range 32 {
					s += int32(ct[128*(e/4)+64*(j/16)+4*(j%16)+e%4]) * int32(int8(rec[e]))
				}
				d := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
				if pc {
					acc += float32(s) * d
				} else {
					sc := math.Float32frombits(binary.LittleEndian.Uint32(ct[vnniCodeBytes+4*j:]))
					acc += float32(s) * (sc * d)
				}
			}
			if pc {
				acc *= math.Float32frombits(binary.LittleEndian.Uint32(tile[chunks*stride+4*j:]))
			}
			c[i*ldc+j] = acc
		}
	}
}

// packedQ8VNNIRows runs the tile kernels of layout l (or their twin) on
// the m rows of x against tile, into c (ldc apart): the six-row kernel on
// the whole groups of six, one call for all, then the kernel of the rows
// left.
func packedQ8VNNIRows(l pkLayout, m int, x []byte, ldx int, tile []byte, chunks int, c []float32, ldc int) {
	if !use.AVX512VNNI || !packedQ8VNNIAsm {
		packedQ8VNNIGo(l, m, x, ldx, tile, chunks, c, ldc)
		return
	}
	_ = x[(m-1)*ldx+q8Rec*max(chunks, 1)-1]
	_ = c[(m-1)*ldc+vnniCols-1]
	_ = tile[l.vnniTileBytes()-1]
	kern := &packedQ8VNNIKernels[0]
	if l.vnniPerChannel() {
		kern = &packedQ8VNNIKernels[1]
	}
	if g := m / vnniRows; g > 0 {
		kern[vnniRows-1](unsafe.SliceData(x), ldx, unsafe.SliceData(tile), chunks, &c[0], ldc, g)
	}
	if r, i := m%vnniRows, m/vnniRows*vnniRows; r > 0 {
		kern[r-1](&x[i*ldx], ldx, unsafe.SliceData(tile), chunks, &c[i*ldc], ldc, 1)
	}
}

// packedDotQ8VNNI computes columns [j0, j1) of c [m, n] (j0 a multiple of
// vnniCols or j1 = n) from the activations x (quantizeQ8's, after
// negateQ8Sums) and the rows of W: a tile of 32 columns at a time packed
// into tile (a buffer of l.vnniTileBytes()), then multiplied by
// every row of x, vnniRows rows a pass; the last partial tile goes
// through a buffer of its own. The values past the last block's whole
// chunks are packedTailQ8Go's.
func packedDotQ8VNNI(l pkLayout, m, n int, x []byte, lay q8Layout, w []byte, rowBytes int, c []float32, j0, j1 int, tile []byte) {
	chunks := l.vnniChunks()
	var part [vnniRows * vnniCols]float32
	for j := j0; j < j1; j += vnniCols {
		cols := min(vnniCols, j1-j)
		packVNNITile(l, tile, w[j*rowBytes:], rowBytes, cols)
		if cols == vnniCols {
			packedQ8VNNIRows(l, m, x, lay.ldx, tile, chunks, c[j:], n)
			continue
		}
		for i := 0; i < m; i += vnniRows {
			r := min(vnniRows, m-i)
			packedQ8VNNIRows(l, r, x[i*lay.ldx:], lay.ldx, tile, chunks, part[:], vnniCols)
			for ii := range r {
				copy(c[(i+ii)*n+j:(i+ii)*n+j+cols], part[ii*vnniCols:ii*vnniCols+cols])
			}
		}
	}
	packedTailQ8Go(l, m, x, lay, w[j0*rowBytes:j1*rowBytes], rowBytes, j1-j0, c[j0:], n)
}
