package nn

import (
	"math"
	"testing"
)

func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		v    []float32
		want int
	}{{[]float32{1, 3, 3, 2}, 1}, {[]float32{nan, 1, 2}, 2}, {[]float32{1, nan, 0}, 0}, {[]float32{-5}, 0},
		{[]float32{nan, nan, nan}, -1}, {nil, -1}, {[]float32{nan, -1, -2}, 1}} {
		if got := Argmax(c.v); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.v, got, c.want)
		}
	}
}

// identity is a Forwarder whose outputs are its inputs, counting the
// samples it runs.
type identity struct {
	n   int
	ran int
}

func (f *identity) InLen() int  { return f.n }
func (f *identity) OutLen() int { return f.n }
func (f *identity) Forward(x []float32, batch int, out []float32) error {
	f.ran += batch
	copy(out, x[:batch*f.n])
	return nil
}

func TestAccuracyProgress(t *testing.T) {
	pixels := []float32{0, 9, 9, 0, 1, 2, 2, 1, 5, 5}
	s := &Samples{N: 5, Labels: []uint8{1, 0, 1, 0, 1}, Fill: func(dst []float32, idx []int) {
		for k, i := range idx {
			copy(dst[2*k:2*k+2], pixels[2*i:2*i+2])
		}
	}}
	// The class is the larger value (the first on ties).
	f := &identity{n: 2}
	var calls [][2]int
	correct, total, err := AccuracyProgress(f, s, 0, 2, func(done, n int) { calls = append(calls, [2]int{done, n}) })
	// Samples: 0<9 → 1 ✓, 9>0 → 0 ✓, 1<2 → 1 ✓, 2>1 → 0 ✓, tie → 0 ✗.
	if err != nil || correct != 4 || total != 5 || len(calls) != 3 || calls[2] != [2]int{5, 5} || calls[0] != [2]int{2, 5} {
		t.Errorf("%d / %d, %v, progress %v", correct, total, err, calls)
	}
	f.ran = 0
	if c, n, _ := Accuracy(f, s, 3, 0); c != 3 || n != 3 || f.ran != 3 {
		t.Errorf("limit 3: %d / %d, %d samples run", c, n, f.ran)
	}
	f.ran = 0
	s.Labels[4] = 2
	if _, _, err := Accuracy(f, s, 0, 2); err == nil || f.ran != 0 {
		t.Errorf("a label beyond the outputs: %v, %d samples run", err, f.ran)
	}
	// Only the samples counted need labels the outputs reach.
	if c, n, err := Accuracy(f, s, 4, 2); err != nil || c != 4 || n != 4 {
		t.Errorf("limit 4: %d / %d, %v", c, n, err)
	}
	// An output that is all NaN matches no label, the last one included.
	nan := float32(math.NaN())
	s.Labels[4] = 1
	pixels[8], pixels[9] = nan, nan
	if c, n, err := Accuracy(f, s, 0, 2); err != nil || c != 4 || n != 5 {
		t.Errorf("an all-NaN output: %d / %d, %v; want 4 / 5", c, n, err)
	}
	s.Labels = nil
	if _, _, err := Accuracy(f, s, 0, 2); err == nil {
		t.Error("samples without labels")
	}
}
