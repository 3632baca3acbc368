package llmq

import (
	"math"
	"slices"
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
	st, err := collectInputs(b, c, 0, &l, float32Rows(x, c.Hidden), seqs, T, 2, true)
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
	h, err := runBlock(b, c, 0, &attn, lm.WholeLayer, x, seqs, T)
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
	// down's rows derived from gate/up's (downRows) are the ones the
	// layer fed down_proj.
	d, err := downRows(b, c, &l, st.keep[lm.GateUpInput])
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range st.keep[lm.DownInput] {
		if math.Abs(float64(d[i]-v)) > 1e-6*(1+math.Abs(float64(v))) {
			t.Fatalf("down input value %d: %g derived, %g in the layer", i, d[i], v)
		}
	}
	if st2, err := collectInputs(b, c, 0, &l, float32Rows(x, c.Hidden), seqs, T, 2, false); err != nil || st2.keep[lm.DownInput] != nil || !slices.Equal(st2.keep[lm.OInput], st.keep[lm.OInput]) {
		t.Errorf("without down's rows: %v, %d down values kept", err, len(st2.keep[lm.DownInput]))
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

// TestSmoothQuantSearchAgainstBruteForce runs smoothQuantLayer's α search
// (W8A8: int8 per-channel weights, per-token int8 activations) on a small
// random layer and checks the q/k/v and down choices against a search
// written here in float64: the inputs (input_layernorm's output;
// silu(gate)·up of post_attention_layernorm's) computed here, s from the
// formula, activations x/s quantized per token (max|x|/127, half to even,
// ±127), weights W·s per row by naiveInt8QDQ, and the mean squared error
// of the outputs against the float ones, for no smoothing and α = 0.05…1.
func TestSmoothQuantSearchAgainstBruteForce(t *testing.T) {
	b := cpu.New()
	c := smallConfig(1, 4)
	w := randomWeights(c, 21)
	seqs, T := 3, 16
	H, ff := c.Hidden, c.Intermediate
	x, err := lm.Embed(w.Embed, H, randomIDs(8, seqs*T, c.Vocab))
	if err != nil {
		t.Fatal(err)
	}
	orig := w.Layers[0]
	layer := orig
	got, err := smoothQuantLayer(b, c, 0, &layer, float32Rows(x, c.Hidden), seqs, T, 0, naiveInt8QDQ, true)
	if err != nil {
		t.Fatal(err)
	}
	rms := func(in []float32, norm []float32) [][]float64 {
		var out [][]float64
		for r := 0; r < len(in)/H; r++ {
			row := in[r*H : (r+1)*H]
			ss := 0.0
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(H)+c.RMSNormEps)
			o := make([]float64, H)
			for j, v := range row {
				o[j] = float64(v) * inv * float64(norm[j])
			}
			out = append(out, o)
		}
		return out
	}
	dot := func(x []float64, w []float32) float64 {
		s := 0.0
		for j, v := range x {
			s += v * float64(w[j])
		}
		return s
	}
	// brute is every candidate's loss: none first, then α = i/20.
	brute := func(xs [][]float64, ws [][]float32, cols int) []float64 {
		actMax, wMax := make([]float64, cols), make([]float64, cols)
		for _, row := range xs {
			for j, v := range row {
				actMax[j] = math.Max(actMax[j], math.Abs(v))
			}
		}
		for _, m := range ws {
			for i, v := range m {
				wMax[i%cols] = math.Max(wMax[i%cols], math.Abs(float64(v)))
			}
		}
		var losses []float64
		for i := 0; i <= 20; i++ {
			s := make([]float64, cols)
			for j := range s {
				s[j] = 1
				if i > 0 {
					s[j] = math.Pow(actMax[j], float64(i)/20) / math.Pow(wMax[j], 1-float64(i)/20)
				}
			}
			sum, count := 0.0, 0
			for _, m := range ws {
				rows := len(m) / cols
				ms := make([]float32, len(m))
				for k, v := range m {
					ms[k] = float32(float64(v) * float64(float32(s[k%cols])))
				}
				q, _ := naiveInt8QDQ(ms, rows, cols)
				for _, row := range xs {
					xq := make([]float64, cols)
					amax := 0.0
					for j, v := range row {
						xq[j] = float64(float32(v)) / float64(float32(s[j]))
						amax = math.Max(amax, math.Abs(xq[j]))
					}
					sc := amax / 127
					for j, v := range xq {
						xq[j] = math.Max(-127, math.Min(127, math.RoundToEven(v/sc))) * sc
					}
					for o := range rows {
						d := dot(xq, q[o*cols:(o+1)*cols]) - dot(row, m[o*cols:(o+1)*cols])
						sum += d * d
						count++
					}
				}
			}
			losses = append(losses, sum/float64(count))
		}
		return losses
	}
	want := map[string][]float64{}
	xn := rms(x, orig.AttnNorm)
	want["q/k/v"] = brute(xn, [][]float32{orig.Q, orig.K, orig.V}, H)
	attn := orig
	attn.Gate, attn.Up, attn.Down = make([]float32, ff*H), make([]float32, ff*H), make([]float32, ff*H)
	h, err := runBlock(b, c, 0, &attn, lm.WholeLayer, x, seqs, T)
	if err != nil {
		t.Fatal(err)
	}
	var d [][]float64
	for _, row := range rms(h, orig.MLPNorm) {
		dr := make([]float64, ff)
		for j := range dr {
			g := dot(row, orig.Gate[j*H:(j+1)*H])
			dr[j] = g / (1 + math.Exp(-g)) * dot(row, orig.Up[j*H:(j+1)*H])
		}
		d = append(d, dr)
	}
	want["down"] = brute(d, [][]float32{orig.Down}, ff)
	if len(got) != 4 || got[3].Input != "o" {
		t.Fatalf("%d choices, want 4 (q/k/v, gate/up, down, o): %+v", len(got), got)
	}
	for _, ch := range got {
		losses, ok := want[ch.Input]
		if !ok {
			continue
		}
		best := 0
		for i, l := range losses {
			if l < losses[best] {
				best = i
			}
		}
		idx := int(math.Round(ch.Ratio * 20))
		t.Logf("%s: chose α %.2f, loss %.4g; brute force: α %.2f, loss %.4g (none %.4g)", ch.Input, ch.Ratio, ch.Loss, float64(best)/20, losses[best], losses[0])
		if idx != best && losses[idx] > losses[best]*(1+1e-3) {
			t.Errorf("%s: chose α %.2f (loss %.6g here), brute force %.2f (loss %.6g)", ch.Input, ch.Ratio, losses[idx], float64(best)/20, losses[best])
		}
		if math.Abs(ch.Loss-losses[idx]) > 1e-3*losses[idx] || math.Abs(ch.RTNLoss-losses[0]) > 1e-3*losses[0] {
			t.Errorf("%s: losses %.6g (none %.6g), here %.6g (none %.6g)", ch.Input, ch.Loss, ch.RTNLoss, losses[idx], losses[0])
		}
		if best == 0 {
			t.Errorf("%s: no smoothing is best here: the test does not exercise the search", ch.Input)
		}
	}
}
