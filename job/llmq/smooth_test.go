package llmq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/lm"
)

// smallConfig is a random model's shape: Qwen2-like biases, no grouped
// keys and values when kvHeads is heads (so AWQ's o search runs).
func smallConfig(layers, kvHeads int) lm.Config {
	return lm.Config{Hidden: 32, Intermediate: 48, Layers: layers, Heads: 4, KVHeads: kvHeads, HeadDim: 8, Vocab: 40,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
}

// randomWeights are random weights for c, with input channels 3 and 17
// of the embedding 30 times the others (activation outliers) and biases.
func randomWeights(c lm.Config, seed uint64) *lm.Weights {
	r := rand.New(rand.NewPCG(seed, 1))
	v := func(n int, scale float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * scale)
		}
		return x
	}
	norm := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(0.5 + r.Float64())
		}
		return x
	}
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	w := &lm.Weights{Embed: v(c.Vocab*H, 1), Norm: norm(H)}
	for i := range c.Vocab {
		w.Embed[i*H+3] *= 30
		w.Embed[i*H+17] *= 30
	}
	for range c.Layers {
		w.Layers = append(w.Layers, lm.Layer{AttnNorm: norm(H), MLPNorm: norm(H),
			Q: v(qd*H, 0.2), K: v(kvd*H, 0.2), V: v(kvd*H, 0.2), O: v(H*qd, 0.2),
			QBias: v(qd, 0.1), KBias: v(kvd, 0.1), VBias: v(kvd, 0.1),
			Gate: v(ff*H, 0.2), Up: v(ff*H, 0.2), Down: v(H*ff, 0.2)})
	}
	return w
}

// naiveQDQ is int4 symmetric min-max round to nearest in groups of 16
// columns, in float64: the quantizer the AWQ tests give the search.
func naiveQDQ(w []float32, rows, cols int) ([]float32, error) {
	out := make([]float32, len(w))
	for r := range rows {
		for g0 := 0; g0 < cols; g0 += 16 {
			g := w[r*cols+g0 : r*cols+min(g0+16, cols)]
			mx := 0.0
			for _, v := range g {
				mx = math.Max(mx, math.Abs(float64(v)))
			}
			scale := mx / 7
			for j, v := range g {
				q := 0.0
				if scale > 0 {
					q = math.Max(-7, math.Min(7, math.RoundToEven(float64(v)/scale))) * scale
				}
				out[r*cols+g0+j] = float32(q)
			}
		}
	}
	return out, nil
}

// smoothQuantSearch is SmoothQuant with α searched (Options.Alpha 0), for
// the tests.
const smoothQuantSearch Method = "smoothquant (α searched)"

// naiveInt8QDQ is int8 symmetric per-row round to nearest: scale
// max|row|/127, codes −127…127, in float64.
func naiveInt8QDQ(w []float32, rows, cols int) ([]float32, error) {
	out := make([]float32, len(w))
	for r := range rows {
		row := w[r*cols : (r+1)*cols]
		mx := 0.0
		for _, v := range row {
			mx = math.Max(mx, math.Abs(float64(v)))
		}
		scale := float64(float32(mx / 127))
		for j, v := range row {
			if scale > 0 {
				out[r*cols+j] = float32(math.Max(-127, math.Min(127, math.RoundToEven(float64(float32(float64(v)/scale))))) * scale)
			}
		}
	}
	return out, nil
}

func randomIDs(seed uint64, n, vocab int) []int {
	r := rand.New(rand.NewPCG(seed, 2))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = r.IntN(vocab)
	}
	return ids
}

// foldAll applies method's smoothing (SmoothQuant α 0.5, or AWQ with
// naiveQDQ) to every layer of a copy of w, layer by layer on the float
// hidden states of ids (seqs sequences of T tokens), as the pipeline
// does, and returns the copy.
func foldAll(t *testing.T, b backend.Backend, c lm.Config, w *lm.Weights, ids []int, seqs, T int, method Method) *lm.Weights {
	t.Helper()
	x, err := lm.Embed(w.Embed, c.Hidden, ids)
	if err != nil {
		t.Fatal(err)
	}
	out := *w
	out.Layers = make([]lm.Layer, len(w.Layers))
	for l := range w.Layers {
		layer := w.Layers[l]
		switch method {
		case SmoothQuant:
			_, err = smoothQuantLayer(b, c, l, &layer, float32Rows(x, c.Hidden), seqs, T, 0.5, nil, false)
		case smoothQuantSearch:
			_, err = smoothQuantLayer(b, c, l, &layer, float32Rows(x, c.Hidden), seqs, T, 0, naiveInt8QDQ, true)
		default:
			_, err = awqLayer(b, c, l, &layer, float32Rows(x, c.Hidden), seqs, T, 16, naiveQuant)
		}
		if err != nil {
			t.Fatal(err)
		}
		out.Layers[l] = layer
		orig := w.Layers[l]
		if x, err = runBlock(b, c, l, &orig, lm.WholeLayer, x, seqs, T); err != nil {
			t.Fatal(err)
		}
	}
	return &out
}

// TestFoldedModelEqualsOriginal checks that SmoothQuant's and AWQ's
// folded scales leave the float model's function unchanged: logits of
// the folded and original models on a sequence agree within float32
// tolerance, on stories260K and on random models with activation
// outliers (biases, and AWQ's and SmoothQuant's search's v→o fold, which
// SmoothQuant skips under grouped attention and AWQ ties across the
// query heads sharing a kv head: stories260K and "random grouped"). SmoothQuant runs with α 0.5
// and with its search (smoothQuantSearch, which also folds up→down). The
// scales must also have changed the weights.
func TestFoldedModelEqualsOriginal(t *testing.T) {
	b := cpu.New()
	sm, err := lm.LoadHFWith(b, stories, lm.LoadOptions{Float32: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	for _, tc := range []struct {
		name string
		c    lm.Config
		w    *lm.Weights
	}{
		{"stories260K", sm.Config, sm.Weights},
		{"random", smallConfig(2, 4), randomWeights(smallConfig(2, 4), 1)},
		{"random grouped", smallConfig(2, 2), randomWeights(smallConfig(2, 2), 1)},
	} {
		for _, method := range []Method{SmoothQuant, smoothQuantSearch, AWQ} {
			c := tc.c
			ids := randomIDs(3, 4*24, c.Vocab)
			folded := foldAll(t, b, c, tc.w, ids, 4, 24, method)
			moved := 0.0
			for l := range folded.Layers {
				for j, v := range folded.Layers[l].AttnNorm {
					moved = math.Max(moved, math.Abs(float64(v/tc.w.Layers[l].AttnNorm[j])-1))
				}
			}
			if moved < 0.05 {
				t.Errorf("%s %s: the norms moved by %.3g at most: nothing was scaled", tc.name, method, moved)
			}
			if method == AWQ { // o's scales, folded into v's rows, grouped attention or not
				movedV := 0.0
				for l := range folded.Layers {
					for j, v := range folded.Layers[l].V {
						if w := tc.w.Layers[l].V[j]; w != 0 {
							movedV = math.Max(movedV, math.Abs(float64(v/w)-1))
						}
					}
				}
				if movedV < 0.05 {
					t.Errorf("%s %s: v_proj moved by %.3g at most: o was not scaled", tc.name, method, movedV)
				}
			}
			m0, err := lm.New(b, c, tc.w)
			if err != nil {
				t.Fatal(err)
			}
			m1, err := lm.New(b, c, folded)
			if err != nil {
				t.Fatal(err)
			}
			seq := randomIDs(9, 40, c.Vocab)
			l0, err := m0.Forward(m0.NewCache(), seq)
			if err != nil {
				t.Fatal(err)
			}
			l1, err := m1.Forward(m1.NewCache(), seq)
			if err != nil {
				t.Fatal(err)
			}
			maxd, scale := 0.0, 0.0
			for i := range l0 {
				maxd = math.Max(maxd, math.Abs(float64(l0[i]-l1[i])))
				scale = math.Max(scale, math.Abs(float64(l0[i])))
			}
			t.Logf("%s %s: max logit difference %.3g (logits up to %.3g), norms scaled by up to %.3g", tc.name, method, maxd, scale, 1+moved)
			if maxd > 2e-6*scale+2e-5 {
				t.Errorf("%s %s: folded logits differ by %.3g (logits up to %.3g)", tc.name, method, maxd, scale)
			}
		}
	}
}
