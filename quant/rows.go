package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// RowFormat lays out a 2-D weight [rows, cols] quantized with one scale
// (and zero point) per block of Group consecutive values of a row, as
// per-tensor, per-channel (axis 0) and per-group schemes quantize a
// weight, in self-contained rows: each row is cols/Group blocks of
//
//	scale       float32, little-endian
//	zero point  int32, little-endian (asymmetric schemes only)
//	codes       Group codes packed as PutCode packs them (Group/2 bytes at 4 bits)
//
// so that a kernel streams a row's bytes alone (the layout llama.cpp's
// block types use). A row decodes to exactly the values Dequantize gives
// for the codes and parameters it was packed from (PackRows). RowFormat
// implements backend.PackedFormat.
type RowFormat struct {
	Bits      int  // 8 or 4
	Signed    bool // codes int8/int4 (else uint8/uint4)
	Symmetric bool // no zero points stored: they are 0
	Group     int  // values per block; a row's length for per-channel
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

// blockBytes is the size of one block: header and codes.
func (f RowFormat) blockBytes() int {
	h := 4
	if !f.Symmetric {
		h += 4
	}
	return h + f.Group*f.Bits/8
}

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

// RowBytes is the size of a row of k values: k/Group blocks.
func (f RowFormat) RowBytes(k int) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if k <= 0 || k%f.Group != 0 {
		return 0, fmt.Errorf("quant: a row of %d values is not a whole number of %d-value blocks", k, f.Group)
	}
	return k / f.Group * f.blockBytes(), nil
}

// DecodeRows writes len(dst)/k rows of k values decoded from src into dst:
// float32(q - zero point) · scale, as DequantizeValue.
func (f RowFormat) DecodeRows(dst []float32, src []byte, k int) {
	bb, g := f.blockBytes(), f.Group
	blocks := len(dst) / g
	if len(dst)%k != 0 || len(src) != blocks*bb {
		panic(fmt.Sprintf("quant: DecodeRows: %d values, %d bytes for rows of %d in %v", len(dst), len(src), k, f))
	}
	for b := range blocks {
		blk := src[b*bb : (b+1)*bb]
		sc := math.Float32frombits(binary.LittleEndian.Uint32(blk))
		var zp int32
		codes := blk[4:]
		if !f.Symmetric {
			zp = int32(binary.LittleEndian.Uint32(blk[4:]))
			codes = blk[8:]
		}
		out := dst[b*g : (b+1)*g]
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
			for i, c := range codes {
				lo, hi := int32(c&0x0F), int32(c>>4)
				if f.Signed {
					lo, hi = int32(int8(c<<4)>>4), int32(int8(c)>>4)
				}
				out[2*i] = float32(lo-zp) * sc
				out[2*i+1] = float32(hi-zp) * sc
			}
		}
	}
}

// PackRows lays out the codes of a 2-D weight quantized by p in
// RowFormat, and returns the format and the packed rows. The scheme must
// give every block of a row one scale: per-tensor, per-channel along axis
// 0, or per-group with a group size dividing the row (even at 4 bits).
// Other layouts (per-channel along axis 1, groups across rows) are
// refused: the caller dequantizes those.
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
	// scale of block b of row r.
	var param func(r, b int) int
	switch {
	case s.Granularity == PerTensor:
		param = func(int, int) int { return 0 }
	case s.Granularity == PerChannel && s.Axis == 0:
		param = func(r, _ int) int { return r }
	case s.Granularity == PerGroup && cols%s.GroupSize == 0:
		f.Group = s.GroupSize
		gpr := cols / s.GroupSize
		param = func(r, b int) int { return r*gpr + b }
	default:
		return RowFormat{}, nil, fmt.Errorf("quant: %v on %v has no row layout (per-tensor, per-channel on axis 0, or groups dividing the rows)", s, p.Shape)
	}
	rb, err := f.RowBytes(cols)
	if err != nil {
		return RowFormat{}, nil, err
	}
	out := make([]byte, rows*rb)
	bb, bpr := f.blockBytes(), cols/f.Group
	for r := range rows {
		for b := range bpr {
			blk := out[r*rb+b*bb : r*rb+(b+1)*bb]
			k := param(r, b)
			binary.LittleEndian.PutUint32(blk, math.Float32bits(p.Scales[k]))
			dst := blk[4:]
			if !f.Symmetric {
				binary.LittleEndian.PutUint32(blk[4:], uint32(p.ZeroPoints[k]))
				dst = blk[8:]
			}
			i0 := r*cols + b*f.Group
			if s.Bits == 8 {
				copy(dst, codes[i0:i0+f.Group])
				continue
			}
			copy(dst, codes[i0/2:(i0+f.Group)/2]) // i0 and Group even: whole bytes
		}
	}
	return f, out, nil
}
