package llmq

import (
	"errors"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/quant/clip"
)

// AWQGrid is the number of ratios AWQ searches, r = i/AWQGrid for
// i = 0…AWQGrid−1, each with the weight term (x̄^r/w̄^(1−r)) and without
// it (x̄^r), as AutoAWQ's duo_scaling true and false.
const AWQGrid = 20

// AWQMaxRows bounds AWQ's search sample: the block outputs of each
// candidate are computed on the first calibration sequences up to this
// many tokens (at least one sequence); x̄ is taken over every token.
const AWQMaxRows = 4096

// AWQScales are AWQ's candidate scales for one ratio r, as AutoAWQ
// computes them: s_j = max(x̄_j^r / (w̄_j^(1−r) + 1e-4), 1e-4), or
// max(x̄_j^r, 1e-4) when xOnly, then divided by √(max s · min s); a
// scale that is not finite and positive is 1. x̄ is the mean |x| of input
// channel j over the calibration tokens, w̄ AWQWeightMean.
func AWQScales(xMean, wMean []float64, r float64, xOnly bool) []float32 {
	v := make([]float64, len(xMean))
	lo, hi := math.Inf(1), math.Inf(-1)
	for j, x := range xMean {
		s := math.Pow(x, r)
		if !xOnly {
			s /= math.Pow(wMean[j], 1-r) + 1e-4
		}
		v[j] = math.Max(s, 1e-4)
		lo, hi = math.Min(lo, v[j]), math.Max(hi, v[j])
	}
	norm := math.Sqrt(lo * hi)
	s := make([]float32, len(v))
	for j, x := range v {
		s[j] = float32(x / norm)
		if !(s[j] > 0) || math.IsInf(float64(s[j]), 0) {
			s[j] = 1
		}
	}
	return s
}

// AWQWeightMean is AWQ's w̄ for Linears ws [rows, cols] sharing one
// input: each weight's |W| divided by the largest |W| of its quantization
// group (group consecutive columns of a row, the last one ragged; the
// whole row when group ≤ 0) plus 1e-6, averaged per column over the rows
// of every matrix.
func AWQWeightMean(ws [][]float32, cols, group int) []float64 {
	if group <= 0 || group > cols {
		group = cols
	}
	sum := make([]float64, cols)
	rows := 0
	for _, w := range ws {
		for r := 0; r < len(w)/cols; r++ {
			row := w[r*cols : (r+1)*cols]
			for g0 := 0; g0 < cols; g0 += group {
				g := row[g0:min(g0+group, cols)]
				mx := 0.0
				for _, v := range g {
					mx = math.Max(mx, math.Abs(float64(v)))
				}
				for j, v := range g {
					sum[g0+j] += math.Abs(float64(v)) / (mx + 1e-6)
				}
			}
			rows++
		}
	}
	for j := range sum {
		sum[j] /= float64(rows)
	}
	return sum
}

// awqSearch evaluates loss on each candidate, AWQScales for the AWQGrid
// ratios with the weight term and then without it, and returns the
// scales of the least loss (the first of equal ones), what was chosen
// and the loss without scaling (x̄^0: s = 1).
func awqSearch(xMean, wMean []float64, loss func(s []float32) (float64, error)) ([]float32, Smoothing, error) {
	var best []float32
	choice := Smoothing{Loss: math.Inf(1)}
	for _, xOnly := range []bool{false, true} {
		for i := range AWQGrid {
			r := float64(i) / AWQGrid
			s := AWQScales(xMean, wMean, r, xOnly)
			l, err := loss(s)
			if err != nil {
				return nil, choice, err
			}
			if xOnly && i == 0 {
				choice.RTNLoss = l
			}
			if l < choice.Loss {
				best, choice.Loss, choice.Ratio, choice.XOnly = s, l, r, xOnly
			}
		}
	}
	if best == nil { // every loss NaN
		return nil, choice, fmt.Errorf("AWQ: no candidate scale gives a finite output error")
	}
	return best, choice, nil
}

// awqQuant is how AWQ's searches quantize a scaled weight W·s [rows,
// cols], returning it dequantized: g, when not nil, is the Gram of the
// Linear's calibration inputs divided by s (their columns by s[j]), for
// the output-error clip (clip.FitOutput, AutoAWQ's auto_clip); nil for q
// and k, which AutoAWQ does not clip ("due to qk bmm, it is hard to clip
// precisely"), and for a quantizer that does not clip. w is the caller's
// scratch: the result may be w itself, overwritten.
type awqQuant func(w []float32, rows, cols int, g *clip.Gram) ([]float32, error)

// awqResult is what awqLayer chose for one layer.
type awqResult struct {
	choices []Smoothing
	// grams are the Grams of the scaled inputs (the calibration inputs
	// divided by the chosen scales), by lm.LinearInput, for the final
	// clip of v, o, gate, up and down: the layer quantized computes what
	// the searches measured.
	grams [4]*clip.Gram
}

// awqLayer chooses AWQ's scales for layer li's four scalable inputs on
// its float weights and the calibration hidden states x (seqs sequences
// of T tokens, left as they are), then folds them in (the layer computes
// the same function in float), as AutoAWQ's search_best_scale does:
//   - q/k/v, against input_layernorm: the loss is the attention output's
//     error (the block's attention alone, lm.AttentionOnly: x +
//     attention(x)), as AutoAWQ inspects self_attn;
//   - gate/up, against post_attention_layernorm: the MLP output's error
//     (the block's MLP alone, lm.MLPOnly, on x + attention(x));
//   - down, against up_proj's rows: down_proj's output error;
//   - o, against v_proj's rows (and bias): o_proj's output error. Under
//     grouped-query attention (which AutoAWQ skips) o's columns of the
//     query heads sharing a kv head share that kv head's v row's scale
//     (kvExpand), searched on x̄ and w̄ averaged over them (kvMean): the
//     function stays the same in float.
//
// The four searches see the original weights and inputs; each candidate
// replaces the scaled Linears W by q(W·s)/s, q the quantizer the output
// gets: with the output-error clip, on the inputs divided by s, for every
// Linear but q and k. group is the scheme's group size (0 per channel),
// for w̄ and the Grams.
func awqLayer(b backend.Backend, cfg lm.Config, li int, l *lm.Layer, x *hiddenRows, seqs, T, group int, q awqQuant) (*awqResult, error) {
	keep := max(1, min(seqs, AWQMaxRows/T))
	st, err := collectInputs(b, cfg, li, l, x, seqs, T, keep, false)
	if err != nil {
		return nil, err
	}
	H, qd, kvd, ff := cfg.Hidden, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	var grams [4]*clip.Gram
	gram := func(in lm.LinearInput, cols int) error {
		g, err := clip.NewGram(st.keep[in], len(st.keep[in])/cols, cols, group)
		grams[in] = g
		return err
	}
	if err := errors.Join(gram(lm.QKVInput, H), gram(lm.OInput, qd), gram(lm.GateUpInput, H)); err != nil {
		return nil, err
	}
	// q/k/v's kept rows made their Gram; the searches run the blocks on
	// x. down's rows come from gate/up's after the gate/up search.
	st.keep[lm.QKVInput] = nil
	xs := x.get(0, keep*T, nil)
	// scaled is q(W·s)/s, clipped on input in's Gram divided by s when clipped.
	scaled := func(w []float32, rows, cols int, s []float32, in lm.LinearInput, clipped bool) ([]float32, error) {
		var g *clip.Gram
		if clipped {
			g = grams[in].Scaled(s)
		}
		out, err := q(scaleColumns(nil, w, cols, s), rows, cols, g)
		if err != nil {
			return nil, err
		}
		for i := range out {
			out[i] /= s[i%cols]
		}
		return out, nil
	}
	res := &awqResult{}
	note := func(in string, c Smoothing) {
		c.Layer, c.Input = li, in
		res.choices = append(res.choices, c)
	}

	// q/k/v: the attention alone.
	attn := *l
	refA, err := runBlock(b, cfg, li, &attn, lm.AttentionOnly, xs, keep, T)
	if err != nil {
		return nil, err
	}
	sQKV, c, err := awqSearch(st.mean(lm.QKVInput), AWQWeightMean([][]float32{l.Q, l.K, l.V}, H, group), func(s []float32) (float64, error) {
		a := attn
		var err error
		if a.Q, err = scaled(l.Q, qd, H, s, lm.QKVInput, false); err != nil {
			return 0, err
		}
		if a.K, err = scaled(l.K, kvd, H, s, lm.QKVInput, false); err != nil {
			return 0, err
		}
		if a.V, err = scaled(l.V, kvd, H, s, lm.QKVInput, true); err != nil {
			return 0, err
		}
		out, err := runBlock(b, cfg, li, &a, lm.AttentionOnly, xs, keep, T)
		return meanSquaredError(out, refA), err
	})
	if err != nil {
		return nil, fmt.Errorf("layer %d: q/k/v: %w", li, err)
	}
	note(lm.QKVInput.String(), c)

	// gate/up: the MLP alone, on the residual stream after the attention.
	mlp := *l
	refM, err := runBlock(b, cfg, li, &mlp, lm.MLPOnly, refA, keep, T)
	if err != nil {
		return nil, err
	}
	sGU, c, err := awqSearch(st.mean(lm.GateUpInput), AWQWeightMean([][]float32{l.Gate, l.Up}, H, group), func(s []float32) (float64, error) {
		m := mlp
		var err error
		if m.Gate, err = scaled(l.Gate, ff, H, s, lm.GateUpInput, true); err != nil {
			return 0, err
		}
		if m.Up, err = scaled(l.Up, ff, H, s, lm.GateUpInput, true); err != nil {
			return 0, err
		}
		out, err := runBlock(b, cfg, li, &m, lm.MLPOnly, refA, keep, T)
		return meanSquaredError(out, refM), err
	})
	if err != nil {
		return nil, fmt.Errorf("layer %d: gate/up: %w", li, err)
	}
	note(lm.GateUpInput.String(), c)
	if st.keep[lm.DownInput], err = downRows(b, cfg, l, st.keep[lm.GateUpInput]); err != nil {
		return nil, err
	}
	st.keep[lm.GateUpInput] = nil
	if err := gram(lm.DownInput, ff); err != nil {
		return nil, err
	}

	// down and o: one Linear's output. expand maps the searched scales
	// to the Linear's columns (nil: one scale a column); x̄ and w̄ are
	// averaged over the columns one scale covers (tied).
	linear := func(in lm.LinearInput, w []float32, rows, cols int, tied func([]float64) []float64, expand func([]float32) []float32) ([]float32, error) {
		xr := st.keep[in]
		n := len(xr) / cols
		ref, err := matmulT(b, xr, n, cols, w, rows)
		if err != nil {
			return nil, err
		}
		xMean, wMean := st.mean(in), AWQWeightMean([][]float32{w}, cols, group)
		if tied != nil {
			xMean, wMean = tied(xMean), tied(wMean)
		}
		s, c, err := awqSearch(xMean, wMean, func(s []float32) (float64, error) {
			if expand != nil {
				s = expand(s)
			}
			q, err := scaled(w, rows, cols, s, in, true)
			if err != nil {
				return 0, err
			}
			return linearError(b, xr, n, cols, q, rows, ref)
		})
		if err != nil {
			return nil, fmt.Errorf("layer %d: %s: %w", li, in, err)
		}
		note(in.String(), c)
		return s, nil
	}
	sDown, err := linear(lm.DownInput, l.Down, H, ff, nil, nil)
	if err != nil {
		return nil, err
	}
	// o against v's rows: o's column (head h, d) reads v's row (kv head
	// h/(Heads/KVHeads), d), so under grouped attention the query heads
	// sharing a kv head share its scales.
	sV, err := linear(lm.OInput, l.O, H, qd, func(v []float64) []float64 { return kvMean(cfg, v) },
		func(s []float32) []float32 { return kvExpand(cfg, s) })
	if err != nil {
		return nil, err
	}
	sO := kvExpand(cfg, sV)

	// Fold: the preceding norm or Linear divided, the scaled ones multiplied.
	l.AttnNorm = divided(l.AttnNorm, sQKV)
	l.Q, l.K, l.V = scaleColumns(nil, l.Q, H, sQKV), scaleColumns(nil, l.K, H, sQKV), scaleColumns(nil, l.V, H, sQKV)
	l.MLPNorm = divided(l.MLPNorm, sGU)
	l.Gate, l.Up = scaleColumns(nil, l.Gate, H, sGU), scaleColumns(nil, l.Up, H, sGU)
	l.Up = divideRows(l.Up, H, sDown)
	l.Down = scaleColumns(nil, l.Down, ff, sDown)
	res.grams[lm.QKVInput] = grams[lm.QKVInput].Scaled(sQKV)
	res.grams[lm.GateUpInput] = grams[lm.GateUpInput].Scaled(sGU)
	res.grams[lm.DownInput] = grams[lm.DownInput].Scaled(sDown)
	l.V = divideRows(l.V, H, sV)
	if l.VBias != nil {
		l.VBias = divided(l.VBias, sV)
	}
	l.O = scaleColumns(nil, l.O, qd, sO)
	res.grams[lm.OInput] = grams[lm.OInput].Scaled(sO)
	return res, nil
}

// kvMean averages v, one value per column of o_proj's input (query head
// h, dimension d), over the query heads that read each kv head: [KVDim],
// entry (kv head k, d) the mean over h with h/(Heads/KVHeads) = k.
func kvMean(cfg lm.Config, v []float64) []float64 {
	g, hd := cfg.Heads/cfg.KVHeads, cfg.HeadDim
	out := make([]float64, cfg.KVDim())
	for h := range cfg.Heads {
		for d := range hd {
			out[h/g*hd+d] += v[h*hd+d] / float64(g)
		}
	}
	return out
}

// kvExpand is s [KVDim] (one value per row of v_proj) as o_proj's input
// columns [QDim]: column (query head h, d) takes row (h/(Heads/KVHeads),
// d), the value that the attention carries there.
func kvExpand(cfg lm.Config, s []float32) []float32 {
	g, hd := cfg.Heads/cfg.KVHeads, cfg.HeadDim
	out := make([]float32, cfg.QDim())
	for h := range cfg.Heads {
		copy(out[h*hd:(h+1)*hd], s[h/g*hd:(h/g+1)*hd])
	}
	return out
}

// meanSquaredError is Σ(a−b)²/len(a), in float64.
func meanSquaredError(a, b []float32) float64 {
	s := 0.0
	for i, v := range a {
		d := float64(v) - float64(b[i])
		s += d * d
	}
	return s / float64(len(a))
}

// matmulT is x [n, k] · wᵀ (w [rows, k]) = [n, rows], on b.
func matmulT(b backend.Backend, x []float32, n, k int, w []float32, rows int) ([]float32, error) {
	out := make([]float32, n*rows)
	return out, gemmRows(b, x, n, k, w, rows, n, out, nil)
}

// linearError is the mean squared difference between x·wᵀ (x [n, k], w
// [rows, k]) and ref [n, rows], in float64, the product formed calibRows
// rows at a time: a search's candidates need not hold their whole output
// (4096 × 8192 floats, 134 MB, at a 1B gate_proj).
func linearError(b backend.Backend, x []float32, n, k int, w []float32, rows int, ref []float32) (float64, error) {
	var s float64
	err := gemmRows(b, x, n, k, w, rows, calibRows, nil, func(r0, r1 int, y []float32) {
		for i, v := range y {
			d := float64(v) - float64(ref[r0*rows+i])
			s += d * d
		}
	})
	return s / float64(n*rows), err
}

// gemmRows computes x [n, k] · wᵀ (w [rows, k]) on b, chunk rows of x at
// a time, into dst [n, rows] when it is not nil (otherwise into a scratch
// of chunk rows), and hands each chunk's rows [r0, r1) of the product to
// use when it is not nil. On a backend of host memory (the CPU) x, w and
// the output are used in place, not copied.
func gemmRows(b backend.Backend, x []float32, n, k int, w []float32, rows, chunk int, dst []float32, use func(r0, r1 int, y []float32)) error {
	wb, wOwned, err := backend.Place(b, w)
	if err != nil {
		return err
	}
	if wOwned {
		defer b.Free(wb)
	}
	chunk = max(1, min(chunk, n))
	var scratch []float32
	if dst == nil {
		scratch = make([]float32, chunk*rows)
	}
	for r0 := 0; r0 < n; r0 += chunk {
		r1 := min(r0+chunk, n)
		y := scratch[:min(len(scratch), (r1-r0)*rows)]
		if dst != nil {
			y = dst[r0*rows : r1*rows]
		}
		if err := gemmChunk(b, x[r0*k:r1*k], r1-r0, k, wb, rows, y); err != nil {
			return err
		}
		if use != nil {
			use(r0, r1, y)
		}
	}
	return nil
}

// gemmChunk is y [n, rows] = x [n, k] · wᵀ on b, w already placed.
func gemmChunk(b backend.Backend, x []float32, n, k int, w backend.Buffer, rows int, y []float32) error {
	return hostOp(b, func(bufs []backend.Buffer) error { return b.GemmF32(n, rows, k, bufs[1], w, bufs[0]) }, y, x)
}
