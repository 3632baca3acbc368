package llmq

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/quant"
	"github.com/quantkit/quantkit/quant/clip"
)

// bruteAWQ is AWQ's search written out in float64 for one input: x̄ and
// w̄ from their definitions, the 2×AWQGrid candidates, and loss on each;
// it returns every candidate's loss, in awqSearch's order.
func bruteAWQ(xs [][]float64, ws [][]float32, cols int, loss func(s []float64) float64) []float64 {
	return bruteAWQTied(xs, ws, cols, nil, loss)
}

// bruteAWQTied is bruteAWQ with the columns tied: column j takes the
// scale of tie[j] (nil: its own), computed from x̄ and w̄ averaged over
// the columns tied to it; loss gets a scale per column.
func bruteAWQTied(xs [][]float64, ws [][]float32, cols int, tie []int, loss func(s []float64) float64) []float64 {
	if tie == nil {
		tie = make([]int, cols)
		for j := range tie {
			tie[j] = j
		}
	}
	xcol := make([]float64, cols)
	for _, row := range xs {
		for j, v := range row {
			xcol[j] += math.Abs(v) / float64(len(xs))
		}
	}
	wcol := make([]float64, cols)
	rows := 0
	for _, w := range ws {
		for r := 0; r < len(w)/cols; r++ {
			rows++
			for j := range cols {
				g0 := j / 16 * 16
				mx := 0.0
				for k := g0; k < min(g0+16, cols); k++ {
					mx = math.Max(mx, math.Abs(float64(w[r*cols+k])))
				}
				wcol[j] += math.Abs(float64(w[r*cols+j])) / (mx + 1e-6)
			}
		}
	}
	n := slices.Max(tie) + 1
	xbar, wbar, count := make([]float64, n), make([]float64, n), make([]float64, n)
	for j, k := range tie {
		xbar[k] += xcol[j]
		wbar[k] += wcol[j] / float64(rows)
		count[k]++
	}
	for k := range n {
		xbar[k] /= count[k]
		wbar[k] /= count[k]
	}
	var losses []float64
	for _, xOnly := range []bool{false, true} {
		for i := range 20 {
			r := float64(i) / 20
			sk := make([]float64, n)
			lo, hi := math.Inf(1), 0.0
			for k := range sk {
				sk[k] = math.Pow(xbar[k], r)
				if !xOnly {
					sk[k] /= math.Pow(wbar[k], 1-r) + 1e-4
				}
				sk[k] = math.Max(sk[k], 1e-4)
				lo, hi = math.Min(lo, sk[k]), math.Max(hi, sk[k])
			}
			s := make([]float64, cols)
			for j, k := range tie {
				s[j] = sk[k] / math.Sqrt(lo*hi)
			}
			losses = append(losses, loss(s))
		}
	}
	return losses
}

// qdqScaled is naiveQDQ(W·s)/s.
func qdqScaled(w []float32, rows, cols int, s []float64) []float32 {
	ws := make([]float32, len(w))
	for i, v := range w {
		ws[i] = float32(float64(v) * s[i%cols])
	}
	q, _ := naiveQDQ(ws, rows, cols)
	for i := range q {
		q[i] = float32(float64(q[i]) / s[i%cols])
	}
	return q
}

// clipQDQScaled is W·s quantized as clip.FitOutput's brute force, then
// divided by s: for each row and group of 16 columns, of the clipping
// maxima r·max|W·s| (r = 1, 0.95, …, 0.55) the one whose codes
// (symmetric int4, scale max/7, codes −7…7) give the least output error
// Σ_t (Σ_j x[t][j]/s_j·(W·s − q)[j])² on the rows xs, in float64.
func clipQDQScaled(w []float32, rows, cols int, s []float64, xs [][]float64) []float32 {
	out := make([]float32, len(w))
	for r := range rows {
		for g0 := 0; g0 < cols; g0 += 16 {
			g1 := min(g0+16, cols)
			ws := make([]float64, g1-g0)
			mx := 0.0
			for j := range ws {
				ws[j] = float64(float32(float64(w[r*cols+g0+j]) * s[g0+j]))
				mx = math.Max(mx, math.Abs(ws[j]))
			}
			best := math.Inf(1)
			for i := range 10 {
				scale := float64(float32((1 - float64(i)*0.05) * mx / 7))
				q := make([]float64, len(ws))
				for j, v := range ws {
					q[j] = math.Max(-7, math.Min(7, math.RoundToEven(float64(float32(v/scale))))) * scale
				}
				e := 0.0
				for _, x := range xs {
					d := 0.0
					for j := range ws {
						d += x[g0+j] / s[g0+j] * (ws[j] - q[j])
					}
					e += d * d
				}
				if e < best {
					best = e
					for j := range q {
						out[r*cols+g0+j] = float32(q[j] / s[g0+j])
					}
				}
			}
		}
	}
	return out
}

// clipQuant is the awqQuant of the test: naiveQDQ without a Gram,
// clip.FitOutput on it for int4 symmetric groups of 16 otherwise.
func clipQuant(t *testing.T) awqQuant {
	sch, err := quant.ParseScheme("int4-sym-group16")
	if err != nil {
		t.Fatal(err)
	}
	return func(w []float32, rows, cols int, g *clip.Gram) ([]float32, error) {
		if g == nil {
			return naiveQDQ(w, rows, cols)
		}
		p, err := clip.FitOutput(sch, w, rows, cols, g, clip.Options{})
		if err != nil {
			return nil, err
		}
		codes := make([]byte, sch.PackedLen(len(w)))
		if err := quant.Quantize(codes, w, p); err != nil {
			return nil, err
		}
		y := make([]float32, len(w))
		return y, quant.Dequantize(y, codes, p)
	}
}

// TestAWQAgainstBruteForce runs awqLayer on a small random layer, with
// and without grouped attention, and checks each choice
// against a brute-force search over the same grid with the same losses
// written in the test: x̄ from the norms computed here, the down input
// as silu(gate)·up computed here, losses in float64 (the attention and
// MLP outputs from lm.Block, the down and o outputs by plain loops), and
// every Linear but q and k clipped by its output error (clipQDQScaled,
// AutoAWQ's auto_clip) on the inputs computed here. The Grams awqLayer
// returns for the final clip must be those of the folded layer's inputs.
// Under grouped attention o's columns of the query heads sharing a kv
// head share one scale (its v row's), from x̄ and w̄ averaged over them.
func TestAWQAgainstBruteForce(t *testing.T) {
	for _, kvHeads := range []int{4, 2} {
		t.Run(fmt.Sprintf("kv-heads-%d", kvHeads), func(t *testing.T) { testAWQAgainstBruteForce(t, kvHeads) })
	}
}

func testAWQAgainstBruteForce(t *testing.T, kvHeads int) {
	b := cpu.New()
	c := smallConfig(1, kvHeads)
	w := randomWeights(c, 5)
	seqs, T := 3, 16
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	x, err := lm.Embed(w.Embed, H, randomIDs(7, seqs*T, c.Vocab))
	if err != nil {
		t.Fatal(err)
	}
	orig := w.Layers[0]
	layer := orig
	res, err := awqLayer(b, c, 0, &layer, float32Rows(x, c.Hidden), seqs, T, 16, clipQuant(t))
	if err != nil {
		t.Fatal(err)
	}
	block := func(l lm.Layer, in []float32, tap lm.Tap) []float32 {
		blk, err := lm.NewBlock(b, c, 0, &l)
		if err != nil {
			t.Fatal(err)
		}
		defer blk.Close()
		out := append([]float32(nil), in...)
		if err := blk.Forward(out, seqs, T, tap); err != nil {
			t.Fatal(err)
		}
		return out
	}
	mse := func(a, b []float32) float64 {
		s := 0.0
		for i := range a {
			s += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
		}
		return s / float64(len(a))
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
	linear := func(xs [][]float64, w []float32, rows, cols int) []float32 {
		out := make([]float32, 0, len(xs)*rows)
		for _, row := range xs {
			for o := range rows {
				s := 0.0
				for j, v := range row {
					s += v * float64(w[o*cols+j])
				}
				out = append(out, float32(s))
			}
		}
		return out
	}
	zero := func(n int) []float32 { return make([]float32, n) }
	// q/k/v against the attention output.
	attn := orig
	attn.Gate, attn.Up, attn.Down = zero(ff*H), zero(ff*H), zero(ff*H)
	refA := block(attn, x, nil)
	want := map[string][]float64{}
	xn := rms(x, orig.AttnNorm)
	want["q/k/v"] = bruteAWQ(xn, [][]float32{orig.Q, orig.K, orig.V}, H, func(s []float64) float64 {
		a := attn
		a.Q, a.K, a.V = qdqScaled(orig.Q, qd, H, s), qdqScaled(orig.K, kvd, H, s), clipQDQScaled(orig.V, kvd, H, s, xn)
		return mse(block(a, x, nil), refA)
	})
	// gate/up against the MLP output, on the residual after attention.
	mlp := orig
	mlp.Q, mlp.K, mlp.V, mlp.O = zero(qd*H), zero(kvd*H), zero(kvd*H), zero(qd*H)
	mlp.QBias, mlp.KBias, mlp.VBias = nil, nil, nil
	refM := block(mlp, refA, nil)
	hn := rms(refA, orig.MLPNorm)
	want["gate/up"] = bruteAWQ(hn, [][]float32{orig.Gate, orig.Up}, H, func(s []float64) float64 {
		m := mlp
		m.Gate, m.Up = clipQDQScaled(orig.Gate, ff, H, s, hn), clipQDQScaled(orig.Up, ff, H, s, hn)
		return mse(block(m, refA, nil), refM)
	})
	// down against its output: its input silu(gate)·up, computed here.
	g, u := linear(hn, orig.Gate, ff, H), linear(hn, orig.Up, ff, H)
	var d [][]float64
	for r := range hn {
		row := make([]float64, ff)
		for j := range row {
			gv := float64(g[r*ff+j])
			row[j] = gv / (1 + math.Exp(-gv)) * float64(u[r*ff+j])
		}
		d = append(d, row)
	}
	refD := linear(d, orig.Down, H, ff)
	want["down"] = bruteAWQ(d, [][]float32{orig.Down}, ff, func(s []float64) float64 {
		return mse(linear(d, clipQDQScaled(orig.Down, H, ff, s, d), H, ff), refD)
	})
	// o against its output: its input, the attention, from a tap.
	var a [][]float64
	block(orig, x, func(in lm.LinearInput, rows []float32, n, cols int) error {
		if in == lm.OInput {
			for r := range n {
				row := make([]float64, cols)
				for j := range row {
					row[j] = float64(rows[r*cols+j])
				}
				a = append(a, row)
			}
		}
		return nil
	})
	refO := linear(a, orig.O, H, qd)
	tie := make([]int, qd) // o's column (head h, d) reads v's row (h/(heads/kv heads), d)
	for j := range tie {
		h, d := j/c.HeadDim, j%c.HeadDim
		tie[j] = h/(c.Heads/c.KVHeads)*c.HeadDim + d
	}
	want["o"] = bruteAWQTied(a, [][]float32{orig.O}, qd, tie, func(s []float64) float64 {
		return mse(linear(a, clipQDQScaled(orig.O, H, qd, s, a), H, qd), refO)
	})
	got := res.choices
	if len(got) != 4 {
		t.Fatalf("%d searches, want 4: %+v", len(got), got)
	}
	for _, ch := range got {
		losses := want[ch.Input]
		best := 0
		for i, l := range losses {
			if l < losses[best] {
				best = i
			}
		}
		idx := int(math.Round(ch.Ratio * 20))
		if ch.XOnly {
			idx += 20
		}
		t.Logf("%s: chose r %.2f x-only %v, loss %.4g; brute force: r %.2f x-only %v, loss %.4g (no scaling %.4g)",
			ch.Input, ch.Ratio, ch.XOnly, ch.Loss, float64(best%20)/20, best >= 20, losses[best], losses[20])
		if idx != best && losses[idx] > losses[best]*(1+1e-4) {
			t.Errorf("%s: AWQ chose candidate %d (loss %.6g here), brute force %d (loss %.6g)", ch.Input, idx, losses[idx], best, losses[best])
		}
		if math.Abs(ch.Loss-losses[idx]) > 1e-3*losses[idx] || math.Abs(ch.RTNLoss-losses[20]) > 1e-3*losses[20] {
			t.Errorf("%s: AWQ's losses %.6g (rtn %.6g), here %.6g (rtn %.6g)", ch.Input, ch.Loss, ch.RTNLoss, losses[idx], losses[20])
		}
	}
	// The Grams of the folded layer's inputs, from a tap, in float64.
	var grams [4][]float64
	block(layer, x, func(in lm.LinearInput, rows []float32, n, cols int) error {
		if grams[in] == nil {
			grams[in] = make([]float64, cols*cols)
		}
		for r := range n {
			for i := range cols {
				for j := range cols {
					grams[in][i*cols+j] += float64(rows[r*cols+i]) * float64(rows[r*cols+j])
				}
			}
		}
		return nil
	})
	for in, g := range res.grams {
		cols := g.Cols
		for bi, blk := range g.Blocks {
			m := min(16, cols-bi*16)
			for i := range m {
				for j := range m {
					want := grams[in][(bi*16+i)*cols+bi*16+j]
					if got := blk[i*m+j]; math.Abs(got-want) > 1e-4*(math.Abs(want)+1) {
						t.Fatalf("%s: Gram block %d (%d, %d): %g, the folded layer's inputs give %g", lm.LinearInput(in), bi, i, j, got, want)
					}
				}
			}
		}
	}
}

// naiveQuant is naiveQDQ as an awqQuant that does not clip.
func naiveQuant(w []float32, rows, cols int, _ *clip.Gram) ([]float32, error) {
	return naiveQDQ(w, rows, cols)
}
