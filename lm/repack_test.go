package lm

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/gguf"
)

// plainCPU is the cpu backend without its row order for packed weights:
// the loaders keep every weight in its format's layout.
type plainCPU struct{ *cpu.Backend }

func (plainCPU) RepacksPacked(backend.PackedFormat, int, int) bool { return false }

// TestGGUFQ4_0Repacked loads stories260K with its matrices in Q4_0 on the
// cpu backend, which repacks the projections and the lm_head (not the
// embedding table), and on one that keeps them as they are: the logits
// agree up to the order of the float sums, with 8-bit activations and
// with exact ones.
func TestGGUFQ4_0Repacked(t *testing.T) {
	src, err := gguf.Open(stories + "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var ts []gguf.Tensor
	for _, info := range src.Tensors() {
		x, err := src.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		typ, data := gguf.TypeF32, make([]byte, 4*len(x))
		if len(info.Dims) == 2 && info.Dims[0]%32 == 0 {
			typ, data = gguf.TypeQ4_0, make([]byte, len(x)/32*18)
			gguf.QuantizeQ4_0(data, x)
		} else if err := gguf.EncodeFloat32(data, x, typ); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, gguf.Tensor{Name: info.Name, Type: typ, Dims: info.Dims, Data: data})
	}
	path := filepath.Join(t.TempDir(), "q4_0.gguf")
	if err := gguf.WriteFile(path, src.Metadata(), ts); err != nil {
		t.Fatal(err)
	}
	rep, err := LoadGGUF(cpu.New(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	plain, err := LoadGGUF(plainCPU{cpu.New()}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	n := 0
	for i, l := range rep.Weights.Layers {
		if l.Packed == nil {
			t.Fatalf("layer %d: no packed projections", i)
		}
		for j, w := range l.Packed.list() {
			if w == nil {
				continue // rows not in blocks of 32: float32
			}
			if n++; w.Format != gguf.TypeQ4_0 || !w.repacked {
				t.Fatalf("layer %d: projection %d not repacked", i, j)
			}
			if pw := plain.Weights.Layers[i].Packed.list()[j]; pw.repacked {
				t.Fatalf("layer %d: projection %d repacked by a backend that does not", i, j)
			}
		}
	}
	if n < 2*len(rep.Weights.Layers) {
		t.Fatalf("%d projections in Q4_0, want most of them", n)
	}
	if e := rep.Weights.EmbedPacked; e == nil || e.repacked {
		t.Fatal("the embedding table is not kept packed in its own layout")
	}
	for _, exact := range []bool{false, true} {
		prev := cpu.SetExactPacked(exact)
		lr, err := rep.Forward(rep.NewCache(), storiesTokens)
		if err != nil {
			t.Fatal(err)
		}
		lp, err := plain.Forward(plain.NewCache(), storiesTokens)
		if err != nil {
			t.Fatal(err)
		}
		cpu.SetExactPacked(prev)
		var diff, scale float64
		for i := range lr {
			diff = math.Max(diff, math.Abs(float64(lr[i]-lp[i])))
			scale = math.Max(scale, math.Abs(float64(lp[i])))
		}
		t.Logf("exact %v: repacked vs plain logits differ by %.3g (max |logit| %.3g)", exact, diff, scale)
		if !(diff <= 1e-4*scale) {
			t.Errorf("exact %v: repacked logits differ from the plain ones by %g (max |logit| %g)", exact, diff, scale)
		}
	}
}
