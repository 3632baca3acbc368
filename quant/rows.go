package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// RowFormat lays out a 2-D weight [rows, cols] quantized with one scale
// (and zero point) per block of Group consecutive values of a row, as
// per-tensor, per-channel (axis 0) and per-group schemes quantize a
// weight, in self-contained rows: each row is ⌈cols/Group⌉ blocks (the
// last one shorter when Group does not divide cols, as quant's groups
// are) of
//
//	scale       float32, little-endian
//	zero point  int32, little-endian (asymmetric schemes only)
//	codes       the block's codes packed as PutCode packs them (⌈n/2⌉ bytes for n codes at 4 bits)
//
// so that a kernel streams a row's bytes alone (the layout llama.cpp's
// block types use). A row decodes to exactly the values Dequantize gives
// for the codes and parameters it was packed from (PackRows). RowFormat
// implements backend.PackedFormat.
type RowFormat struct {
	Bits      int  // 8 or 4
	Signed    bool // codes int8/int4 (else uint8/uint4)
	Symmetric bool // no zero points stored: they are 0
	Group     int  // values per block (even at 4 bits); a row's length for per-channel
}

// String names the format: "int4 g32", "uint8 g4096 asymmetric".
func (f RowFormat) String() string {
	t := "int"
	if !f.Signed {
		t = "uint"
	}
	s := fmt.Sprintf("%s%d g%d", t, f.Bits, f.Group)
	if !f.Symmetric {
		s += " asymmetric"
	}
	return s
}

// header is the size of a block's scale and zero point.
func (f RowFormat) header() int {
	if f.Symmetric {
		return 4
	}
	return 8
}

// blockBytes is the size of a block of n values: header and codes.
func (f RowFormat) blockBytes(n int) int { return f.header() + (n*f.Bits+7)/8 }

// check reports whether f is a format RowFormat can hold.
func (f RowFormat) check() error {
	switch {
	case f.Bits != 8 && f.Bits != 4:
		return fmt.Errorf("quant: row format of %d bits, want 8 or 4", f.Bits)
	case f.Group <= 0 || f.Bits == 4 && f.Group%2 != 0:
		return fmt.Errorf("quant: row format group of %d values (positive, even at 4 bits)", f.Group)
	}
	return nil
}

// RowBytes is the size of a row of k values: k/Group whole blocks and,
// when Group does not divide k, one of k%Group values.
func (f RowFormat) RowBytes(k int) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if k <= 0 {
		return 0, fmt.Errorf("quant: a row of %d values", k)
	}
	n := k / f.Group * f.blockBytes(f.Group)
	if r := k % f.Group; r != 0 {
		n += f.blockBytes(r)
	}
	return n, nil
}

// DecodeRows writes len(dst)/k rows of k values decoded from src into dst:
// float32(q - zero point) · scale, as DequantizeValue.
func (f RowFormat) DecodeRows(dst []float32, src []byte, k int) {
	rb, err := f.RowBytes(k)
	if err != nil || len(dst)%k != 0 || len(src) != len(dst)/k*rb {
		panic(fmt.Sprintf("quant: DecodeRows: %d values, %d bytes for rows of %d in %v (%v)", len(dst), len(src), k, f, err))
	}
	hdr := f.header()
	for r := range len(dst) / k {
		row, out := src[r*rb:(r+1)*rb], dst[r*k:(r+1)*k]
		for len(out) > 0 {
			n := min(f.Group, len(out))
			blk := row[:f.blockBytes(n)]
			row = row[len(blk):]
			sc := math.Float32frombits(binary.LittleEndian.Uint32(blk))
			var zp int32
			if !f.Symmetric {
				zp = int32(binary.LittleEndian.Uint32(blk[4:]))
			}
			f.decodeBlock(out[:n], blk[hdr:], sc, zp)
			out = out[n:]
		}
	}
}

// decodeBlock decodes len(out) codes.
func (f RowFormat) decodeBlock(out []float32, codes []byte, sc float32, zp int32) {
	switch {
	case f.Bits == 8 && f.Signed:
		for i, c := range codes {
			out[i] = float32(int32(int8(c))-zp) * sc
		}
	case f.Bits == 8:
		for i, c := range codes {
			out[i] = float32(int32(c)-zp) * sc
		}
	default:
		for i, c := range codes[:len(out)/2] {
			lo, hi := int32(c&0x0F), int32(c>>4)
			if f.Signed {
				lo, hi = int32(int8(c<<4)>>4), int32(int8(c)>>4)
			}
			out[2*i] = float32(lo-zp) * sc
			out[2*i+1] = float32(hi-zp) * sc
		}
		if n := len(out); n%2 == 1 {
			out[n-1] = DequantizeValue(Code(codes, 4, f.Signed, n-1), sc, zp)
		}
	}
}

// PackRows lays out the codes of a 2-D weight quantized by p in
// RowFormat, and returns the format and the packed rows. The scheme must
// give every block of a row one scale: per-tensor, per-channel along axis
// 0, or per-group (a group size even at 4 bits). Per-channel along axis 1
// is refused: the caller dequantizes it.
func PackRows(codes []byte, p *Params) (RowFormat, []byte, error) {
	s := p.Scheme
	if err := p.Check(); err != nil {
		return RowFormat{}, nil, err
	}
	if len(p.Shape) != 2 {
		return RowFormat{}, nil, fmt.Errorf("quant: PackRows of a %d-D tensor, want 2-D", len(p.Shape))
	}
	rows, cols := p.Shape[0], p.Shape[1]
	if len(codes) != s.PackedLen(rows*cols) {
		return RowFormat{}, nil, fmt.Errorf("quant: %d code bytes for %v under %v", len(codes), p.Shape, s)
	}
	f := RowFormat{Bits: s.Bits, Signed: s.Signed, Symmetric: s.Symmetric, Group: cols}
	// param is the parameter index of block b of row r.
	var param func(r, b int) int
	switch {
	case s.Granularity == PerTensor:
		param = func(int, int) int { return 0 }
	case s.Granularity == PerChannel && s.Axis == 0:
		param = func(r, _ int) int { return r }
	case s.Granularity == PerGroup:
		f.Group = s.GroupSize
		gpr := (cols + s.GroupSize - 1) / s.GroupSize
		param = func(r, b int) int { return r*gpr + b }
	default:
		return RowFormat{}, nil, fmt.Errorf("quant: %v on %v has no row layout (per-tensor, per-channel on axis 0, or per-group)", s, p.Shape)
	}
	if f.Group >= cols {
		f.Group = cols // one block a row, of
		if s.Bits == 4 {
			f.Group += cols % 2 // an even group size, as RowFormat wants
		}
	} else if s.Bits == 4 && f.Group%2 != 0 {
		return RowFormat{}, nil, fmt.Errorf("quant: 4-bit groups of %d values have no row layout (odd)", f.Group)
	}
	rb, err := f.RowBytes(cols)
	if err != nil {
		return RowFormat{}, nil, err
	}
	out := make([]byte, rows*rb)
	hdr := f.header()
	for r := range rows {
		row := out[r*rb : (r+1)*rb]
		for b := 0; b*f.Group < cols; b++ {
			n := min(f.Group, cols-b*f.Group)
			blk := row[:f.blockBytes(n)]
			row = row[len(blk):]
			k := param(r, b)
			binary.LittleEndian.PutUint32(blk, math.Float32bits(p.Scales[k]))
			if !f.Symmetric {
				binary.LittleEndian.PutUint32(blk[4:], uint32(p.ZeroPoints[k]))
			}
			dst, i0 := blk[hdr:], r*cols+b*f.Group
			if s.Bits == 8 || i0%2 == 0 {
				copy(dst, codes[i0*s.Bits/8:(i0*s.Bits+n*s.Bits+7)/8])
				if s.Bits == 4 && n%2 == 1 {
					dst[len(dst)-1] &= 0x0F // the next code shares the byte
				}
				continue
			}
			for i := range n {
				PutCode(dst, 4, i, Code(codes, 4, s.Signed, i0+i))
			}
		}
	}
	return f, out, nil
}
