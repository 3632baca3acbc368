package llamacpp

import (
	"math"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
)

// llama3Factor is the llama3 RoPE factor of frequency i in float64, from
// Meta's apply_scaling.
func llama3Factor(i, d int, theta, factor, low, high, orig float64) float64 {
	freq := 1 / math.Pow(theta, float64(2*i)/float64(d))
	w := 2 * math.Pi / freq
	switch {
	case w < orig/high:
		return 1
	case w > orig/low:
		return factor
	}
	s := (orig/w - low) / (high - low)
	return 1 / ((1-s)/factor + s)
}

func TestLlama3RopeFactors(t *testing.T) {
	h := &Hyper{HeadDim: 128, RopeTheta: 500000, Rope: RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigContext: 8192}}
	got := Llama3RopeFactors(h)
	if len(got) != 64 {
		t.Fatalf("%d factors", len(got))
	}
	smooth := 0
	for i, g := range got {
		want := llama3Factor(i, 128, 500000, 8, 1, 4, 8192)
		if math.Abs(float64(g)-want) > 1e-5*want {
			t.Errorf("factor %d = %v, want %v", i, g, want)
		}
		if want != 1 && want != 8 {
			smooth++
		}
	}
	if got[0] != 1 || got[63] != 8 || smooth == 0 {
		t.Errorf("factors %v", got)
	}
}

// RoPE scalings reach the plan: llama3 as a computed first tensor, linear
// and yarn as metadata.
func TestPlanRopeScaling(t *testing.T) {
	dir := copyStories(t)
	editJSON(t, dir, "config.json", setKey("rope_scaling", map[string]any{"rope_type": "llama3", "factor": 8.0,
		"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 128}))
	c, err := Plan(dir, Options{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	first := c.Tensors[0]
	x, _ := c.Float32(&first)
	if first.Name != "rope_freqs.weight" || len(first.Dims) != 1 || first.Dims[0] != 4 || !first.KeepF32 || len(x) != 4 {
		t.Errorf("first tensor %+v %v", first, x)
	}
	if v, _ := gguf.Metadata(c.Metadata(0)).String("general.name"); v != "x" {
		t.Errorf("general.name %q", v)
	}
	c.Close()

	editJSON(t, dir, "config.json", setKey("rope_scaling", map[string]any{"type": "yarn", "factor": 4.0,
		"original_max_position_embeddings": 512, "beta_fast": 32.0}))
	if c, err = Plan(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	m := gguf.Metadata(c.Metadata(0))
	typ, _ := m.String("llama.rope.scaling.type")
	f, _ := m.Float32("llama.rope.scaling.factor")
	orig, _ := m.Uint32("llama.rope.scaling.original_context_length")
	beta, _ := m.Float32("llama.rope.scaling.yarn_beta_fast")
	_, slow := m.Value("llama.rope.scaling.yarn_beta_slow")
	if typ != "yarn" || f != 4 || orig != 512 || beta != 32 || slow || c.Tensors[0].Name == "rope_freqs.weight" {
		t.Errorf("yarn: %q %v %v %v %v", typ, f, orig, beta, slow)
	}
	c.Close()
}
