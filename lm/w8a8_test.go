package lm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
)

// The W8A8 forward pass against a float64 transcription.
//
// Quantizing activations makes the forward pass discontinuous: the engine
// computes an activation in float32, the reference in float64, and where
// x/s_x lies within float32 error of a rounding boundary k+½ the two may
// round to neighbouring codes. One such flip moves a projection's output
// by a whole quantization step of one input, far more than float32
// rounding, so logits compared blindly would need a tolerance as loose as
// the W8A8 error itself, and a broken quantizer would pass.
//
// The comparison is made exact in the codes instead. The test runs the
// engine on a backend that records the activation codes and per-token
// scales every GemmS8 call receives (s8Spy); the reference quantizes each
// activation row itself, from its own float64 values, and checks every
// code of the engine against its own:
//
//   - a code whose x/s_x (float64) lies farther than ambiguousCodes from
//     any rounding boundary must be the reference's code exactly: the
//     engine's float32 error, about 1e-4 code units here, cannot move it;
//   - an exact tie (x/s_x = k+½ in float64, which the test builds on
//     purpose, see tieRow) must round half to even;
//   - within ambiguousCodes of a boundary the engine's code must be one of
//     the two neighbours, and the reference then continues with the
//     engine's choice, so that both stay on the same path.
//
// With the codes shared, the rest is float32 against float64 arithmetic
// (int32 dot products are exact; the scales and everything else are
// float32), and the logits are held to a float32 tolerance as tight as
// the float path's (TestForwardAgainstNaive).
const ambiguousCodes = 0.01

// s8Call is what one GemmS8 call of the engine received.
type s8Call struct {
	m, n, k  int
	codes    []int8    // the activation codes [m, k]
	rowScale []float32 // the per-token scales [m]
}

// s8Spy is the cpu backend recording the activation side of every GemmS8
// call. It embeds *cpu.Backend, so that it keeps the backend's LMOps.
type s8Spy struct {
	*cpu.Backend
	calls []s8Call
}

func (s *s8Spy) GemmS8(m, n, k int, a, b, c backend.Buffer, ep *backend.Epilogue) error {
	h, ok := backend.Host[int8](a)
	if !ok || len(h) < m*k || ep == nil || len(ep.RowScale) != m {
		return errors.New("s8Spy: want host int8 activations and one row scale per row")
	}
	s.calls = append(s.calls, s8Call{m: m, n: n, k: k, codes: slices.Clone(h[:m*k]), rowScale: slices.Clone(ep.RowScale)})
	return s.Backend.GemmS8(m, n, k, a, b, c, ep)
}

// w8a8Stats count what naiveW8A8 checked.
type w8a8Stats struct {
	codes      int     // activation codes compared
	ties       int     // exact ties, checked to round half to even
	ambiguous  int     // codes within ambiguousCodes of a boundary
	flips      int     // of those, where the engine rounded the other way
	worstFlip  float64 // the largest distance to the boundary of a flip
	mismatches int     // engine codes that break the rules above
	scaleErr   float64 // largest relative difference of the row scales
}

// engineRow returns the codes and scale the engine used for projection j
// (Int8Layer.list order) of layer l at position pos.
type engineRow func(l, j, pos int) ([]int8, float32)

// naiveW8A8 is naiveForward (float64, plain loops, modeling_llama) with
// the int8 projections of w run as W8A8: the input row x is quantized with
// s = max|x|/127, codes round(x/s) half to even clamped to [-127, 127],
// and y[o] = (Σ codes·weight codes)·s·Scales[o] + bias. eng gives the
// engine's codes, checked against the reference's and followed where
// ambiguous (see ambiguousCodes).
func naiveW8A8(t *testing.T, c Config, w *Weights, tokens []int, eng engineRow) ([][]float64, w8a8Stats) {
	t.Helper()
	H, d := c.Hidden, c.HeadDim
	var st w8a8Stats
	f := func(x []float32, i int) float64 { return float64(x[i]) }
	matvec := func(wt []float32, x []float64, rows int, bias []float32) []float64 {
		y := make([]float64, rows)
		for r := range rows {
			s := 0.0
			if bias != nil {
				s = f(bias, r)
			}
			for i, v := range x {
				s += f(wt, r*len(x)+i) * v
			}
			y[r] = s
		}
		return y
	}
	// proj is projection j of layer l at position pos: W8A8 when the
	// layer holds it as int8, else matvec on the float32 weight.
	proj := func(l, j, pos int, wt []float32, x []float64, rows int, bias []float32) []float64 {
		var w8 *Int8Weight
		if in := w.Layers[l].Int8; in != nil {
			w8 = in.list()[j]
		}
		if w8 == nil {
			return matvec(wt, x, rows, bias)
		}
		amax := 0.0
		for _, v := range x {
			amax = math.Max(amax, math.Abs(v))
		}
		s := amax / 127
		got, gotScale := eng(l, j, pos)
		if e := math.Abs(float64(gotScale)-s) / s; e > st.scaleErr {
			st.scaleErr = e
		}
		codes := make([]int64, len(x))
		for i, v := range x {
			r := v / s
			fl := math.Floor(r)
			dist := math.Abs(r - fl - 0.5)
			q := math.Max(-127, math.Min(127, math.RoundToEven(r)))
			g := float64(got[i])
			st.codes++
			switch {
			case dist == 0:
				st.ties++
			case dist < ambiguousCodes:
				st.ambiguous++
				if g == fl || g == fl+1 {
					if g != q {
						st.flips++
						st.worstFlip = math.Max(st.worstFlip, dist)
					}
					q = g
				}
			}
			if g != q {
				if st.mismatches < 10 {
					t.Errorf("layer %d projection %d position %d: activation %d is code %v, want %v (x/s = %.6f)", l, j, pos, i, g, q, r)
				}
				st.mismatches++
			}
			codes[i] = int64(q)
		}
		y := make([]float64, rows)
		for o := range rows {
			var acc int64
			for i, q := range codes {
				acc += q * int64(w8.Codes[o*len(x)+i])
			}
			y[o] = float64(acc) * s * float64(w8.Scales[o])
			if bias != nil {
				y[o] += f(bias, o)
			}
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
	rot := func(v []float64, pos int) {
		for i := range d / 2 {
			th := float64(pos) * math.Pow(c.RopeTheta, -float64(2*i)/float64(d))
			a, b := v[i], v[i+d/2]
			v[i] = a*math.Cos(th) - b*math.Sin(th)
			v[i+d/2] = b*math.Cos(th) + a*math.Sin(th)
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
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			xn := norm(xs[t], l.AttnNorm)
			qs[t] = proj(li, 0, t, l.Q, xn, c.Heads*d, l.QBias)
			ks[t] = proj(li, 1, t, l.K, xn, c.KVHeads*d, l.KBias)
			vs[t] = proj(li, 2, t, l.V, xn, c.KVHeads*d, l.VBias)
			for h := range c.Heads {
				rot(qs[t][h*d:(h+1)*d], t)
			}
			for h := range c.KVHeads {
				rot(ks[t][h*d:(h+1)*d], t)
			}
		}
		for t := range T {
			a := make([]float64, c.Heads*d)
			for h := range c.Heads {
				g := h * c.KVHeads / c.Heads
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for p := 0; p <= t; p++ {
					s := 0.0
					for i := range d {
						s += qs[t][h*d+i] * ks[p][g*d+i]
					}
					sc[p] = s / math.Sqrt(float64(d))
					mx = math.Max(mx, sc[p])
				}
				sum := 0.0
				for p := range sc {
					sc[p] = math.Exp(sc[p] - mx)
					sum += sc[p]
				}
				for p := range sc {
					for i := range d {
						a[h*d+i] += sc[p] / sum * vs[p][g*d+i]
					}
				}
			}
			o := proj(li, 3, t, l.O, a, H, l.OBias)
			for i := range H {
				xs[t][i] += o[i]
			}
			xn := norm(xs[t], l.MLPNorm)
			gt := proj(li, 4, t, l.Gate, xn, c.Intermediate, nil)
			up := proj(li, 5, t, l.Up, xn, c.Intermediate, nil)
			for i := range gt {
				gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
			}
			dn := proj(li, 6, t, l.Down, gt, H, nil)
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
	return out, st
}

// int8Rows quantizes x [rows, cols] int8 symmetric per row in float64, as
// a per-channel checkpoint stores a weight: scale max|row|/127, codes
// rounded half to even.
func int8Rows(x []float32, rows, cols int) *Int8Weight {
	w := &Int8Weight{Codes: make([]int8, len(x)), Scales: make([]float32, rows)}
	for r := range rows {
		row := x[r*cols : (r+1)*cols]
		amax := 0.0
		for _, v := range row {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		s := float32(amax / 127)
		w.Scales[r] = s
		for i, v := range row {
			w.Codes[r*cols+i] = int8(math.Max(-127, math.Min(127, math.RoundToEven(float64(v)/float64(s)))))
		}
	}
	return w
}

// tieRow is an embedding row of n values (n ≥ 16) whose RMSNorm, with
// eps 0 and unit weights, is exact in float32 and float64 and quantizes to
// exact ties: its largest |value| is 127/32, so that s = 1/32, and it
// holds ±0.5, ±2.5, ±4.5 and ±6.5 (over 32), which round half to even
// down and half away from zero up. The other values are whole (over 32),
// chosen greedily so that the sum of squares is n·1024: the RMS is then
// exactly 32/32 = 1.
func tieRow(r *rand.Rand, n int) []float32 {
	v := []float64{127, 0.5, 2.5, 4.5, 6.5}
	rest := float64(n) * 1024
	for _, x := range v {
		rest -= x * x
	}
	for len(v) < n {
		k := math.Min(126, math.Floor(math.Sqrt(rest)))
		v = append(v, k)
		rest -= k * k
	}
	if rest != 0 || n < 16 {
		panic(fmt.Sprintf("tieRow: %d values cannot make a sum of squares of %d·1024", n, n))
	}
	row := make([]float32, n)
	for i, j := range r.Perm(n) {
		x := v[j] / 32
		if r.IntN(2) == 0 {
			x = -x
		}
		row[i] = float32(x)
	}
	return row
}

func TestW8A8AgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	all := [7]bool{true, true, true, true, true, true, true}
	for _, tc := range []struct {
		c          Config
		tied, bias bool
		int8       [7]bool // which of q, k, v, o, gate, up, down are int8
		ties       bool    // tokens 0..3 are tie rows (eps 0, unit first norm)
	}{
		{Config{Hidden: 16, Intermediate: 40, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 4, Vocab: 37}, true, false, all, true},
		{Config{Hidden: 24, Intermediate: 33, Layers: 3, Heads: 6, KVHeads: 2, HeadDim: 6, Vocab: 50}, false, true, all, true},
		{Config{Hidden: 20, Intermediate: 31, Layers: 2, Heads: 4, KVHeads: 1, HeadDim: 10, Vocab: 29}, true, true, all, false},
		// head_dim independent of hidden/heads, as Mistral-Nemo and Qwen3 have
		{Config{Hidden: 18, Intermediate: 27, Layers: 2, Heads: 3, KVHeads: 3, HeadDim: 14, Vocab: 41}, false, true, all, true},
		// some projections int8, the others float32
		{Config{Hidden: 32, Intermediate: 70, Layers: 2, Heads: 8, KVHeads: 2, HeadDim: 2, Vocab: 64}, false, true,
			[7]bool{true, false, false, true, false, true, true}, false},
	} {
		c := tc.c
		c.RMSNormEps, c.RopeTheta, c.BOS, c.EOS = 1e-5, 10000, 1, -1
		if tc.ties {
			c.RMSNormEps = 0
		}
		name := fmt.Sprintf("h%d_heads%d_kv%d_d%d_layers%d_tied%v_bias%v_ties%v", c.Hidden, c.Heads, c.KVHeads, c.HeadDim, c.Layers, tc.tied, tc.bias, tc.ties)
		t.Run(name, func(t *testing.T) {
			w := randomModel(r, c, tc.tied, tc.bias)
			if tc.ties {
				for id := range 4 {
					copy(w.Embed[id*c.Hidden:], tieRow(r, c.Hidden))
				}
				for i := range w.Layers[0].AttnNorm {
					w.Layers[0].AttnNorm[i] = 1
				}
			}
			H, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
			for i := range w.Layers {
				l := &w.Layers[i]
				l.Int8 = &Int8Layer{}
				for j, p := range []struct {
					f       *[]float32
					i8      **Int8Weight
					out, in int
				}{
					{&l.Q, &l.Int8.Q, q, H}, {&l.K, &l.Int8.K, kv, H}, {&l.V, &l.Int8.V, kv, H}, {&l.O, &l.Int8.O, H, q},
					{&l.Gate, &l.Int8.Gate, ff, H}, {&l.Up, &l.Int8.Up, ff, H}, {&l.Down, &l.Int8.Down, H, ff},
				} {
					if tc.int8[j] {
						*p.i8, *p.f = int8Rows(*p.f, p.out, p.in), nil
					}
				}
			}
			tokens := make([]int, 13)
			for i := range tokens {
				tokens[i] = r.IntN(c.Vocab)
			}
			if tc.ties {
				copy(tokens[1:], []int{0, 1, 2, 3}) // in the prompt and
				tokens[10] = 2                      // in a decode step
			}
			spy := &s8Spy{Backend: cpu.New()}
			m, err := New(spy, c, w)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// The prompt at once, and a prompt of 9 followed by 4 decode
			// steps through the cache.
			for _, steps := range [][]int{{13}, {9, 1, 1, 1, 1}} {
				spy.calls = nil
				cache := m.NewCache()
				var got [][]float32
				for p := 0; p < len(tokens); {
					l, err := m.Forward(cache, tokens[p:p+steps[len(got)]])
					if err != nil {
						t.Fatal(err)
					}
					p += steps[len(got)]
					got = append(got, l)
				}
				cache.Close()
				// The engine's calls, in order: per Forward, per layer,
				// the int8 projections in Int8Layer.list order.
				type key struct{ l, j, pos int }
				rows := map[key]int{}
				calls := map[key]*s8Call{}
				next := 0
				for p0, n := 0, 0; n < len(steps); p0, n = p0+steps[n], n+1 {
					for li := range c.Layers {
						for j, out := range []int{q, kv, kv, H, ff, ff, H} {
							if !tc.int8[j] {
								continue
							}
							in := []int{H, H, H, q, H, H, ff}[j]
							if next >= len(spy.calls) {
								t.Fatalf("%v: %d GemmS8 calls, fewer than the int8 projections", steps, len(spy.calls))
							}
							call := &spy.calls[next]
							next++
							if call.m != steps[n] || call.n != out || call.k != in {
								t.Fatalf("%v: GemmS8 call %d is %d×%d×%d, want layer %d projection %d, %d×%d×%d", steps, next-1, call.m, call.n, call.k, li, j, steps[n], out, in)
							}
							for i := range steps[n] {
								calls[key{li, j, p0 + i}], rows[key{li, j, p0 + i}] = call, i
							}
						}
					}
				}
				if next != len(spy.calls) {
					t.Fatalf("%v: %d GemmS8 calls, want %d", steps, len(spy.calls), next)
				}
				want, st := naiveW8A8(t, c, w, tokens, func(l, j, pos int) ([]int8, float32) {
					call, i := calls[key{l, j, pos}], rows[key{l, j, pos}]
					return call.codes[i*call.k : (i+1)*call.k], call.rowScale[i]
				})
				worst, scale := 0.0, 0.0
				p := 0
				for _, l := range got {
					for i, g := range l {
						wv := want[p+i/c.Vocab][i%c.Vocab]
						worst = math.Max(worst, math.Abs(float64(g)-wv))
						scale = math.Max(scale, math.Abs(wv))
					}
					p += len(l) / c.Vocab
				}
				t.Logf("%v: %d codes checked, %d exact ties, %d within %g of a boundary (%d rounded the other way, at most %.2g from it); row scales within %.2g; max |logit - float64| = %.3g (logits up to %.3g)",
					steps, st.codes, st.ties, st.ambiguous, ambiguousCodes, st.flips, st.worstFlip, st.scaleErr, worst, scale)
				if st.mismatches > 0 {
					t.Errorf("%v: %d activation codes differ from the reference's", steps, st.mismatches)
				}
				if tc.ties && st.ties == 0 {
					t.Errorf("%v: no exact tie was checked", steps)
				}
				// The scales: float32 max/127 of float32 activations.
				if st.scaleErr > 1e-5 {
					t.Errorf("%v: a per-token scale is %g off max|x|/127 (relative)", steps, st.scaleErr)
				}
				if worst > 1e-4*math.Max(1, scale) {
					t.Errorf("%v: max logit difference %g exceeds float32 tolerance", steps, worst)
				}
			}
		})
	}
}
