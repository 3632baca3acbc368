package lm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/cpu"
)

// naiveForward is the decoder in float64 with plain loops, written from
// transformers' modeling_llama and sharing no code with the package: the
// logits of every token of tokens, processed as one causal sequence. RoPE
// has the unscaled frequencies θ^(-2i/d); c.RopeFactors is not read.
func naiveForward(c Config, w *Weights, tokens []int) [][]float64 {
	inv := make([]float64, c.HeadDim/2)
	for i := range inv {
		inv[i] = math.Pow(c.RopeTheta, -float64(2*i)/float64(c.HeadDim))
	}
	return naiveForwardFreqs(c, w, tokens, inv)
}

// naiveForwardFreqs is naiveForward with RoPE's inverse frequencies given
// (HeadDim/2 of them).
func naiveForwardFreqs(c Config, w *Weights, tokens []int, invFreq []float64) [][]float64 {
	return naiveForwardWith(c, w, tokens, naiveOptions{freqs: func(int) []float64 { return invFreq }})
}

// naiveOptions are what naiveForwardWith takes beyond the weights.
type naiveOptions struct {
	// freqs gives the inverse frequencies that rotate the query and key
	// of position pos (transformers' dynamic NTK computes them per forward
	// pass, so a key cached earlier keeps older ones).
	freqs func(pos int) []float64
	// mscale multiplies cos and sin (transformers' attention_scaling); 0
	// means 1.
	mscale float64
	// window gives layer li's sliding window, 0 for none: a query at p
	// sees keys j with p-window < j ≤ p (transformers' mask functions).
	window func(li int) int
}

// naiveForwardWith is the float64 decoder with RoPE frequencies, a cos/sin
// scale and sliding windows as o says.
func naiveForwardWith(c Config, w *Weights, tokens []int, o naiveOptions) [][]float64 {
	H, d := c.Hidden, c.HeadDim
	mscale := o.mscale
	if mscale == 0 {
		mscale = 1
	}
	f := func(x []float32, i int) float64 { return float64(x[i]) }
	matvec := func(wt []float32, x []float64, rows int, bias []float32) []float64 {
		cols := len(x)
		y := make([]float64, rows)
		for r := 0; r < rows; r++ {
			s := 0.0
			if bias != nil {
				s = f(bias, r)
			}
			for j := 0; j < cols; j++ {
				s += f(wt, r*cols+j) * x[j]
			}
			y[r] = s
		}
		return y
	}
	norm := func(x []float64, wt []float32) []float64 {
		ss := 0.0
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+c.RMSNormEps)
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = v * r * f(wt, i)
		}
		return y
	}
	// rotate-half RoPE on one head vector
	rot := func(v []float64, pos int) {
		invFreq := o.freqs(pos)
		for i := 0; i < d/2; i++ {
			th := float64(pos) * invFreq[i]
			a, b := v[i], v[i+d/2]
			cs, sn := mscale*math.Cos(th), mscale*math.Sin(th)
			v[i] = a*cs - b*sn
			v[i+d/2] = b*cs + a*sn
		}
	}
	T := len(tokens)
	xs := make([][]float64, T)
	for t, id := range tokens {
		xs[t] = make([]float64, H)
		for i := range H {
			xs[t][i] = f(w.Embed, id*H+i)
		}
	}
	for li, l := range w.Layers {
		window := 0
		if o.window != nil {
			window = o.window(li)
		}
		// visible is the attention mask: causal, and within the window.
		visible := func(q, k int) bool { return k <= q && (window == 0 || k > q-window) }
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			xn := norm(xs[t], l.AttnNorm)
			qs[t] = matvec(l.Q, xn, c.Heads*d, l.QBias)
			ks[t] = matvec(l.K, xn, c.KVHeads*d, l.KBias)
			vs[t] = matvec(l.V, xn, c.KVHeads*d, l.VBias)
			for h := 0; h < c.Heads; h++ {
				rot(qs[t][h*d:(h+1)*d], t)
			}
			for h := 0; h < c.KVHeads; h++ {
				rot(ks[t][h*d:(h+1)*d], t)
			}
		}
		for t := range T {
			a := make([]float64, c.Heads*d)
			for h := 0; h < c.Heads; h++ {
				g := h * c.KVHeads / c.Heads
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for p := 0; p <= t; p++ {
					if !visible(t, p) {
						continue
					}
					s := 0.0
					for i := 0; i < d; i++ {
						s += qs[t][h*d+i] * ks[p][g*d+i]
					}
					sc[p] = s / math.Sqrt(float64(d))
					mx = math.Max(mx, sc[p])
				}
				sum := 0.0
				for p := range sc {
					if !visible(t, p) {
						sc[p] = 0 // exp(-inf)
						continue
					}
					sc[p] = math.Exp(sc[p] - mx)
					sum += sc[p]
				}
				for p := range sc {
					for i := 0; i < d; i++ {
						a[h*d+i] += sc[p] / sum * vs[p][g*d+i]
					}
				}
			}
			o := matvec(l.O, a, H, l.OBias)
			for i := range H {
				xs[t][i] += o[i]
			}
			xn := norm(xs[t], l.MLPNorm)
			gt := matvec(l.Gate, xn, c.Intermediate, nil)
			up := matvec(l.Up, xn, c.Intermediate, nil)
			for i := range gt {
				gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
			}
			dn := matvec(l.Down, gt, H, nil)
			for i := range H {
				xs[t][i] += dn[i]
			}
		}
	}
	head := w.LMHead
	if head == nil {
		head = w.Embed
	}
	out := make([][]float64, T)
	for t := range T {
		out[t] = matvec(head, norm(xs[t], w.Norm), c.Vocab, nil)
	}
	return out
}

// randomModel makes weights of config c with values of about the scale
// trained models have, biases when bias is set, and an untied head unless tied.
func randomModel(r *rand.Rand, c Config, tied, bias bool) *Weights {
	vec := func(n int, scale, mean float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(mean + scale*r.NormFloat64())
		}
		return x
	}
	mat := func(rows, cols int) []float32 { return vec(rows*cols, 1/math.Sqrt(float64(cols)), 0) }
	H, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	w := &Weights{Embed: vec(c.Vocab*H, 1, 0), Norm: vec(H, 0.1, 1)}
	if !tied {
		w.LMHead = mat(c.Vocab, H)
	}
	for range c.Layers {
		l := Layer{
			AttnNorm: vec(H, 0.1, 1), MLPNorm: vec(H, 0.1, 1),
			Q: mat(q, H), K: mat(kv, H), V: mat(kv, H), O: mat(H, q),
			Gate: mat(ff, H), Up: mat(ff, H), Down: mat(H, ff),
		}
		if bias {
			l.QBias, l.KBias, l.VBias, l.OBias = vec(q, 0.1, 0), vec(kv, 0.1, 0), vec(kv, 0.1, 0), vec(H, 0.1, 0)
		}
		w.Layers = append(w.Layers, l)
	}
	return w
}

func TestForwardAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		c          Config
		tied, bias bool
	}{
		{Config{Hidden: 16, Intermediate: 40, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 4, Vocab: 37}, true, false},
		{Config{Hidden: 24, Intermediate: 33, Layers: 3, Heads: 6, KVHeads: 2, HeadDim: 6, Vocab: 50}, false, false},
		{Config{Hidden: 20, Intermediate: 31, Layers: 2, Heads: 4, KVHeads: 1, HeadDim: 10, Vocab: 29}, true, true},
		// head_dim independent of hidden/heads, as Mistral-Nemo and Qwen3 have
		{Config{Hidden: 18, Intermediate: 27, Layers: 2, Heads: 3, KVHeads: 3, HeadDim: 14, Vocab: 41}, false, true},
		{Config{Hidden: 32, Intermediate: 70, Layers: 1, Heads: 8, KVHeads: 2, HeadDim: 2, Vocab: 64}, false, false},
	} {
		c := tc.c
		c.RMSNormEps, c.RopeTheta, c.BOS, c.EOS = 1e-5, 10000, 1, -1
		name := fmt.Sprintf("h%d_heads%d_kv%d_d%d_tied%v_bias%v", c.Hidden, c.Heads, c.KVHeads, c.HeadDim, tc.tied, tc.bias)
		t.Run(name, func(t *testing.T) {
			w := randomModel(r, c, tc.tied, tc.bias)
			m, err := New(cpu.New(), c, w)
			if err != nil {
				t.Fatal(err)
			}
			tokens := make([]int, 13)
			for i := range tokens {
				tokens[i] = r.IntN(c.Vocab)
			}
			want := naiveForward(c, w, tokens)
			check := func(how string, t0 int, got []float32) {
				t.Helper()
				worst, scale := 0.0, 0.0
				for i, g := range got {
					wv := want[t0+i/c.Vocab][i%c.Vocab]
					worst = math.Max(worst, math.Abs(float64(g)-wv))
					scale = math.Max(scale, math.Abs(wv))
				}
				t.Logf("%s: max |logit - float64| = %.3g (logits up to %.3g)", how, worst, scale)
				if worst > 1e-4*math.Max(1, scale) {
					t.Errorf("%s: max logit difference %g exceeds float32 tolerance", how, worst)
				}
			}
			all, err := m.Forward(m.NewCache(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			check("prompt at once", 0, all)
			// token by token, and a prompt of 5 then the rest one by one
			c1 := m.NewCache()
			for i, id := range tokens {
				l, err := m.Forward(c1, []int{id})
				if err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("token %d alone", i), i, l)
			}
			c2 := m.NewCache()
			l, err := m.Forward(c2, tokens[:5])
			if err != nil {
				t.Fatal(err)
			}
			check("first 5", 0, l)
			l, err = m.Forward(c2, tokens[5:])
			if err != nil {
				t.Fatal(err)
			}
			check("rest through the cache", 5, l)
			// the prompt in passes of PrefillRows tokens (4 of 13: a
			// short last pass), all logits and the last row's
			m.PrefillRows = 4
			l, err = m.Forward(m.NewCache(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			if len(l) != len(tokens)*c.Vocab {
				t.Fatalf("passes of 4: %d logits for %d tokens", len(l), len(tokens))
			}
			check("passes of 4", 0, l)
			c3 := m.NewCache()
			l, err = m.ForwardLast(c3, tokens)
			if err != nil {
				t.Fatal(err)
			}
			if len(l) != c.Vocab || c3.Len() != len(tokens) {
				t.Fatalf("ForwardLast in passes of 4: %d logits, cache of %d", len(l), c3.Len())
			}
			check("ForwardLast in passes of 4", len(tokens)-1, l)
			m.PrefillRows = 0
		})
	}
}

func TestNewRefusesBadShapes(t *testing.T) {
	c := Config{Hidden: 8, Intermediate: 8, Layers: 1, Heads: 3, KVHeads: 2, HeadDim: 2, Vocab: 4, RopeTheta: 1e4}
	if _, err := New(cpu.New(), c, &Weights{}); err == nil {
		t.Error("3 heads over 2 key/value heads accepted")
	}
	c.Heads = 2
	w := randomModel(rand.New(rand.NewPCG(2, 2)), c, true, false)
	w.Layers[0].Down = w.Layers[0].Down[:5]
	if _, err := New(cpu.New(), c, w); err == nil {
		t.Error("a short down_proj accepted")
	}
}

// TestForwardSlidingWindow runs random configurations with a sliding
// window shorter than the prompt, on every layer and on some, against the
// float64 forward with transformers' sliding-window mask, at once, token
// by token and through the cache; and checks that the window matters.
func TestForwardSlidingWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 1))
	for _, tc := range []struct {
		window int
		layers []bool
	}{{4, nil}, {3, []bool{false, true, true}}, {1, []bool{true, false, false}}} {
		c := Config{Hidden: 24, Intermediate: 33, Layers: 3, Heads: 6, KVHeads: 2, HeadDim: 6, Vocab: 50,
			RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: -1, SlidingWindow: tc.window, WindowLayers: tc.layers}
		t.Run(fmt.Sprintf("window%d_layers%v", tc.window, tc.layers), func(t *testing.T) {
			w := randomModel(r, c, false, true)
			m, err := New(cpu.New(), c, w)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			tokens := randomTokens(r, 13, c.Vocab)
			inv := make([]float64, c.HeadDim/2)
			for i := range inv {
				inv[i] = math.Pow(c.RopeTheta, -float64(2*i)/float64(c.HeadDim))
			}
			opts := naiveOptions{freqs: func(int) []float64 { return inv }, window: func(li int) int {
				if tc.layers == nil || tc.layers[li] {
					return tc.window
				}
				return 0
			}}
			want := naiveForwardWith(c, w, tokens, opts)
			checkAgainst(t, m, want, tokens)
			checkTokenByToken(t, m, want, tokens)
			if d := maxLastDiff(want, naiveForward(c, w, tokens)); d < 1e-2 {
				t.Errorf("the window changes the last logits by only %g: the test does not see it", d)
			}
		})
	}
	c := Config{Hidden: 8, Intermediate: 8, Layers: 2, Heads: 2, KVHeads: 2, HeadDim: 4, Vocab: 5, RopeTheta: 1e4}
	w := randomModel(r, c, true, false)
	for _, bad := range []Config{{SlidingWindow: -1}, {SlidingWindow: 2, WindowLayers: []bool{true}}} {
		cc := c
		cc.SlidingWindow, cc.WindowLayers = bad.SlidingWindow, bad.WindowLayers
		if _, err := New(cpu.New(), cc, w); err == nil {
			t.Errorf("window %d over layers %v accepted", bad.SlidingWindow, bad.WindowLayers)
		}
	}
}

// checkTokenByToken feeds tokens one at a time through one cache and
// compares each token's logits with want.
func checkTokenByToken(t *testing.T, m *Model, want [][]float64, tokens []int) {
	t.Helper()
	c := m.NewCache()
	defer c.Close()
	worst, scale := 0.0, 0.0
	for i, id := range tokens {
		l, err := m.Forward(c, []int{id})
		if err != nil {
			t.Fatal(err)
		}
		for j, g := range l {
			worst = math.Max(worst, math.Abs(float64(g)-want[i][j]))
			scale = math.Max(scale, math.Abs(want[i][j]))
		}
	}
	t.Logf("token by token: max |logit - float64| = %.3g (logits up to %.3g)", worst, scale)
	if worst > 1e-4*math.Max(1, scale) {
		t.Errorf("token by token: max logit difference %g exceeds float32 tolerance", worst)
	}
}

// maxLastDiff is the largest difference between the last tokens' logits.
func maxLastDiff(a, b [][]float64) float64 {
	d := 0.0
	la, lb := a[len(a)-1], b[len(b)-1]
	for i := range la {
		d = math.Max(d, math.Abs(la[i]-lb[i]))
	}
	return d
}
