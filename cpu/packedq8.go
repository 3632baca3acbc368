package cpu

import (
	"encoding/binary"
	"math"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/model/gguf"
)

// The integer kernels of GemmPacked for few rows of A (a language model's
// decode step), as llama.cpp runs its quantized weights: each row of A is
// rounded once per call to 8-bit codes in blocks of 32 (quantizeQ8, the
// activation format llama.cpp calls Q8_0), and each 32-value chunk of a
// weight row is multiplied by it in integers, exactly, then scaled by the
// weight block's scale times the chunk's activation scale in float32.
// Formats: quant.RowFormat int8/uint8/int4/uint4, with or without zero
// points (groups a multiple of 32 where a row has several), ggml Q8_0,
// Q4_0, Q4_K and Q6_K. packedq8_amd64.s (made by _gen/packedq8) has them
// with AVX2 (VPSIGNB, VPMADDUBSW, VPMADDWD) and quantizes the activations
// there too; packedDotQ8Go and quantizeQ8Chunk are their Go twins. The
// integer products read the codes at the width they are stored in, where
// the float kernels (packed_kernels.go) widen every code to float32 and
// so are bound by the conversions on processors without AVX-512. The
// 4-bit formats have kernels on rows repacked in groups of eight too
// (packedq8_rows8.go), eight outputs a pass; GemmPacked runs them on
// weights the Backend repacked (RepackPacked, WrapRepacked).
//
// The result differs from the float product by the rounding of the
// activations: with d = max|x|/127 over a block of 32 values of a row
// and x ≈ q·d, |q| ≤ 127, each output moves by at most
// Σ_blocks (d/2)·Σ_{p in block}|w_p| (plus the rounding of the float
// sums), a relative error of about 1/254 of the block's largest
// activation, as with llama.cpp's Q8_0, Q4_0 and K-quant dot products.
// SetExactPacked(true) (or QUANTKIT_EXACT_PACKED=1) keeps the float
// kernels, whose result is GemmPackedF32's up to the order of the sums.

// exactPacked says GemmPacked keeps the activations in float32.
var exactPacked atomic.Bool

func init() {
	if v := os.Getenv("QUANTKIT_EXACT_PACKED"); v != "" && v != "0" {
		exactPacked.Store(true)
	}
}

// SetExactPacked makes GemmPacked (the function and the Backend's method)
// multiply packed weights by float32 activations on every path (on), as
// backend.GemmPackedF32 does up to the order of the sums, or (off, the
// default) by activations rounded to 8 bits in blocks of 32, with integer
// dot products (faster, for decode steps and prefill alike; see
// backend.PackedGemmer for the error allowed). It returns the previous
// setting. The environment variable QUANTKIT_EXACT_PACKED=1 sets it at
// start-up. It must not be called while GemmPacked runs.
func SetExactPacked(on bool) (prev bool) { return exactPacked.Swap(on) }

// packedQ8Rows is the most rows of A the integer kernels take: all of
// them. Past packedFusedRows they run on groups of rows, a tile of W at a
// time; measured against the tile path (decode a tile to float32, then the
// float GEMM) on 2048×2048 weights, 2 threads, AVX2: 2–4× faster at 16
// rows, 1.2–1.5× at 128, 1.03–1.16× at 512 (Q8_0, Q4_0, int8, int4 g128).
const packedQ8Rows = math.MaxInt

// q8Rec is the size of a chunk of activations: 32 int8 codes, their
// scale (float32) and their sum (int32).
const q8Rec = 40

// q8Layout is where quantizeQ8 puts a row of activations: kc records of
// q8Rec bytes, then, at byte sums, one float32 per weight block (the sum
// over the block's whole chunks of d·Σq, for the formats whose codes are
// offset); rows ldx bytes apart.
type q8Layout struct{ kc, sums, ldx int }

func newQ8Layout(l pkLayout, k int) q8Layout {
	kc := (k + 31) / 32
	return q8Layout{kc: kc, sums: q8Rec * kc, ldx: q8Rec*kc + 4*l.blocks}
}

// q8 reports whether the integer kernels run layout l: the
// quant.RowFormat and ggml Q8_0 / Q4_0 block formats, every block but
// the last a whole number of chunks of 32, and Q6_K.
func (l pkLayout) q8() bool {
	return l.kind < pkF16 && (l.blocks == 1 || l.group%32 == 0) || l.kind == pkQ6_K || l.kind == pkQ4_K
}

// q8LayoutOf returns the layout of rows of k values in format f for the
// integer kernels, or false when they do not run f: packedLayout's where
// q8 says so, ggml Q6_K in super-blocks of 256, and ggml Q4_K in blocks
// of 32 (its sub-blocks: the kernels take the activations' sum of each).
func q8LayoutOf(f backend.PackedFormat, k int) (pkLayout, bool) {
	switch f {
	case gguf.TypeQ6_K, gguf.TypeQ4_K:
		if k <= 0 || k%256 != 0 {
			return pkLayout{}, false
		}
		if f == gguf.TypeQ4_K {
			// Blocks of one chunk, for quantizeQ8's sums of each.
			return pkLayout{pkQ4_K, 32, k / 32, 32, false}, true
		}
		return pkLayout{pkQ6_K, 256, k / 256, 256, false}, true
	}
	l, ok := packedLayout(f, k)
	return l, ok && l.q8()
}

// q8Offset is c of a code's true value s + c where the kernels take the
// code as s (before the zero point): 128 for uint8 (the kernels' signed
// bytes are q − 128), −8 for the int4 quant.RowFormat (taken unsigned,
// q + 8).
func (p *pkFormat) q8Offset() int32 {
	switch {
	case p.bits == 8 && !p.signed:
		return 128
	case p.bits == 4 && p.signed && !p.split:
		return -8
	}
	return 0
}

// q8Pos is the place in its chunk's record of element e of a whole chunk:
// the 4-bit quant.RowFormat kernels take the even elements, then the odd
// ones (the low nibbles of sixteen bytes, then the high ones).
func q8Pos(evenOdd bool, e int) int {
	if evenOdd {
		return e/2 + 16*(e%2)
	}
	return e
}

// quantizeQ8 writes the m rows of a [m, k] to dst (m·lay.ldx bytes) as
// the integer kernels of layout l take them. Each chunk of 32 values
// (the last one shorter when 32 does not divide k) gets the scale
// d = max|x|/127 and the codes q = round(x·(1/d)) (in float32, to nearest
// even, as llama.cpp's AVX2 quantize_row_q8_0; all 0 where d is 0),
// zero-padded to 32, and their sum; a chunk holding a NaN or an infinity
// gets the scale NaN and codes 0, which carries the NaN to the products.
// The whole chunks go through the assembly (quantizeQ8Chunks) where the
// processor has it.
func quantizeQ8(dst []byte, a []float32, m, k int, l pkLayout, lay q8Layout) {
	evenOdd := l.evenOdd()
	gc := l.group / 32 // chunks a whole block (blocks > 1)
	whole := k / 32
	for i := range m {
		row := a[i*k : (i+1)*k]
		out := dst[i*lay.ldx : (i+1)*lay.ldx]
		if whole > 0 && use.AVX2FMA && quantizeQ8Asm {
			if evenOdd {
				quantizeQ8ChunksEvenOddAVX2(&row[0], whole, &out[0])
			} else {
				quantizeQ8ChunksAVX2(&row[0], whole, &out[0])
			}
		} else {
			for t := range whole {
				quantizeQ8Chunk(out[q8Rec*t:q8Rec*(t+1)], row[32*t:32*t+32], evenOdd)
			}
		}
		if whole < lay.kc {
			quantizeQ8Chunk(out[q8Rec*whole:q8Rec*(whole+1)], row[32*whole:], false)
		}
		// Block sums over the chunks the kernels take (whole ones).
		for b := range l.blocks {
			t0, t1 := b*gc, (b+1)*gc
			if b == l.blocks-1 {
				t1 = t0 + l.last/32
			}
			var s float64
			for t := t0; t < t1; t++ {
				rec := out[q8Rec*t:]
				d := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
				s += float64(d) * float64(int32(binary.LittleEndian.Uint32(rec[36:])))
			}
			binary.LittleEndian.PutUint32(out[lay.sums+4*b:], math.Float32bits(float32(s)))
		}
	}
}

// quantizeQ8Chunk writes the record of the chunk x (at most 32 values) to
// rec: codes (the even elements first where evenOdd and x is whole),
// scale and sum, as quantizeQ8 says.
func quantizeQ8Chunk(rec []byte, x []float32, evenOdd bool) {
	var amax uint32 // bits of max|x|: non-negative floats order as their bits
	for _, v := range x {
		amax = max(amax, math.Float32bits(v)&0x7FFFFFFF)
	}
	clear(rec[:32])
	if amax > 0x7F7FFFFF { // NaN or infinity
		binary.LittleEndian.PutUint32(rec[32:], 0x7FC00000)
		binary.LittleEndian.PutUint32(rec[36:], 0)
		return
	}
	d := math.Float32frombits(amax) / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	var s int32
	for e, v := range x {
		q := int32(math.RoundToEven(float64(v * id)))
		s += q
		pos := e
		if len(x) == 32 {
			pos = q8Pos(evenOdd, e)
		}
		rec[pos] = byte(int8(q))
	}
	binary.LittleEndian.PutUint32(rec[32:], math.Float32bits(d))
	binary.LittleEndian.PutUint32(rec[36:], uint32(s))
}

// q8BlockCodes writes the true codes (before the zero point) of the n
// values of the block at blk in format p to dst, and returns its scale
// and zero point.
func (p *pkFormat) q8BlockCodes(dst []int32, blk []byte, n int) (sc float32, zp int32) {
	if p.f16 {
		sc = half.Float16ToFloat32(binary.LittleEndian.Uint16(blk))
	} else {
		sc = math.Float32frombits(binary.LittleEndian.Uint32(blk))
	}
	if p.zp {
		zp = int32(binary.LittleEndian.Uint32(blk[4:]))
	}
	codes := blk[p.hdr():]
	switch {
	case p.split:
		for j := range 16 {
			dst[j] = int32(codes[j]&0x0F) - 8
			dst[j+16] = int32(codes[j]>>4) - 8
		}
	case p.bits == 8 && p.signed:
		for e := range n {
			dst[e] = int32(int8(codes[e]))
		}
	case p.bits == 8:
		for e := range n {
			dst[e] = int32(codes[e])
		}
	default:
		for e := range n {
			lo, hi := nibbles(codes[e/2], p.signed)
			if e%2 == 0 {
				dst[e] = lo
			} else {
				dst[e] = hi
			}
		}
	}
	return sc, zp
}

// packedDotQ8Go is the Go twin of the integer kernels, on whole rows: for
// i < m and j < rows, c[i·ldc+j] is the dot product of activation row i
// (x, as quantizeQ8 lays it out) with row j of w (at j·rowBytes), with
// the kernels' sums: per chunk of 32, float32(Σ s·q)·(scale·d), s the
// code as the kernels take it, then per block c·scale·(its sum), c the
// offset minus the zero point; then the last chunk past last&^31
// (packedTailQ8Go).
func packedDotQ8Go(l pkLayout, m int, x []byte, lay q8Layout, w []byte, rowBytes, rows int, c []float32, ldc int) {
	switch l.kind {
	case pkQ6_K:
		packedDotQ6_KGo(l, m, x, lay, w, rowBytes, rows, c, ldc)
		return
	case pkQ4_K:
		packedDotQ4_KGo(l, m, x, lay, w, rowBytes, rows, c, ldc)
		return
	}
	p := &pkFormats[l.kind]
	evenOdd := l.evenOdd()
	off := p.q8Offset()
	codes := make([]int32, l.group)
	var buf [packedFusedRows]float32
	acc := buf[:m]
	for j := range rows {
		row := w[j*rowBytes:]
		clear(acc)
		for b := range l.blocks {
			n := l.group
			if b == l.blocks-1 {
				n = l.last
			}
			bb := p.blockBytes(n)
			sc, zp := p.q8BlockCodes(codes, row, n)
			row = row[bb:]
			cdw := float32(int64(off)-int64(zp)) * sc // int64: a zero point may be any int32
			for i := range m {
				xi := x[i*lay.ldx:]
				for t := range n / 32 {
					rec := xi[q8Rec*(b*l.group/32+t):]
					var s int32
					for e := range 32 {
						s += (codes[32*t+e] - off) * int32(int8(rec[q8Pos(evenOdd, e)]))
					}
					d := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
					acc[i] += float32(s) * (sc * d)
				}
				if off != 0 || p.zp {
					acc[i] += math.Float32frombits(binary.LittleEndian.Uint32(xi[lay.sums+4*b:])) * cdw
				}
			}
		}
		for i := range m {
			c[i*ldc+j] = acc[i]
		}
	}
	packedTailQ8Go(l, m, x, lay, w, rowBytes, rows, c, ldc)
}

// packedDotQ6_KGo is packedDotQ8Go for Q6_K: per chunk of 32,
// float32(Σ scale·(q − 32)·x)·(d·d_x), the scale of each 16 values.
func packedDotQ6_KGo(l pkLayout, m int, x []byte, lay q8Layout, w []byte, rowBytes, rows int, c []float32, ldc int) {
	var q [256]int32
	var sc [16]int32
	var buf [packedFusedRows]float32
	acc := buf[:m]
	for j := range rows {
		row := w[j*rowBytes:]
		clear(acc)
		for b := range l.blocks {
			blk := row[210*b : 210*(b+1)]
			d := half.Float16ToFloat32(binary.LittleEndian.Uint16(blk[208:]))
			for h := range 2 {
				ql, qh := blk[64*h:], blk[128+32*h:]
				for e := range 32 {
					q[128*h+e] = int32(ql[e]&0x0F|(qh[e]&3)<<4) - 32
					q[128*h+e+32] = int32(ql[e+32]&0x0F|(qh[e]>>2&3)<<4) - 32
					q[128*h+e+64] = int32(ql[e]>>4|(qh[e]>>4&3)<<4) - 32
					q[128*h+e+96] = int32(ql[e+32]>>4|(qh[e]>>6&3)<<4) - 32
				}
			}
			for i := range sc {
				sc[i] = int32(int8(blk[192+i]))
			}
			for i := range m {
				for t := range 8 {
					rec := x[i*lay.ldx+q8Rec*(8*b+t):]
					var s int32
					for e := range 32 {
						s += sc[2*t+e/16] * q[32*t+e] * int32(int8(rec[e]))
					}
					dx := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
					acc[i] += float32(s) * (d * dx)
				}
			}
		}
		for i := range m {
			c[i*ldc+j] = acc[i]
		}
	}
}

// packedDotQ4_KGo is packedDotQ8Go for Q4_K: per sub-block j of 32 (one
// chunk), float32(Σ q·x)·(d_x·(d·scale_j)), and per super-block
// (d_x·Σx)·(dmin·min_j) of each taken off.
func packedDotQ4_KGo(l pkLayout, m int, x []byte, lay q8Layout, w []byte, rowBytes, rows int, c []float32, ldc int) {
	var buf [packedFusedRows]float32
	acc := buf[:m]
	for j := range rows {
		row := w[j*rowBytes:]
		clear(acc)
		for b := range l.blocks / 8 {
			blk := row[144*b : 144*(b+1)]
			d := half.Float16ToFloat32(binary.LittleEndian.Uint16(blk))
			dmin := half.Float16ToFloat32(binary.LittleEndian.Uint16(blk[2:]))
			q := blk[16:]
			for i := range m {
				xi := x[i*lay.ldx:]
				for sb := range 8 {
					sc, mn := q4KScaleMin(sb, blk[4:16])
					rec := xi[q8Rec*(8*b+sb):]
					var s int32
					for e := range 32 {
						v := q[32*(sb/2)+e]
						if sb%2 == 0 {
							v &= 0x0F
						} else {
							v >>= 4
						}
						s += int32(v) * int32(int8(rec[e]))
					}
					dx := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
					sum := math.Float32frombits(binary.LittleEndian.Uint32(xi[lay.sums+4*(8*b+sb):]))
					acc[i] += float32(s)*(dx*(d*float32(sc))) - sum*(dmin*float32(mn))
				}
			}
		}
		for i := range m {
			c[i*ldc+j] = acc[i]
		}
	}
}

// q4KScaleMin is ggml's get_scale_min_k4: the 6-bit scale and min of
// sub-block j from the twelve bytes q.
func q4KScaleMin(j int, q []byte) (sc, mn uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | q[j-4]>>6<<4, q[j+4]>>4 | q[j]>>6<<4
}

// packedTailQ8Go adds to c[i·ldc+j] the terms of the values past
// last&^31 of each row's last block, which the kernels leave: the
// integer sum Σ (q − zero point)·x over them, times scale·d of the
// activations' last chunk.
func packedTailQ8Go(l pkLayout, m int, x []byte, lay q8Layout, w []byte, rowBytes, rows int, c []float32, ldc int) {
	from := l.last &^ 31
	if from == l.last || l.kind >= pkF16 {
		return
	}
	p := &pkFormats[l.kind]
	codes := make([]int32, l.last)
	bb := p.blockBytes(l.last)
	t := lay.kc - 1
	for j := range rows {
		sc, zp := p.q8BlockCodes(codes, w[j*rowBytes+rowBytes-bb:], l.last)
		for i := range m {
			rec := x[i*lay.ldx+q8Rec*t:]
			var s int64 // a zero point may be any int32
			for e := from; e < l.last; e++ {
				s += (int64(codes[e]) - int64(zp)) * int64(int8(rec[e-from]))
			}
			d := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
			c[i*ldc+j] += float32(s) * (sc * d)
		}
	}
}

// packedQ8Kernel is the signature of the integer kernels
// (packedq8_amd64.s).
type packedQ8Kernel func(x *byte, ldx, sums int, w *byte, rowBytes, rows, group, blocks, last int, c *float32, ldc int)

// packedQ8KernelFor returns the assembly kernel for l and m rows, or nil
// where there is none or the processor lacks its extensions.
func packedQ8KernelFor(l pkLayout, m int) packedQ8Kernel {
	if !use.AVX2FMA || m < 1 || m > packedFusedRows || !l.q8() {
		return nil
	}
	if pkFormats[l.kind].f16 && !hasF16C {
		return nil
	}
	if l.rows8 {
		return packedQ8R8Kernels[l.kind][m-1]
	}
	return packedQ8Kernels[l.kind][m-1]
}

// packedDotQ8 computes rows [j0, j1) of the integer product: c[i·n+j]
// for i < m, from the activations x that quantizeQ8 wrote, with the
// assembly kernel where there is one (and the Go twin for the values of
// the last block past its whole chunks), else the twin.
func packedDotQ8(l pkLayout, m, n int, x []byte, lay q8Layout, w []byte, rowBytes int, c []float32, j0, j1 int) {
	rows := j1 - j0
	if rows <= 0 {
		return
	}
	if l.rows8 {
		packedDotQ8R8(l, m, n, x, lay, w, rowBytes, c, j0, j1)
		return
	}
	wr := w[j0*rowBytes : j1*rowBytes]
	kern := packedQ8KernelFor(l, m)
	if kern == nil {
		packedDotQ8Go(l, m, x, lay, wr, rowBytes, rows, c[j0:], n)
		return
	}
	_ = x[m*lay.ldx-1]
	_ = c[(m-1)*n+j1-1]
	kern(unsafe.SliceData(x), lay.ldx, lay.sums, &wr[0], rowBytes, rows, l.group, l.blocks, l.last, &c[j0], n)
	packedTailQ8Go(l, m, x, lay, wr, rowBytes, rows, c[j0:], n)
}
