package lm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// TestW8A8ByConfig checks that LoadHF runs a checkpoint as W8A8 when its
// quantization_config declares dynamic per-token int8 input activations
// (llm-compressor's W8A8) and not when it is weight-only: the same int8
// per-channel weights, loaded with and without input_activations in
// config.json; LoadOptions.Float32 still widens the W8A8 one.
func TestW8A8ByConfig(t *testing.T) {
	b := cpu.New()
	q := filepath.Join(t.TempDir(), "q")
	if _, err := quantize.Run(context.Background(), quantize.Options{Input: stories + "hf", Output: q,
		Plan: plan.Options{Format: plan.CompressedTensors, Scheme: quant.Int8PerChannel}}); err != nil {
		t.Fatal(err)
	}
	int8Layers := func(opt LoadOptions) int {
		t.Helper()
		m, err := LoadHFWith(b, q, opt)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		n := 0
		for _, l := range m.Weights.Layers {
			if l.Int8 != nil {
				n++
			}
		}
		return n
	}
	if n := int8Layers(LoadOptions{}); n != 0 {
		t.Errorf("a weight-only int8 checkpoint: %d layers run as W8A8", n)
	}
	path := filepath.Join(q, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	qc, err := ctensors.QuantizationConfig(quant.Int8PerChannel, ctensors.IntQuantized, []string{"lm_head"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctensors.SetInputActivations(qc, ctensors.DynamicTokenInt8); err != nil {
		t.Fatal(err)
	}
	if raw, err = ctensors.UpdateConfig(raw, qc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o666); err != nil {
		t.Fatal(err)
	}
	if n := int8Layers(LoadOptions{}); n != 5 {
		t.Errorf("a W8A8 checkpoint: %d of 5 layers run as W8A8", n)
	}
	if n := int8Layers(LoadOptions{Float32: true}); n != 0 {
		t.Errorf("a W8A8 checkpoint with Float32: %d layers int8", n)
	}
}
