package lm

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/mmap"
	"github.com/quantkit/quantkit/quant"
)

// Int8Weight is a linear weight [out, in] kept as int8 codes with one
// float32 scale per output row (int8 symmetric per-channel, axis 0): the
// weight it stands for is float32(Codes[o·in+i])·Scales[o], exactly what
// quant.Dequantize gives.
type Int8Weight struct {
	Codes  []int8
	Scales []float32
}

// Int8Layer holds a layer's int8 projections; nil entries are float32.
//
// An int8 projection runs as W8A8: each token row x of the input is
// quantized on the backend by backend.QuantizeRows (scale s_x =
// max|x|/127, codes x/s_x rounded half to even and clamped to [-127,
// 127]), and backend.GemmS8 computes, with exact int32 accumulators acc,
//
//	y[t,o] = float32(float32(acc[t,o])·s_x[t])·Scales[o]
//
// (Epilogue.RowScale = s_x, ColScale = Scales). A bias is then added by
// backend.Add as on the float path.
//
// The codes are held once, in the layout [out, in] they have here (on the
// cpu backend, this very slice), and every GEMM reads them as they are:
// on the cpu backend a decode step (up to 32 token rows) runs integer dot
// products straight from them, in parallel, with no per-call packing of
// the weight; a prefill's GemmS8 packs them once per call, which
// the many token rows amortize.
type Int8Layer struct {
	Q, K, V, O, Gate, Up, Down *Int8Weight
}

func (l *Int8Layer) list() [7]*Int8Weight {
	return [7]*Int8Weight{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down}
}

// checkProj checks projection j of layer l ([out, in]): float32 of out·in
// values, int8 with out·in codes and out scales, or packed rows.
func checkProj(l *Layer, name string, x []float32, out, in, j int) error {
	if l.Packed != nil {
		if w := l.Packed.list()[j]; w != nil {
			if x != nil || l.Int8 != nil && l.Int8.list()[j] != nil {
				return fmt.Errorf("lm: %s is packed and also float32 or int8", name)
			}
			return w.check(name, out, in)
		}
	}
	if l.Int8 != nil {
		if w := l.Int8.list()[j]; w != nil {
			if x != nil {
				return fmt.Errorf("lm: %s is both float32 and int8", name)
			}
			if len(w.Codes) != out*in || len(w.Scales) != out {
				return fmt.Errorf("lm: int8 %s has %d codes and %d scales, want %d and %d", name, len(w.Codes), len(w.Scales), out*in, out)
			}
			return nil
		}
	}
	if len(x) != out*in {
		return fmt.Errorf("lm: %s has %d elements, want %d", name, len(x), out*in)
	}
	return nil
}

// int8Buffer is an Int8Weight on the backend: the codes in an S8 buffer
// [out, in], the scales on the host, where GemmS8's Epilogue reads them.
type int8Buffer struct {
	codes  backend.Buffer
	scales []float32
}

// placeInt8 puts w's codes on b (backend.Place: in place on a backend
// of host memory); owned says whether the buffer is to be freed.
func placeInt8(b backend.Backend, w *Int8Weight) (int8Buffer, bool, error) {
	buf, owned, err := backend.Place(b, w.Codes)
	if err != nil {
		return int8Buffer{}, false, err
	}
	return int8Buffer{codes: buf, scales: w.Scales}, owned, nil
}

// gemmW8A8 computes out [m, n] = a [m, k] times w [n, k] transposed as
// W8A8 (see Int8Layer), with a8 and as the cache's scratch for the codes
// and scales of a.
//
// Epilogue.RowScale is a host slice, so the m per-token scales that
// QuantizeRows writes on the backend are read back: none on a backend of
// host memory (cpu), and otherwise a Download of m float32 values (4·m
// bytes and a synchronization per projection). Passing a device buffer to
// the epilogue instead would change the Backend interface; this keeps the
// change to one LMOps method.
func gemmW8A8(b backend.Backend, m, n, k int, a backend.Buffer, w *int8Buffer, out, a8, as backend.Buffer) error {
	codes, scales := a8.Slice(0, m*k), as.Slice(0, m)
	if err := backend.QuantizeRows(b, codes, scales, a, m, k); err != nil {
		return err
	}
	rs, ok := backend.Host[float32](scales)
	if ok {
		if err := b.Synchronize(); err != nil {
			return err
		}
	} else {
		rs = make([]float32, m)
		if err := b.Download(rs, scales); err != nil {
			return err
		}
	}
	return b.GemmS8(m, n, k, codes, w.codes, out, &backend.Epilogue{RowScale: rs, ColScale: w.scales})
}

// reserveInt8 makes the W8A8 scratch hold codes codes and scales scales.
func (c *Cache) reserveInt8(codes, scales int) error {
	b := c.m.b
	for _, s := range []struct {
		buf *backend.Buffer
		dt  backend.DType
		n   int
	}{{&c.a8, backend.S8, codes}, {&c.as, backend.F32, scales}} {
		if *s.buf != nil && (*s.buf).Len() >= s.n {
			continue
		}
		nb, err := b.Alloc(s.dt, s.n)
		if err != nil {
			return fmt.Errorf("lm: %w", err)
		}
		if *s.buf != nil {
			if err := b.Free(*s.buf); err != nil {
				return errors.Join(fmt.Errorf("lm: %w", err), b.Free(nb))
			}
		}
		*s.buf = nb
	}
	return nil
}

// LoadOptions change how LoadHFWith and LoadGGUFWith load a model. The
// zero value keeps every weight in the form it has in the file: float32
// as float32, quantized (quantkit's int8/int4 codes, GGUF block types) and
// 16-bit (F16, BF16) weights packed (PackedWeight), multiplied by
// backend.GemmPacked, which computes exactly what the same model
// dequantized to float32 computes, up to the order of float32 sums.
type LoadOptions struct {
	// Int8 keeps the projection weights of an int8 symmetric per-channel
	// (axis 0) quantized checkpoint as int8 codes on the backend and runs
	// them as W8A8 (Int8Layer): activations quantized per token, integer
	// GEMMs. Other weights load as without it.
	Int8 bool
	// Float32 converts every weight to float32 at load, as a float model:
	// 4 bytes a weight, and the float32 GEMM.
	Float32 bool
	// Quantize, when not nil, quantizes the projections (q, k, v, o,
	// gate, up, down) that a Hugging Face checkpoint stores in float
	// with this scheme at load, round-to-nearest with min-max scales
	// (quant.FitMinMax, as `quantkit quantize` does): a float model run
	// as int8 or int4 without writing a checkpoint first. They stay
	// packed (with Int8 and an int8 per-channel scheme, W8A8).
	Quantize *quant.Scheme
	// QuantizeHead quantizes the lm_head too (the embedding, when the
	// head is tied to it), with Quantize's scheme, kept packed
	// (weight-only, also under Int8): as llama.cpp's Q8_0 and Q4_0
	// quantize output.weight. Without it the head stays float, as
	// llm-compressor leaves it. On a checkpoint whose projections are
	// quantized already (Quantize nil) it quantizes a float head as int8
	// per channel (quant.Int8PerChannel): a decode step then reads a
	// quarter of the head's float32 bytes.
	QuantizeHead bool
	// BF16 rounds the float tensors of a Hugging Face checkpoint to
	// bfloat16 at load and keeps its matrices (embedding, lm_head and the
	// projections Quantize leaves) packed in 16 bits: a float32
	// checkpoint run exactly as its BF16 conversion.
	BF16 bool
}

// asInt8 returns the codes of a quantized 2-D weight when its scheme is
// int8 symmetric per-channel along axis 0, else nil. The codes are copied
// once (codes may be reused), into a (arenaBytes) when a is not nil, else
// onto the heap: the model holds one copy of them, which every GEMM reads
// as it is.
func asInt8(a *mmap.Arena, codes []byte, p *quant.Params) *Int8Weight {
	s := p.Scheme
	if s.Bits != 8 || !s.Signed || !s.Symmetric || s.Granularity != quant.PerChannel || s.Axis != 0 ||
		len(p.Shape) != 2 || len(p.Scales) != p.Shape[0] || len(codes) != p.Shape[0]*p.Shape[1] {
		return nil
	}
	for _, z := range p.ZeroPoints {
		if z != 0 {
			return nil
		}
	}
	var c []byte
	if a != nil {
		c = arenaBytes(a, len(codes))
	} else {
		c = make([]byte, len(codes))
	}
	copy(c, codes)
	return &Int8Weight{Codes: unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(c))), len(c)), Scales: p.Scales}
}
