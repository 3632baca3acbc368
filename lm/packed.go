package lm

import (
	"fmt"

	"github.com/quantkit/quantkit/backend"
)

// PackedWeight is a weight [out, in] kept in a block format: Data holds out
// rows of Format.RowBytes(in) bytes (backend.Packed's layout). It is how a
// quantized checkpoint's weights stay quantized in memory: quantkit's
// int8/int4 codes with their scales (quant.RowFormat, from
// quant.PackRows) and a GGUF file's tensors in their own block type
// (gguf.Type: Q8_0, Q4_K, F16, ...), the latter used in place in the
// file's mapping. The GEMMs run on them with backend.GemmPacked, which
// decodes a tile of rows at a time (bit for bit what dequantizing the
// whole weight gives), so no float32 copy of the weight is ever made.
//
// A loader may have the backend repack a projection's rows into an order
// of its own that it multiplies faster (the cpu backend interleaves the
// rows of the 4-bit formats in groups of eight): Data is then the same
// bytes permuted, which only that backend reads (Model places it with
// WrapRepacked), and no longer Format's rows.
type PackedWeight struct {
	Format backend.PackedFormat
	Data   []byte
	// repacked says Data holds the rows in the backend's order
	// (packedRepacker), not Format's.
	repacked bool
}

// packedRepacker is a backend that keeps some packed weights in a row
// order of its own, which it multiplies faster (cpu.Backend: Q4_0 and the
// 4-bit quant.RowFormat, rows interleaved in groups of eight).
type packedRepacker interface {
	// RepacksPacked reports whether RepackPacked reorders n rows of k
	// values in format f.
	RepacksPacked(f backend.PackedFormat, n, k int) bool
	// RepackPacked writes the rows of src to dst (as long; dst may be
	// src) in the backend's order.
	RepackPacked(dst, src []byte, f backend.PackedFormat, n, k int) error
	// WrapRepacked makes a buffer of the bytes RepackPacked wrote, which
	// GemmPacked reads in that order.
	WrapRepacked(data []byte) (backend.Buffer, error)
}

// repacks reports whether b repacks a weight [rows, cols] of format f.
func repacks(b backend.Backend, f backend.PackedFormat, rows, cols int) bool {
	r, ok := b.(packedRepacker)
	return ok && r.RepacksPacked(f, rows, cols)
}

// repackInPlace has b repack w [rows, cols] in its own memory, where b
// repacks its format; w.Data must be writable (the arena's or the heap's,
// not a file's mapping).
func (w *PackedWeight) repackInPlace(b backend.Backend, rows, cols int) error {
	if w == nil || w.repacked || !repacks(b, w.Format, rows, cols) {
		return nil
	}
	if err := b.(packedRepacker).RepackPacked(w.Data, w.Data, w.Format, rows, cols); err != nil {
		return fmt.Errorf("lm: %w", err)
	}
	w.repacked = true
	return nil
}

// repackProjections has b repack, in place, the packed projections of w
// and its lm_head (not the embedding table, whose rows are decoded one by
// one), all of them in writable memory.
func repackProjections(b backend.Backend, c Config, w *Weights) error {
	h, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	shapes := [7][2]int{{qd, h}, {kvd, h}, {kvd, h}, {h, qd}, {ff, h}, {ff, h}, {h, ff}}
	for i := range w.Layers {
		if l := w.Layers[i].Packed; l != nil {
			for j, pw := range l.list() {
				if err := pw.repackInPlace(b, shapes[j][0], shapes[j][1]); err != nil {
					return err
				}
			}
		}
	}
	if w.LMHeadPacked != w.EmbedPacked {
		return w.LMHeadPacked.repackInPlace(b, c.Vocab, h)
	}
	return nil
}

// PackedLayer holds a layer's packed projections; nil entries are float32
// (or int8, Int8Layer).
type PackedLayer struct {
	Q, K, V, O, Gate, Up, Down *PackedWeight
}

func (l *PackedLayer) list() [7]*PackedWeight {
	return [7]*PackedWeight{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down}
}

// check reports whether w holds out rows of in values.
func (w *PackedWeight) check(name string, out, in int) error {
	rb, err := w.Format.RowBytes(in)
	if err != nil {
		return fmt.Errorf("lm: %s: %v: %w", name, w.Format, err)
	}
	if len(w.Data) != out*rb {
		return fmt.Errorf("lm: %s (%v) has %d bytes, want %d rows of %d", name, w.Format, len(w.Data), out, rb)
	}
	return nil
}

// decodeRows decodes rows ids of w (rows of k values) into dst, one row
// after another: the embedding lookup of a packed table.
func (w *PackedWeight) decodeRows(dst []float32, ids []int32, k int) {
	rb, _ := w.Format.RowBytes(k)
	for t, id := range ids {
		w.Format.DecodeRows(dst[t*k:(t+1)*k], w.Data[int(id)*rb:(int(id)+1)*rb], k)
	}
}

// embedPacked writes the embeddings of ids from the packed table w into
// dst [len(ids), k]: decoded on the host into dst's memory when it is host
// memory, else into a host slice uploaded once.
func embedPacked(b backend.Backend, dst backend.Buffer, w *PackedWeight, ids []int32, k int) error {
	if h, ok := backend.Host[float32](dst); ok {
		w.decodeRows(h, ids, k)
		return nil
	}
	h := make([]float32, len(ids)*k)
	w.decodeRows(h, ids, k)
	return b.Upload(dst, h)
}

// WeightBytes is the memory the weights of w take as the model holds them:
// 4 bytes a float32 value, the packed rows' bytes, 1 byte an int8 code and
// 4 a scale.
func (w *Weights) WeightBytes() int64 {
	var n int64
	f := func(xs ...[]float32) {
		for _, x := range xs {
			n += 4 * int64(len(x))
		}
	}
	p := func(ws ...*PackedWeight) {
		for _, w := range ws {
			if w != nil {
				n += int64(len(w.Data))
			}
		}
	}
	f(w.Embed, w.Norm, w.LMHead)
	p(w.EmbedPacked, w.LMHeadPacked)
	for i := range w.Layers {
		l := &w.Layers[i]
		f(l.AttnNorm, l.MLPNorm, l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down, l.QBias, l.KBias, l.VBias, l.OBias)
		if l.Packed != nil {
			ws := l.Packed.list()
			p(ws[:]...)
		}
		if l.Int8 != nil {
			for _, w := range l.Int8.list() {
				if w != nil {
					n += int64(len(w.Codes)) + 4*int64(len(w.Scales))
				}
			}
		}
	}
	return n
}
