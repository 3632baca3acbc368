package lm

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/safetensors"
)

// TestSixteenBitStaysPacked writes stories260K in F16 and BF16 and checks
// that LoadHF keeps the matrices in 16 bits (half the float32 memory) and
// computes what the same checkpoint widened to float32 at load
// (LoadOptions.Float32) computes, up to the order of float32 sums.
func TestSixteenBitStaysPacked(t *testing.T) {
	ck, err := checkpoint.Open(stories + "hf")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	b := cpu.New()
	for _, c := range []struct {
		dtype string
		typ   gguf.Type
	}{{"F16", gguf.TypeF16}, {"BF16", gguf.TypeBF16}} {
		t.Run(c.dtype, func(t *testing.T) {
			dir := t.TempDir()
			var ts []safetensors.Tensor
			for _, info := range ck.Tensors() {
				x, err := ck.Float32(info.Name)
				if err != nil {
					t.Fatal(err)
				}
				data := make([]byte, 2*len(x))
				if err := gguf.EncodeFloat32(data, x, c.typ); err != nil {
					t.Fatal(err)
				}
				ts = append(ts, safetensors.Tensor{Name: info.Name, DType: c.dtype, Shape: info.Shape, Data: data})
			}
			if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), ck.Config(), 0o644); err != nil {
				t.Fatal(err)
			}
			packed, err := LoadHF(b, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer packed.Close()
			wide, err := LoadHFWith(b, dir, LoadOptions{Float32: true})
			if err != nil {
				t.Fatal(err)
			}
			defer wide.Close()
			l := packed.Weights.Layers[0]
			if l.Packed == nil || l.Packed.Q == nil || l.Packed.Q.Format != c.typ || l.Q != nil || packed.Weights.EmbedPacked == nil {
				t.Fatalf("the %s matrices were not kept in 16 bits", c.dtype)
			}
			if wl := wide.Weights.Layers[0]; wl.Packed != nil || wl.Q == nil {
				t.Fatal("Float32 did not widen the matrices")
			}
			ratio := float64(packed.Weights.WeightBytes()) / float64(wide.Weights.WeightBytes())
			if ratio > 0.51 {
				t.Errorf("16-bit weights take %.3f of the float32 memory, want about 0.5", ratio)
			}
			got, err := packed.Forward(packed.NewCache(), storiesTokens)
			if err != nil {
				t.Fatal(err)
			}
			want, err := wide.Forward(wide.NewCache(), storiesTokens)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range got {
				worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
			}
			t.Logf("%s: weights %.3f of float32; max logit difference from the widened model %.3g", c.dtype, ratio, worst)
			if worst > 1e-4 {
				t.Errorf("packed %s logits differ from the widened model's by %g", c.dtype, worst)
			}
		})
	}
}
