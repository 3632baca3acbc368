package plan

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// This file is the whole-tensor quantizer Run streamed before it went by
// blocks of rows: each item read whole, fitted, quantized, measured and
// encoded in one piece. It is the reference the streamed output must
// equal byte for byte.

// wholeItem processes item it whole and returns its outputs' data.
func wholeItem(p *Plan, it *Item, src Source, opt RunOptions) (encoded, error) {
	row, err := lookupFormat(p.Format)
	if err != nil {
		return encoded{}, err
	}
	if opt.Kernels == nil {
		opt.Kernels = ReferenceKernels{}
	}
	return process(row, p.Scheme, it, src, opt)
}

// encoded is the result of one item.
type encoded struct {
	tensors [][]byte // parallel to the item's Outputs
	stats   Stats
}

// process reads, quantizes, encodes and measures one item.
func process(row *format, s quant.Scheme, it *Item, src Source, opt RunOptions) (encoded, error) {
	if it.Action == Keep {
		return keep(row, it, src)
	}
	xb, yb := floatBufs.get(), floatBufs.get()
	defer floatBufs.put(xb)
	defer floatBufs.put(yb)
	x, err := wholeReadFloat32(src, it.Name, *xb)
	if err != nil {
		return encoded{}, err
	}
	*xb = x
	release(src, it.Name) // x is a copy
	nonFinite := wholeSanitize(x, opt.AllowNonFinite)
	if nonFinite > 0 && !opt.AllowNonFinite {
		return encoded{}, fmt.Errorf("%w: %d NaN or infinite values (--allow-nonfinite quantizes them: NaN as 0, ±Inf saturated)", ErrNonFinite, nonFinite)
	}
	y := (*yb)[:0] // dequantized, for the SQNR; every element is written
	if cap(y) < len(x) {
		y = make([]float32, len(x))
	}
	y = y[:len(x)]
	*yb = y
	var tensors [][]byte
	if row.isGGUF {
		tensors, err = encodeGGUF(row.gguf, it, x, y)
	} else {
		tensors, err = encodeInt(row.name, s, it, x, y, opt.Kernels)
	}
	if err != nil {
		return encoded{}, err
	}
	return encoded{tensors: tensors, stats: Stats{SQNR: quant.SQNR(x, y), NonFinite: nonFinite}}, nil
}

// floatBufs recycles the float32 buffers of process (the tensor read and
// its dequantized copy): allocating them per tensor cleared every byte
// first, which cost as much as reading them.
var floatBufs bufPool

type bufPool struct{ p sync.Pool }

func (b *bufPool) get() *[]float32 {
	if v, ok := b.p.Get().(*[]float32); ok {
		return v
	}
	return new([]float32)
}

func (b *bufPool) put(v *[]float32) { b.p.Put(v) }

// readFloat32 reads the named tensor as float32 into buf's memory where
// the source can (*checkpoint.Checkpoint can), else into a new slice.
func wholeReadFloat32(src Source, name string, buf []float32) ([]float32, error) {
	if s, ok := src.(interface {
		Float32Into(name string, dst []float32) ([]float32, error)
	}); ok {
		return s.Float32Into(name, buf)
	}
	return src.Float32(name)
}

// sanitize counts the NaN and ±Inf values of x and, when fix is set,
// replaces NaN with 0 and ±Inf with ± the largest finite |x|.
func wholeSanitize(x []float32, fix bool) int {
	n := countNonFinite(x)
	if n == 0 || !fix {
		return n
	}
	var amax float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax && a <= math.MaxFloat32 {
			amax = a
		}
	}
	for i, v := range x {
		switch {
		case math.IsNaN(float64(v)):
			x[i] = 0
		case math.IsInf(float64(v), 1):
			x[i] = amax
		case math.IsInf(float64(v), -1):
			x[i] = -amax
		}
	}
	return n
}

// keep copies a kept tensor: byte for byte, or converted to F32 for a GGUF
// output that has no type for it.
func keep(row *format, it *Item, src Source) (encoded, error) {
	st := Stats{SQNR: math.Inf(1)}
	if it.Outputs[0].Bytes != it.BytesIn {
		x, err := src.Float32(it.Name)
		if err != nil {
			return encoded{}, err
		}
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return encoded{tensors: [][]byte{b}, stats: st}, nil
	}
	b, err := src.Bytes(it.Name)
	if err != nil {
		return encoded{}, err
	}
	return encoded{tensors: [][]byte{b}, stats: st}, nil
}

// encodeInt quantizes x under s for the compressed-tensors and safetensors
// formats, writing the dequantized values into y.
func encodeInt(f Format, s quant.Scheme, it *Item, x, y []float32, k Kernels) ([][]byte, error) {
	p, err := fitMinMax(k, s, x, it.Shape)
	if err != nil {
		return nil, err
	}
	if it.ScaleDType != "F32" {
		if err := ctensors.RoundScales(p, it.ScaleDType); err != nil {
			return nil, err
		}
	}
	codes := make([]byte, s.PackedLen(len(x)))
	if err := k.Quantize(codes, x, p); err != nil {
		return nil, err
	}
	if err := k.Dequantize(y, codes, p); err != nil {
		return nil, err
	}
	if ct, ok := CTFormat(f, s); ok {
		ts, err := ctensors.EncodeWeight(it.Name, codes, p, ct, it.ScaleDType)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(ts))
		for i, t := range ts {
			if t.Name != it.Outputs[i].Name {
				return nil, fmt.Errorf("encoded tensor %q where the plan has %q", t.Name, it.Outputs[i].Name)
			}
			out[i] = t.Data
		}
		return out, nil
	}
	scales := make([]byte, 4*len(p.Scales))
	for i, v := range p.Scales {
		binary.LittleEndian.PutUint32(scales[4*i:], math.Float32bits(v))
	}
	out := [][]byte{codes, scales}
	if !s.Symmetric {
		zp := make([]byte, 4*len(p.ZeroPoints))
		for i, v := range p.ZeroPoints {
			binary.LittleEndian.PutUint32(zp[4*i:], uint32(v))
		}
		out = append(out, zp)
	}
	return out, nil
}

// encodeGGUF quantizes x into GGUF blocks of type t, writing the
// dequantized values into y.
func encodeGGUF(t gguf.Type, it *Item, x, y []float32) ([][]byte, error) {
	b := make([]byte, it.Outputs[0].Bytes)
	switch t {
	case gguf.TypeQ8_0:
		gguf.QuantizeQ8_0(b, x)
		gguf.DequantizeQ8_0(y, b)
	case gguf.TypeQ4_0:
		gguf.QuantizeQ4_0(b, x)
		gguf.DequantizeQ4_0(y, b)
	default:
		return nil, fmt.Errorf("GGUF type %s not supported", t)
	}
	return [][]byte{b}, nil
}
