package llamacpp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// ReadRows gives, for any run of rows, exactly those rows of Float32: q/k
// rows permuted one at a time, from a Hugging Face checkpoint and from a
// GGUF file alike; ranges outside the tensor are refused.
func TestReadRowsEqualsFloat32(t *testing.T) {
	hf, err := Plan(storiesHF, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	gg, err := FromGGUF(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer gg.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range []*Conversion{hf, gg} {
		permuted := 0
		for i := range c.Tensors {
			tn := &c.Tensors[i]
			want, err := c.Float32(tn)
			if err != nil {
				t.Fatal(err)
			}
			cols, rows := tn.Dims[0], tn.Rows()
			if tn.QKHeads > 0 {
				permuted++
			}
			for range 4 {
				first := rng.IntN(rows)
				n := 1 + rng.IntN(rows-first)
				got := make([]float32, n*cols)
				if err := c.ReadRows(tn, first, got); err != nil {
					t.Fatalf("%s: %s rows %d+%d: %v", c.Input, tn.Name, first, n, err)
				}
				if !slices.EqualFunc(got, want[first*cols:(first+n)*cols], func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
					t.Fatalf("%s: %s rows %d+%d differ from Float32's", c.Input, tn.Name, first, n)
				}
			}
			if err := c.ReadRows(tn, rows, make([]float32, cols)); err == nil {
				t.Errorf("%s: %s: a row past the end was read", c.Input, tn.Name)
			}
			if cols > 1 {
				if err := c.ReadRows(tn, 0, make([]float32, cols+1)); err == nil {
					t.Errorf("%s: %s: a part of a row was read", c.Input, tn.Name)
				}
			}
		}
		if c == hf && permuted != 10 {
			t.Errorf("%d permuted tensors in stories260K's conversion, want 10 (q and k of 5 layers)", permuted)
		}
	}
}
