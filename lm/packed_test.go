package lm

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
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
			if c.typ == gguf.TypeBF16 {
				// The float32 checkpoint rounded to BF16 at load is this one.
				m, err := LoadHFWith(b, stories+"hf", LoadOptions{BF16: true})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				lb, err := m.Forward(m.NewCache(), storiesTokens)
				if err != nil {
					t.Fatal(err)
				}
				for i := range lb {
					if lb[i] != got[i] {
						t.Fatalf("LoadOptions.BF16: logit %d is %g, the BF16 checkpoint's %g", i, lb[i], got[i])
					}
				}
			}
		})
	}
}

// TestQuantizeAtLoad checks LoadOptions.Quantize and BF16 against the
// checkpoints `quantkit quantize` writes: quantizing stories260K's float
// projections at load gives exactly the logits of the int8 per-channel
// and int4 group-32 checkpoints of the same model (quantize rounds to
// nearest with min-max scales, as FitMinMax does), as packed rows or as
// W8A8; BF16 gives those of the BF16 checkpoint.
func TestQuantizeAtLoad(t *testing.T) {
	b := cpu.New()
	logits := func(m *Model) []float32 {
		t.Helper()
		defer m.Close()
		l, err := m.Forward(m.NewCache(), storiesTokens)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	same := func(what string, got, want []float32) {
		t.Helper()
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: logit %d is %g, want %g", what, i, got[i], want[i])
			}
		}
	}
	for _, c := range []struct {
		scheme string
		int8   bool
	}{{"int8-sym-channel", false}, {"int8-sym-channel", true}, {"int4-sym-group32", false}, {"int4-asym-group64", false}} {
		s, err := quant.ParseScheme(c.scheme)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "q")
		if _, err := quantize.Run(context.Background(), quantize.Options{Input: stories + "hf", Output: dir,
			Plan: plan.Options{Format: plan.CompressedTensors, Scheme: s}}); err != nil {
			t.Fatal(err)
		}
		ck, err := LoadHFWith(b, dir, LoadOptions{Int8: c.int8})
		if err != nil {
			t.Fatal(err)
		}
		m, err := LoadHFWith(b, stories+"hf", LoadOptions{Quantize: &s, Int8: c.int8})
		if err != nil {
			t.Fatal(err)
		}
		l := m.Weights.Layers[0]
		if c.int8 && (l.Int8 == nil || l.Int8.Q == nil) || !c.int8 && (l.Packed == nil || l.Packed.Q == nil) || l.Q != nil {
			t.Fatalf("%s (W8A8 %v): the projections were not quantized", c.scheme, c.int8)
		}
		if m.Weights.Embed == nil {
			t.Errorf("%s: the embedding was quantized too", c.scheme)
		}
		same(c.scheme, logits(m), logits(ck))
	}
	if _, err := LoadHFWith(b, stories+"hf", LoadOptions{Float32: true, BF16: true}); err == nil {
		t.Error("Float32 with BF16 was accepted")
	}
	if _, err := LoadGGUFWith(b, stories+"stories260K.gguf", LoadOptions{BF16: true}); err == nil {
		t.Error("BF16 on a GGUF file was accepted")
	}
}

// TestQuantizeHeadOfQuantized: on a checkpoint whose projections are
// quantized already (int4 groups of 32, compressed-tensors, as quantkit
// quantize writes it: the head left float), QuantizeHead without Quantize
// packs the matrix the head multiplies by as int8 per channel: the
// weights shrink, the logits stay within 0.5 of the float head's, the
// argmax kept.
func TestQuantizeHeadOfQuantized(t *testing.T) {
	b := cpu.New()
	s, err := quant.ParseScheme("int4-sym-group32")
	if err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(t.TempDir(), "q")
	if _, err := quantize.Run(context.Background(), quantize.Options{Input: stories + "hf", Output: q, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: s}}); err != nil {
		t.Fatal(err)
	}
	plain, err := LoadHF(b, q)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	hq, err := LoadHFWith(b, q, LoadOptions{QuantizeHead: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hq.Close()
	w := hq.Weights
	head := w.LMHeadPacked
	if head == nil {
		head = w.EmbedPacked
	}
	if w.LMHead != nil || head == nil {
		t.Fatal("the head was not quantized")
	}
	if rf, ok := head.Format.(quant.RowFormat); !ok || rf.Bits != 8 || !rf.Signed || rf.Group != hq.Config.Hidden {
		t.Errorf("the head is packed as %v, want int8 per channel", head.Format)
	}
	if w.WeightBytes() >= plain.Weights.WeightBytes() {
		t.Errorf("weights %d bytes with the head quantized, %d without", w.WeightBytes(), plain.Weights.WeightBytes())
	}
	lp, err := plain.Forward(plain.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	lq, err := hq.Forward(hq.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	worst, top := 0.0, 0
	V := hq.Config.Vocab
	for i := range lq {
		worst = math.Max(worst, math.Abs(float64(lq[i]-lp[i])))
	}
	for i := range storiesTokens {
		if argmax(lq[i*V:(i+1)*V]) == argmax(lp[i*V:(i+1)*V]) {
			top++
		}
	}
	t.Logf("int8 head over int4 projections: max logit difference %.3g, argmax the same at %d of %d", worst, top, len(storiesTokens))
	if worst == 0 || worst > 0.5 || top < len(storiesTokens)-1 {
		t.Errorf("logits differ by %g, argmax the same at %d of %d", worst, top, len(storiesTokens))
	}
}

// TestQuantizeHead: QuantizeHead packs the matrix the head multiplies by
// (stories260K ties it to the embedding, a random model does not) with
// the projections' scheme: the weights shrink, and the logits move (by
// the head's rounding) but stay within 0.5 of the float head's, the argmax
// kept.
func TestQuantizeHead(t *testing.T) {
	b := cpu.New()
	s := quant.Int8PerChannel
	plain, err := LoadHFWith(b, stories+"hf", LoadOptions{Quantize: &s})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	hq, err := LoadHFWith(b, stories+"hf", LoadOptions{Quantize: &s, QuantizeHead: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hq.Close()
	w := hq.Weights
	if w.LMHead != nil || w.LMHeadPacked == nil && w.EmbedPacked == nil {
		t.Fatal("the head was not quantized")
	}
	if hq.Weights.WeightBytes() >= plain.Weights.WeightBytes() {
		t.Errorf("weights %d bytes with the head quantized, %d without", hq.Weights.WeightBytes(), plain.Weights.WeightBytes())
	}
	lp, err := plain.Forward(plain.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	lq, err := hq.Forward(hq.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	worst, top := 0.0, 0
	V := hq.Config.Vocab
	for i := range lq {
		worst = math.Max(worst, math.Abs(float64(lq[i]-lp[i])))
	}
	for i := range storiesTokens {
		if argmax(lq[i*V:(i+1)*V]) == argmax(lp[i*V:(i+1)*V]) {
			top++
		}
	}
	t.Logf("int8 head: max logit difference %.3g, argmax the same at %d of %d", worst, top, len(storiesTokens))
	if worst == 0 || worst > 0.5 || top < len(storiesTokens)-1 {
		t.Errorf("int8 head: logits differ by %g, argmax the same at %d of %d", worst, top, len(storiesTokens))
	}
	if _, err := LoadHFWith(b, stories+"hf", LoadOptions{QuantizeHead: true}); err == nil {
		t.Error("QuantizeHead without Quantize on a float checkpoint was accepted")
	}
}
