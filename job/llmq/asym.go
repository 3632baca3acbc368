package llmq

import (
	"errors"
	"fmt"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/quant/gptq"
)

// Asymmetric calibration (Options.Asymmetric; gptq.Factor.Asymmetric has the
// math): the float model's hidden states travel beside the quantized
// model's, through the float layers; a stage's statistics pass runs the
// float layer on them, keeping each input's rows, then the partly
// quantized layer on the quantized hidden states, adding to each input's
// Hessian its Gram matrix and to its gptq.Cross the product of its rows
// with the difference from the float rows; before GPTQ quantizes an
// input's projections, its factor's Asymmetric moves their weights to the ones
// whose outputs from the quantized inputs best match the float model's.
// The stages are the sequential ones: a stage's inputs come from the
// earlier stages as quantized, so each stage corrects only what is left.

// pairedStatistics runs, chunk by chunk of the calibration set, the float
// layer on xf and layer on x (x left as it is), to last: each input hess
// has gets its Gram matrix from x's pass and cr the cross product with
// xf's (see above). With advance (the layer's last stage) the float pass
// runs the whole layer on xf in place, which then holds the float
// model's next hidden states; otherwise xf is left as it is. It returns
// the seconds spent on the statistics' GEMMs and sums.
func (su *setup) pairedStatistics(b backend.Backend, l int, float, layer *lm.Layer, x, xf []float32, hess [4]*gptq.Hessian, cr [4]*gptq.Cross, last lm.LinearInput, advance bool) (secs float64, err error) {
	cfg, c := su.cfg, su.calib
	fb, err := lm.NewBlock(b, cfg, l, float)
	if err != nil {
		return 0, err
	}
	qb, err := lm.NewBlock(b, cfg, l, layer)
	if err != nil {
		return 0, errors.Join(err, fb.Close())
	}
	defer func() { err = errors.Join(err, fb.Close(), qb.Close()) }()
	fb.MaxRows, qb.MaxRows = calibRows, calibRows
	per := max(1, calibRows/c.SeqLen)
	H := cfg.Hidden
	scratch := make([]float32, 0, min(per, c.Samples)*c.SeqLen*H)
	var floatRows [4][]float32 // each input's float rows in the chunk, transposed [cols, n]
	ftap := func(in lm.LinearInput, rows []float32, n, cols int) error {
		if hess[in] != nil {
			floatRows[in] = transposeRows(floatRows[in], rows, n, cols)
		}
		if in == last && !advance {
			return errStatsDone
		}
		return nil
	}
	var xt []float32
	qtap := func(in lm.LinearInput, rows []float32, n, cols int) error {
		if hess[in] != nil {
			t0 := time.Now()
			defer func() { secs += time.Since(t0).Seconds() }()
			xt = transposeRows(xt, rows, n, cols)
			e := floatRows[in]
			if len(e) != len(xt) {
				return fmt.Errorf("layer %d: %s: %d float values paired with %d", l, in, len(e), len(xt))
			}
			for i, v := range xt {
				e[i] -= v
			}
			if err := addGram(b, hess[in], xt, cols, n); err != nil {
				return err
			}
			if err := addCross(b, cr[in], xt, e, cols, n); err != nil {
				return err
			}
		}
		if in == last {
			return errStatsDone
		}
		return nil
	}
	for s0 := 0; s0 < c.Samples; s0 += per {
		k := min(per, c.Samples-s0)
		rows := func(x []float32) []float32 { return x[s0*c.SeqLen*H : (s0+k)*c.SeqLen*H] }
		in := rows(xf) // with advance, the layer's output replaces it
		if !advance {
			scratch = append(scratch[:0], in...)
			in = scratch
		}
		if err := fb.Forward(in, k, c.SeqLen, ftap); err != nil && !errors.Is(err, errStatsDone) {
			return secs, err
		}
		scratch = append(scratch[:0], rows(x)...)
		if err := qb.Forward(scratch, k, c.SeqLen, qtap); err != nil && !errors.Is(err, errStatsDone) {
			return secs, err
		}
	}
	return secs, nil
}

// transposeRows writes rows [n, cols] transposed into dst [cols, n]
// (reallocated when short) and returns it.
func transposeRows(dst, rows []float32, n, cols int) []float32 {
	if cap(dst) < n*cols {
		dst = make([]float32, n*cols)
	}
	dst = dst[:n*cols]
	for r := range n {
		for j, v := range rows[r*cols : (r+1)*cols] {
			dst[j*n+r] = v
		}
	}
	return dst
}

// addCross adds X_qᵀ·E to c for xt = X_qᵀ and et = Eᵀ [cols, n] (E the
// float rows less the quantized ones), as blockProducts' GEMMs on b.
func addCross(b backend.Backend, c *gptq.Cross, xt, et []float32, cols, n int) error {
	if err := blockProducts(b, xt, et, cols, n, false, c.AddBlock); err != nil {
		return err
	}
	c.Count(n)
	return nil
}
