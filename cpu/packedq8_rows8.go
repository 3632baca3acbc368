package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/half"
)

// The integer kernels of the 4-bit formats (ggml Q4_0, the int4 and
// uint4 quant.RowFormat) on rows interleaved in groups of eight,
// as llama.cpp repacks Q4_0 at load (its block_q4_0x8): one pass reads a
// chunk of 32 values of eight rows (128 bytes of codes), broadcasts the
// activation codes four at a time to all eight, and ends with the eight
// rows' integer sums in the eight lanes of one vector, which one multiply
// by the eight rows' scales (one vector too) and one add take to the
// float32 results. The row-by-row kernels (packedq8.go) reduce each row's
// lanes and handle each row's scale alone, which made the 4-bit formats
// compute-bound where the 8-bit ones are bound by memory.
//
// A group of eight rows keeps its bytes (8·rowBytes, so a repacked weight
// is the size of the original): block after block, the eight rows'
// scales (the format's float16 or float32, row 0 first) and, where it
// has them, their zero points (int32, row 0 first), then each whole
// chunk of 32 values of the block as 128 bytes: four words of 32 bytes,
// byte 4r+i of word w holding row r's unsigned codes u of elements 8w+i
// (low nibble) and 8w+4+i (high nibble), u = q + 8 for Q4_0 (its stored
// nibble) and int4, u = q for uint4; the last block's codes past its whole
// chunks follow, row after row, in the format's own order. Rows past the
// last whole group keep the format's layout. The activations are
// quantizeQ8's, their codes in element order. The kernels are made by
// _gen/packedq8 (dotRows8); packedDotQ8R8Go is their Go twin.

// rows8Of reports whether the rows of layout l have the interleaved
// kernels: ggml Q4_0 and the 4-bit quant.RowFormat, where the integer
// kernels run them.
func (l pkLayout) rows8Of() bool {
	switch l.kind {
	case pkQ4_0, pkRF4S, pkRF4U, pkRF4SZ, pkRF4UZ:
		return l.q8()
	}
	return false
}

// signedCodes says the format's codes are signed (u = q + 8).
func (l pkLayout) signedCodes() bool { return l.kind == pkRF4S || l.kind == pkRF4SZ }

// rows8Layout returns the layout of rows of k values in format f
// repacked by repackRows8, or false when f has no interleaved kernels.
func rows8Layout(f backend.PackedFormat, k int) (pkLayout, bool) {
	l, ok := q8LayoutOf(f, k)
	if !ok || !l.rows8Of() {
		return pkLayout{}, false
	}
	l.rows8 = true
	return l, true
}

// chunkCodes writes the unsigned codes u (q + 8, or q for uint4) of
// elements [32t, 32t+32) of the block whose codes (after its scale) are
// at codes.
func (l pkLayout) chunkCodes(u *[32]byte, codes []byte, t int) {
	if l.kind == pkQ4_0 {
		for j := range 16 {
			u[j], u[j+16] = codes[j]&0x0F, codes[j]>>4
		}
		return
	}
	var flip byte // int4: q + 8 is the nibble with its top bit flipped
	if l.signedCodes() {
		flip = 8
	}
	for j, b := range codes[16*t : 16*t+16] {
		u[2*j], u[2*j+1] = b&0x0F^flip, b>>4^flip
	}
}

// packChunk writes row r's codes of chunk t of the block whose codes are
// at codes into the interleaved chunk ch, four bytes of each of its
// words: byte i of word w holds u of elements 8w+i (low nibble) and
// 8w+4+i (high nibble), as chunkCodes gives u. It works on four bytes at
// a time (the repacking runs once per weight, at load).
func (l pkLayout) packChunk(ch []byte, r int, codes []byte, t int) {
	le := binary.LittleEndian
	if l.kind == pkQ4_0 {
		// Elements 0..15 are the low nibbles of codes[0:16], 16..31 the
		// high ones.
		for w := range 2 {
			a, b := le.Uint32(codes[8*w:]), le.Uint32(codes[8*w+4:])
			le.PutUint32(ch[32*w+4*r:], a&0x0F0F0F0F|(b&0x0F0F0F0F)<<4)
			le.PutUint32(ch[32*(w+2)+4*r:], a>>4&0x0F0F0F0F|b&0xF0F0F0F0)
		}
		return
	}
	var flip uint32 // int4: q + 8, each nibble's top bit flipped
	if l.signedCodes() {
		flip = 0x88888888
	}
	// Nibble k of the four bytes of word w is element 8w+k: nibbles 0..3
	// go to the low nibbles of the output bytes, 4..7 to the high ones.
	spread := func(v uint32) uint32 { // nibble i of v's low 16 bits to byte i
		v = (v | v<<8) & 0x00FF00FF
		return (v | v<<4) & 0x0F0F0F0F
	}
	for w := range 4 {
		x := le.Uint32(codes[16*t+4*w:]) ^ flip
		le.PutUint32(ch[32*w+4*r:], spread(x&0xFFFF)|spread(x>>16)<<4)
	}
}

// putChunkCodes is chunkCodes' inverse: it writes the codes u of chunk t
// back to codes in the format's order.
func (l pkLayout) putChunkCodes(codes []byte, u *[32]byte, t int) {
	if l.kind == pkQ4_0 {
		for j := range 16 {
			codes[j] = u[j] | u[j+16]<<4
		}
		return
	}
	var flip byte
	if l.signedCodes() {
		flip = 8
	}
	for j := range 16 {
		codes[16*t+j] = (u[2*j] ^ flip) | (u[2*j+1]^flip)<<4
	}
}

// rows8Tail is the size of a row's codes past its last block's whole
// chunks (the bytes the Go tail takes).
func (l pkLayout) rows8Tail() int {
	return (l.last+1)/2 - 16*(l.last/32)
}

// repackRows8 writes the n rows (rowBytes each) of layout l held by src
// to dst in the interleaved order of the rows8 kernels; dst may be src
// (the repacking goes a group of rows at a time through a buffer).
func repackRows8(l pkLayout, dst, src []byte, n, rowBytes int) {
	rows8Permute(l, dst, src, n, rowBytes, true)
}

// unpackRows8 is repackRows8's inverse: it writes the rows of src, in the
// interleaved order, to dst in the format's own; dst may be src.
func unpackRows8(l pkLayout, dst, src []byte, n, rowBytes int) {
	rows8Permute(l, dst, src, n, rowBytes, false)
}

// rows8Permute is repackRows8 (pack) or unpackRows8.
func rows8Permute(l pkLayout, dst, src []byte, n, rowBytes int, pack bool) {
	if len(src) != n*rowBytes || len(dst) != len(src) {
		panic(fmt.Sprintf("cpu: repacking %d rows of %d bytes: %d bytes in, %d out", n, rowBytes, len(src), len(dst)))
	}
	// The groups are independent: a range of them a thread.
	groups := n / 8
	parallelRange(workers(groups, len(src), 1<<20), groups, 1, func(_, lo, hi int) {
		rows8PermuteGroups(l, dst, src, 8*lo, 8*hi, rowBytes, pack)
	})
	n8 := n &^ 7
	copy(dst[n8*rowBytes:], src[n8*rowBytes:])
}

// rows8PermuteGroups is rows8Permute on the groups of rows [g0, g1).
func rows8PermuteGroups(l pkLayout, dst, src []byte, g0, g1, rowBytes int, pack bool) {
	p := &pkFormats[l.kind]
	hs := p.hdr()
	fs := min(hs, 4) // a header's fields: a scale, a zero point
	bb := p.blockBytes(l.group)
	tb := l.rows8Tail()
	buf := make([]byte, 8*rowBytes)
	var u [32]byte
	for g := g0; g < g1; g += 8 {
		plain, inter := src[g*rowBytes:(g+8)*rowBytes], buf // pack: plain → inter
		if !pack {
			plain, inter = buf, src[g*rowBytes:(g+8)*rowBytes]
		}
		o := 0
		for b := range l.blocks {
			nv := l.group
			if b == l.blocks-1 {
				nv = l.last
			}
			// The eight scales, then the eight zero points.
			for r := range 8 {
				for f := 0; f < hs; f += fs {
					at, to := r*rowBytes+b*bb+f, o+8*f+fs*r
					if pack {
						copy(inter[to:to+fs], plain[at:at+fs])
					} else {
						copy(plain[at:at+fs], inter[to:to+fs])
					}
				}
			}
			o += 8 * hs
			for t := range nv / 32 {
				ch := inter[o : o+128]
				for r := range 8 {
					codes := plain[r*rowBytes+b*bb+hs:]
					if pack {
						l.packChunk(ch, r, codes, t)
					} else {
						for w := range 4 {
							for i := range 4 {
								v := ch[32*w+4*r+i]
								u[8*w+i], u[8*w+4+i] = v&0x0F, v>>4
							}
						}
						l.putChunkCodes(codes, &u, t)
					}
				}
				o += 128
			}
		}
		// The last block's codes past its whole chunks, row after row.
		for r := range 8 {
			at := (r+1)*rowBytes - tb
			if pack {
				copy(inter[o+tb*r:o+tb*(r+1)], plain[at:at+tb])
			} else {
				copy(plain[at:at+tb], inter[o+tb*r:o+tb*(r+1)])
			}
		}
		copy(dst[g*rowBytes:(g+8)*rowBytes], buf)
	}
}

// packedDotQ8R8 is packedDotQ8 for rows interleaved by repackRows8 (the
// n rows of W, of which [j0, j1) are computed; j0 a multiple of 8 where
// it is below n&^7): the interleaved kernel or its twin on the whole
// groups, the Go twin on the rows past them, which keep the format's
// layout.
func packedDotQ8R8(l pkLayout, m, n int, x []byte, lay q8Layout, w []byte, rowBytes int, c []float32, j0, j1 int) {
	n8 := n &^ 7
	if e := min(j1, n8); e > j0 {
		if j0%8 != 0 {
			panic(fmt.Sprintf("cpu: interleaved rows from row %d, not a multiple of 8", j0))
		}
		rows := e - j0
		wr := w[j0*rowBytes : e*rowBytes]
		if kern := packedQ8KernelFor(l, m); kern != nil {
			_ = x[m*lay.ldx-1]
			_ = c[(m-1)*n+e-1]
			kern(unsafe.SliceData(x), lay.ldx, lay.sums, &wr[0], rowBytes, rows, l.group, l.blocks, l.last, &c[j0], n)
		} else {
			packedDotQ8R8Go(l, m, x, lay, wr, rowBytes, rows, c[j0:], n)
		}
		packedTailQ8R8Go(l, m, x, lay, wr, rowBytes, rows, c[j0:], n)
	}
	if s := max(j0, n8); j1 > s {
		// The format's own layout; l.rows8 keeps the activations' order.
		wr := w[s*rowBytes : j1*rowBytes]
		packedDotQ8Go(l, m, x, lay, wr, rowBytes, j1-s, c[s:], n)
	}
}

// rows8Offset is the c of the true code u + c of the interleaved codes u
// (before the zero point).
func (l pkLayout) rows8Offset() int32 {
	if l.kind == pkRF4U || l.kind == pkRF4UZ {
		return 0
	}
	return -8
}

// rows8Scales reads the eight scales at hdr.
func rows8Scales(p *pkFormat, hdr []byte) (sc [8]float32) {
	for r := range sc {
		if p.f16 {
			sc[r] = half.Float16ToFloat32(binary.LittleEndian.Uint16(hdr[2*r:]))
		} else {
			sc[r] = math.Float32frombits(binary.LittleEndian.Uint32(hdr[4*r:]))
		}
	}
	return sc
}

// rows8Zeros reads the eight zero points after the eight scales at hdr
// (all 0 for a format without them).
func rows8Zeros(p *pkFormat, hdr []byte) (zp [8]int32) {
	if p.zp {
		for r := range zp {
			zp[r] = int32(binary.LittleEndian.Uint32(hdr[32+4*r:]))
		}
	}
	return zp
}

// packedDotQ8R8Go is the Go twin of the interleaved kernels: for i < m
// and j < rows (a multiple of 8), c[i·ldc+j] is the dot product of
// activation row i with row j of w (groups of eight rows, 8·rowBytes
// each), with the kernels' sums: per chunk of 32 and row,
// float32(Σ u·x)·(scale·d_x), then per block c·scale·(the activations'
// block sum), c the offset minus the zero point; the values past the
// last block's whole chunks are packedTailQ8R8Go's.
func packedDotQ8R8Go(l pkLayout, m int, x []byte, lay q8Layout, w []byte, rowBytes, rows int, c []float32, ldc int) {
	p := &pkFormats[l.kind]
	hs := p.hdr()
	off := l.rows8Offset()
	for g := 0; g+8 <= rows; g += 8 {
		grp := w[g*rowBytes : (g+8)*rowBytes]
		var acc [packedFusedRows][8]float32
		o := 0
		for b := range l.blocks {
			nv := l.group
			if b == l.blocks-1 {
				nv = l.last
			}
			sc, zp := rows8Scales(p, grp[o:]), rows8Zeros(p, grp[o:])
			o += 8 * hs
			for t := range nv / 32 {
				ch := grp[o : o+128]
				for i := range m {
					rec := x[i*lay.ldx+q8Rec*(b*l.group/32+t):]
					d := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
					for r := range 8 {
						var s int32
						for w := range 4 {
							for e := range 4 {
								v := ch[32*w+4*r+e]
								s += int32(v&0x0F)*int32(int8(rec[8*w+e])) + int32(v>>4)*int32(int8(rec[8*w+4+e]))
							}
						}
						acc[i][r] += float32(s) * (sc[r] * d)
					}
				}
				o += 128
			}
			if off != 0 || p.zp {
				for i := range m {
					bs := math.Float32frombits(binary.LittleEndian.Uint32(x[i*lay.ldx+lay.sums+4*b:]))
					for r := range 8 {
						acc[i][r] += bs * (float32(int64(off)-int64(zp[r])) * sc[r]) // int64: a zero point may be any int32
					}
				}
			}
		}
		for i := range m {
			copy(c[i*ldc+g:i*ldc+g+8], acc[i][:])
		}
	}
}

// packedTailQ8R8Go is packedTailQ8Go for interleaved rows: it adds to
// c[i·ldc+j] the terms of the values past last&^31 of each row's last
// block, Σ (q − zero point)·x over them times scale·d of the
// activations' last chunk.
func packedTailQ8R8Go(l pkLayout, m int, x []byte, lay q8Layout, w []byte, rowBytes, rows int, c []float32, ldc int) {
	from := l.last &^ 31
	if from == l.last {
		return
	}
	p := &pkFormats[l.kind]
	tb := l.rows8Tail()
	t := lay.kc - 1
	lastHdr := 8 * (l.blocks - 1) * p.blockBytes(l.group)
	for g := 0; g+8 <= rows; g += 8 {
		grp := w[g*rowBytes : (g+8)*rowBytes]
		sc, zp := rows8Scales(p, grp[lastHdr:]), rows8Zeros(p, grp[lastHdr:])
		for r := range 8 {
			codes := grp[8*rowBytes-8*tb+r*tb:]
			for i := range m {
				rec := x[i*lay.ldx+q8Rec*t:]
				var s int64 // a zero point may be any int32
				for e := from; e < l.last; e++ {
					lo, hi := nibbles(codes[(e-from)/2], p.signed)
					q := lo
					if (e-from)%2 == 1 {
						q = hi
					}
					s += (int64(q) - int64(zp[r])) * int64(int8(rec[e-from]))
				}
				d := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
				c[i*ldc+g+r] += float32(s) * (sc[r] * d)
			}
		}
	}
}
