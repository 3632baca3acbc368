package lm

import (
	"errors"
	"fmt"
	"slices"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/checkpoint"
)

// LinearInput names a distinct input of a decoder layer's projections:
// q, k and v read one (the attention norm's output), gate and up another
// (the MLP norm's), o and down one each. A calibration method that needs
// statistics of a projection's input (GPTQ's Hessian XᵀX, AWQ's mean |x|,
// an importance matrix's mean x²) collects them once per LinearInput.
type LinearInput int

// The inputs, in the order a layer computes them.
const (
	QKVInput    LinearInput = iota // rms(x) → q_proj, k_proj, v_proj [Hidden]
	OInput                         // attention output → o_proj [QDim]
	GateUpInput                    // rms(h) → gate_proj, up_proj [Hidden]
	DownInput                      // silu(gate)·up → down_proj [Intermediate]
)

// String is the input's name: the projections that read it.
func (in LinearInput) String() string {
	switch in {
	case QKVInput:
		return "q/k/v"
	case OInput:
		return "o"
	case GateUpInput:
		return "gate/up"
	case DownInput:
		return "down"
	}
	return fmt.Sprintf("LinearInput(%d)", int(in))
}

// Projections are the Hugging Face module names (within a layer, such as
// "self_attn.q_proj") of the projections that read in.
func (in LinearInput) Projections() []string {
	switch in {
	case QKVInput:
		return []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}
	case OInput:
		return []string{"self_attn.o_proj"}
	case GateUpInput:
		return []string{"mlp.gate_proj", "mlp.up_proj"}
	case DownInput:
		return []string{"mlp.down_proj"}
	}
	return nil
}

// Tap receives the input rows of projections during Block.Forward: x holds
// rows×cols float32 values, row-major, one row a token, valid only during
// the call (the block reuses the memory) and not to be changed (on the
// CPU it is the block's own memory, which the layer reads on). It is
// called once per input and chunk of sequences, in the order the layer
// computes them; an error stops the pass.
type Tap func(in LinearInput, x []float32, rows, cols int) error

// Block is one decoder layer on a backend, run on hidden states held on
// the host for a batch of independent sequences: the unit of
// layer-sequential calibration (GPTQ, llm-compressor), which needs one
// layer's weights in memory at a time, the inputs of its projections and
// its outputs, not the whole model. Running the embedding (Embed), every
// layer's Block in turn, the final norm and the head computes what
// Model.Forward computes for each sequence from position 0, to float32
// rounding: both run the same layer code (layerPass).
type Block struct {
	// MaxRows, when positive, replaces MaxBlockRows.
	MaxRows int
	// Part is what of the layer Forward computes: the whole layer (the
	// zero value), or its attention or its MLP alone.
	Part BlockPart

	cfg          Config
	index        int
	b            backend.Backend
	d            deviceLayer
	owned        []backend.Buffer
	ropeQ, ropeK *backend.Rotary

	s *blockScratch // its own, or another block's (ShareScratch)
}

// blockScratch is a Block's scratch of the last chunk size: the residual
// rows x and the activations, as in Cache, the keys and values of every
// row, and a tap's host copy of rows.
type blockScratch struct {
	owner                                 *Block
	rows                                  int
	x, xn, q, att, proj, gate, up, kk, vv backend.Buffer
	host                                  []float32
}

// ShareScratch makes k run in o's scratch (the activations of a chunk)
// instead of its own: two blocks of one shape that run by turns, as a
// float layer and its quantized copy do in calibration, then hold one
// chunk's activations, not two. o frees the scratch when it is closed:
// close k first, or not use it afterwards. The blocks must not run at
// once.
func (k *Block) ShareScratch(o *Block) error {
	if k.cfg.Hidden != o.cfg.Hidden || k.cfg.QDim() != o.cfg.QDim() || k.cfg.KVDim() != o.cfg.KVDim() || k.cfg.Intermediate != o.cfg.Intermediate || k.b != o.b {
		return fmt.Errorf("lm: layer %d cannot share layer %d's scratch: another shape or backend", k.index, o.index)
	}
	if k.s == nil || o.s == nil {
		return fmt.Errorf("lm: layer %d: ShareScratch with a closed block", k.index)
	}
	if k.s.owner == k {
		if err := k.s.free(); err != nil {
			return err
		}
	}
	k.s = o.s
	return nil
}

// BlockPart chooses what of a decoder layer Block.Forward computes.
type BlockPart int

const (
	// WholeLayer: the attention, then the MLP, each added to the residual.
	WholeLayer BlockPart = iota
	// AttentionOnly: x + attention(x), what the whole layer computes with
	// its MLP's weights zero, without running the MLP.
	AttentionOnly
	// MLPOnly: x + MLP(x), what the whole layer computes with its
	// attention's weights zero, without running the attention.
	MLPOnly
)

// MaxBlockRows is the most rows (tokens) a Block computes in one backend
// pass unless Block.MaxRows says otherwise: Forward cuts a larger batch
// into chunks of whole sequences, so its scratch holds at most
// max(MaxBlockRows, one sequence) rows.
const MaxBlockRows = 8192

// NewBlock places layer index's weights l on b as a Block of the model c
// describes (the index chooses the layer's sliding window). Float32 and
// packed projections (PackedLayer) are accepted, int8 (W8A8) ones are
// not. l stays as it is; the block never writes it.
func NewBlock(b backend.Backend, c Config, index int, l *Layer) (*Block, error) {
	if b == nil {
		return nil, errors.New("lm: no backend")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if index < 0 || index >= c.Layers {
		return nil, fmt.Errorf("lm: layer %d of %d", index, c.Layers)
	}
	if l.Int8 != nil {
		return nil, fmt.Errorf("lm: layer %d: a block of int8 (W8A8) projections is not supported", index)
	}
	if err := l.validate(c); err != nil {
		return nil, fmt.Errorf("lm: layer %d: %w", index, err)
	}
	freqs, scale, err := c.ropeTable(0)
	if err != nil {
		return nil, err
	}
	k := &Block{cfg: c, index: index, b: b, s: &blockScratch{},
		ropeQ: &backend.Rotary{Heads: c.Heads, Dim: c.HeadDim, Freqs: freqs, Scale: scale},
		ropeK: &backend.Rotary{Heads: c.KVHeads, Dim: c.HeadDim, Freqs: freqs, Scale: scale},
	}
	k.s.owner = k
	p := &placer{b: b}
	k.d = p.layer(c, l)
	k.owned = p.owned
	errs := []error{p.err}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(fmt.Errorf("lm: layer %d: %w", index, err), k.Close())
	}
	return k, nil
}

// Forward runs the block on x, seqs sequences of seqLen tokens each, each
// from position 0 (hidden states [seqs, seqLen, Hidden] row-major, as
// Embed returns them), and writes the layer's outputs over x. tap, when
// not nil, receives each projection's input rows (see Tap), chunk by
// chunk of whole sequences of at most MaxBlockRows rows.
func (k *Block) Forward(x []float32, seqs, seqLen int, tap Tap) error {
	c := k.cfg
	H := c.Hidden
	if seqs < 0 || seqLen <= 0 || len(x) != seqs*seqLen*H {
		return fmt.Errorf("lm: layer %d: %d values are not %d sequences of %d tokens of %d", k.index, len(x), seqs, seqLen, H)
	}
	if k.d.attnNorm == nil {
		return fmt.Errorf("lm: layer %d: the block is closed", k.index)
	}
	limit := MaxBlockRows
	if k.MaxRows > 0 {
		limit = k.MaxRows
	}
	per := max(1, limit/seqLen) // sequences a chunk
	ropeQ, ropeK := k.ropeQ, k.ropeK
	if r := c.Rope; r.Type == "dynamic" && seqLen > r.Context {
		freqs, scale, err := c.ropeTable(seqLen)
		if err != nil {
			return err
		}
		ropeQ = &backend.Rotary{Heads: c.Heads, Dim: c.HeadDim, Freqs: freqs, Scale: scale}
		ropeK = &backend.Rotary{Heads: c.KVHeads, Dim: c.HeadDim, Freqs: freqs, Scale: scale}
	}
	for s0 := 0; s0 < seqs; s0 += per {
		n := min(per, seqs-s0)
		if err := k.chunk(x[s0*seqLen*H:(s0+n)*seqLen*H], n, seqLen, ropeQ, ropeK, tap); err != nil {
			return fmt.Errorf("lm: layer %d: %w", k.index, err)
		}
	}
	return nil
}

// chunk runs the block on n sequences at once.
func (k *Block) chunk(xh []float32, n, seqLen int, ropeQ, ropeK *backend.Rotary, tap Tap) error {
	c, b := k.cfg, k.b
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	T := n * seqLen
	ks := k.s
	if err := ks.reserve(b, c, T); err != nil {
		return err
	}
	pos := make([]int32, T)
	for i := range pos {
		pos[i] = int32(i % seqLen)
	}
	x := ks.x.Slice(0, T*H)
	if err := b.Upload(x, xh); err != nil {
		return err
	}
	kk, vv := ks.kk.Slice(0, T*kvd), ks.vv.Slice(0, T*kvd)
	att, q := ks.att.Slice(0, T*qd), ks.q.Slice(0, T*qd)
	p := layerPass{b: b, cfg: c, li: k.index, T: T, part: k.Part, pos: pos, ropeQ: ropeQ, ropeK: ropeK,
		x: x, xn: ks.xn.Slice(0, T*H), q: q, k: kk, v: vv, att: att,
		proj: ks.proj.Slice(0, T*H), gate: ks.gate.Slice(0, T*ff), up: ks.up.Slice(0, T*ff)}
	p.attend = func() error {
		a := &backend.Attention{Tokens: seqLen, Heads: c.Heads, KVHeads: c.KVHeads, Dim: c.HeadDim, Window: c.window(k.index)}
		for s := range n {
			r := s * seqLen
			if err := backend.Attend(b, att.Slice(r*qd, seqLen*qd), q.Slice(r*qd, seqLen*qd),
				kk.Slice(r*kvd, seqLen*kvd), vv.Slice(r*kvd, seqLen*kvd), a); err != nil {
				return err
			}
		}
		return nil
	}
	if tap != nil {
		p.tap = func(in LinearInput, rows backend.Buffer, m, cols int) error {
			if hb, ok := rows.(backend.HostBuffer); ok && len(hb.F32()) >= m*cols {
				// The backend's memory is the host's (the CPU): no copy.
				return tap(in, hb.F32()[:m*cols], m, cols)
			}
			if cap(ks.host) < m*cols {
				ks.host = make([]float32, m*cols)
			}
			h := ks.host[:m*cols]
			if err := b.Download(h, rows); err != nil {
				return err
			}
			return tap(in, h, m, cols)
		}
	}
	if err := p.run(&k.d); err != nil {
		return err
	}
	return b.Download(xh, x)
}

// reserve makes the scratch hold T rows of a layer of c on b.
func (s *blockScratch) reserve(b backend.Backend, c Config, T int) error {
	if T <= s.rows {
		return nil
	}
	s.free()
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	for _, t := range []struct {
		buf *backend.Buffer
		n   int
	}{
		{&s.x, T * H}, {&s.xn, T * H}, {&s.q, T * qd}, {&s.att, T * qd}, {&s.proj, T * H},
		{&s.gate, T * ff}, {&s.up, T * ff}, {&s.kk, T * kvd}, {&s.vv, T * kvd},
	} {
		nb, err := b.Alloc(backend.F32, t.n)
		if err != nil {
			return errors.Join(err, s.free())
		}
		*t.buf = nb
	}
	s.rows = T
	return nil
}

// free frees the scratch buffers (its owner's backend's).
func (s *blockScratch) free() error {
	var errs []error
	for _, buf := range []*backend.Buffer{&s.x, &s.xn, &s.q, &s.att, &s.proj, &s.gate, &s.up, &s.kk, &s.vv} {
		if *buf != nil {
			errs = append(errs, s.owner.b.Free(*buf))
			*buf = nil
		}
	}
	s.rows, s.host = 0, nil
	return errors.Join(errs...)
}

// Close frees the block's buffers (its scratch, unless another block's,
// ShareScratch); it must not be used afterwards.
func (k *Block) Close() error {
	var errs []error
	if k.s != nil && k.s.owner == k {
		errs = append(errs, k.s.free())
	}
	for _, buf := range k.owned {
		errs = append(errs, k.b.Free(buf))
	}
	k.owned, k.d, k.s = nil, deviceLayer{}, nil
	return errors.Join(errs...)
}

// Embed is the embedding lookup of ids in table [vocab, hidden] on the
// host: row ids[i] of table at row i of the result [len(ids), hidden], the
// hidden states Block.Forward takes for the first layer.
func Embed(table []float32, hidden int, ids []int) ([]float32, error) {
	if hidden <= 0 || len(table)%hidden != 0 {
		return nil, fmt.Errorf("lm: an embedding table of %d values has no rows of %d", len(table), hidden)
	}
	vocab := len(table) / hidden
	out := make([]float32, len(ids)*hidden)
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("lm: token %d out of range [0, %d)", id, vocab)
		}
		copy(out[i*hidden:(i+1)*hidden], table[id*hidden:(id+1)*hidden])
	}
	return out, nil
}

// LayerTensors are the checkpoint names of layer i's tensors in Hugging
// Face's layout, in the order of Layer's fields: the two norms, then
// the seven projections' weights (q, k, v, o, gate, up, down), then the
// four biases (q, k, v, o), which may be absent.
func LayerTensors(i int) []string {
	p := fmt.Sprintf("model.layers.%d.", i)
	return []string{
		p + "input_layernorm.weight", p + "post_attention_layernorm.weight",
		p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
		p + "self_attn.o_proj.weight", p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight",
		p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias", p + "self_attn.o_proj.bias",
	}
}

// ReadLayer reads layer i of the float Hugging Face checkpoint ck (F32,
// F16 or BF16 tensors, converted to float32) as c describes it: only that
// layer's tensors are read, so a calibration pipeline holds one layer at a
// time. Biases are read where the checkpoint has them. Each tensor's shape
// is checked.
func ReadLayer(ck *checkpoint.Checkpoint, c Config, i int) (*Layer, error) {
	if i < 0 || i >= c.Layers {
		return nil, fmt.Errorf("lm: layer %d of %d", i, c.Layers)
	}
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	names := LayerTensors(i)
	shapes := [][]int{{H}, {H}, {qd, H}, {kvd, H}, {kvd, H}, {H, qd}, {ff, H}, {ff, H}, {H, ff}, {qd}, {kvd}, {kvd}, {H}}
	l := &Layer{}
	dst := []*[]float32{&l.AttnNorm, &l.MLPNorm, &l.Q, &l.K, &l.V, &l.O, &l.Gate, &l.Up, &l.Down, &l.QBias, &l.KBias, &l.VBias, &l.OBias}
	for j, name := range names {
		info, ok := ck.Tensor(name)
		if !ok {
			if j >= 9 { // an absent bias
				continue
			}
			return nil, fmt.Errorf("lm: %s: no tensor %s", ck.Dir(), name)
		}
		if !slices.Equal(info.Shape, shapes[j]) {
			return nil, fmt.Errorf("lm: %s: %s has shape %v, want %v", ck.Dir(), name, info.Shape, shapes[j])
		}
		x, err := ck.Float32(name)
		if err != nil {
			return nil, err
		}
		*dst[j] = x
	}
	return l, nil
}
