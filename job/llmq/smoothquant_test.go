package llmq

import (
	"math"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// TestSmoothQuantStatistics checks SmoothQuant's statistics against a
// brute-force computation: the max |x| per channel of the q/k/v input
// (input_layernorm of the hidden states, computed here) and of the
// gate/up input (post_attention_layernorm of x + attention(x)), over
// every token, and the
// scales of SmoothScales against the formula in float64 with its guards
// (a dead channel, a NaN, an all-zero weight column keep 1).
func TestSmoothQuantStatistics(t *testing.T) {
	b := cpu.New()
	c := smallConfig(1, 2)
	w := randomWeights(c, 11)
	seqs, T := 5, 12
	H, ff := c.Hidden, c.Intermediate
	x, err := lm.Embed(w.Embed, H, randomIDs(4, seqs*T, c.Vocab))
	if err != nil {
		t.Fatal(err)
	}
	l := w.Layers[0]
	st, err := collectInputs(b, c, 0, &l, x, seqs, T, 2)
	if err != nil {
		t.Fatal(err)
	}
	rmsMax := func(in, norm []float32) []float64 {
		mx := make([]float64, H)
		for r := 0; r < len(in)/H; r++ {
			row := in[r*H : (r+1)*H]
			ss := 0.0
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(H)+c.RMSNormEps)
			for j, v := range row {
				mx[j] = math.Max(mx[j], math.Abs(float64(v)*inv*float64(norm[j])))
			}
		}
		return mx
	}
	attn := l
	attn.Gate, attn.Up, attn.Down = make([]float32, ff*H), make([]float32, ff*H), make([]float32, ff*H)
	h, err := runBlock(b, c, 0, &attn, x, seqs, T)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   lm.LinearInput
		want []float64
	}{{lm.QKVInput, rmsMax(x, l.AttnNorm)}, {lm.GateUpInput, rmsMax(h, l.MLPNorm)}} {
		for j, v := range tc.want {
			if got := st.absMax[tc.in][j]; math.Abs(got-v) > 1e-5*v+1e-6 {
				t.Fatalf("%s: channel %d: max |x| %g, brute force %g", tc.in, j, got, v)
			}
		}
	}
	if st.rows != seqs*T || len(st.keep[lm.DownInput]) != 2*T*ff {
		t.Errorf("%d rows seen, %d down values kept; want %d and %d", st.rows, len(st.keep[lm.DownInput]), seqs*T, 2*T*ff)
	}
	// The scales, with the guards.
	act := append([]float64(nil), st.absMax[lm.QKVInput]...)
	act[2], act[5] = 0, math.NaN()
	q, k, v := append([]float32(nil), l.Q...), append([]float32(nil), l.K...), append([]float32(nil), l.V...)
	for _, m := range [][]float32{q, k, v} {
		for r := 0; r < len(m)/H; r++ {
			m[r*H+7] = 0
		}
	}
	for _, alpha := range []float64{0.5, 0.8} {
		s := SmoothScales(act, [][]float32{q, k, v}, H, alpha)
		for j := range H {
			wmax := 0.0
			for _, m := range [][]float32{q, k, v} {
				for r := 0; r < len(m)/H; r++ {
					wmax = math.Max(wmax, math.Abs(float64(m[r*H+j])))
				}
			}
			want := math.Pow(act[j], alpha) / math.Pow(wmax, 1-alpha)
			if j == 2 || j == 5 || j == 7 {
				want = 1
			}
			if math.Abs(float64(s[j])-want) > 1e-6*want {
				t.Errorf("α %g: channel %d: s %g, want %g", alpha, j, s[j], want)
			}
		}
	}
}

// TestDefaultW8A8: smoothquant (alone or with gptq) writes W8A8 by
// default exactly for int8 symmetric per-channel compressed-tensors;
// other methods, schemes and formats stay weight-only.
func TestDefaultW8A8(t *testing.T) {
	int4 := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 32}
	asym := quant.Scheme{Bits: 8, Granularity: quant.PerChannel}
	for _, c := range []struct {
		m    Method
		s    quant.Scheme
		f    plan.Format
		want bool
	}{
		{SmoothQuant, quant.Int8PerChannel, plan.CompressedTensors, true},
		{SmoothQuantGPTQ, quant.Int8PerChannel, plan.CompressedTensors, true},
		{GPTQ, quant.Int8PerChannel, plan.CompressedTensors, false},
		{SmoothQuant, int4, plan.CompressedTensors, false},
		{SmoothQuant, asym, plan.CompressedTensors, false},
		{SmoothQuant, quant.Int8PerChannel, plan.CompressedTensorsPacked, false},
	} {
		if got := c.m.DefaultW8A8(c.s, c.f); got != c.want {
			t.Errorf("%s %v %s: W8A8 by default %v, want %v", c.m, c.s, c.f, got, c.want)
		}
	}
}
