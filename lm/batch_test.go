package lm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// TestForwardBatch decodes three sequences of different lengths together
// with ForwardBatch and checks every step's logits against ForwardLast on
// each sequence alone (and against the float64 naive forward of the whole
// sequence for the float model): on a random GQA model with biases and a
// sliding window shorter than the sequences, and on stories260K packed
// int4 and W8A8, where per-token activation quantization must not see the
// other rows of the batch.
func TestForwardBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 9))
	c := Config{Hidden: 24, Intermediate: 33, Layers: 3, Heads: 6, KVHeads: 2, HeadDim: 6, Vocab: 50,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: -1, SlidingWindow: 5, WindowLayers: []bool{true, false, true}}
	w := randomModel(r, c, false, true)
	random, err := New(cpu.New(), c, w)
	if err != nil {
		t.Fatal(err)
	}
	int4, err := quant.ParseScheme("int4-sym-group32")
	if err != nil {
		t.Fatal(err)
	}
	packed, err := LoadHFWith(cpu.New(), stories+"hf", LoadOptions{Quantize: &int4})
	if err != nil {
		t.Fatal(err)
	}
	w8a8, err := LoadHFWith(cpu.New(), stories+"hf", LoadOptions{Quantize: &quant.Int8PerChannel, Int8: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Model{"random": random, "int4": packed, "w8a8": w8a8} {
		t.Run(name, func(t *testing.T) {
			defer m.Close()
			V := m.Config.Vocab
			prompts := [][]int{randomTokens(r, 7, V), randomTokens(r, 2, V), randomTokens(r, 11, V)}
			steps := 4
			next := make([][]int, len(prompts))
			for i := range next {
				next[i] = randomTokens(r, steps, V)
			}
			alone, batch := make([]*Cache, len(prompts)), make([]*Cache, len(prompts))
			for i, p := range prompts {
				alone[i], batch[i] = m.NewCache(), m.NewCache()
				for _, c := range []*Cache{alone[i], batch[i]} {
					if _, err := m.Forward(c, p); err != nil {
						t.Fatal(err)
					}
				}
			}
			worst := 0.0
			for s := range steps {
				toks := make([]int, len(prompts))
				for i := range toks {
					toks[i] = next[i][s]
				}
				got, err := m.ForwardBatch(batch, toks)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(prompts)*V {
					t.Fatalf("%d logits for %d sequences of %d", len(got), len(prompts), V)
				}
				for i := range prompts {
					want, err := m.ForwardLast(alone[i], toks[i:i+1])
					if err != nil {
						t.Fatal(err)
					}
					for j, v := range want {
						worst = math.Max(worst, math.Abs(float64(got[i*V+j]-v))/math.Max(1, math.Abs(float64(v))))
					}
					if batch[i].Len() != alone[i].Len() {
						t.Fatalf("sequence %d: cache at %d, want %d", i, batch[i].Len(), alone[i].Len())
					}
					if name == "random" {
						seq := append(append(append([]int(nil), prompts[i]...), next[i][:s]...), toks[i])
						inv := make([]float64, c.HeadDim/2)
						for k := range inv {
							inv[k] = math.Pow(c.RopeTheta, -float64(2*k)/float64(c.HeadDim))
						}
						ref := naiveForwardWith(c, w, seq, naiveOptions{freqs: func(int) []float64 { return inv }, window: func(li int) int {
							if c.WindowLayers[li] {
								return c.SlidingWindow
							}
							return 0
						}})
						last := ref[len(ref)-1]
						for j := range last {
							if d := math.Abs(float64(got[i*V+j]) - last[j]); d > 1e-4 {
								t.Fatalf("step %d, sequence %d: logit %d is %g, the float64 forward's %g", s, i, j, got[i*V+j], last[j])
							}
						}
					}
				}
			}
			t.Logf("%s: largest relative difference from one sequence at a time: %.3g", name, worst)
			if worst > 1e-5 {
				t.Errorf("batched logits differ from one sequence at a time by %g", worst)
			}
		})
	}
	m, err := New(cpu.New(), c, w)
	if err != nil {
		t.Fatal(err)
	}
	c1 := m.NewCache()
	if _, err := m.ForwardBatch([]*Cache{c1, c1}, []int{1, 2}); err == nil {
		t.Error("one cache twice in a batch was accepted")
	}
	if _, err := m.ForwardBatch([]*Cache{c1}, []int{1, 2}); err == nil {
		t.Error("two tokens for one cache were accepted")
	}
}
