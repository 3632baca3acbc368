package cpu

import (
	"encoding/binary"
	"math"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// The fused kernels of GemmPacked for few rows of A (the decode step of a
// language model): dot products read straight from the packed bytes, each
// code widened to float32 and multiplied by its block's scale in a
// register, which gives exactly the value the format's DecodeRows writes,
// then multiply-added with the float activations. packed_amd64.s (made by
// _gen/packed) has them with AVX2 and FMA; packedDotGo is their Go twin.

// packedFusedRows is the most rows of A the fused kernels take: each
// call streams the whole weight, so past it the tile-decode GEMM, which
// streams it once for any m, wins.
const packedFusedRows = 4

// pkKind is a block format the fused kernels know, an index into
// pkFormats.
type pkKind int

const (
	pkRF8S  pkKind = iota // quant.RowFormat int8, symmetric
	pkRF8U                // uint8, symmetric
	pkRF8SZ               // int8 with zero points
	pkRF8UZ               // uint8 with zero points
	pkRF4S                // int4, symmetric
	pkRF4U                // uint4, symmetric
	pkRF4SZ               // int4 with zero points
	pkRF4UZ               // uint4 with zero points
	pkQ8_0                // ggml Q8_0
	pkQ4_0                // ggml Q4_0
	pkF16                 // float16, widened
	pkBF16                // bfloat16, widened
	pkF32                 // float32 (the float GEMM's few-row products)
	pkQ6_K                // ggml Q6_K: integer kernels only (packedq8.go)
	pkQ4_K                // ggml Q4_K: integer kernels only
	pkKinds
)

// pkFormat describes a block layout: a scale (float32, or float16 for the
// ggml types), an int32 zero point when zp, then the codes.
type pkFormat struct {
	name   string
	bits   int
	signed bool
	zp     bool
	f16    bool
	split  bool   // Q4_0: byte j of a block holds elements j (low nibble) and j+16
	wide   string // "F16", "BF16" or "F32": floats, one block a row without scale
}

var pkFormats = [pkKinds]pkFormat{
	pkRF8S:  {name: "RF8S", bits: 8, signed: true},
	pkRF8U:  {name: "RF8U", bits: 8},
	pkRF8SZ: {name: "RF8SZ", bits: 8, signed: true, zp: true},
	pkRF8UZ: {name: "RF8UZ", bits: 8, zp: true},
	pkRF4S:  {name: "RF4S", bits: 4, signed: true},
	pkRF4U:  {name: "RF4U", bits: 4},
	pkRF4SZ: {name: "RF4SZ", bits: 4, signed: true, zp: true},
	pkRF4UZ: {name: "RF4UZ", bits: 4, zp: true},
	pkQ8_0:  {name: "Q8_0", bits: 8, signed: true, f16: true},
	pkQ4_0:  {name: "Q4_0", bits: 4, f16: true, split: true},
	pkF16:   {name: "F16", bits: 16, wide: "F16"},
	pkBF16:  {name: "BF16", bits: 16, wide: "BF16"},
	pkF32:   {name: "F32", bits: 32, wide: "F32"},
	pkQ6_K:  {name: "Q6_K", bits: 6, f16: true},
	pkQ4_K:  {name: "Q4_K", bits: 4, f16: true},
}

// hdr is the size of a block's scale and zero point.
func (p *pkFormat) hdr() int {
	switch {
	case p.wide != "":
		return 0
	case p.f16:
		return 2
	case p.zp:
		return 8
	}
	return 4
}

// blockBytes is the size of a block of n values.
func (p *pkFormat) blockBytes(n int) int { return p.hdr() + (n*p.bits+7)/8 }

// pkLayout is a packed weight's rows in a fused format: blocks blocks a
// row, every one but the last of group values, the last of last. rows8
// says the rows are interleaved in groups of eight (repackRows8), for
// the integer kernels only.
type pkLayout struct {
	kind                pkKind
	group, blocks, last int
	rows8               bool
}

// packedLayout returns the fused layout of rows of k values in format f,
// or false when no fused kernel runs f.
func packedLayout(f backend.PackedFormat, k int) (pkLayout, bool) {
	switch f := f.(type) {
	case quant.RowFormat:
		if _, err := f.RowBytes(k); err != nil {
			return pkLayout{}, false
		}
		kind := pkRF8S
		if f.Bits == 4 {
			kind = pkRF4S
		}
		if !f.Signed {
			kind++
		}
		if !f.Symmetric {
			kind += 2
		}
		blocks := (k + f.Group - 1) / f.Group
		return pkLayout{kind, f.Group, blocks, k - (blocks-1)*f.Group, false}, true
	case gguf.Type:
		switch f {
		case gguf.TypeF16:
			return pkLayout{pkF16, k, 1, k, false}, true
		case gguf.TypeBF16:
			return pkLayout{pkBF16, k, 1, k, false}, true
		case gguf.TypeF32:
			return pkLayout{pkF32, k, 1, k, false}, true
		}
		if k%32 != 0 {
			return pkLayout{}, false
		}
		switch f {
		case gguf.TypeQ8_0:
			return pkLayout{pkQ8_0, 32, k / 32, 32, false}, true
		case gguf.TypeQ4_0:
			return pkLayout{pkQ4_0, 32, k / 32, 32, false}, true
		}
	}
	return pkLayout{}, false
}

// decodeBlock writes the len(dst) values of the block at blk (its
// header first) in format p: float32(q − zero point)·scale, or the 16-bit
// floats widened, as the formats' DecodeRows.
func (p *pkFormat) decodeBlock(dst []float32, blk []byte) {
	switch p.wide {
	case "F16":
		for i := range dst {
			v := half.Float16ToFloat32(binary.LittleEndian.Uint16(blk[2*i:]))
			if v != v {
				v = math.Float32frombits(math.Float32bits(v) | 0x400000) // quiet, as ggml's
			}
			dst[i] = v
		}
		return
	case "BF16":
		for i := range dst {
			dst[i] = half.BFloat16ToFloat32(binary.LittleEndian.Uint16(blk[2*i:]))
		}
		return
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(blk[4*i:]))
		}
		return
	}
	var sc float32
	if p.f16 {
		sc = half.Float16ToFloat32(binary.LittleEndian.Uint16(blk))
	} else {
		sc = math.Float32frombits(binary.LittleEndian.Uint32(blk))
	}
	var zp int32
	if p.zp {
		zp = int32(binary.LittleEndian.Uint32(blk[4:]))
	}
	codes := blk[p.hdr():]
	switch {
	case p.split: // Q4_0, whole blocks of 32
		for j := range 16 {
			dst[j] = float32(int32(codes[j]&0x0F)-8) * sc
			dst[j+16] = float32(int32(codes[j]>>4)-8) * sc
		}
	case p.bits == 8 && p.signed:
		for i := range dst {
			dst[i] = float32(int32(int8(codes[i]))-zp) * sc
		}
	case p.bits == 8:
		for i := range dst {
			dst[i] = float32(int32(codes[i])-zp) * sc
		}
	default:
		for i := range dst {
			lo, hi := nibbles(codes[i/2], p.signed)
			q := lo
			if i%2 == 1 {
				q = hi
			}
			dst[i] = float32(q-zp) * sc
		}
	}
}

// packedDotGo is the Go twin of the fused kernels, on whole rows: for
// i < m and j < rows, c[i·ldc+j] is the dot product of a[i·lda:][:k]
// with row j of w (at j·rowBytes) decoded, k = (blocks−1)·group + last.
// It sums block by block.
func packedDotGo(l pkLayout, m int, a []float32, lda int, w []byte, rowBytes, rows int, c []float32, ldc int) {
	p := &pkFormats[l.kind]
	var buf [4]float32
	acc := buf[:m]
	dec := make([]float32, l.group)
	for j := range rows {
		row := w[j*rowBytes:]
		clear(acc)
		for b := range l.blocks {
			n := l.group
			if b == l.blocks-1 {
				n = l.last
			}
			bb := p.blockBytes(n)
			p.decodeBlock(dec[:n], row[:bb])
			row = row[bb:]
			for i := range m {
				ai := a[i*lda+b*l.group:][:n]
				s := acc[i]
				for t, x := range dec[:n] {
					s += ai[t] * x
				}
				acc[i] = s
			}
		}
		for i := range m {
			c[i*ldc+j] = acc[i]
		}
	}
}

// packedTailGo adds to c[i·ldc+j] the terms of values [from, last) of
// each row's last block, which the kernels leave (they take whole chunks
// of 32): the rest of packedDotGo's sum.
func packedTailGo(l pkLayout, m int, a []float32, lda int, w []byte, rowBytes, rows int, c []float32, ldc, from int) {
	p := &pkFormats[l.kind]
	dec := make([]float32, l.last)
	k0 := (l.blocks - 1) * l.group
	off := rowBytes - p.blockBytes(l.last)
	for j := range rows {
		p.decodeBlock(dec, w[j*rowBytes+off:][:p.blockBytes(l.last)])
		for i := range m {
			ai := a[i*lda+k0:][:l.last]
			var s float32
			for t := from; t < l.last; t++ {
				s += ai[t] * dec[t]
			}
			c[i*ldc+j] += s
		}
	}
}

// packedKernelFor returns the assembly kernel for l and m rows, or nil
// where there is none or the processor lacks its extensions, or l's
// blocks are not whole chunks of 32.
func packedKernelFor(l pkLayout, m int) packedKernel {
	if !use.AVX2FMA || m < 1 || m > packedFusedRows || l.blocks > 1 && l.group%32 != 0 {
		return nil
	}
	if p := &pkFormats[l.kind]; (p.f16 || p.wide == "F16") && !hasF16C {
		return nil
	}
	return packedKernels[l.kind][m-1]
}

// packedKernel is the signature of the fused kernels (packed_amd64.s).
type packedKernel func(a *float32, lda int, w *byte, rowBytes, rows, group, blocks, last int, c *float32, ldc int)

// evenOdd reports whether the kernel for l takes its activations
// through packedEvenOdd (the 4-bit quant.RowFormat ones).
func (l pkLayout) evenOdd() bool {
	p := &pkFormats[l.kind]
	return p.bits == 4 && !p.split && l.kind < pkF16 && !l.rows8
}

// packedEvenOdd writes a [m, k] to dst with each whole run of sixteen
// values of a row in the order of its even elements, then its odd ones:
// the layout of the 4-bit kernels, which meet a byte's low nibble (an
// even element) and its high one (the odd element after it) in two
// registers.
func packedEvenOdd(dst, a []float32, m, k int) {
	for i := range m {
		r, d := a[i*k:(i+1)*k], dst[i*k:(i+1)*k]
		g := k &^ 15
		for p := 0; p < g; p += 16 {
			x, y := (*[16]float32)(r[p:]), (*[16]float32)(d[p:])
			for t := range 8 {
				y[t], y[8+t] = x[2*t], x[2*t+1]
			}
		}
		copy(d[g:], r[g:])
	}
}

// packedDot computes rows [j0, j1) of the fused product: c[i·n+j] for
// i < m, with the assembly kernel where there is one (and the Go twin for
// the values of the last block past its whole chunks), else the twin.
// ak is a through packedEvenOdd where l.evenOdd(), or nil to make it here.
func packedDot(l pkLayout, m, n, k int, a, ak []float32, w []byte, rowBytes int, c []float32, j0, j1 int) {
	rows := j1 - j0
	if rows <= 0 {
		return
	}
	wr := w[j0*rowBytes : j1*rowBytes]
	kern := packedKernelFor(l, m)
	if kern == nil {
		packedDotGo(l, m, a, k, wr, rowBytes, rows, c[j0:], n)
		return
	}
	if !l.evenOdd() {
		ak = a
	} else if ak == nil {
		ak = make([]float32, m*k)
		packedEvenOdd(ak, a, m, k)
	}
	_ = ak[(m-1)*k+k-1]
	_ = c[(m-1)*n+j1-1]
	kern(&ak[0], k, &wr[0], rowBytes, rows, l.group, l.blocks, l.last, &c[j0], n)
	if from := l.last &^ 31; from < l.last {
		packedTailGo(l, m, a, k, wr, rowBytes, rows, c[j0:], n, from)
	}
}

// decodeRowsFast is f.DecodeRows with the SIMD dequantizers of quant.go
// for quant.RowFormat, which decode to the same values.
func decodeRowsFast(f backend.PackedFormat, dst []float32, src []byte, k int) {
	rf, ok := f.(quant.RowFormat)
	if !ok {
		f.DecodeRows(dst, src, k)
		return
	}
	rb, err := rf.RowBytes(k)
	if err != nil || len(dst)%k != 0 || len(src) != len(dst)/k*rb {
		f.DecodeRows(dst, src, k) // it panics with the details
		return
	}
	hdr := 4
	if !rf.Symmetric {
		hdr = 8
	}
	for r := range len(dst) / k {
		row, out := src[r*rb:(r+1)*rb], dst[r*k:(r+1)*k]
		for len(out) > 0 {
			n := min(rf.Group, len(out))
			bb := hdr + (n*rf.Bits+7)/8
			sc := math.Float32frombits(binary.LittleEndian.Uint32(row))
			var zp int32
			if !rf.Symmetric {
				zp = int32(binary.LittleEndian.Uint32(row[4:]))
			}
			if rf.Bits == 8 {
				dequantize8(out[:n], row[hdr:bb], rf.Signed, sc, zp)
			} else {
				dequantize4(out[:n], row[hdr:bb], 0, n, rf.Signed, sc, zp)
			}
			row, out = row[bb:], out[n:]
		}
	}
}
