package lm

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// TestLoadQuantized quantizes stories260K with quantkit's own job (int8
// per channel as compressed-tensors int-quantized, int4 groups of 32 as
// pack-quantized, and int8 per channel in quantkit's raw safetensors
// format), loads each output with LoadHF and checks its logits: equal
// to those of the float checkpoint quantize.Dequantize writes from it (the
// float model on the dequantized weights), and within a stated distance of
// the original float model's. It runs the packed weights exactly
// (cpu.SetExactPacked), as the float model multiplies them; the default
// integer path, whose activations are rounded to 8 bits, must keep the
// drift bound and all but one of the argmaxes.
func TestLoadQuantized(t *testing.T) {
	defer cpu.SetExactPacked(cpu.SetExactPacked(true))
	b := cpu.New()
	f32, err := LoadHF(b, stories+"hf")
	if err != nil {
		t.Fatal(err)
	}
	want, err := f32.Forward(f32.NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, scheme string
		format       plan.Format
		// drift bounds the largest logit difference from the float
		// model over the prompt (its logits reach about 15), measured
		// 0.276 for int8 and 3.77 for int4 on this 64-wide model.
		drift float64
		// top1 is the least number of positions, of 12, whose argmax
		// must stay the float model's (measured: all for int8).
		top1 int
		// size bounds the weights' memory as a fraction of the float
		// model's: the projections stay packed (the embedding, 512×64,
		// is a float32 third of this small model).
		size float64
	}{
		{"int8-channel-int-quantized", "int8-sym-channel", plan.CompressedTensors, 0.5, 12, 0.40},
		{"int4-group32-pack-quantized", "int4-sym-group32", plan.CompressedTensors, 6, 6, 0.32},
		{"int8-channel-raw", "int8-sym-channel", plan.Safetensors, 0.5, 12, 0.40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := quant.ParseScheme(tc.scheme)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			q := filepath.Join(dir, "q")
			rep, err := quantize.Run(context.Background(), quantize.Options{Input: stories + "hf", Output: q, Plan: plan.Options{Format: tc.format, Scheme: s}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Totals.Quantized == 0 {
				t.Fatalf("nothing quantized: %+v", rep.Totals)
			}
			deq := filepath.Join(dir, "deq")
			if _, err := quantize.Dequantize(context.Background(), quantize.DequantizeOptions{Input: q, Output: deq, DType: "F32"}); err != nil {
				t.Fatal(err)
			}
			mq, err := LoadHF(b, q)
			if err != nil {
				t.Fatal(err)
			}
			md, err := LoadHF(b, deq)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range mq.Weights.Layers {
				if l.Packed == nil || l.Packed.Q == nil || l.Packed.Down == nil || l.Q != nil || l.Down != nil {
					t.Fatalf("layer %d: the projections are not kept packed", i)
				}
			}
			if l := md.Weights.Layers[0]; l.Packed != nil || l.Q == nil {
				t.Fatal("the dequantized checkpoint did not load as float32")
			}
			ratio := float64(mq.Weights.WeightBytes()) / float64(md.Weights.WeightBytes())
			t.Logf("weights: %d bytes, %.2f of the float model's", mq.Weights.WeightBytes(), ratio)
			if ratio > tc.size {
				t.Errorf("the weights take %.2f of the float model's memory, want at most %.2f", ratio, tc.size)
			}
			got, err := mq.Forward(mq.NewCache(), storiesTokens)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := md.Forward(md.NewCache(), storiesTokens)
			if err != nil {
				t.Fatal(err)
			}
			same, drift := 0.0, 0.0
			for i := range got {
				same = math.Max(same, math.Abs(float64(got[i]-ref[i])))
				drift = math.Max(drift, math.Abs(float64(got[i]-want[i])))
			}
			V, agree := f32.Config.Vocab, 0
			for i := range storiesTokens {
				if argmax(got[i*V:(i+1)*V]) == argmax(want[i*V:(i+1)*V]) {
					agree++
				}
			}
			t.Logf("%d weights quantized; vs the dequantized checkpoint: %.3g; vs the float model: %.3g, same argmax at %d of %d positions",
				rep.Totals.Quantized, same, drift, agree, len(storiesTokens))
			if agree < tc.top1 {
				t.Errorf("the argmax is the float model's at %d positions, want at least %d", agree, tc.top1)
			}
			if same != 0 {
				t.Errorf("logits differ from the float model on the dequantized weights by %g", same)
			}
			if drift > tc.drift {
				t.Errorf("logits differ from the float model's by %g, more than %g", drift, tc.drift)
			}
			cpu.SetExactPacked(false)
			gi, err := mq.Forward(mq.NewCache(), storiesTokens)
			cpu.SetExactPacked(true)
			if err != nil {
				t.Fatal(err)
			}
			driftInt, agreeInt := 0.0, 0
			for i := range gi {
				driftInt = math.Max(driftInt, math.Abs(float64(gi[i]-want[i])))
			}
			for i := range storiesTokens {
				if argmax(gi[i*V:(i+1)*V]) == argmax(want[i*V:(i+1)*V]) {
					agreeInt++
				}
			}
			t.Logf("integer path (8-bit activations): vs the float model %.3g, same argmax at %d of %d", driftInt, agreeInt, len(storiesTokens))
			if driftInt > tc.drift || agreeInt < tc.top1-1 {
				t.Errorf("integer path: logits %g from the float model's (bound %g), argmax kept at %d positions (want %d)", driftInt, tc.drift, agreeInt, tc.top1-1)
			}
		})
	}
}
