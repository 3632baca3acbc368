package llmq

import (
	"math"

	"github.com/quantkit/quantkit/internal/half"
)

// halfRows holds the float model's hidden states for the float target
// (Options.Asymmetric) in half the memory of float32: row r (a token's
// hidden state) as float16 values of the row times 2^-e[r], e[r] chosen
// so that the row's largest magnitude lands in [2^14, 2^15). Scaling by a
// power of two is exact, so a row keeps float16's 11 significant bits
// relative to its own largest value, and no activation overflows float16's
// range however large the model's are. On stories260K the stored states
// changed the quantized checkpoints' mean KL by less than the
// calibration windows' seed does (bench/RESULTS.md).
type halfRows struct {
	cols int
	v    []uint16
	exp  []int8 // row r's values are v·2^exp[r]
}

// newHalfRows stores x [rows, cols].
func newHalfRows(x []float32, cols int) *halfRows {
	n := len(x) / cols
	h := &halfRows{cols: cols, v: make([]uint16, len(x)), exp: make([]int8, n)}
	h.put(0, x)
	return h
}

// put stores the rows x [n, cols] at rows r0….
func (h *halfRows) put(r0 int, x []float32) {
	c := h.cols
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
func (h *halfRows) get(r0, n int, dst []float32) []float32 {
	c := h.cols
	if cap(dst) < n*c {
		dst = make([]float32, n*c)
	}
	dst = dst[:n*c]
	for r := range n {
		s := float32(math.Ldexp(1, int(h.exp[r0+r])))
		src := h.v[(r0+r)*c : (r0+r+1)*c]
		for j, v := range src {
			dst[r*c+j] = half.Float16ToFloat32(v) * s
		}
	}
	return dst
}

// bytes is the memory h holds.
func (h *halfRows) bytes() int64 { return int64(len(h.v))*2 + int64(len(h.exp)) }

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }
