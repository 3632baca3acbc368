package lm

import (
	"errors"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/backend"
)

// Config are the hyperparameters the forward pass needs.
type Config struct {
	Hidden       int     // hidden_size
	Intermediate int     // intermediate_size of the SwiGLU MLP
	Layers       int     // num_hidden_layers
	Heads        int     // num_attention_heads
	KVHeads      int     // num_key_value_heads; Heads is a multiple
	HeadDim      int     // head_dim (even)
	Vocab        int     // vocab_size
	RMSNormEps   float64 // rms_norm_eps
	RopeTheta    float64 // rope_theta
	BOS, EOS     int     // bos_token_id and eos_token_id, -1 where unknown
	// RopeFactors, when not nil, are HeadDim/2 divisors of the RoPE
	// frequencies in llama.cpp's rope_freqs convention (frequency i is
	// θ^(-2i/d)/RopeFactors[i]): Llama 3's "llama3" rope_scaling, as
	// llamacpp.Llama3RopeFactors computes them.
	RopeFactors []float32

	// Beyond the base Llama (lm/rope.go).
	//
	// Rope is a rope_scaling of type linear, dynamic or yarn; the zero
	// value is none.
	Rope RopeScaling
	// SlidingWindow, when positive, limits the attention of the layers
	// that WindowLayers names (every layer when nil) to the
	// SlidingWindow most recent positions (backend.Attention.Window):
	// Mistral's and Qwen2's sliding_window.
	SlidingWindow int
	WindowLayers  []bool
}

// Validate checks that the sizes are positive and consistent.
func (c Config) Validate() error {
	switch {
	case c.Hidden <= 0 || c.Intermediate <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 || c.Vocab <= 0:
		return fmt.Errorf("lm: sizes must be positive: %+v", c)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("lm: %d heads are not a multiple of %d key/value heads", c.Heads, c.KVHeads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("lm: head dim %d is odd: RoPE rotates pairs", c.HeadDim)
	case !(c.RMSNormEps >= 0) || !(c.RopeTheta > 0):
		return fmt.Errorf("lm: rms_norm_eps %g or rope_theta %g out of range", c.RMSNormEps, c.RopeTheta)
	case c.RopeFactors != nil && len(c.RopeFactors) != c.HeadDim/2:
		return fmt.Errorf("lm: %d RoPE frequency factors for head dim %d, want %d", len(c.RopeFactors), c.HeadDim, c.HeadDim/2)
	}
	for i, f := range c.RopeFactors {
		if !(f > 0) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("lm: RoPE frequency factor %d is %g, not positive and finite", i, f)
		}
	}
	return c.validateExtensions()
}

// QDim is Heads·HeadDim, the rows of q_proj.
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is KVHeads·HeadDim, the rows of k_proj and v_proj.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Layer holds one decoder layer's weights, row-major [out, in] as Hugging
// Face stores them. Q and K rows are in the rotate-half RoPE layout. The
// biases are nil when the checkpoint has none (attention_bias false).
type Layer struct {
	AttnNorm []float32 // input_layernorm [Hidden]
	Q        []float32 // q_proj [QDim, Hidden]
	K, V     []float32 // k_proj, v_proj [KVDim, Hidden]
	O        []float32 // o_proj [Hidden, QDim]
	QBias    []float32 // [QDim] or nil
	KBias    []float32 // [KVDim] or nil
	VBias    []float32 // [KVDim] or nil
	OBias    []float32 // [Hidden] or nil
	MLPNorm  []float32 // post_attention_layernorm [Hidden]
	Gate, Up []float32 // gate_proj, up_proj [Intermediate, Hidden]
	Down     []float32 // down_proj [Hidden, Intermediate]
	// Int8 holds the projections kept as int8 codes (LoadOptions.Int8);
	// a projection set there has its float32 field above nil. nil when
	// every projection is float32.
	Int8 *Int8Layer
	// Packed holds the projections kept in a block format (quantized
	// checkpoints by default); a projection set there has its float32
	// field nil. nil when there are none.
	Packed *PackedLayer
}

// Weights are a model's tensors: float32, or packed (PackedWeight) or
// int8 (Int8Weight) where a quantized checkpoint keeps them so.
type Weights struct {
	Embed  []float32 // embed_tokens [Vocab, Hidden]
	Layers []Layer
	Norm   []float32 // final norm [Hidden]
	// LMHead is lm_head [Vocab, Hidden]; nil (and LMHeadPacked nil)
	// means tied to the embedding.
	LMHead []float32
	// EmbedPacked and LMHeadPacked are the embedding and lm_head in a
	// block format, set instead of Embed and LMHead.
	EmbedPacked, LMHeadPacked *PackedWeight
}

// Validate checks every tensor's length against c.
func (w *Weights) Validate(c Config) error {
	check := func(name string, x []float32, n int, optional bool) error {
		if optional && x == nil {
			return nil
		}
		if len(x) != n {
			return fmt.Errorf("lm: %s has %d elements, want %d", name, len(x), n)
		}
		return nil
	}
	h := c.Hidden
	table := func(name string, x []float32, p *PackedWeight, optional bool) error {
		switch {
		case x != nil && p != nil:
			return fmt.Errorf("lm: %s is both float32 and packed", name)
		case p != nil:
			return p.check(name, c.Vocab, h)
		}
		return check(name, x, c.Vocab*h, optional)
	}
	if err := errors.Join(
		table("embedding", w.Embed, w.EmbedPacked, false),
		check("final norm", w.Norm, h, false),
		table("lm_head", w.LMHead, w.LMHeadPacked, true),
	); err != nil {
		return err
	}
	if len(w.Layers) != c.Layers {
		return fmt.Errorf("lm: %d layers, want %d", len(w.Layers), c.Layers)
	}
	for i := range w.Layers {
		if err := w.Layers[i].validate(c); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return nil
}

// validate checks the layer's tensor lengths against c.
func (l *Layer) validate(c Config) error {
	check := func(name string, x []float32, n int, optional bool) error {
		if optional && x == nil {
			return nil
		}
		if len(x) != n {
			return fmt.Errorf("lm: %s has %d elements, want %d", name, len(x), n)
		}
		return nil
	}
	h, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	return errors.Join(
		check("attention norm", l.AttnNorm, h, false),
		checkProj(l, "q", l.Q, q, h, 0), checkProj(l, "k", l.K, kv, h, 1), checkProj(l, "v", l.V, kv, h, 2),
		checkProj(l, "o", l.O, h, q, 3),
		check("q bias", l.QBias, q, true), check("k bias", l.KBias, kv, true),
		check("v bias", l.VBias, kv, true), check("o bias", l.OBias, h, true),
		check("mlp norm", l.MLPNorm, h, false),
		checkProj(l, "gate", l.Gate, ff, h, 4), checkProj(l, "up", l.Up, ff, h, 5), checkProj(l, "down", l.Down, h, ff, 6),
	)
}

// Model is a decoder ready to run on a backend: every tensor of Weights
// lives in a buffer of the backend. Its methods may be called concurrently
// with different Caches.
type Model struct {
	Config Config
	// PrefillRows is the most tokens of one sequence Forward and
	// ForwardLast run in one pass: a longer prompt runs in passes of
	// PrefillRows tokens, each appending to the cache (llama.cpp's
	// micro-batch), so that the activations' scratch (3·Hidden + 2·QDim +
	// 2·Intermediate floats a token) stays bounded whatever the prompt's
	// length. 0 means DefaultPrefillRows; negative, no limit. Not with
	// dynamic RoPE scaling, whose frequencies depend on a call's length.
	PrefillRows int
	// Weights are the host tensors New placed on the backend: on a
	// backend of host memory (cpu) the very memory the model computes
	// with, elsewhere host copies it keeps for callers (tests,
	// exporters) and does not read again.
	Weights *Weights

	b      backend.Backend
	embed  backend.Buffer // nil when the table is packed (embedPacked)
	layers []deviceLayer
	norm   backend.Buffer
	head   backend.Buffer // lm_head, or embed when tied; nil when packed
	// embedPacked is the packed embedding table, looked up on the host;
	// headPacked the packed lm_head (or embedding, when tied).
	embedPacked *PackedWeight
	headPacked  *backend.Packed
	// owned are the buffers New allocated (Close frees them); closers
	// release what the weights are mapped from, after them.
	owned   []backend.Buffer
	closers []func() error
	// ropeQ and ropeK rotate q and k rows (Hugging Face's rotate-half
	// layout) with backend.RoPEFreqs' frequencies.
	ropeQ, ropeK *backend.Rotary
	// int8 is set when some projection is int8 (W8A8).
	int8 bool
}

type deviceLayer struct {
	attnNorm, mlpNorm          backend.Buffer
	q, k, v, o, gate, up, down backend.Buffer
	// i8 holds the int8 projections in the order of Int8Layer.list (q,
	// k, v, o, gate, up, down); an entry with nil codes is float32.
	i8 [7]int8Buffer
	// pk holds the packed projections in the same order; nil entries
	// are float32 or int8.
	pk                         [7]*backend.Packed
	qBias, kBias, vBias, oBias backend.Buffer // nil when absent
}

// New places every tensor of w on b (backend.Place: in place on a backend
// of host memory, else uploaded) and returns the model. w stays as it is;
// the model never writes it.
func New(b backend.Backend, c Config, w *Weights) (*Model, error) {
	if b == nil {
		return nil, errors.New("lm: no backend")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := w.Validate(c); err != nil {
		return nil, err
	}
	freqs, scale, err := c.ropeTable(0)
	if err != nil {
		return nil, err
	}
	m := &Model{
		Config: c, Weights: w, b: b, layers: make([]deviceLayer, c.Layers),
		ropeQ: &backend.Rotary{Heads: c.Heads, Dim: c.HeadDim, Freqs: freqs, Scale: scale},
		ropeK: &backend.Rotary{Heads: c.KVHeads, Dim: c.HeadDim, Freqs: freqs, Scale: scale},
	}
	p := &placer{b: b}
	h := c.Hidden
	m.embed, m.norm = p.f32(w.Embed), p.f32(w.Norm)
	m.embedPacked = w.EmbedPacked
	switch {
	case w.LMHead != nil:
		m.head = p.f32(w.LMHead)
	case w.LMHeadPacked != nil:
		m.headPacked = p.packed(w.LMHeadPacked, c.Vocab, h)
	case w.EmbedPacked != nil:
		m.headPacked = p.packed(w.EmbedPacked, c.Vocab, h)
	default:
		m.head = m.embed
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		m.layers[i] = p.layer(c, l)
		if l.Int8 != nil {
			for j, w := range l.Int8.list() {
				if w != nil && p.err == nil {
					ib, owned, err := placeInt8(b, w)
					if err != nil {
						p.err = err
						continue
					}
					if owned {
						p.owned = append(p.owned, ib.codes)
					}
					m.layers[i].i8[j] = ib
					m.int8 = true
				}
			}
		}
	}
	m.owned = p.owned
	errs := []error{p.err}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(fmt.Errorf("lm: %w", err), m.Close())
	}
	return m, nil
}

// placer puts host tensors on a backend (backend.Place: in place where its
// buffers are host memory, else uploaded), keeping the buffers it
// allocated, which their owner frees, and the first error, after which it
// places nothing more.
type placer struct {
	b     backend.Backend
	owned []backend.Buffer
	err   error
}

// put places x ([]float32 or []byte).
func (p *placer) put(x any) backend.Buffer {
	if p.err != nil {
		return nil
	}
	buf, owned, err := backend.Place(p.b, x)
	if err != nil {
		p.err = err
		return nil
	}
	if owned {
		p.owned = append(p.owned, buf)
	}
	return buf
}

// f32 places x, or gives nil for a nil x (an absent bias).
func (p *placer) f32(x []float32) backend.Buffer {
	if x == nil {
		return nil
	}
	return p.put(x)
}

// packed places a packed weight [rows, cols], or gives nil for nil.
func (p *placer) packed(w *PackedWeight, rows, cols int) *backend.Packed {
	if w == nil {
		return nil
	}
	var data backend.Buffer
	if p.err != nil {
		return nil
	}
	if w.repacked {
		// Only the backend that repacked the rows reads them.
		r, ok := p.b.(packedRepacker)
		if !ok {
			p.err = fmt.Errorf("packed %v weight [%d, %d] in another backend's row order", w.Format, rows, cols)
			return nil
		}
		if data, p.err = r.WrapRepacked(w.Data); p.err != nil {
			return nil
		}
	} else if data = p.put(w.Data); data == nil {
		return nil
	}
	return &backend.Packed{N: rows, K: cols, Format: w.Format, Data: data}
}

// layer places l's float and packed tensors (not its int8 ones).
func (p *placer) layer(c Config, l *Layer) deviceLayer {
	d := deviceLayer{
		attnNorm: p.f32(l.AttnNorm), mlpNorm: p.f32(l.MLPNorm),
		q: p.f32(l.Q), k: p.f32(l.K), v: p.f32(l.V), o: p.f32(l.O),
		gate: p.f32(l.Gate), up: p.f32(l.Up), down: p.f32(l.Down),
		qBias: p.f32(l.QBias), kBias: p.f32(l.KBias), vBias: p.f32(l.VBias), oBias: p.f32(l.OBias),
	}
	if l.Packed != nil {
		h, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
		shapes := [7][2]int{{qd, h}, {kvd, h}, {kvd, h}, {h, qd}, {ff, h}, {ff, h}, {h, ff}}
		for j, w := range l.Packed.list() {
			d.pk[j] = p.packed(w, shapes[j][0], shapes[j][1])
		}
	}
	return d
}

// Device describes the backend the model runs on (backend.Describe): for
// the CPU, its processor, threads and how packed weights are multiplied.
func (m *Model) Device() string { return m.b.Describe() }

// Close frees the model's buffers on its backend and releases what its
// weights are mapped from (the arena of the weights it keeps, the file
// mapping). The model must not be used afterwards.
func (m *Model) Close() error {
	var errs []error
	for _, b := range m.owned {
		errs = append(errs, m.b.Free(b))
	}
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	m.layers, m.head, m.embed, m.norm, m.headPacked, m.embedPacked = nil, nil, nil, nil, nil, nil
	m.owned, m.closers = nil, nil
	return errors.Join(errs...)
}
