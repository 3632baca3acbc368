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
// with the difference from the float rows (or, where the projections
// reading the input have fewer rows together than it has columns, as at
// down_proj, that product already multiplied by their weights: a
// quarter of the memory at 1B, half the flops); before GPTQ quantizes an
// input's projections, its factor's Asymmetric moves their weights to the ones
// whose outputs from the quantized inputs best match the float model's.
// The stages are the sequential ones: a stage's inputs come from the
// earlier stages as quantized, so each stage corrects only what is left.

// pairedStatistics runs, chunk by chunk of the calibration set, the float
// layer on xf and layer on x (x left as it is), to last: each input hess
// has gets its Gram matrix from x's pass and cr the cross product with
// xf's (see above). With advance (the layer's last stage) the float pass
// runs the whole layer on xf's rows, which then hold the float model's
// next hidden states; otherwise xf is left as it is. It returns
// the seconds spent on the statistics' GEMMs and sums.
func (su *setup) pairedStatistics(b backend.Backend, l int, float, layer *lm.Layer, x, xf *hiddenRows, hess [4]*gptq.Hessian, cr [4]*gptq.Cross, pw [4][][]float32, last lm.LinearInput, advance bool) (secs float64, err error) {
	cfg, c := su.cfg, su.calib
	fb, err := lm.NewBlock(b, cfg, l, float)
	if err != nil {
		return 0, err
	}
	qb, err := lm.NewBlock(b, cfg, l, layer)
	if err != nil {
		return 0, errors.Join(err, fb.Close())
	}
	defer func() { err = errors.Join(err, qb.Close(), fb.Close()) }()
	// The two run by turns: one chunk's activations between them.
	if err := qb.ShareScratch(fb); err != nil {
		return 0, err
	}
	fb.MaxRows, qb.MaxRows = calibRows, calibRows
	per := max(1, calibRows/c.SeqLen)
	H := cfg.Hidden
	scratch := make([]float32, 0, min(per, c.Samples)*c.SeqLen*H)
	// each input's float rows in the chunk, transposed [cols, n], or as
	// they are [n, cols] for a Cross of products
	var floatRows [4][]float32
	ftap := func(in lm.LinearInput, rows []float32, n, cols int) error {
		switch {
		case hess[in] != nil && cr[in].Products():
			floatRows[in] = append(floatRows[in][:0], rows...)
		case hess[in] != nil:
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
			e, q := floatRows[in], xt
			if cr[in].Products() {
				q = rows
			}
			if len(e) != len(q) {
				return fmt.Errorf("layer %d: %s: %d float values paired with %d", l, in, len(e), len(q))
			}
			for i, v := range q {
				e[i] -= v
			}
			if err := addGram(b, hess[in], xt, cols, n); err != nil {
				return err
			}
			var err error
			if cr[in].Products() {
				err = addProducts(b, cr[in], pw[in], e, xt, cols, n)
			} else {
				err = addCross(b, cr[in], xt, e, cols, n)
			}
			if err != nil {
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
		scratch = xf.get(s0*c.SeqLen, k*c.SeqLen, scratch)
		if err := fb.Forward(scratch, k, c.SeqLen, ftap); err != nil && !errors.Is(err, errStatsDone) {
			return secs, err
		}
		if advance { // the float layer's outputs, the next hidden states
			xf.put(s0*c.SeqLen, scratch)
		}
		scratch = x.get(s0*c.SeqLen, k*c.SeqLen, scratch)
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

// addProducts adds W_k·Eᵀ·X_q to c's products (gptq.NewCrossProducts)
// for each weight ws[k] [rows_k, cols], for e = E [n, cols] (the float
// rows less the quantized ones) and xt = X_qᵀ [cols, n], as GEMMs on b:
// P = W_k·Eᵀ [rows_k, n], then P·X_q gramBlock columns at a time. For
// rows_k below cols it is fewer flops than X_qᵀ·E, 4·rows_k·cols·n
// against 2·cols²·n.
func addProducts(b backend.Backend, c *gptq.Cross, ws [][]float32, e, xt []float32, cols, n int) error {
	rowsMax := 0
	for _, w := range ws {
		rowsMax = max(rowsMax, len(w)/cols)
	}
	bk := min(cols, gramBlock)
	p, err := b.Alloc(backend.F32, rowsMax*n+rowsMax*bk)
	if err != nil {
		return err
	}
	defer b.Free(p)
	g := make([]float32, rowsMax*bk)
	err = hostOp(b, func(bufs []backend.Buffer) error {
		eb, xb := bufs[0], bufs[1]
		for k, w := range ws {
			rows := len(w) / cols
			pk, out := p.Slice(0, rows*n), p.Slice(rowsMax*n, rows*bk)
			err := hostOp(b, func(wb []backend.Buffer) error { return b.GemmF32(rows, n, cols, wb[0], eb, pk) }, w)
			if err != nil {
				return err
			}
			for i0 := 0; i0 < cols; i0 += bk {
				ni := min(bk, cols-i0)
				o := out.Slice(0, rows*ni)
				if err := b.GemmF32(rows, ni, n, pk, xb.Slice(i0*n, ni*n), o); err != nil {
					return err
				}
				if err := b.Download(g[:rows*ni], o); err != nil {
					return err
				}
				if err := c.AddProducts(k, g[:rows*ni], i0, ni); err != nil {
					return err
				}
			}
		}
		return nil
	}, e, xt)
	if err != nil {
		return err
	}
	c.Count(n)
	return nil
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
