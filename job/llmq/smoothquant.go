package llmq

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/lm"
)

// SmoothScales are SmoothQuant's per-input-channel scales
//
//	s_j = actMax[j]^α / wMax_j^(1−α),  wMax_j = max over the rows of every
//	                                  matrix in ws of |W[r, j]|
//
// for Linears [rows, cols] that share one input whose per-channel maxima
// of |x| over the calibration tokens are actMax. Dividing that input by s
// (folded into the norm before it) and multiplying the Linears' columns by
// s leaves their outputs unchanged and moves the activations' outliers
// into the weights (α is how much). A channel whose statistics are zero,
// NaN or infinite, or whose scale would be, keeps s_j = 1.
func SmoothScales(actMax []float64, ws [][]float32, cols int, alpha float64) []float32 {
	wMax := make([]float64, cols)
	for _, w := range ws {
		for i, v := range w {
			if a := math.Abs(float64(v)); a > wMax[i%cols] || a != a {
				wMax[i%cols] = a
			}
		}
	}
	s := make([]float32, cols)
	for j := range s {
		s[j] = 1
		a, w := actMax[j], wMax[j]
		if !(a > 0) || !(w > 0) || math.IsInf(a, 0) || math.IsInf(w, 0) {
			continue
		}
		v := float32(math.Pow(a, alpha) / math.Pow(w, 1-alpha))
		if v > 0 && !math.IsInf(float64(v), 0) {
			s[j] = v
		}
	}
	return s
}

// SmoothGrid is the number of migration strengths SmoothQuant's search
// tries for each input when Options.Alpha is 0: α = i/SmoothGrid for
// i = 1…SmoothGrid, and no smoothing at all (s = 1).
const SmoothGrid = 20

// smoothQuantLayer smooths layer li on its float weights and the
// calibration hidden states x (seqs sequences of T tokens, left as they
// are): it takes each channel's max |x| at the q/k/v input
// (input_layernorm's output), the gate/up input
// (post_attention_layernorm's), the down input and the o input, and
// folds SmoothScales into the norms or the preceding Linear's rows
// (divided) and the Linears' columns (multiplied): the layer computes
// the same function.
//
// With alpha > 0 (Options.Alpha, a fixed α), the q/k/v and gate/up inputs
// are smoothed with it, llm-compressor's mappings. With alpha 0 each of
// the four inputs (o only when v's rows are o's columns: no grouped-query
// attention) takes, of no smoothing and the SmoothGrid strengths, the one
// whose quantized Linears' outputs on the calibration inputs are closest
// to the float ones (mean squared error over their outputs): weights
// quantized by qdq after scaling, and, when act, the inputs divided by s
// and quantized per token to int8 as W8A8 runs them (auto-α per layer,
// as SmoothQuant's and Intel Neural Compressor's auto-alpha search do).
// No smoothing is a candidate, so the calibration error is never above
// plain W8A8's.
func smoothQuantLayer(b backend.Backend, cfg lm.Config, li int, l *lm.Layer, x *hiddenRows, seqs, T int, alpha float64, qdq qdqFunc, act bool) ([]Smoothing, error) {
	keep := 0
	if alpha == 0 {
		keep = max(1, min(seqs, AWQMaxRows/T))
	}
	st, err := collectInputs(b, cfg, li, l, x, seqs, T, keep, false)
	if err != nil {
		return nil, err
	}
	H, qd, kvd, ff := cfg.Hidden, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	var res []Smoothing
	// choose is input in's scales for the Linears ws [rows[i], cols].
	choose := func(in lm.LinearInput, ws [][]float32, rows []int, cols int) ([]float32, error) {
		if alpha > 0 {
			res = append(res, Smoothing{Layer: li, Input: in.String(), Ratio: alpha})
			return SmoothScales(st.absMax[in], ws, cols, alpha), nil
		}
		s, c, err := smoothSearch(b, st.absMax[in], st.keep[in], ws, rows, cols, qdq, act)
		if in != lm.GateUpInput {
			st.keep[in] = nil // searched: its rows are not read again
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: %s: %w", li, in, err)
		}
		c.Layer, c.Input = li, in.String()
		res = append(res, c)
		return s, nil
	}
	s, err := choose(lm.QKVInput, [][]float32{l.Q, l.K, l.V}, []int{qd, kvd, kvd}, H)
	if err != nil {
		return nil, err
	}
	l.AttnNorm = divided(l.AttnNorm, s)
	for _, w := range []*[]float32{&l.Q, &l.K, &l.V} {
		*w = scaleColumns(nil, *w, H, s)
	}
	if s, err = choose(lm.GateUpInput, [][]float32{l.Gate, l.Up}, []int{ff, ff}, H); err != nil {
		return nil, err
	}
	if alpha == 0 {
		// down's rows, from gate/up's and the layer's gate and up before
		// they are scaled.
		if st.keep[lm.DownInput], err = downRows(b, cfg, l, st.keep[lm.GateUpInput]); err != nil {
			return nil, err
		}
		st.keep[lm.GateUpInput] = nil
	}
	l.MLPNorm = divided(l.MLPNorm, s)
	for _, w := range []*[]float32{&l.Gate, &l.Up} {
		*w = scaleColumns(nil, *w, H, s)
	}
	if alpha > 0 {
		return res, nil
	}
	// down against up_proj's rows: silu(gate)·up is linear in up.
	if s, err = choose(lm.DownInput, [][]float32{l.Down}, []int{H}, ff); err != nil {
		return nil, err
	}
	l.Up = divideRows(l.Up, H, s)
	l.Down = scaleColumns(nil, l.Down, ff, s)
	if qd == kvd {
		if s, err = choose(lm.OInput, [][]float32{l.O}, []int{H}, qd); err != nil {
			return nil, err
		}
		l.V = divideRows(l.V, H, s)
		if l.VBias != nil {
			l.VBias = divided(l.VBias, s)
		}
		l.O = scaleColumns(nil, l.O, qd, s)
	}
	return res, nil
}

// smoothSearch is the auto-α search of one input (see smoothQuantLayer):
// actMax its channels' max |x|, xs its kept rows, ws the Linears
// [rows[i], cols] reading it. It returns the scales (all 1 for no
// smoothing) and the choice: Ratio the α (0 for none), Loss its error,
// RTNLoss no smoothing's.
func smoothSearch(b backend.Backend, actMax []float64, xs []float32, ws [][]float32, rows []int, cols int, qdq qdqFunc, act bool) ([]float32, Smoothing, error) {
	n := len(xs) / cols
	refs := make([][]float32, len(ws))
	for i, w := range ws {
		var err error
		if refs[i], err = matmulT(b, xs, n, cols, w, rows[i]); err != nil {
			return nil, Smoothing{}, err
		}
	}
	xq := make([]float32, len(xs))
	codes := make([]int8, cols)
	loss := func(s []float32) (float64, error) {
		for r := range n {
			row, o := xs[r*cols:(r+1)*cols], xq[r*cols:(r+1)*cols]
			for j, v := range row {
				o[j] = v / s[j]
			}
			if act {
				var sc float32
				backend.QuantizeRowS8(codes, &sc, o)
				for j, c := range codes {
					o[j] = float32(c) * sc
				}
			}
		}
		var sum float64
		count := 0
		for i, w := range ws {
			q, err := qdq(scaleColumns(nil, w, cols, s), rows[i], cols)
			if err != nil {
				return 0, err
			}
			e, err := linearError(b, xq, n, cols, q, rows[i], refs[i])
			if err != nil {
				return 0, err
			}
			sum += e * float64(len(refs[i]))
			count += len(refs[i])
		}
		return sum / float64(count), nil
	}
	best := make([]float32, cols)
	for j := range best {
		best[j] = 1
	}
	l, err := loss(best)
	if err != nil {
		return nil, Smoothing{}, err
	}
	choice := Smoothing{Loss: l, RTNLoss: l}
	for i := 1; i <= SmoothGrid; i++ {
		a := float64(i) / SmoothGrid
		s := SmoothScales(actMax, ws, cols, a)
		l, err := loss(s)
		if err != nil {
			return nil, choice, err
		}
		if l < choice.Loss {
			best, choice.Loss, choice.Ratio = s, l, a
		}
	}
	return best, choice, nil
}
