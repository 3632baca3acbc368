package llmq

import (
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

// smoothQuantLayer runs layer li's float weights on x (seqs sequences of
// T tokens, left as they are), takes each channel's max |x| at the
// q/k/v input (input_layernorm's output) and at the gate/up input
// (post_attention_layernorm's), and folds SmoothScales into the norms
// (divided) and the Linears' columns (multiplied): the layer computes
// the same function.
func smoothQuantLayer(b backend.Backend, cfg lm.Config, li int, l *lm.Layer, x []float32, seqs, T int, alpha float64) ([]Smoothing, error) {
	st, err := collectInputs(b, cfg, li, l, x, seqs, T, 0)
	if err != nil {
		return nil, err
	}
	H := cfg.Hidden
	s := SmoothScales(st.absMax[lm.QKVInput], [][]float32{l.Q, l.K, l.V}, H, alpha)
	l.AttnNorm = divided(l.AttnNorm, s)
	for _, w := range []*[]float32{&l.Q, &l.K, &l.V} {
		*w = scaleColumns(nil, *w, H, s)
	}
	s = SmoothScales(st.absMax[lm.GateUpInput], [][]float32{l.Gate, l.Up}, H, alpha)
	l.MLPNorm = divided(l.MLPNorm, s)
	for _, w := range []*[]float32{&l.Gate, &l.Up} {
		*w = scaleColumns(nil, *w, H, s)
	}
	return []Smoothing{
		{Layer: li, Input: lm.QKVInput.String(), Ratio: alpha},
		{Layer: li, Input: lm.GateUpInput.String(), Ratio: alpha},
	}, nil
}
