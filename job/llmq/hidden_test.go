package llmq

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/lm"
)

// TestHalfRows: rows stored as float16 with a power of two each come back
// within half a float16 step of the row's largest value (2^-11 of it,
// relative), whatever the row's range (beyond float16's 65504, below its
// smallest normal), zero rows as zeros; and put at an offset replaces only
// those rows.
func TestFloat16Rows(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const cols = 33
	scales := []float64{1, 1e6, 3e-9, 0, 7e4, 1e30, 1e-30}
	x := make([]float32, len(scales)*cols)
	for r, s := range scales {
		for j := range cols {
			x[r*cols+j] = float32(s * rng.NormFloat64())
		}
	}
	h := float16Rows(x, cols)
	if h.bytes() != int64(len(x))*2+int64(len(scales)) {
		t.Errorf("bytes %d", h.bytes())
	}
	check := func(got, want []float32) {
		t.Helper()
		for r := range len(want) / cols {
			var m float64
			for _, v := range want[r*cols : (r+1)*cols] {
				m = max(m, math.Abs(float64(v)))
			}
			for j := range cols {
				g, w := got[r*cols+j], want[r*cols+j]
				if e := math.Abs(float64(g) - float64(w)); e > m*math.Ldexp(1, -11) || m == 0 && g != 0 {
					t.Fatalf("row %d value %d: %g for %g (row max %g)", r, j, g, w, m)
				}
			}
		}
	}
	check(h.get(0, len(scales), nil), x)
	// A clone holds the same rows and keeps them when h changes.
	c := h.clone()
	if !slices.Equal(c.get(0, len(scales), nil), h.get(0, len(scales), nil)) {
		t.Error("clone: other rows")
	}
	h.put(0, make([]float32, cols))
	check(c.get(0, 1, nil), x[:cols])
	h.put(0, x[:cols])
	// One row rewritten at an offset; the others stay.
	y := make([]float32, cols)
	for j := range y {
		y[j] = float32(j) - 16
	}
	h.put(2, y)
	want := append([]float32(nil), x...)
	copy(want[2*cols:], y)
	check(h.get(0, len(scales), make([]float32, 3)), want)
	check(h.get(2, 1, nil), y)
}

// TestHiddenForward: forwardBlock over float32 rows is the block's own
// Forward on them, bit for bit; over float16 rows, chunk by chunk of
// calibRows rows, it is the block run on the rounded rows, each chunk
// rounded again, within float16's relative step of each output row's
// largest value. Rows fewer than a whole sequence per chunk and a last
// chunk shorter than the others are both covered (seqLen 300 > calibRows/2).
func TestHiddenForward(t *testing.T) {
	b := cpu.New()
	c := smallConfig(1, 2)
	w := randomWeights(c, 5)
	seqs, T := 5, 300
	H := c.Hidden
	x, err := lm.Embed(w.Embed, H, randomIDs(6, seqs*T, c.Vocab))
	if err != nil {
		t.Fatal(err)
	}
	blk, err := lm.NewBlock(b, c, 0, &w.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(x)
	if err := blk.Forward(want, seqs, T, nil); err != nil {
		t.Fatal(err)
	}
	if err := blk.Close(); err != nil {
		t.Fatal(err)
	}
	h32 := float32Rows(slices.Clone(x), H)
	if err := forwardBlock(b, c, 0, &w.Layers[0], h32, seqs, T, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h32.f32, want) {
		t.Error("float32 rows: not the block's Forward")
	}
	h16 := float16Rows(x, H)
	if h16.rows() != seqs*T || h32.rows() != seqs*T {
		t.Fatalf("rows %d, %d", h16.rows(), h32.rows())
	}
	called := false
	if err := forwardBlock(b, c, 0, &w.Layers[0], h16, seqs, T, func() { called = true }); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Error("before was not called")
	}
	got := h16.get(0, seqs*T, nil)
	for r := range seqs * T {
		var m float64
		for _, v := range want[r*H : (r+1)*H] {
			m = max(m, math.Abs(float64(v)))
		}
		for j := range H {
			// the input's rounding, carried through the layer, and the
			// output's: a few float16 steps of the row's largest value
			if e := math.Abs(float64(got[r*H+j] - want[r*H+j])); e > 8*m*math.Ldexp(1, -11) {
				t.Fatalf("row %d value %d: %g, want %g (row max %g)", r, j, got[r*H+j], want[r*H+j], m)
			}
		}
	}
}
