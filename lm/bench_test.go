package lm

import (
	"fmt"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/synth"
	"github.com/quantkit/quantkit/quant"
)

// benchModel is a synthetic Llama-like model of about params parameters,
// made in memory from synth's deterministic weights, as `quantkit gen
// --like llama --params N` writes them. With w8a8, the projections of
// every layer are quantized int8 symmetric per channel by the quant
// package, as `quantkit quantize` does, and kept int8 (Int8Layer), as
// LoadHFWith with LoadOptions.Int8 keeps them; embeddings, norms and the
// head stay float32.
func benchModel(b *testing.B, params int64, w8a8 bool) *Model {
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
	// int8 quantizes the projection at *f ([out, in]) into *i8.
	int8 := func(f *[]float32, i8 **Int8Weight, out, in int) {
		p, err := quant.FitMinMax(quant.Int8PerChannel, *f, []int{out, in})
		if err != nil {
			b.Fatal(err)
		}
		codes := make([]byte, len(*f))
		if err := quant.Quantize(codes, *f, p); err != nil {
			b.Fatal(err)
		}
		if *i8 = asInt8(nil, codes, p); *i8 == nil {
			b.Fatalf("%v is not int8 per channel", p.Scheme)
		}
		*f = nil
	}
	w := &Weights{Embed: get("model.embed_tokens.weight"), Norm: get("model.norm.weight")}
	for _, ti := range sc.Tensors() {
		if ti.Name == "lm_head.weight" {
			w.LMHead = get(ti.Name)
		}
	}
	H, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	for i := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := Layer{
			AttnNorm: get(p + "input_layernorm.weight"),
			Q:        get(p + "self_attn.q_proj.weight"), K: get(p + "self_attn.k_proj.weight"),
			V: get(p + "self_attn.v_proj.weight"), O: get(p + "self_attn.o_proj.weight"),
			MLPNorm: get(p + "post_attention_layernorm.weight"),
			Gate:    get(p + "mlp.gate_proj.weight"), Up: get(p + "mlp.up_proj.weight"),
			Down: get(p + "mlp.down_proj.weight"),
		}
		if w8a8 {
			l.Int8 = &Int8Layer{}
			int8(&l.Q, &l.Int8.Q, q, H)
			int8(&l.K, &l.Int8.K, kv, H)
			int8(&l.V, &l.Int8.V, kv, H)
			int8(&l.O, &l.Int8.O, H, q)
			int8(&l.Gate, &l.Int8.Gate, ff, H)
			int8(&l.Up, &l.Int8.Up, ff, H)
			int8(&l.Down, &l.Int8.Down, H, ff)
		}
		w.Layers = append(w.Layers, l)
	}
	m, err := New(cpu.New(), c, w)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkForward times the forward pass of an 8M-parameter Llama-like
// model (synth.LlamaLike(8M): the widths of its "10M" row, hidden 256,
// intermediate 688, 8 heads over 4 key/value heads, in 5 layers with a
// vocabulary of 8540; small enough that a 512-token prefill takes under a
// second on 2 cores) in float32 (fp32) and with int8 per-channel
// projections run as W8A8 (w8a8):
//
//   - prefill64: 64 tokens from an empty cache, logits of every token;
//   - prefill64_last and prefill512_last: 64 and 512 tokens, logits of
//     the last only, as generation runs a prompt;
//   - decode_at64 and decode_at512: one token with 64 or 512 positions in
//     the cache (the step is undone after each iteration, so every
//     iteration attends over the same number of positions).
//
// tokens/s is prompt tokens per second for a prefill and generated tokens
// per second for a decode step.
func BenchmarkForward(b *testing.B) {
	const params = 8_000_000
	for _, prec := range []struct {
		name string
		w8a8 bool
	}{{"fp32", false}, {"w8a8", true}} {
		m := benchModel(b, params, prec.w8a8)
		prompt := make([]int, 513) // 512 and the token decoded after them
		for i := range prompt {
			prompt[i] = (i * 7919) % m.Config.Vocab
		}
		prefill := func(n int, last bool) func(*testing.B) {
			return func(b *testing.B) {
				c := m.NewCache()
				defer c.Close()
				forward := m.Forward
				if last {
					forward = m.ForwardLast
				}
				for b.Loop() {
					c.Reset()
					if _, err := forward(c, prompt[:n]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tokens/s")
			}
		}
		decode := func(at int) func(*testing.B) {
			return func(b *testing.B) {
				c := m.NewCache()
				defer c.Close()
				if _, err := m.ForwardLast(c, prompt[:at]); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := m.Forward(c, prompt[at:at+1]); err != nil {
						b.Fatal(err)
					}
					c.Truncate(at) // stay at position at: drop the token just added
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			}
		}
		name := func(what string) string { return fmt.Sprintf("%s/%s_params%d", prec.name, what, params) }
		b.Run(name("prefill64"), prefill(64, false))
		b.Run(name("prefill64_last"), prefill(64, true))
		b.Run(name("prefill512_last"), prefill(512, true))
		b.Run(name("decode_at64"), decode(64))
		b.Run(name("decode_at512"), decode(512))
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
