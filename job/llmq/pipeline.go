package llmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
	"github.com/quantkit/quantkit/quant/clip"
	"github.com/quantkit/quantkit/quant/gptq"
)

// Method is how a projection's weight is quantized.
type Method string

// The methods.
const (
	RTN  Method = "rtn"  // round to nearest, min-max scales (quantkit quantize's)
	MSE  Method = "mse"  // round to nearest, scales from clip.FitMSE (data-free)
	GPTQ Method = "gptq" // gptq.Quantize with the calibration inputs' Hessians
	// AWQ scales input channels by AWQ's search (awq.go), then rtn
	// (with Options.Asymmetric, after GPTAQ's correction).
	AWQ     Method = "awq"
	AWQGPTQ Method = "awq+gptq" // AWQ's scales, then gptq
	// SmoothQuant migrates activation outliers into the weights
	// (smoothquant.go), then rtn; with int8 per-channel weights and
	// Options.W8A8, llm-compressor's W8A8.
	SmoothQuant     Method = "smoothquant"
	SmoothQuantGPTQ Method = "smoothquant+gptq" // SmoothQuant's scales, then gptq
)

// Methods lists the methods.
func Methods() []string {
	return []string{string(RTN), string(MSE), string(GPTQ), string(AWQ), string(AWQGPTQ), string(SmoothQuant), string(SmoothQuantGPTQ)}
}

// NeedsData reports whether m runs the model on calibration data.
func (m Method) NeedsData() bool { return m != RTN && m != MSE }

// Options say what Run quantizes, how, and where to.
type Options struct {
	// Input is a float Hugging Face checkpoint lm runs (config.json and
	// safetensors); Output the checkpoint directory to write.
	Input, Output string
	// Format is compressed-tensors or compressed-tensors-packed; Scheme
	// per channel (axis 0) or per group.
	Format plan.Format
	Scheme quant.Scheme
	Method Method
	// Calib is the calibration set of the methods that need one.
	Calib CalibOptions
	// GPTQ's options (gptq.Options): ActOrder, UpdatedScales, Damp,
	// BlockSize.
	GPTQ gptq.Options
	// Alpha is SmoothQuant's migration strength in (0, 1]; 0 means
	// chosen per layer and input by the quantized output error
	// (smoothQuantLayer).
	Alpha float64
	// W8A8 declares dynamic per-token int8 input activations in the
	// quantization_config (ctensors.DynamicTokenInt8), as llm-compressor's
	// W8A8 does: the scheme must be int8 symmetric per channel, the format
	// compressed-tensors (int-quantized). vLLM and lm run it in int8.
	W8A8 bool
	// MinMaxScales fits GPTQ's scales by min-max (llm-compressor's
	// default observer) instead of clip.FitMSE, the clipping search of
	// method mse (llm-compressor's "mse" observer), which is the default:
	// on stories260K int4 group 32 it takes GPTQ's mean KL from 0.61 to
	// 0.47 of round-to-nearest's (see the package documentation).
	MinMaxScales bool
	// Sequential quantizes a layer's projections in the order the layer
	// computes their inputs, each input's Hessian collected on the layer
	// with the projections before it quantized (llm-compressor's
	// sequential update): 4 statistics passes a layer instead of 1, each
	// stopping at the input it needs.
	Sequential bool
	// Asymmetric makes gptq and awq target the float model's outputs
	// from the quantized model's inputs (GPTAQ's asymmetric calibration,
	// asym.go): the float hidden states travel beside the quantized ones
	// (both as float16 then, hiddenRows: the memory of one stream in
	// float32; one more forward pass a layer). It implies Sequential: on
	// the single-stage schedule later projections would correct errors
	// earlier ones already removed. awq chooses its scales as without
	// it, then, stage by stage, moves the scaled weights as gptq does
	// (gptq.Factor.Asymmetric, which needs the Hessians of the inputs)
	// and clips them by their output error on the quantized inputs (the
	// stage's Hessian) before rounding to nearest. Auto, the zero value,
	// is On for methods gptq and awq when the calibration windows cover
	// at least MinFloatTargetTokens distinct tokens (below that the
	// correction overfits), Off otherwise and for the other methods.
	Asymmetric Toggle
	// Backend runs the layers and the Hessians' GEMMs; nil means the CPU.
	Backend backend.Backend
	// ShardSize is the most tensor data an output file holds; 0 means
	// quantize.DefaultShardSize.
	ShardSize int64
	Force     bool
	// Log receives warnings (a Cholesky fallen back to RTN) and notes;
	// nil discards them.
	Log io.Writer
	// Progress, if not nil, is called after each layer is written.
	Progress func(layer, layers int)
}

// Memory is the pipeline's memory estimate, in bytes.
type Memory struct {
	LayerWeights int64 `json:"layer_weights"` // one layer's float32 weights
	Statistics   int64 `json:"statistics"`    // the Hessians (float64)
	Activations  int64 `json:"activations"`   // the calibration hidden states [N, T, Hidden] float32
	Scratch      int64 `json:"scratch"`       // one chunk's activations in the block, tap copies, Gram matrices
	Embedding    int64 `json:"embedding"`     // the embedding table, read once before the first layer
	Search       int64 `json:"search"`        // AWQ's and SmoothQuant's scale searches: inputs kept, block outputs, a candidate's weights
	Total        int64 `json:"total"`         // the largest of Embedding + Activations, the quantization's sum, the search's
}

// TensorResult is one quantized projection.
type TensorResult struct {
	Name     string  `json:"name"`
	SQNR     float64 `json:"sqnr_db"`  // of the dequantized weight against the float one
	Fallback bool    `json:"fallback"` // GPTQ fell back to round-to-nearest
}

// Report is what Run measures; its JSON is the command's --json output.
type Report struct {
	Input        string          `json:"input"`
	Output       string          `json:"output"`
	Method       Method          `json:"method"`
	Format       plan.Format     `json:"format"`
	Scheme       string          `json:"scheme"`
	Device       string          `json:"device"`
	DryRun       bool            `json:"dry_run"`
	Layers       int             `json:"layers"`
	Calibration  *Calibration    `json:"calibration"` // nil for the data-free methods
	GPTQ         *gptq.Options   `json:"gptq,omitempty"`
	Scales       string          `json:"scales"`               // minmax, mse or awq-clip (the scale fit)
	Sequential   bool            `json:"sequential,omitempty"` // gptq: Options.Sequential (or Asymmetric)
	Asymmetric   bool            `json:"asymmetric,omitempty"` // gptq, awq: Options.Asymmetric
	Memory       Memory          `json:"memory_estimate"`
	Totals       quantize.Totals `json:"totals"`
	Tensors      []TensorResult  `json:"tensors"`
	Smoothing    []Smoothing     `json:"smoothing,omitempty"` // AWQ's and SmoothQuant's choices
	W8A8         bool            `json:"w8a8"`
	Warnings     []string        `json:"warnings"`
	Seconds      float64         `json:"seconds"`
	ForwardSecs  float64         `json:"forward_seconds"`   // the layer passes (calibration forward)
	HessianSecs  float64         `json:"hessian_seconds"`   // the statistics: Gram matrices into the Hessians
	QuantizeSecs float64         `json:"quantize_seconds"`  // the methods' own work: factorisations and sweeps
	FactorSecs   float64         `json:"factorize_seconds"` // of QuantizeSecs, GPTQ's factorisations
	PerLayer     []LayerTime     `json:"per_layer,omitempty"`
}

// LayerTime is the seconds one layer took, split as Report's totals.
type LayerTime struct {
	Forward  float64 `json:"forward_seconds"`
	Hessian  float64 `json:"hessian_seconds"`
	Quantize float64 `json:"quantize_seconds"`
}

// setup is what Run and DryRun prepare.
type setup struct {
	ck    *checkpoint.Checkpoint
	cfg   lm.Config
	p     *plan.Plan
	ct    ctensors.Format
	order []int       // plan items in writing order
	layer map[int]int // plan item → its layer, for the layers' items
	rep   *Report
	calib *Calibration
	// fits replace the method's scale fit for these tensors (by name):
	// AWQ's output-error clip, set by smooth.
	fits map[string]gptq.Fit
	// awqGrams are the Grams of the current layer's scaled inputs that
	// AWQ's output-error clip (fits) measures on, by lm.LinearInput.
	awqGrams [4]*clip.Gram
}

// projNames are the projections' module names in lm.Layer's order.
var projNames = [7]string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}

// projInput is the lm.LinearInput each projection reads.
var projInput = [7]lm.LinearInput{lm.QKVInput, lm.QKVInput, lm.QKVInput, lm.OInput, lm.GateUpInput, lm.GateUpInput, lm.DownInput}

func prepare(opt Options) (*setup, error) {
	switch opt.Method {
	case RTN, MSE, GPTQ, AWQ, AWQGPTQ, SmoothQuant, SmoothQuantGPTQ:
	default:
		return nil, inputerr.Mark(fmt.Errorf("method %q: not one of %s", opt.Method, strings.Join(Methods(), ", ")))
	}
	if !opt.Method.NeedsData() && opt.Calib.Path != "" {
		return nil, inputerr.Mark(fmt.Errorf("method %s is data-free: it takes no calibration data", opt.Method))
	}
	if opt.Method.NeedsData() && opt.Calib.Path == "" {
		return nil, inputerr.Mark(fmt.Errorf("method %s needs calibration data (--calib FILE)", opt.Method))
	}
	ct, ok := plan.CTFormat(opt.Format, opt.Scheme)
	if !ok {
		return nil, inputerr.Mark(fmt.Errorf("method %s writes compressed-tensors (compressed-tensors or compressed-tensors-packed), not %s", opt.Method, opt.Format))
	}
	if err := checkW8A8(opt, ct); err != nil {
		return nil, err
	}
	if a := opt.Alpha; !(a >= 0 && a <= 1) {
		return nil, inputerr.Mark(fmt.Errorf("SmoothQuant's alpha %g is not in (0, 1]", a))
	}
	s := opt.Scheme
	if !(s.Granularity == quant.PerGroup || s.Granularity == quant.PerChannel && s.Axis == 0) {
		return nil, inputerr.Mark(fmt.Errorf("method %s quantizes per output channel or per group, not %v", opt.Method, s))
	}
	ck, err := checkpoint.Open(opt.Input)
	if err != nil {
		return nil, inputerr.Mark(err)
	}
	fail := func(err error) (*setup, error) {
		ck.Close()
		return nil, err
	}
	if what, ok := plan.Quantized(ck.Config(), ck.Metadata(), ck.Tensors()); ok {
		return fail(inputerr.Mark(fmt.Errorf("%s is quantized already (%s): start from the float checkpoint", opt.Input, what)))
	}
	cfg, _, err := lm.ReadHFConfig(ck.Dir())
	if err != nil {
		return fail(inputerr.Mark(fmt.Errorf("%w: calibrated quantization runs the model layer by layer, so it takes the models lm runs", err)))
	}
	if err := cfg.Validate(); err != nil {
		return fail(inputerr.Mark(err))
	}
	p, err := plan.Build(ck.Tensors(), plan.Options{Format: opt.Format, Scheme: opt.Scheme})
	if err != nil {
		return fail(inputerr.Mark(err))
	}
	su := &setup{ck: ck, cfg: cfg, p: p, ct: ct, layer: map[int]int{}}
	// Writing order: what is outside the layers first, then layer by layer.
	byLayer := make([][]int, cfg.Layers)
	for i, it := range p.Items {
		l, ok := layerOf(it.Name)
		if !ok || l >= cfg.Layers {
			if it.Action == plan.Quantize {
				return fail(inputerr.Mark(fmt.Errorf("%s: %s is quantized by the plan but is not a decoder layer's projection", opt.Input, it.Name)))
			}
			su.order = append(su.order, i)
			continue
		}
		if it.Action == plan.Quantize && projIndex(it.Name) < 0 {
			return fail(inputerr.Mark(fmt.Errorf("%s: %s is not one of a layer's 7 projections", opt.Input, it.Name)))
		}
		byLayer[l] = append(byLayer[l], i)
		su.layer[i] = l
	}
	for _, items := range byLayer {
		su.order = append(su.order, items...)
	}
	su.rep = newReport(opt, su)
	return su, nil
}

// layerOf is the layer index of a tensor named model.layers.I.….
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	l, err := strconv.Atoi(num)
	return l, err == nil && l >= 0
}

// projIndex is the index in projNames of a layer tensor's projection
// weight, or -1.
func projIndex(name string) int {
	for j, p := range projNames {
		if strings.HasSuffix(name, "."+p+".weight") {
			return j
		}
	}
	return -1
}

func newReport(opt Options, su *setup) *Report {
	rep := &Report{Input: opt.Input, Output: opt.Output, Method: opt.Method, Format: su.p.Format, Scheme: opt.Scheme.String(),
		Device: "cpu", Layers: su.cfg.Layers, Tensors: []TensorResult{}, Warnings: []string{}, W8A8: opt.W8A8}
	if opt.Backend != nil {
		rep.Device = opt.Backend.Name()
	}
	rep.Scales = "minmax"
	if opt.Method == MSE || opt.Method.usesGPTQ() && !opt.MinMaxScales {
		rep.Scales = "mse"
	}
	if opt.Method == AWQ {
		rep.Scales = "awq-clip" // smooth.go: the output-error clip, mse for q/k
	}
	if opt.Method.usesGPTQ() {
		g := opt.GPTQ
		rep.GPTQ = &g
		rep.Sequential = opt.Sequential || opt.Asymmetric == On
	}
	rep.Asymmetric = opt.floatTarget()
	t := &rep.Totals
	for _, it := range su.p.Items {
		t.Tensors++
		if it.Action == plan.Quantize {
			t.Quantized++
		} else {
			t.Kept++
		}
		t.BytesIn += it.BytesIn
		t.BytesOut += it.BytesOut
	}
	if t.BytesIn > 0 {
		t.Ratio = float64(t.BytesOut) / float64(t.BytesIn)
	}
	return rep
}

// estimate fills the report's memory estimate for n sequences of T tokens.
func (su *setup) estimate(opt Options, n, T int) {
	method, seq := opt.Method, opt.Sequential || opt.Asymmetric == On
	c := su.cfg
	H, qd, kvd, ff := int64(c.Hidden), int64(c.QDim()), int64(c.KVDim()), int64(c.Intermediate)
	m := &su.rep.Memory
	m.LayerWeights = 4 * (qd*H + 2*kvd*H + H*qd + 3*ff*H + 2*H + qd + 2*kvd + H)
	m.Embedding = 4 * int64(c.Vocab) * H
	if method.NeedsData() {
		// The Hessians (float64, packed triangles) a stage holds at once;
		// each is factorised in its own memory, one at a time, with a
		// little scratch.
		// (gptq's, and the float target's; the scale searches collect
		// none.)
		hb := func(cols int64) int64 { b, _ := gptq.HessianBytes(int(cols)); return b }
		_, fb := gptq.HessianBytes(int(max(H, qd, ff)))
		switch {
		case !method.usesGPTQ() && !opt.floatTarget():
		case seq:
			m.Statistics = fb
		default:
			m.Statistics = 2*hb(H) + hb(qd) + hb(ff) + fb - hb(max(H, qd, ff))
		}
		rows := int64(min(n*T, max(T, calibRows/T*T)))
		keep := int64(min(n*T, max(T, AWQMaxRows/T*T)))
		switch {
		case method == AWQ || method == AWQGPTQ:
			// AWQ's search at gate/up, its widest: the first AWQMaxRows
			// tokens of gate/up's and o's inputs kept, the attention's
			// and the MLP's reference outputs and a candidate's, and a
			// candidate's gate and up with one of them being scaled.
			m.Search = 4*keep*(H+qd) + 3*4*keep*H + 3*4*ff*H
		case method.smooths() && opt.Alpha == 0:
			// SmoothQuant's α search at gate/up: the kept rows, gate's
			// and up's reference outputs, the candidate's rows divided
			// and quantized, and one candidate weight with its codes.
			m.Search = 4*keep*(H+qd) + 2*4*keep*ff + 4*keep*H + 5*ff*H
		}
		m.Activations = 4 * int64(n) * int64(T) * H
		widest := max(H, qd, ff)
		// the block's scratch, the stats pass's copy of a chunk, the
		// tap's copy, its transpose and the backend's copy of it, one
		// Gram block, and the CPU GEMM's packed copy of the widest
		// weight
		m.Scratch = 4*rows*(3*H+2*qd+2*ff+2*kvd) + 4*rows*H + 12*rows*widest + 8*gramBlock*gramBlock + 4*ff*H
	}
	// The quantized copy of a layer (dequantized weights) and a method's
	// work for the widest projection (GPTQ's float64 weight and its
	// lazy update's float32 scratch of 1024 columns). Without the float
	// hidden states each float weight goes as its quantized copy comes
	// (doLayer): both forms are held for one input's projections at
	// most, the widest pair gate and up.
	copies := 4 * max((qd+2*kvd)*H, H*qd, 2*ff*H, H*ff)
	work := copies + 8*max(qd*H, ff*H) + 4*max(H, ff)*1024
	m.Total = max(m.Embedding+m.Activations, m.LayerWeights+work+m.Statistics+m.Activations+m.Scratch,
		m.LayerWeights+m.Search+m.Activations+m.Scratch)
	if method.NeedsData() && opt.floatTarget() {
		su.floatTargetPeak(n, T, opt.Scheme.Bits)
	}
}

// floatTargetPeak sets the estimate's Activations, Statistics, Scratch
// and Total for the float target (Options.Asymmetric): both streams of
// hidden states as float16 (hiddenRows), and the peak of its stages,
// each input's statistics pass or its quantization, whichever is more:
//   - the pass: the float layer and its quantized copy (the dequantized
//     weights quantized so far; those not yet quantized are shared), the
//     input's Hessian and cross product, the scratch the float block and
//     the quantized one share (a chunk's activations), the float rows
//     kept and the quantized rows transposed, and the layer's encoded
//     projections so far;
//   - its quantization: the float layer (gone at the last stage, whose
//     pass ran it to its end), the quantized copy, the factor (in the
//     Hessian's memory), and either the cross product with
//     Factor.Asymmetric's scratch or, once that is done, GPTQ's work on
//     its widest projection and that projection's dequantized weight.
//
// The blocks wrap the layers' weights where they are (the CPU) or hold
// them on the device: they add no copy of them to this process's memory.
func (su *setup) floatTargetPeak(n, T, bits int) {
	c, m := su.cfg, &su.rep.Memory
	H, qd, kvd, ff := int64(c.Hidden), int64(c.QDim()), int64(c.KVDim()), int64(c.Intermediate)
	rows := int64(min(n*T, max(T, calibRows/T*T)))
	widest := max(H, qd, ff)
	m.Activations = 2*2*int64(n)*int64(T)*H + 2*int64(n)*int64(T)
	// One chunk's activations (the two blocks share them), the chunk's
	// float32 copy, the float rows kept and the quantized rows transposed,
	// a Gram block or a cross product's (addProducts), and the CPU GEMM's
	// packed copy of the widest weight.
	m.Scratch = 4*rows*(3*H+2*qd+2*ff+2*kvd) + 4*rows*H + 2*4*rows*widest + 8*gramBlock*gramBlock +
		4*max(H, qd)*(rows+gramBlock) + 4*ff*H
	// The layer's encoded projections, written when the layer is done.
	encoded := m.LayerWeights * int64(bits) / 32 * 9 / 8
	m.Statistics, m.Total = 0, 0
	// each input: its columns, the rows of the projections reading it,
	// the widest of them
	inputs := [][3]int64{{H, qd + 2*kvd, qd}, {qd, H, H}, {H, 2 * ff, ff}, {ff, H, H}}
	for k, in := range inputs {
		cols, rws, maxRows := in[0], in[1], in[2]
		hb, fb := gptq.HessianBytes(int(cols))
		cb, ab := gptq.CrossBytes(int(cols), int(rws), int(maxRows), rws < cols)
		m.Statistics = max(m.Statistics, fb+cb+ab)
		pass := 2*m.LayerWeights + m.Activations + hb + cb + m.Scratch + encoded
		float := m.LayerWeights
		if k == len(inputs)-1 {
			float = 0
		}
		gptqWork := 8*maxRows*cols + 4*cols*1024 + 4*maxRows*cols + maxRows*cols
		quantize := float + m.LayerWeights + m.Activations + fb + max(cb+ab, gptqWork) + encoded
		m.Total = max(m.Total, pass, quantize)
	}
	// Before the first layer: the embedding, the rows it gives (float32)
	// and their two float16 copies; AWQ's search (one block, on the
	// quantized rows).
	m.Total = max(m.Total, m.Embedding+4*int64(n)*int64(T)*H+m.Activations,
		m.LayerWeights+m.Search+m.Activations+4*rows*(3*H+2*qd+2*ff+2*kvd))
}

// DryRun plans the run opt describes (the checkpoint's headers, the
// calibration set's size) and returns its report with the memory
// estimate, writing nothing and running nothing.
func DryRun(opt Options) (*Report, error) {
	su, err := prepare(opt)
	if err != nil {
		return nil, err
	}
	defer su.ck.Close()
	if err := su.loadCalibration(&opt); err != nil {
		return nil, err
	}
	su.rep.DryRun = true
	return su.rep, nil
}

// loadCalibration tokenizes and cuts the calibration set (when the
// method needs data), decides opt's Auto options on it and estimates the
// run's memory.
func (su *setup) loadCalibration(opt *Options) error {
	if !opt.Method.NeedsData() {
		su.estimate(Options{Method: opt.Method}, 0, 0)
		return nil
	}
	ck := su.ck
	tok, err := lmeval.LoadTokenizer(ck.Dir())
	if err != nil && !strings.EqualFold(extOf(opt.Calib.Path), ".npy") {
		return inputerr.Mark(fmt.Errorf("calibration text needs the model's tokenizer: %w", err))
	}
	if su.calib, err = LoadCalibration(opt.Calib, tok, su.cfg.BOS, su.cfg.EOS, su.cfg.Vocab); err != nil {
		return err
	}
	su.rep.Calibration = su.calib
	su.resolveTarget(opt, su.calib.Distinct)
	if opt.floatTarget() && su.calib.Distinct < MinFloatTargetTokens {
		su.warn(*opt, fmt.Sprintf("calibration: %s: the windows cover %d distinct tokens; the float target (Asymmetric: --gptq-asymmetric, --awq-asymmetric) overfits below about %d: give more varied text, or leave it off",
			opt.Calib.Path, su.calib.Distinct, MinFloatTargetTokens))
	}
	su.estimate(*opt, su.calib.Samples, su.calib.SeqLen)
	return nil
}

// Run quantizes opt.Input into opt.Output layer by layer (see the package
// documentation), atomically: into a temporary directory beside Output,
// moved into place when complete. Errors about the input or the options
// are marked inputerr.
func Run(ctx context.Context, opt Options) (*Report, error) {
	start := time.Now()
	// The pipeline's heap is a few large float buffers with few pointers
	// to mark: collecting at 20 % growth instead of Go's 100 % costs
	// little and keeps the peak near the live set (at 1B, the heap grew
	// to 1.6 GB over a live 0.9 GB). The setting is the process's: Run
	// restores it when it returns.
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	su, err := prepare(opt)
	if err != nil {
		return nil, err
	}
	defer su.ck.Close()
	ck, rep := su.ck, su.rep
	b := opt.Backend
	if b == nil {
		b = cpu.New()
	}
	if err := su.loadCalibration(&opt); err != nil {
		return nil, err
	}
	// A soft limit on the Go heap at the estimate + 20 %: the collector
	// and the scavenger (which returns freed pages to the system lazily,
	// by a share of the heap's goal) keep the process near its planned
	// peak; were the estimate short, the collector would run more often,
	// not fail.
	if t := rep.Memory.Total; t > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(t + t/5))
	}
	claim, err := output.Claim(opt.Log, opt.Output, opt.Force, rep.Totals.BytesOut, output.CheckpointInputs(opt.Input, ck)...)
	if err != nil {
		return nil, err
	}
	if err := su.write(ctx, opt, b, claim); err != nil {
		return nil, output.NoSpace(opt.Output, rep.Totals.BytesOut, err)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func extOf(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i:]
	}
	return ""
}

// write runs the pipeline into a temporary directory and commits it.
func (su *setup) write(ctx context.Context, opt Options, b backend.Backend, claim *atomicfile.Claim) error {
	ck, p, cfg := su.ck, su.p, su.cfg
	tmp, err := atomicfile.TempDir(claim)
	if err != nil {
		return err
	}
	defer tmp.Abort() // nothing once committed
	meta := map[string]string{"quantkit.plan_hash": p.Hash(), "quantkit.method": string(opt.Method)}
	shard := opt.ShardSize
	if shard == 0 {
		shard = quantize.DefaultShardSize
	}
	w, err := checkpoint.Create(tmp.Path, p.SafetensorsInfos(su.order), shard, meta)
	if err != nil {
		return err
	}
	abort := func(err error) error {
		w.Abort()
		return err
	}
	// The tensors outside the layers, in the plan (kept: copied).
	first := 0
	for ; first < len(su.order); first++ {
		if _, ok := su.layer[su.order[first]]; ok {
			break
		}
		it := &p.Items[su.order[first]]
		data, err := ck.Bytes(it.Name)
		if err != nil {
			return abort(err)
		}
		if err := w.WriteTensor(it.Outputs[0].Name, data); err != nil {
			return abort(err)
		}
		ck.Release(it.Name)
	}
	// The calibration hidden states.
	var x []float32
	if su.calib != nil {
		embed, err := ck.Float32("model.embed_tokens.weight")
		if err != nil {
			return abort(err)
		}
		x, err = lm.Embed(embed, cfg.Hidden, su.calib.IDs)
		if err != nil {
			return abort(fmt.Errorf("%s: %w", ck.Dir(), err))
		}
		ck.Release("model.embed_tokens.weight")
	}
	// The quantized model's hidden states, and the float model's for the
	// float target (Options.Asymmetric), both as float16 then.
	var xq, xf *hiddenRows
	switch {
	case x != nil && opt.floatTarget():
		xq = float16Rows(x, cfg.Hidden)
		xf, x = xq.clone(), nil
	case x != nil:
		xq = float32Rows(x, cfg.Hidden)
	}
	// The layers: a heap of a few large float buffers, allocated and
	// freed stage by stage, with few pointers to mark. Collecting at 5 %
	// growth costs little there (a collection marks in milliseconds) and
	// keeps the resident peak near the live one. (Run restores the
	// setting.)
	debug.SetGCPercent(layerGCPercent)
	next := first
	for l := range cfg.Layers {
		if err := ctx.Err(); err != nil {
			return abort(err)
		}
		var items []int
		for ; next < len(su.order) && su.layer[su.order[next]] == l; next++ {
			items = append(items, su.order[next])
		}
		f0, h0, q0 := su.rep.ForwardSecs, su.rep.HessianSecs, su.rep.QuantizeSecs
		if err := su.doLayer(opt, b, l, items, xq, xf, w); err != nil {
			return abort(err)
		}
		su.rep.PerLayer = append(su.rep.PerLayer, LayerTime{Forward: su.rep.ForwardSecs - f0, Hessian: su.rep.HessianSecs - h0, Quantize: su.rep.QuantizeSecs - q0})
		if opt.Progress != nil {
			opt.Progress(l+1, cfg.Layers)
		}
	}
	if err := w.Close(); err != nil {
		return abort(err)
	}
	if err := su.writeConfig(opt, tmp.Path); err != nil {
		return err
	}
	if err := ck.CopySideFiles(tmp.Path, checkpoint.ConfigFileName); err != nil {
		return err
	}
	return tmp.Commit()
}

// asymmetric moves the weights of layer l's projections reading input in
// (weights, those items quantize) by the input's factor (gptq.Factor's
// Asymmetric), each a copy: the float layer keeps its own. Where the
// Hessian is not positive definite it warns and leaves them, GPTQ then
// rounding them to nearest as usual.
func (su *setup) asymmetric(opt Options, l int, in lm.LinearInput, f *gptq.Factor, c *gptq.Cross, items []int, weights []*[]float32) {
	var ws [][]float32
	for _, w := range su.inputWeights(in, items, weights) {
		*w = slices.Clone(*w)
		ws = append(ws, *w)
	}
	g := opt.GPTQ
	if g.Gemm == nil {
		g.Gemm = cpu.GemmF32
	}
	if err := f.Asymmetric(c, g, ws...); err != nil {
		su.warn(opt, fmt.Sprintf("layer %d: %s: %v: quantized without the asymmetric correction", l, in, err))
	}
}

// inputWeights is the weights of the projections reading input in that
// items quantize, in items' order: the order asymmetric gives them to
// gptq.Factor.Asymmetric, and a Cross of products (newCross) takes them.
func (su *setup) inputWeights(in lm.LinearInput, items []int, weights []*[]float32) []*[]float32 {
	var ws []*[]float32
	for _, i := range items {
		it := &su.p.Items[i]
		if j := projIndex(it.Name); it.Action == plan.Quantize && j >= 0 && projInput[j] == in {
			ws = append(ws, weights[j])
		}
	}
	return ws
}

// newCross is the accumulator of input in's cross product (cols wide)
// for the asymmetric correction of ws, the weights reading it: their
// products W·D where their rows together are fewer than cols (down_proj),
// D itself otherwise; and the weights the products are made with.
func newCross(cols int, ws []*[]float32) (*gptq.Cross, [][]float32) {
	rows, total := make([]int, len(ws)), 0
	for k, w := range ws {
		rows[k] = len(*w) / cols
		total += rows[k]
	}
	if len(ws) == 0 || total >= cols {
		return gptq.NewCross(cols), nil
	}
	vs := make([][]float32, len(ws))
	for k, w := range ws {
		vs[k] = *w
	}
	return gptq.NewCrossProducts(cols, rows...), vs
}

// stages are the groups of lm.LinearInputs whose projections are
// quantized together: all four at once (statistics from the float layer,
// as the GPTQ paper's code does), or, sequentially, in the order the
// layer computes them (llm-compressor's sequential update within a
// layer): q/k/v first, then o on the attention of the quantized q/k/v,
// then gate/up on the residual through the quantized o, then down on the
// quantized gate/up's activations.
func stages(opt Options) [][]lm.LinearInput {
	if opt.Method.usesGPTQ() && (opt.Sequential || opt.Asymmetric == On) || opt.floatTarget() {
		return [][]lm.LinearInput{{lm.QKVInput}, {lm.OInput}, {lm.GateUpInput}, {lm.DownInput}}
	}
	return [][]lm.LinearInput{{lm.QKVInput, lm.OInput, lm.GateUpInput, lm.DownInput}}
}

// doLayer collects layer l's statistics on x (when the method needs
// them), quantizes its projections, writes its items and replaces x with
// the quantized layer's outputs.
func (su *setup) doLayer(opt Options, b backend.Backend, l int, items []int, x, xf *hiddenRows, w *checkpoint.Writer) error {
	ck, p, cfg, rep := su.ck, su.p, su.cfg, su.rep
	t0 := time.Now()
	layer, err := lm.ReadLayer(ck, cfg, l)
	if err != nil {
		return err
	}
	// ReadLayer copied the weights out of the mapped file: its pages may
	// go (what is written later, the norms, is read again).
	releaseLayer(ck, l)
	// The smoothing methods rescale the layer (an equivalent float layer)
	// before its statistics and quantization.
	var changed map[string][]float32
	if opt.Method.smooths() {
		if changed, err = su.smooth(opt, b, l, layer, x, items); err != nil {
			return err
		}
	}
	rep.ForwardSecs += time.Since(t0).Seconds()
	// q is the layer with the projections quantized so far (dequantized
	// weights); the statistics of a stage are collected on it.
	q := *layer
	weights := []*[]float32{&q.Q, &q.K, &q.V, &q.O, &q.Gate, &q.Up, &q.Down}
	// floats are layer's float weights. Without the float model's hidden
	// states (xf) nothing reads one once it is quantized: each is dropped
	// as its dequantized copy replaces it in q, so that the layer is held
	// about once, not in both forms.
	floats := []*[]float32{&layer.Q, &layer.K, &layer.V, &layer.O, &layer.Gate, &layer.Up, &layer.Down}
	encoded := map[int][][]byte{}
	all := stages(opt)
	for si, stage := range all {
		var hess [4]*gptq.Hessian
		var cr [4]*gptq.Cross
		var pw [4][][]float32 // the weights of a Cross of products
		if su.calib != nil && (opt.Method.usesGPTQ() || opt.floatTarget()) {
			t0 := time.Now()
			for _, in := range stage {
				cols := cfg.Hidden
				switch in {
				case lm.OInput:
					cols = cfg.QDim()
				case lm.DownInput:
					cols = cfg.Intermediate
				}
				hess[in] = gptq.NewHessian(cols)
				if xf != nil {
					cr[in], pw[in] = newCross(cols, su.inputWeights(in, items, weights))
				}
			}
			var hs float64
			if xf != nil {
				// The float target runs the four stages (stages): the
				// last one's pass runs the float layer on xf to its end,
				// in place, giving the float model's next hidden states.
				advance := si == len(all)-1
				hs, err = su.pairedStatistics(b, l, layer, &q, x, xf, hess, cr, pw, stage[len(stage)-1], advance)
				if advance {
					// The float layer has run its last pass: q holds
					// what is still read (the weights not quantized yet
					// are shared), so the float layer goes before the
					// last stage's factorisation.
					*layer = lm.Layer{}
				}
			} else {
				hs, err = su.statistics(b, l, &q, x, hess, stage[len(stage)-1])
			}
			if err != nil {
				return err
			}
			rep.HessianSecs += hs
			rep.ForwardSecs += time.Since(t0).Seconds() - hs
			runtime.GC() // the pass's block and scratch, before the factorisations
		}
		t1 := time.Now()
		// One input at a time: its Hessian factorised (in its own memory),
		// the projections reading it quantized, the factor dropped.
		for _, in := range stage {
			var fac *gptq.Factor
			if hess[in] != nil {
				t2 := time.Now()
				g := opt.GPTQ
				if g.Gemm == nil {
					g.Gemm = cpu.GemmF32
				}
				if opt.Method == AWQ {
					// The clip measures on the inputs as the quantized
					// earlier stages give them.
					su.awqGrams[in] = hessianGram(hess[in], su.awqGrams[in].Group)
				}
				if fac, err = gptq.Factorize(hess[in], g); err != nil {
					return fmt.Errorf("layer %d: %s's Hessian: %w", l, in, err)
				}
				hess[in] = nil
				if cr[in] != nil {
					su.asymmetric(opt, l, in, fac, cr[in], items, weights)
					cr[in] = nil
				}
				rep.FactorSecs += time.Since(t2).Seconds()
			}
			for _, i := range items {
				it := &p.Items[i]
				j := projIndex(it.Name)
				if it.Action != plan.Quantize || j < 0 || projInput[j] != in {
					continue
				}
				f := fac
				if !opt.Method.usesGPTQ() {
					f = nil // AWQ: the corrected weights rounded to nearest
				}
				out, err := su.quantizeItem(opt, it, weights[j], f)
				if err != nil {
					return err
				}
				encoded[i] = out
				if xf == nil {
					*floats[j] = nil
				}
			}
			fac = nil
			runtime.GC() // the factor and the float weights quantized: return their memory before the next
		}
		rep.QuantizeSecs += time.Since(t1).Seconds()
	}
	for _, i := range items {
		it := &p.Items[i]
		if out, ok := encoded[i]; ok {
			for k, o := range it.Outputs {
				if err := w.WriteTensor(o.Name, out[k]); err != nil {
					return err
				}
			}
			continue
		}
		if it.Action == plan.Quantize {
			return fmt.Errorf("tensor %q: quantized by the plan but not a projection the pipeline knows", it.Name)
		}
		data, err := ck.Bytes(it.Name)
		if v, ok := changed[it.Name]; ok && err == nil {
			data, err = encodeAs(ck, it.Name, v)
		}
		if err != nil {
			return err
		}
		if err := w.WriteTensor(it.Outputs[0].Name, data); err != nil {
			return err
		}
	}
	releaseLayer(ck, l)
	// The next layer's inputs, from the quantized layer (the float
	// model's came from the last statistics pass).
	if c := su.calib; c != nil {
		t2 := time.Now()
		*layer = lm.Layer{}
		err := forwardBlock(b, cfg, l, &q, x, c.Samples, c.SeqLen, func() {
			// The block holds the weights now: the dequantized layer
			// goes before the pass's scratch comes.
			q = lm.Layer{}
			runtime.GC()
		})
		if err != nil {
			return err
		}
		rep.ForwardSecs += time.Since(t2).Seconds()
	}
	return nil
}

// quantizeItem quantizes the projection of plan item it, whose weight is
// *wp, with f (GPTQ's, or nil), replaces *wp with the dequantized weight
// (the layer the next stages and layer run), records the tensor and
// returns its encoded output tensors.
func (su *setup) quantizeItem(opt Options, it *plan.Item, wp *[]float32, f *gptq.Factor) ([][]byte, error) {
	rep := su.rep
	wt := *wp
	rows, cols := it.Shape[0], it.Shape[1]
	codes, params, fallback, err := su.quantizeWeight(opt, it, wt, rows, cols, f)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", it.Name, err)
	}
	if fallback {
		su.warn(opt, fmt.Sprintf("%s: the Hessian (or its inverse) is not positive definite: rounded to nearest; more or more varied calibration data, or a larger dampening, may help", it.Name))
	}
	y := make([]float32, len(wt))
	if err := quant.Dequantize(y, codes, params); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", it.Name, err)
	}
	rep.Tensors = append(rep.Tensors, TensorResult{Name: it.Name, SQNR: quant.SQNR(wt, y), Fallback: fallback})
	*wp = y
	ts, err := ctensors.EncodeWeight(it.Name, codes, params, su.ct, it.ScaleDType)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for k, t := range ts {
		if t.Name != it.Outputs[k].Name {
			return nil, fmt.Errorf("encoded tensor %q where the plan has %q", t.Name, it.Outputs[k].Name)
		}
		out = append(out, t.Data)
	}
	return out, nil
}

// releaseLayer lets layer l's tensors leave resident memory.
func releaseLayer(ck *checkpoint.Checkpoint, l int) {
	for _, name := range lm.LayerTensors(l) {
		if _, ok := ck.Tensor(name); ok {
			ck.Release(name)
		}
	}
}

// gcPercent is the garbage collector's growth target while Run runs,
// layerGCPercent while it runs the layers.
const (
	gcPercent      = 20
	layerGCPercent = 5
)

// calibRows is the most rows (tokens, whole sequences) the pipeline's
// blocks run at once: enough for the GEMMs to run at full speed, few
// enough that a chunk's activations (about 27·Hidden floats a row for a
// Llama, and the statistics' copies of the widest input) stay small
// beside the calibration hidden states: at 1B (Hidden 2048, Intermediate
// 8192) 512 rows are about 0.12 GB of scratch. The statistics pass, with
// every Hessian of the layer held, is a run's peak: on a 1B layer at 64 ×
// 512 calibration tokens 1024 rows peaked at 1.49 GB resident, 512 at
// 1.40 GB, at the same speed (the GEMMs run 512 rows as fast).
const calibRows = 512

// errStatsDone stops a statistics pass once its last input is tapped:
// the rest of the layer is not needed.
var errStatsDone = errors.New("llmq: statistics collected")

// statistics runs layer (left as it is) on x (left as it is) with a tap
// that adds each projection input's Gram matrix to its Hessian (those
// hess has), up to last, the last input it needs: the pass stops there.
// It returns the seconds spent on the Hessians (the GEMMs and their sums).
func (su *setup) statistics(b backend.Backend, l int, layer *lm.Layer, x *hiddenRows, hess [4]*gptq.Hessian, last lm.LinearInput) (hessSecs float64, err error) {
	cfg, c := su.cfg, su.calib
	blk, err := lm.NewBlock(b, cfg, l, layer)
	if err != nil {
		return 0, err
	}
	blk.MaxRows = calibRows
	per := max(1, calibRows/c.SeqLen)
	H := cfg.Hidden
	scratch := make([]float32, 0, min(per, c.Samples)*c.SeqLen*H)
	var xt []float32
	tap := func(in lm.LinearInput, rows []float32, n, cols int) error {
		if hess[in] != nil {
			t0 := time.Now()
			defer func() { hessSecs += time.Since(t0).Seconds() }()
			xt = transposeRows(xt, rows, n, cols)
			if err := addGram(b, hess[in], xt, cols, n); err != nil {
				return err
			}
		}
		if in == last {
			return errStatsDone
		}
		return nil
	}
	for s0 := 0; s0 < c.Samples && err == nil; s0 += per {
		k := min(per, c.Samples-s0)
		scratch = x.get(s0*c.SeqLen, k*c.SeqLen, scratch)
		if err = blk.Forward(scratch, k, c.SeqLen, tap); errors.Is(err, errStatsDone) {
			err = nil
		}
	}
	return hessSecs, errors.Join(err, blk.Close())
}

// gramBlock is the column block size of addGram's GEMMs.
const gramBlock = 1024

// addGram adds XᵀX to h for xt = Xᵀ [cols, n], as GEMMs on b: the blocks
// of gramBlock columns on and below the diagonal only (XᵀX is symmetric,
// and h keeps its lower triangle), each a float32 GEMM over the chunk's n rows (at most
// calibRows: relative rounding about √n·2⁻²⁴, far below the 1 %
// dampening), summed into h's float64 accumulators across chunks.
func addGram(b backend.Backend, h *gptq.Hessian, xt []float32, cols, n int) error {
	if err := blockProducts(b, xt, nil, cols, n, true, h.AddGramBlock); err != nil {
		return err
	}
	h.Count(n)
	return nil
}

// blockProducts computes X·Yᵀ for xt = Xᵀ and yt = Yᵀ [cols, n] (yt nil:
// Y = X) as GEMMs on b in blocks of gramBlock × gramBlock, those on and
// below the diagonal only when lower, handing each block g = X[:,
// r0:r0+nr]ᵀ·Y[:, c0:c0+nc] [nr, nc] to add.
func blockProducts(b backend.Backend, xt, yt []float32, cols, n int, lower bool, add func(g []float32, r0, nr, c0, nc int) error) error {
	size := cols * n
	if yt != nil {
		size *= 2
	}
	a, err := b.Alloc(backend.F32, size)
	if err != nil {
		return err
	}
	defer b.Free(a)
	bk := min(cols, gramBlock)
	out, err := b.Alloc(backend.F32, bk*bk)
	if err != nil {
		return err
	}
	defer b.Free(out)
	xa, ya := a.Slice(0, cols*n), a.Slice(0, cols*n)
	if err := b.Upload(xa, xt); err != nil {
		return err
	}
	if yt != nil {
		ya = a.Slice(cols*n, cols*n)
		if err := b.Upload(ya, yt); err != nil {
			return err
		}
	}
	g := make([]float32, bk*bk)
	for r0 := 0; r0 < cols; r0 += bk {
		nr := min(bk, cols-r0)
		for c0 := 0; c0 < cols && (!lower || c0 <= r0); c0 += bk {
			nc := min(bk, cols-c0)
			o := out.Slice(0, nr*nc)
			if err := b.GemmF32(nr, nc, n, xa.Slice(r0*n, nr*n), ya.Slice(c0*n, nc*n), o); err != nil {
				return err
			}
			if err := b.Download(g[:nr*nc], o); err != nil {
				return err
			}
			if err := add(g[:nr*nc], r0, nr, c0, nc); err != nil {
				return err
			}
		}
	}
	return nil
}

// fitter is the scale fit of the method, rounding scales to the item's
// scale dtype as the checkpoint stores them.
func (su *setup) fitter(opt Options, it *plan.Item) gptq.Fit {
	if f := su.fits[it.Name]; f != nil {
		return f
	}
	s := opt.Scheme
	round := func(p *quant.Params) error {
		if it.ScaleDType == "F32" {
			return nil
		}
		return ctensors.RoundScales(p, it.ScaleDType)
	}
	if opt.Method == MSE || opt.Method.usesGPTQ() && !opt.MinMaxScales {
		rs := func(v float32) float32 {
			if it.ScaleDType == "F32" {
				return v
			}
			p := &quant.Params{Scales: []float32{v}}
			if ctensors.RoundScales(p, it.ScaleDType) != nil {
				return float32(math.NaN())
			}
			return p.Scales[0]
		}
		return func(x []float32, shape []int) (*quant.Params, error) {
			return fitRows(x, shape, func(x []float32, shape []int) (*quant.Params, error) {
				return clip.FitMSE(s, x, shape, clip.Options{RoundScale: rs})
			})
		}
	}
	return func(x []float32, shape []int) (*quant.Params, error) {
		p, err := quant.FitMinMax(s, x, shape)
		if err != nil {
			return nil, err
		}
		return p, round(p)
	}
}

// fitRows runs fit, a fit of per-row parameters (per channel along axis
// 0, or per group) on x [rows, cols], on every core: the rows split into
// one part a core, each part's parameters its own rows' alone, joined.
func fitRows(x []float32, shape []int, fit gptq.Fit) (*quant.Params, error) {
	workers := runtime.GOMAXPROCS(0)
	if len(shape) != 2 || workers == 1 || shape[0] < 2*workers || len(x) < 1<<16 {
		return fit(x, shape)
	}
	rows, cols := shape[0], shape[1]
	parts := make([]*quant.Params, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for k := range workers {
		r0, r1 := rows*k/workers, rows*(k+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[k], errs[k] = fit(x[r0*cols:r1*cols], []int{r1 - r0, cols})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := parts[0]
	for _, q := range parts[1:] {
		p.Scales = append(p.Scales, q.Scales...)
		p.ZeroPoints = append(p.ZeroPoints, q.ZeroPoints...)
	}
	p.Shape = slices.Clone(shape)
	return p, nil
}

// quantizeWeight quantizes one projection with the method.
func (su *setup) quantizeWeight(opt Options, it *plan.Item, wt []float32, rows, cols int, f *gptq.Factor) (codes []byte, p *quant.Params, fallback bool, err error) {
	if n := countNonFinite(wt); n > 0 {
		return nil, nil, false, inputerr.Mark(fmt.Errorf("%w: %d NaN or infinite values", plan.ErrNonFinite, n))
	}
	fit := su.fitter(opt, it)
	if opt.Method.usesGPTQ() {
		g := opt.GPTQ
		if g.Gemm == nil {
			g.Gemm = cpu.GemmF32 // the block updates on the SIMD kernels
		}
		res, err := gptq.QuantizeFactored(wt, rows, cols, f, opt.Scheme, fit, g)
		if err != nil {
			return nil, nil, false, err
		}
		return res.Codes, res.Params, res.Fallback, nil
	}
	p, err = fit(wt, []int{rows, cols})
	if err != nil {
		return nil, nil, false, err
	}
	codes = make([]byte, opt.Scheme.PackedLen(len(wt)))
	return codes, p, false, quant.Quantize(codes, wt, p)
}

func countNonFinite(x []float32) int {
	n := 0
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			n++
		}
	}
	return n
}

// warn records a warning in the report and prints it to opt.Log.
func (su *setup) warn(opt Options, msg string) {
	su.rep.Warnings = append(su.rep.Warnings, msg)
	if opt.Log != nil {
		fmt.Fprintln(opt.Log, "quantkit: warning:", msg)
	}
}

// MinFloatTargetTokens is the fewest distinct calibration tokens the
// float target (Options.Asymmetric) is run on without a warning: on
// stories260K it lost to plain GPTQ from a 920-token stream and drew
// level from about 2,450 tokens (bench/RESULTS.md).
const MinFloatTargetTokens = 2500

// Toggle is an option that is on, off, or chosen by the pipeline.
type Toggle int8

const (
	Auto Toggle = iota // the pipeline chooses (see the option)
	On
	Off
)

// ToggleOf is On for true, Off for false.
func ToggleOf(on bool) Toggle {
	if on {
		return On
	}
	return Off
}

// floatTarget reports whether the float model's hidden states travel
// beside the quantized ones (Options.Asymmetric with gptq or awq), once
// resolveTarget has decided Auto.
func (opt Options) floatTarget() bool {
	return opt.Asymmetric == On && (opt.Method.usesGPTQ() || opt.Method == AWQ)
}

// resolveTarget decides Options.Asymmetric's Auto for a calibration set
// whose windows cover distinct tokens, and records the choice in the
// report.
func (su *setup) resolveTarget(opt *Options, distinct int) {
	if opt.Asymmetric == Auto {
		opt.Asymmetric = Off
		if (opt.Method == GPTQ || opt.Method == AWQ) && distinct >= MinFloatTargetTokens {
			opt.Asymmetric = On
		}
	}
	if opt.Method.usesGPTQ() {
		su.rep.Sequential = opt.Sequential || opt.Asymmetric == On
	}
	su.rep.Asymmetric = opt.floatTarget()
}

// hessianGram is clip's Gram, in groups of group columns, of the inputs
// whose sums h holds.
func hessianGram(h *gptq.Hessian, group int) *clip.Gram {
	g := &clip.Gram{Cols: h.Cols, Group: group}
	for j0 := 0; j0 < h.Cols; j0 += group {
		g.Blocks = append(g.Blocks, h.Block(j0, min(group, h.Cols-j0)))
	}
	return g
}
