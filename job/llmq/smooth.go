package llmq

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
	"github.com/quantkit/quantkit/quant/clip"
	"github.com/quantkit/quantkit/quant/gptq"
)

// usesGPTQ reports whether m quantizes with GPTQ (after its smoothing).
func (m Method) usesGPTQ() bool { return m == GPTQ || m == AWQGPTQ || m == SmoothQuantGPTQ }

// smooths reports whether m rescales a layer's input channels (AWQ,
// SmoothQuant) before quantizing it.
func (m Method) smooths() bool {
	return m == AWQ || m == AWQGPTQ || m == SmoothQuant || m == SmoothQuantGPTQ
}

// DefaultW8A8 is Options.W8A8's default for method m writing scheme s in
// format f: W8A8 (llm-compressor's form) for smoothquant and
// smoothquant+gptq with int8 symmetric per-channel weights in
// compressed-tensors, which is what SmoothQuant is for; weight-only
// otherwise.
func (m Method) DefaultW8A8(s quant.Scheme, f plan.Format) bool {
	return (m == SmoothQuant || m == SmoothQuantGPTQ) &&
		s.Bits == 8 && s.Symmetric && s.Granularity == quant.PerChannel && s.Axis == 0 && f == plan.CompressedTensors
}

// Smoothing is what a smoothing method chose for one input of one layer.
type Smoothing struct {
	Layer int    `json:"layer"`
	Input string `json:"input"` // the projections scaled: q/k/v, gate/up, down, o
	// Ratio is AWQ's chosen r (scales x̄^r/w̄^(1−r), or x̄^r without the
	// weight term when XOnly); SmoothQuant's α.
	Ratio float64 `json:"ratio"`
	XOnly bool    `json:"x_only,omitempty"`
	// Loss and RTNLoss are the searched output error (mean squared; AWQ's
	// of the block, SmoothQuant's of the Linears) with the chosen scales
	// and with none (s = 1).
	Loss    float64 `json:"loss,omitempty"`
	RTNLoss float64 `json:"rtn_loss,omitempty"`
}

// checkW8A8 refuses Options.W8A8 with a scheme or format that is not
// llm-compressor's W8A8: int8 symmetric per-channel weights, int-quantized.
func checkW8A8(opt Options, ct ctensors.Format) error {
	if !opt.W8A8 {
		return nil
	}
	s := opt.Scheme
	if s.Bits != 8 || !s.Signed || !s.Symmetric || s.Granularity != quant.PerChannel || s.Axis != 0 || ct != ctensors.IntQuantized {
		return inputerr.Mark(fmt.Errorf("W8A8 (dynamic per-token int8 activations) takes int8 symmetric per-channel weights in compressed-tensors int-quantized (--scheme int8 --format compressed-tensors), not %v in %s", s, ct))
	}
	return nil
}

// writeConfig writes config.json into dir: quantize.WriteConfig's, with
// W8A8's input activations (ctensors.DynamicTokenInt8) when opt.W8A8 and
// GPTQ's activation order (actorder "weight") when it used one.
func (su *setup) writeConfig(opt Options, dir string) error {
	actOrder := opt.Method.usesGPTQ() && opt.GPTQ.ActOrder
	if !opt.W8A8 && !actOrder {
		return quantize.WriteConfig(su.ck, su.p, dir)
	}
	qc, err := ctensors.QuantizationConfig(su.p.Scheme, su.ct, su.p.Ignore())
	if err != nil {
		return err
	}
	if opt.W8A8 {
		if err := ctensors.SetInputActivations(qc, ctensors.DynamicTokenInt8); err != nil {
			return err
		}
	}
	if actOrder {
		if err := ctensors.SetWeightsActOrder(qc, ctensors.ActOrderWeight); err != nil {
			return err
		}
	}
	cfg := su.ck.Config()
	if cfg == nil {
		cfg = []byte("{}")
	}
	if cfg, err = ctensors.UpdateConfig(cfg, qc); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, checkpoint.ConfigFileName), cfg, 0o666)
}

// qdqFunc quantizes a [rows, cols] weight and returns it dequantized,
// possibly in w's own memory (w is the caller's scratch).
type qdqFunc func(w []float32, rows, cols int) ([]float32, error)

// smooth applies the method's smoothing to layer l (in place): the
// layer's inputs are collected on x, the scales chosen and folded in.
// It returns the checkpoint names of the kept tensors it changed (norms,
// v_proj's bias) with their new values, to be written instead of the
// input's. For awq it also sets su.fits, used for the search's candidates
// too: the output-error clip (clip.FitOutput, AutoAWQ's auto_clip) of v,
// o, gate, up and down on their scaled calibration inputs, and for q and
// k, which AutoAWQ leaves unclipped, the data-free clip of method mse
// (clip.FitMSE: on stories260K int4 g32, mean KL 0.076 against min-max's
// 0.079, averaged over three calibration seeds).
func (su *setup) smooth(opt Options, b backend.Backend, l int, layer *lm.Layer, x *hiddenRows, items []int) (map[string][]float32, error) {
	var q awqQuant
	var rs func(float32) float32
	for _, i := range items {
		if it := &su.p.Items[i]; it.Action == plan.Quantize && projIndex(it.Name) >= 0 {
			fit := su.fitter(opt, it)
			rs = scaleRounder(it.ScaleDType)
			q = func(w []float32, rows, cols int, g *clip.Gram) ([]float32, error) {
				var p *quant.Params
				var err error
				switch {
				case opt.Method != AWQ:
					p, err = fit(w, []int{rows, cols})
				case g != nil:
					p, err = fitOutput(opt.Scheme, w, rows, cols, g, rs)
				default:
					p, err = clip.FitMSE(opt.Scheme, w, []int{rows, cols}, clip.Options{RoundScale: rs})
				}
				if err != nil {
					return nil, err
				}
				codes := make([]byte, opt.Scheme.PackedLen(len(w)))
				if err := quant.Quantize(codes, w, p); err != nil {
					return nil, err
				}
				return w, quant.Dequantize(w, codes, p) // w is the caller's scratch (awqQuant)
			}
			break
		}
	}
	c := su.calib
	var res []Smoothing
	var err error
	switch opt.Method {
	case SmoothQuant, SmoothQuantGPTQ:
		if q == nil && opt.Alpha == 0 {
			return nil, fmt.Errorf("layer %d: SmoothQuant: no projection of the layer is quantized", l)
		}
		res, err = smoothQuantLayer(b, su.cfg, l, layer, x, c.Samples, c.SeqLen, opt.Alpha, func(w []float32, rows, cols int) ([]float32, error) {
			return q(w, rows, cols, nil)
		}, opt.W8A8)
	default:
		if q == nil {
			return nil, fmt.Errorf("layer %d: AWQ: no projection of the layer is quantized", l)
		}
		group := 0
		if opt.Scheme.Granularity == quant.PerGroup {
			group = opt.Scheme.GroupSize
		}
		var r *awqResult
		if r, err = awqLayer(b, su.cfg, l, layer, x, c.Samples, c.SeqLen, group, q); err != nil {
			break
		}
		res = r.choices
		if opt.Method != AWQ {
			break
		}
		su.fits = map[string]gptq.Fit{} // this layer's only
		for _, i := range items {
			it := &su.p.Items[i]
			j := projIndex(it.Name)
			if it.Action != plan.Quantize || j < 0 {
				continue
			}
			if j < 2 { // q, k: the weight's own clip
				su.fits[it.Name] = func(w []float32, shape []int) (*quant.Params, error) {
					return clip.FitMSE(opt.Scheme, w, shape, clip.Options{RoundScale: rs})
				}
				continue
			}
			su.awqGrams = r.grams
			in := projInput[j]
			su.fits[it.Name] = func(w []float32, shape []int) (*quant.Params, error) {
				if len(shape) != 2 {
					return nil, fmt.Errorf("AWQ's clip takes a [rows, cols] weight, not %v", shape)
				}
				return fitOutput(opt.Scheme, w, shape[0], shape[1], su.awqGrams[in], rs)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	su.rep.Smoothing = append(su.rep.Smoothing, res...)
	names := lm.LayerTensors(l)
	changed := map[string][]float32{names[0]: layer.AttnNorm, names[1]: layer.MLPNorm}
	if layer.VBias != nil {
		changed[names[11]] = layer.VBias
	}
	return changed, nil
}

// scaleRounder rounds a scale as a checkpoint of scale dtype dt stores
// it (ctensors.RoundScales; NaN when it cannot), the identity for F32.
func scaleRounder(dt string) func(float32) float32 {
	return func(v float32) float32 {
		if dt == "F32" {
			return v
		}
		p := &quant.Params{Scales: []float32{v}}
		if ctensors.RoundScales(p, dt) != nil {
			return float32(math.NaN())
		}
		return p.Scales[0]
	}
}

// encodeAs encodes x in the dtype (F32, F16, BF16) of the checkpoint's
// tensor name, to replace its bytes.
func encodeAs(ck *checkpoint.Checkpoint, name string, x []float32) ([]byte, error) {
	info, ok := ck.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("tensor %q: not in %s", name, ck.Dir())
	}
	t, ok := map[string]gguf.Type{"F32": gguf.TypeF32, "F16": gguf.TypeF16, "BF16": gguf.TypeBF16}[info.DType]
	if !ok {
		return nil, fmt.Errorf("tensor %q: dtype %s: a smoothed tensor is written as F32, F16 or BF16", name, info.DType)
	}
	size, err := t.RowSize(int64(len(x)))
	if err != nil {
		return nil, err
	}
	data := make([]byte, size)
	if err := gguf.EncodeFloat32(data, x, t); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return data, nil
}

// inputStats are what the smoothing methods collect of a layer's four
// projection inputs (lm.LinearInput) on the calibration hidden states.
type inputStats struct {
	absMax [4][]float64 // max |x| per column
	absSum [4][]float64 // Σ |x| per column
	rows   int          // rows (tokens) seen
	// keep holds the first keepSeqs sequences' rows of each input.
	keep [4][]float32
}

// mean is Σ|x|/rows of input in, AWQ's x̄.
func (st *inputStats) mean(in lm.LinearInput) []float64 {
	m := make([]float64, len(st.absSum[in]))
	for j, v := range st.absSum[in] {
		m[j] = v / float64(st.rows)
	}
	return m
}

// collectInputs runs the float layer on x (seqs sequences of T tokens,
// left as it is) with a tap that takes the maxima and sums of |x| per
// column of every projection input, and keeps the rows of the first
// keepSeqs sequences: of down_proj's input too when keepDown (the
// searches derive them from gate/up's later, downRows, rather than hold
// Intermediate floats a row through the gate/up search).
func collectInputs(b backend.Backend, cfg lm.Config, li int, layer *lm.Layer, x *hiddenRows, seqs, T, keepSeqs int, keepDown bool) (*inputStats, error) {
	blk, err := lm.NewBlock(b, cfg, li, layer)
	if err != nil {
		return nil, err
	}
	blk.MaxRows = calibRows
	H := cfg.Hidden
	st := &inputStats{}
	keepRows := 0 // of the current chunk
	tap := func(in lm.LinearInput, rows []float32, n, cols int) error {
		if st.absMax[in] == nil {
			st.absMax[in], st.absSum[in] = make([]float64, cols), make([]float64, cols)
			if in != lm.DownInput || keepDown {
				st.keep[in] = make([]float32, 0, min(keepSeqs, seqs)*T*cols) // grown by append, it would overshoot
			}
		}
		mx, sum := st.absMax[in], st.absSum[in]
		for r := range n {
			for j, v := range rows[r*cols : (r+1)*cols] {
				a := math.Abs(float64(v))
				sum[j] += a
				if a > mx[j] || a != a { // NaN propagates: the scale guard sees it
					mx[j] = a
				}
			}
		}
		if in == lm.QKVInput {
			st.rows += n
		}
		if in != lm.DownInput || keepDown {
			st.keep[in] = append(st.keep[in], rows[:keepRows*cols]...)
		}
		return nil
	}
	per := max(1, calibRows/T)
	scratch := make([]float32, 0, min(per, seqs)*T*H)
	for s0 := 0; s0 < seqs && err == nil; s0 += per {
		k := min(per, seqs-s0)
		keepRows = max(0, min(k, keepSeqs-s0)) * T
		scratch = x.get(s0*T, k*T, scratch)
		err = blk.Forward(scratch, k, T, tap)
	}
	if err := errors.Join(err, blk.Close()); err != nil {
		return nil, err
	}
	return st, nil
}

// downRows is down_proj's input silu(x·gateᵀ)·(x·upᵀ) [n, Intermediate]
// on rows x [n, Hidden] of gate/up's input, as the layer computes it
// (backend.SwiGLU), calibRows rows at a time.
func downRows(b backend.Backend, cfg lm.Config, l *lm.Layer, x []float32) ([]float32, error) {
	H, ff := cfg.Hidden, cfg.Intermediate
	n := len(x) / H
	out := make([]float32, n*ff)
	if err := gemmRows(b, x, n, H, l.Gate, ff, calibRows, out, nil); err != nil {
		return nil, err
	}
	var serr error
	err := gemmRows(b, x, n, H, l.Up, ff, calibRows, nil, func(r0, r1 int, up []float32) {
		if serr == nil {
			g := out[r0*ff : r1*ff]
			serr = hostOp(b, func(bufs []backend.Buffer) error { return backend.SwiGLU(b, bufs[0], bufs[0], bufs[1]) }, g, up)
		}
	})
	return out, errors.Join(err, serr)
}

// hostOp runs op on host slices placed on b (backend.Place: themselves on
// the CPU), and brings the first back.
func hostOp(b backend.Backend, op func([]backend.Buffer) error, xs ...[]float32) error {
	bufs := make([]backend.Buffer, len(xs))
	owned := false
	for i, x := range xs {
		buf, o, err := backend.Place(b, x)
		if err != nil {
			return err
		}
		if o {
			defer b.Free(buf)
		}
		bufs[i], owned = buf, owned || o && i == 0
	}
	if err := op(bufs); err != nil {
		return err
	}
	if owned {
		return b.Download(xs[0], bufs[0])
	}
	return nil
}

// runBlock is layer l's output (or part's of it) on a copy of in (seqs
// sequences of T), in chunks of calibRows rows as the pipeline's passes:
// a search's thousands of rows at once would hold their activations
// (27·Hidden floats a row at 1B, 0.45 GB for 4096 rows) for each candidate.
func runBlock(b backend.Backend, cfg lm.Config, li int, l *lm.Layer, part lm.BlockPart, in []float32, seqs, T int) ([]float32, error) {
	blk, err := lm.NewBlock(b, cfg, li, l)
	if err != nil {
		return nil, err
	}
	blk.Part, blk.MaxRows = part, calibRows
	out := append([]float32(nil), in...)
	err = blk.Forward(out, seqs, T, nil)
	return out, errors.Join(err, blk.Close())
}

// scaleColumns multiplies column j of w [rows, cols] by s[j] (into a new
// slice when out is nil).
func scaleColumns(out, w []float32, cols int, s []float32) []float32 {
	if out == nil {
		out = make([]float32, len(w))
	}
	for r := 0; r < len(w)/cols; r++ {
		row, o := w[r*cols:(r+1)*cols], out[r*cols:(r+1)*cols]
		for j, v := range row {
			o[j] = v * s[j]
		}
	}
	return out
}

// divideRows is w [rows, cols] with row i divided by s[i], a new slice.
func divideRows(w []float32, cols int, s []float32) []float32 {
	out := make([]float32, len(w))
	for i, si := range s {
		for j := range cols {
			out[i*cols+j] = w[i*cols+j] / si
		}
	}
	return out
}

// divided is v[j]/s[j], a new slice (v may be the checkpoint's).
func divided(v, s []float32) []float32 {
	out := make([]float32, len(v))
	for j := range v {
		out[j] = v[j] / s[j]
	}
	return out
}

// fitOutput is AWQ's output-error clip (clip.FitOutput) of w [rows, cols]
// on the Gram g of its inputs, its errors measured with the CPU's GEMM;
// rs rounds the scales as the output stores them.
func fitOutput(s quant.Scheme, w []float32, rows, cols int, g *clip.Gram, rs func(float32) float32) (*quant.Params, error) {
	return clip.FitOutput(s, w, rows, cols, g, clip.Options{RoundScale: rs, Gemm: cpu.GemmF32Serial})
}
