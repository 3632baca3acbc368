package lm

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/gguf"
)

// TestGGUFQ8_0 writes stories260K with every matrix whose rows divide into
// Q8_0 blocks as Q8_0 and checks that LoadGGUF computes exactly what the
// F32 model computes with those matrices rounded through Q8_0: the
// dequantization and the q/k reordering commute (blocks lie within rows).
// The packed weights are multiplied exactly (cpu.SetExactPacked), as the
// F32 model multiplies them.
func TestGGUFQ8_0(t *testing.T) {
	defer cpu.SetExactPacked(cpu.SetExactPacked(true))
	src, err := gguf.Open(stories + "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	quantized := func(info gguf.TensorInfo) bool { return len(info.Dims) == 2 && info.Dims[0]%32 == 0 }
	var ts []gguf.Tensor
	for _, info := range src.Tensors() {
		x, err := src.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		typ, data := gguf.Type(0), []byte(nil)
		if quantized(info) {
			typ, _ = gguf.ParseType("Q8_0")
			data = make([]byte, len(x)/32*34)
			gguf.QuantizeQ8_0(data, x)
		} else {
			typ, _ = gguf.ParseType("F32")
			data = make([]byte, 4*len(x))
			if err := gguf.EncodeFloat32(data, x, typ); err != nil {
				t.Fatal(err)
			}
		}
		ts = append(ts, gguf.Tensor{Name: info.Name, Type: typ, Dims: info.Dims, Data: data})
	}
	path := filepath.Join(t.TempDir(), "q8_0.gguf")
	if err := gguf.WriteFile(path, src.Metadata(), ts); err != nil {
		t.Fatal(err)
	}
	b := cpu.New()
	q, err := LoadGGUF(b, path)
	if err != nil {
		t.Fatal(err)
	}
	f32, err := LoadGGUF(b, stories+"stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range q.Weights.Layers {
		if l.Packed == nil || l.Packed.Q == nil || l.Q != nil {
			t.Fatalf("layer %d: Q8_0 matrices not kept in their blocks", i)
		}
	}
	if q.Weights.EmbedPacked == nil || q.Weights.Embed != nil {
		t.Fatal("the Q8_0 embedding was not kept in its blocks")
	}
	round := func(x []float32, cols int) []float32 {
		if x == nil || cols%32 != 0 {
			return x
		}
		enc := make([]byte, len(x)/32*34)
		gguf.QuantizeQ8_0(enc, x)
		y := make([]float32, len(x))
		gguf.DequantizeQ8_0(y, enc)
		return y
	}
	c, w := f32.Config, *f32.Weights
	H, ff := c.Hidden, c.Intermediate
	w.Embed, w.LMHead = round(w.Embed, H), round(w.LMHead, H)
	w.Layers = append([]Layer(nil), w.Layers...)
	for i := range w.Layers {
		l := &w.Layers[i]
		l.Q, l.K, l.V, l.O = round(l.Q, H), round(l.K, H), round(l.V, H), round(l.O, c.QDim())
		l.Gate, l.Up, l.Down = round(l.Gate, H), round(l.Up, H), round(l.Down, ff)
	}
	want, err := New(b, c, &w)
	if err != nil {
		t.Fatal(err)
	}
	lq, err := q.Forward(q.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := want.Forward(want.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := f32.Forward(f32.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	same, drift := 0.0, 0.0
	for i := range lq {
		same = math.Max(same, math.Abs(float64(lq[i]-lw[i])))
		drift = math.Max(drift, math.Abs(float64(lq[i]-lf[i])))
	}
	t.Logf("Q8_0 GGUF vs F32 weights rounded through Q8_0: %.3g; vs F32: %.3g", same, drift)
	if same != 0 {
		t.Errorf("Q8_0 GGUF differs from the rounded F32 model by %g", same)
	}
	ids, err := q.Greedy([]int{1}, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Q8_0 greedy: %q", decode(t, ids))
}
