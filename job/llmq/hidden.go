package llmq

import (
	"errors"
	"math"
	"slices"
	"sync"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/lm"
)

// hiddenRows holds calibration hidden states [rows, cols] (a token's
// hidden state a row) between layers, as float32 or in half the memory
// as float16: row r as float16 values of the row times 2^-e[r], e[r]
// chosen so that the row's largest magnitude lands in [2^14, 2^15).
// Scaling by a power of two is exact, so a row keeps float16's 11
// significant bits relative to each value down to 2^-28 of the row's
// largest, and no activation overflows float16's range however large the
// model's are. The float target (Options.Asymmetric) holds both of its
// streams so, the float model's and the quantized model's: together the
// memory of one stream in float32. On stories260K the stored states
// changed the quantized checkpoints' mean KL by less than the
// calibration windows' seed does (bench/RESULTS.md).
type hiddenRows struct {
	cols int
	f32  []float32 // the rows as float32, or nil when held as float16
	v    []uint16
	exp  []int8 // row r's values are v·2^exp[r]
}

// float32Rows holds x [rows, cols] as it is (not a copy).
func float32Rows(x []float32, cols int) *hiddenRows { return &hiddenRows{cols: cols, f32: x} }

// float16Rows stores x [rows, cols] as float16 rows with a power-of-two
// scale each; x is left as it is.
func float16Rows(x []float32, cols int) *hiddenRows {
	n := len(x) / cols
	h := &hiddenRows{cols: cols, v: make([]uint16, len(x)), exp: make([]int8, n)}
	h.put(0, x)
	return h
}

// clone is a copy of h.
func (h *hiddenRows) clone() *hiddenRows {
	return &hiddenRows{cols: h.cols, f32: slices.Clone(h.f32), v: slices.Clone(h.v), exp: slices.Clone(h.exp)}
}

// rows is how many rows h holds.
func (h *hiddenRows) rows() int {
	if h.f32 != nil {
		return len(h.f32) / h.cols
	}
	return len(h.exp)
}

// put stores the rows x [n, cols] at rows r0….
func (h *hiddenRows) put(r0 int, x []float32) {
	c := h.cols
	if h.f32 != nil {
		copy(h.f32[r0*c:], x)
		return
	}
	for r := range len(x) / c {
		row := x[r*c : (r+1)*c]
		var m float32
		for _, v := range row {
			m = max(m, abs32(v))
		}
		e := 0
		if m > 0 && !math.IsInf(float64(m), 0) && !math.IsNaN(float64(m)) {
			_, e = math.Frexp(float64(m)) // m = f·2^e, f in [0.5, 1)
			e -= 15
		}
		e = max(-126, min(127, e)) // 2^-e a float32
		h.exp[r0+r] = int8(e)
		s := float32(math.Ldexp(1, -e))
		dst := h.v[(r0+r)*c : (r0+r+1)*c]
		for j, v := range row {
			dst[j] = half.Float32ToFloat16(v * s)
		}
	}
}

// get writes rows [r0, r0+n) into dst (grown when short) and returns it.
func (h *hiddenRows) get(r0, n int, dst []float32) []float32 {
	c := h.cols
	if cap(dst) < n*c {
		dst = make([]float32, n*c)
	}
	dst = dst[:n*c]
	if h.f32 != nil {
		copy(dst, h.f32[r0*c:(r0+n)*c])
		return dst
	}
	tab := float16Table()
	for r := range n {
		s := float32(math.Ldexp(1, int(h.exp[r0+r])))
		src := h.v[(r0+r)*c : (r0+r+1)*c]
		out := dst[r*c : (r+1)*c]
		for j, v := range src {
			out[j] = tab[v] * s
		}
	}
	return dst
}

// forward runs blk on the rows, seqs sequences of seqLen tokens, in
// place: float32 rows in one call, float16 rows chunk by chunk of at most
// calibRows rows (whole sequences), through a chunk's float32 copy.
func (h *hiddenRows) forward(blk *lm.Block, seqs, seqLen int) error {
	if h.f32 != nil {
		return blk.Forward(h.f32, seqs, seqLen, nil)
	}
	per := max(1, calibRows/seqLen)
	var chunk []float32
	for s0 := 0; s0 < seqs; s0 += per {
		k := min(per, seqs-s0)
		chunk = h.get(s0*seqLen, k*seqLen, chunk)
		if err := blk.Forward(chunk, k, seqLen, nil); err != nil {
			return err
		}
		h.put(s0*seqLen, chunk)
	}
	return nil
}

// bytes is the memory h holds.
func (h *hiddenRows) bytes() int64 {
	return int64(len(h.f32))*4 + int64(len(h.v))*2 + int64(len(h.exp))
}

// forwardBlock runs layer l (its weights as layer holds them) on h in
// place and closes the block.
func forwardBlock(b backend.Backend, cfg lm.Config, l int, layer *lm.Layer, h *hiddenRows, seqs, seqLen int, before func()) error {
	blk, err := lm.NewBlock(b, cfg, l, layer)
	if err != nil {
		return err
	}
	blk.MaxRows = calibRows
	if before != nil {
		before()
	}
	return errors.Join(h.forward(blk, seqs, seqLen), blk.Close())
}

// float16Table maps every float16 bit pattern to its float32 value
// (256 KiB, built once): a load instead of half.Float16ToFloat32's
// branches, for the hidden states read several times a layer.
var float16Table = sync.OnceValue(func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for i := range t {
		t[i] = half.Float16ToFloat32(uint16(i))
	}
	return t
})

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }
