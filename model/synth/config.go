package synth

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/quantkit/quantkit/model/safetensors"
)

// Config describes a synthetic Llama-like checkpoint.
type Config struct {
	Layers       int    `json:"layers"`       // decoder layers (num_hidden_layers)
	Hidden       int    `json:"hidden"`       // hidden_size
	Intermediate int    `json:"intermediate"` // intermediate_size of the MLP
	Heads        int    `json:"heads"`        // attention heads; Hidden must be a multiple
	KVHeads      int    `json:"kv_heads"`     // key/value heads (grouped-query attention); Heads must be a multiple
	Vocab        int    `json:"vocab"`        // vocab_size
	DType        string `json:"dtype"`        // F32, F16 or BF16
	Seed         uint64 `json:"seed"`
}

// DTypes are the element types a checkpoint can be written in, with the
// torch_dtype config.json names them by.
var DTypes = []struct{ Name, Torch string }{
	{"F32", "float32"},
	{"F16", "float16"},
	{"BF16", "bfloat16"},
}

func torchDType(dtype string) (string, bool) {
	for _, d := range DTypes {
		if d.Name == dtype {
			return d.Torch, true
		}
	}
	return "", false
}

// HeadDim is the size of one attention head, Hidden/Heads.
func (c Config) HeadDim() int { return c.Hidden / c.Heads }

// KVDim is the output size of the k and v projections, KVHeads × HeadDim.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim() }

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"layers", c.Layers}, {"hidden", c.Hidden}, {"intermediate", c.Intermediate},
		{"heads", c.Heads}, {"kv heads", c.KVHeads}, {"vocab", c.Vocab}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("%s %d must be positive", f.name, f.v))
		}
	}
	if errs == nil {
		if c.Hidden%c.Heads != 0 {
			errs = append(errs, fmt.Errorf("hidden %d is not a multiple of heads %d", c.Hidden, c.Heads))
		}
		if c.Heads%c.KVHeads != 0 {
			errs = append(errs, fmt.Errorf("heads %d is not a multiple of kv heads %d", c.Heads, c.KVHeads))
		}
		const maxDim = 1 << 24 // keeps every product well inside int64
		for _, d := range []int{c.Hidden, c.Intermediate, c.Vocab, c.Layers} {
			if d > maxDim {
				errs = append(errs, fmt.Errorf("dimension %d exceeds %d", d, maxDim))
				break
			}
		}
	}
	if _, ok := torchDType(c.DType); !ok {
		errs = append(errs, fmt.Errorf("dtype %q not supported (F32, F16 or BF16)", c.DType))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// kind is what a tensor is, which decides how its values are drawn.
type kind int

const (
	kindEmbed  kind = iota // Student-t, std 0.02
	kindLinear             // Student-t, std 1/sqrt(fan-in), outlier columns
	kindNorm               // 1 + small noise
)

// spec is one tensor to generate.
type spec struct {
	name  string
	shape []int
	kind  kind
	// outliers says which input channels (columns) of a linear layer are
	// outliers: "residual" for the channels shared by the projections that
	// read the residual stream, "own" for channels of this tensor alone,
	// "" for none.
	outliers string
}

// rows is the number of rows: 1 for a vector.
func (s *spec) rows() int { return int(s.len() / int64(s.cols())) }

// cols is the length of a row: the last dimension.
func (s *spec) cols() int { return s.shape[len(s.shape)-1] }

func (s *spec) len() int64 {
	n := int64(1)
	for _, d := range s.shape {
		n *= int64(d)
	}
	return n
}

// specs lists the tensors in file order.
func (c Config) specs() []spec {
	h, kv, in, v := c.Hidden, c.KVDim(), c.Intermediate, c.Vocab
	out := make([]spec, 0, 3+9*c.Layers)
	out = append(out, spec{name: "model.embed_tokens.weight", shape: []int{v, h}, kind: kindEmbed})
	for i := range c.Layers {
		p := "model.layers." + strconv.Itoa(i) + "."
		out = append(out,
			spec{name: p + "input_layernorm.weight", shape: []int{h}, kind: kindNorm},
			spec{name: p + "self_attn.q_proj.weight", shape: []int{h, h}, kind: kindLinear, outliers: "residual"},
			spec{name: p + "self_attn.k_proj.weight", shape: []int{kv, h}, kind: kindLinear, outliers: "residual"},
			spec{name: p + "self_attn.v_proj.weight", shape: []int{kv, h}, kind: kindLinear, outliers: "residual"},
			spec{name: p + "self_attn.o_proj.weight", shape: []int{h, h}, kind: kindLinear},
			spec{name: p + "post_attention_layernorm.weight", shape: []int{h}, kind: kindNorm},
			spec{name: p + "mlp.gate_proj.weight", shape: []int{in, h}, kind: kindLinear, outliers: "residual"},
			spec{name: p + "mlp.up_proj.weight", shape: []int{in, h}, kind: kindLinear, outliers: "residual"},
			spec{name: p + "mlp.down_proj.weight", shape: []int{h, in}, kind: kindLinear, outliers: "own"},
		)
	}
	out = append(out,
		spec{name: "model.norm.weight", shape: []int{h}, kind: kindNorm},
		spec{name: "lm_head.weight", shape: []int{v, h}, kind: kindLinear},
	)
	return out
}

// Tensors describes the checkpoint's tensors in file order, with c.DType;
// Begin and End are zero.
func (c Config) Tensors() []safetensors.TensorInfo {
	specs := c.specs()
	out := make([]safetensors.TensorInfo, len(specs))
	for i, s := range specs {
		out[i] = safetensors.TensorInfo{Name: s.name, DType: c.DType, Shape: append([]int(nil), s.shape...)}
	}
	return out
}

// Params is the number of parameters:
//
//	2·V·H + H + Layers·(2·H + 2·H·H + 2·KVDim·H + 3·H·I)
func (c Config) Params() int64 {
	h, kv, in, v := int64(c.Hidden), int64(c.KVDim()), int64(c.Intermediate), int64(c.Vocab)
	return 2*v*h + h + int64(c.Layers)*c.perLayer(h, kv, in)
}

func (c Config) perLayer(h, kv, in int64) int64 { return 2*h + 2*h*h + 2*kv*h + 3*h*in }

// Bytes is the size of the tensor data: Params times the dtype's size
// (0 if the dtype is not supported).
func (c Config) Bytes() int64 {
	size, _ := safetensors.DTypeSize(c.DType)
	return c.Params() * int64(size)
}

// Shape is one row of the LlamaLike table.
type Shape struct {
	Name                                                string // the budget it stands for: "1B"
	After                                               string // the model it copies
	Hidden, Intermediate, Layers, Heads, KVHeads, Vocab int
}

// Shapes is the table LlamaLike chooses from, smallest first; the package
// documentation prints it with parameter counts.
var Shapes = []Shape{
	{"1M", "tiny, for tests", 64, 256, 8, 4, 2, 4096},
	{"10M", "tiny, for tests", 256, 688, 8, 8, 4, 8192},
	{"135M", "SmolLM-135M", 576, 1536, 30, 9, 3, 49152},
	{"360M", "SmolLM-360M", 960, 2560, 32, 15, 5, 49152},
	{"1B", "Llama-3.2-1B widths, 32k vocab", 2048, 8192, 16, 32, 8, 32000},
	{"3B", "Llama-3.2-3B", 3072, 8192, 28, 24, 8, 128256},
	{"7B", "Llama-2-7B", 4096, 11008, 32, 32, 32, 32000},
	{"8B", "Llama-3-8B", 4096, 14336, 32, 32, 8, 128256},
	{"13B", "Llama-2-13B", 5120, 13824, 40, 40, 40, 32000},
	{"33B", "LLaMA-33B", 6656, 17920, 60, 52, 52, 32000},
	{"70B", "Llama-3-70B", 8192, 28672, 80, 64, 8, 128256},
	{"405B", "Llama-3.1-405B", 16384, 53248, 126, 128, 8, 128256},
}

// Config returns the row as an F32 Config with seed 0.
func (s Shape) Config() Config {
	return Config{Layers: s.Layers, Hidden: s.Hidden, Intermediate: s.Intermediate, Heads: s.Heads,
		KVHeads: s.KVHeads, Vocab: s.Vocab, DType: "F32"}
}

// MinParams is the smallest budget LlamaLike meets within 5%.
const MinParams = 1000

// LlamaLike returns an F32 Config, seed 0, of params parameters within 5%
// when params is at least MinParams, with the widths of a real
// Llama-family model where the budget allows:
//
//   - the row of Shapes nearest params by ratio, as it is, if its count is
//     within 5% of params;
//   - else the nearest row of which one layer fits the budget (for budgets
//     below all of them, a tiny shape: hidden a power of two, intermediate
//     4×hidden, heads of 16), with the number of layers that brings the
//     count nearest params;
//   - and if that still misses by more than 2% (a deep layer is a big step
//     when there are few), the vocabulary takes up the difference: it
//     changes only the embedding and lm_head, which quantization keeps.
func LlamaLike(params int64) Config {
	params = max(params, 1)
	dist := func(n int64) float64 { return math.Abs(math.Log(float64(n) / float64(params))) }
	best, bestDist := Shapes[0].Config(), math.Inf(1)
	for _, s := range Shapes {
		if c := s.Config(); dist(c.Params()) < bestDist {
			best, bestDist = c, dist(c.Params())
		}
	}
	if bestDist <= math.Log(1.05) {
		return best
	}
	c, fits := tinyShape(params), false
	for _, s := range Shapes {
		one := s.Config()
		one.Layers = 1
		if one.Params() <= params && (!fits || dist(s.Config().Params()) < dist(c.Params())) {
			c, fits = s.Config(), true
		}
	}
	h, kv, in, v := int64(c.Hidden), int64(c.KVDim()), int64(c.Intermediate), int64(c.Vocab)
	fixed, per := 2*v*h+h, c.perLayer(h, kv, in)
	c.Layers = int(max(1, min(1<<24, math.Round(float64(params-fixed)/float64(per)))))
	if math.Abs(float64(c.Params()-params)) > float64(params)/50 {
		rest := params - (c.Params() - 2*v*h) // the budget less all but the embeddings
		c.Vocab = int(max(1, min(1<<24, math.Round(float64(rest)/float64(2*h)))))
	}
	return c
}

// tinyShape is the shape of budgets below one layer of every row: hidden
// the largest power of two up to 64 whose two layers with a vocabulary of
// 16×hidden fit params (1 if none does), intermediate 4×hidden, a head
// per 16 of hidden, half as many key/value heads.
func tinyShape(params int64) Config {
	shape := func(h int) Config {
		heads := max(1, h/16)
		return Config{Layers: 2, Hidden: h, Intermediate: 4 * h, Heads: heads, KVHeads: max(1, heads/2), Vocab: 16 * h, DType: "F32"}
	}
	h := 64
	for h > 1 && shape(h).Params() > params {
		h /= 2
	}
	return shape(h)
}
