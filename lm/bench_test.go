package lm

import (
	"fmt"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/synth"
)

// benchModel is a synthetic Llama-like model of about params parameters,
// made in memory from synth's deterministic weights.
func benchModel(b *testing.B, params int64) *Model {
	sc := synth.LlamaLike(params)
	c := Config{
		Hidden: sc.Hidden, Intermediate: sc.Intermediate, Layers: sc.Layers,
		Heads: sc.Heads, KVHeads: sc.KVHeads, HeadDim: sc.HeadDim(), Vocab: sc.Vocab,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: -1, EOS: -1,
	}
	get := func(name string) []float32 {
		x, err := sc.Tensor(name)
		if err != nil {
			b.Fatal(err)
		}
		return x
	}
	w := &Weights{Embed: get("model.embed_tokens.weight"), Norm: get("model.norm.weight")}
	for _, ti := range sc.Tensors() {
		if ti.Name == "lm_head.weight" {
			w.LMHead = get(ti.Name)
		}
	}
	for i := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		w.Layers = append(w.Layers, Layer{
			AttnNorm: get(p + "input_layernorm.weight"),
			Q:        get(p + "self_attn.q_proj.weight"), K: get(p + "self_attn.k_proj.weight"),
			V: get(p + "self_attn.v_proj.weight"), O: get(p + "self_attn.o_proj.weight"),
			MLPNorm: get(p + "post_attention_layernorm.weight"),
			Gate:    get(p + "mlp.gate_proj.weight"), Up: get(p + "mlp.up_proj.weight"),
			Down: get(p + "mlp.down_proj.weight"),
		})
	}
	m, err := New(cpu.New(), c, w)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func BenchmarkForward(b *testing.B) {
	const params = 20_000_000
	m := benchModel(b, params)
	prompt := make([]int, 64)
	for i := range prompt {
		prompt[i] = (i * 7919) % m.Config.Vocab
	}
	b.Run(fmt.Sprintf("prefill64_params%d", params), func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Forward(m.NewCache(), prompt); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(prompt))/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run(fmt.Sprintf("prefill64_last_params%d", params), func(b *testing.B) {
		for b.Loop() {
			if _, err := m.ForwardLast(m.NewCache(), prompt); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(prompt))/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run(fmt.Sprintf("decode_at64_params%d", params), func(b *testing.B) {
		c := m.NewCache()
		if _, err := m.Forward(c, prompt); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := m.Forward(c, prompt[:1]); err != nil {
				b.Fatal(err)
			}
			c.Truncate(64) // stay at position 64: drop the token just added
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
