package lm

import (
	"errors"
	"fmt"

	"github.com/quantkit/quantkit/backend"
)

// Cache is the key/value cache of one sequence on the model's backend: the
// rotated keys and the values of every position processed so far, per
// layer ([capacity, KVHeads, HeadDim], as backend.Attention reads them),
// and the activations of the forward pass. It grows as needed. A Cache
// belongs to one Model and one goroutine.
type Cache struct {
	m    *Model
	k, v []backend.Buffer // per layer, capacity·KVDim
	cap  int              // positions k and v hold
	n    int

	// Activations, grown as needed: x the residual stream [T, Hidden],
	// xn its norm, q [T, QDim], att [T, QDim], proj [T, Hidden], gate and
	// up [T, Intermediate], logits [T, Vocab].
	x, xn, q, att, proj, gate, up, logits backend.Buffer
	// kt and vt are a batch's keys and values [T, KVDim] before they go to
	// each sequence's cache (ForwardBatch).
	kt, vt backend.Buffer
	// For int8 projections: a8 the activation codes [T, max(Hidden,
	// QDim, Intermediate)] (S8), as their per-token scales [T] (F32).
	a8, as backend.Buffer
}

// NewCache returns an empty cache for m.
func (m *Model) NewCache() *Cache {
	return &Cache{m: m, k: make([]backend.Buffer, m.Config.Layers), v: make([]backend.Buffer, m.Config.Layers)}
}

// Reserve makes room for positions positions in the cache at once. The
// cache otherwise grows by doubling as tokens come, which can leave up to
// twice the memory the sequence needs and copies the cached keys and
// values at each growth; a caller that knows the prompt and generation
// lengths reserves them first.
func (c *Cache) Reserve(positions int) error {
	if positions < 0 {
		return fmt.Errorf("lm: reserve %d positions", positions)
	}
	return c.reserve(positions, 0, 0, false)
}

// Len is the number of positions in the cache: the position of the next token.
func (c *Cache) Len() int { return c.n }

// Reset empties the cache, keeping its memory.
func (c *Cache) Reset() { c.n = 0 }

// Truncate drops the positions from n on, keeping its memory: the next
// token goes to position n. It panics unless 0 ≤ n ≤ Len().
func (c *Cache) Truncate(n int) {
	if n < 0 || n > c.n {
		panic(fmt.Sprintf("lm: truncating a cache of %d positions to %d", c.n, n))
	}
	c.n = n
}

// Forward runs tokens through the model at positions Len(), Len()+1, …,
// appends their keys and values to the cache and returns the logits,
// [len(tokens)][Vocab] row-major. Processing a prompt at once or a token at a
// time gives the same logits, to float32 rounding, except with dynamic NTK
// rope scaling (Config.Rope "dynamic"): there, as in transformers, one call
// rotates its queries and keys with the frequencies of its sequence length
// Len()+len(tokens) once that exceeds max_position_embeddings, and the keys
// already in the cache keep the rotation they were stored with (transformers
// recomputes inv_freq in the forward pass and its cache holds rotated keys,
// so a token-by-token generation gives there what it gives here). One
// difference: transformers keeps the largest length seen in the module, so
// after a longer sequence a shorter one above max_position_embeddings still
// uses the longer one's frequencies; here every call uses its own length.
func (m *Model) Forward(c *Cache, tokens []int) ([]float32, error) {
	return m.prefill(c, tokens, false)
}

// DefaultPrefillRows is Model.PrefillRows's default: at 256 tokens a
// pass, the projections' GEMMs run at full speed (the FP32 GEMM reads
// its weight in place up to 256 rows on AVX-512), and a 1B model's
// activation scratch (Cache.reserve's) is 27 MB instead of 55 MB at 512.
const DefaultPrefillRows = 256

// prefill runs tokens of one sequence in passes of at most PrefillRows
// (see Model.PrefillRows), returning every row's logits, or with last
// the last row's.
func (m *Model) prefill(c *Cache, tokens []int, last bool) ([]float32, error) {
	chunk := m.PrefillRows
	if chunk == 0 {
		chunk = DefaultPrefillRows
	}
	if chunk < 0 || len(tokens) <= chunk || m.Config.Rope.Type == "dynamic" {
		return m.forward([]segment{{c, tokens}}, last)
	}
	var out []float32
	n0 := c.Len()
	for t0 := 0; t0 < len(tokens); t0 += chunk {
		part := tokens[t0:min(t0+chunk, len(tokens))]
		isLast := t0+chunk >= len(tokens)
		logits, err := m.forward([]segment{{c, part}}, last)
		if err != nil {
			if c.m == m {
				c.Truncate(n0) // as one pass that failed leaves it
			}
			return nil, err
		}
		if !last || isLast {
			out = append(out, logits...)
		}
	}
	return out, nil
}

// ForwardLast is Forward returning only the last token's logits [Vocab],
// as generation needs: the final norm and the lm_head, the largest matrix
// product of a small model, run on one row instead of len(tokens).
func (m *Model) ForwardLast(c *Cache, tokens []int) ([]float32, error) {
	return m.prefill(c, tokens, true)
}

// ForwardBatch runs one token of each of len(cs) sequences in one pass:
// tokens[i] at position cs[i].Len() of the sequence whose cache is cs[i].
// The projections and the lm_head are GEMMs of len(cs) rows (the weights
// are read once for the whole batch, which is what makes batched decoding
// faster than one sequence at a time); attention runs for each sequence
// over its own cache. It returns the logits, [len(cs)][Vocab] row-major,
// and appends each token's keys and values to its cache: the same as
// ForwardLast(cs[i], tokens[i:i+1]) for every i, to float32 rounding. The
// caches must be distinct. Dynamic RoPE scaling past the context is
// refused (each sequence would need frequencies of its own length).
func (m *Model) ForwardBatch(cs []*Cache, tokens []int) ([]float32, error) {
	if len(cs) != len(tokens) {
		return nil, fmt.Errorf("lm: %d caches for %d tokens", len(cs), len(tokens))
	}
	segs := make([]segment, len(cs))
	for i, c := range cs {
		segs[i] = segment{c, tokens[i : i+1]}
	}
	return m.forward(segs, true)
}

// segment is tokens of one sequence, at the positions after its cache's.
type segment struct {
	c      *Cache
	tokens []int
}

// forward is the decoder on the backend, over the tokens of one or more
// sequences (segments) at once. Every operation is a backend call on its
// buffers: the token ids go in (as Embed's host ids) and the logits come
// out, nothing else crosses. The first segment's cache holds the
// activations of the whole pass. With last, only the last token of each
// segment gets logits.
func (m *Model) forward(segs []segment, last bool) ([]float32, error) {
	cfg := m.Config
	H := cfg.Hidden
	T := 0
	for i, s := range segs {
		if s.c == nil || s.c.m != m {
			return nil, fmt.Errorf("lm: the cache belongs to another model")
		}
		for _, o := range segs[:i] { // batches are small: no map per token
			if o.c == s.c {
				return nil, fmt.Errorf("lm: one cache given twice in a batch")
			}
		}
		if s.c.n+len(s.tokens) > 1<<31-1 {
			return nil, fmt.Errorf("lm: position %d past int32", s.c.n+len(s.tokens))
		}
		T += len(s.tokens)
	}
	if T == 0 {
		return nil, nil
	}
	// ids and positions of every token; first[s] is segment s's first row.
	ids, pos := make([]int32, 0, T), make([]int32, 0, T)
	first := make([]int, len(segs))
	rowsOf := make([]int32, 0, len(segs)) // each segment's last row
	for i, s := range segs {
		first[i] = len(ids)
		for t, id := range s.tokens {
			if id < 0 || id >= cfg.Vocab {
				return nil, fmt.Errorf("lm: token %d out of range [0, %d)", id, cfg.Vocab)
			}
			ids, pos = append(ids, int32(id)), append(pos, int32(s.c.n+t))
		}
		if len(s.tokens) > 0 {
			rowsOf = append(rowsOf, int32(len(ids)-1))
		}
	}
	rows := T
	if last {
		rows = len(rowsOf)
	}
	batch := len(segs) > 1
	c := segs[0].c // holds the activations
	if err := c.reserve(c.n+len(segs[0].tokens), T, rows, batch); err != nil {
		return nil, err
	}
	for _, s := range segs[1:] {
		if err := s.c.reserve(s.c.n+len(s.tokens), 0, 0, false); err != nil {
			return nil, err
		}
	}
	qd, kvd, ff := cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	x, xn := c.x.Slice(0, T*H), c.xn.Slice(0, T*H)
	q, att, proj := c.q.Slice(0, T*qd), c.att.Slice(0, T*qd), c.proj.Slice(0, T*H)
	gate, up := c.gate.Slice(0, T*ff), c.up.Slice(0, T*ff)
	b, eps := m.b, float32(cfg.RMSNormEps)
	// The backend functions return errors that name the operation; run
	// stops at the first.
	var err error
	run := func(f func() error) {
		if err == nil {
			err = f()
		}
	}
	gemm := func(m, n, k int, a, w, out backend.Buffer) {
		run(func() error { return b.GemmF32(m, n, k, a, w, out) })
	}
	if m.embedPacked != nil {
		run(func() error { return embedPacked(b, x, m.embedPacked, ids, H) })
	} else {
		run(func() error { return backend.Embed(b, x, m.embed, ids, H) })
	}
	ropeQ, ropeK := m.ropeQ, m.ropeK
	if r := cfg.Rope; r.Type == "dynamic" {
		n := segs[0].c.n + len(segs[0].tokens)
		for _, s := range segs[1:] {
			if s.c.n+len(s.tokens) > r.Context || n > r.Context {
				return nil, fmt.Errorf("lm: dynamic RoPE past the context in a batch: run the sequences one at a time")
			}
		}
		if n > r.Context {
			freqs, scale, err := cfg.ropeTable(n)
			if err != nil {
				return nil, err
			}
			ropeQ = &backend.Rotary{Heads: cfg.Heads, Dim: cfg.HeadDim, Freqs: freqs, Scale: scale}
			ropeK = &backend.Rotary{Heads: cfg.KVHeads, Dim: cfg.HeadDim, Freqs: freqs, Scale: scale}
		}
	}
	// rows32[t] = t: a batch's rows of k and v, which Embed copies to
	// each sequence's cache (made once a pass, not per layer).
	var rows32 []int32
	if batch {
		rows32 = make([]int32, T)
		for t := range rows32 {
			rows32[t] = int32(t)
		}
	}
	for li := range m.layers {
		// One sequence writes its keys and values straight into its
		// cache; a batch writes them to scratch rows, then into each
		// sequence's cache.
		var k, v backend.Buffer
		if batch {
			k, v = c.kt.Slice(0, T*kvd), c.vt.Slice(0, T*kvd)
		} else {
			k, v = c.k[li].Slice(c.n*kvd, T*kvd), c.v[li].Slice(c.n*kvd, T*kvd)
		}
		p := layerPass{b: b, cfg: cfg, li: li, T: T, pos: pos, ropeQ: ropeQ, ropeK: ropeK,
			x: x, xn: xn, q: q, k: k, v: v, att: att, proj: proj, gate: gate, up: up, a8: c.a8, as: c.as}
		p.attend = func() error {
			for i, s := range segs {
				n, off := len(s.tokens), first[i]
				if n == 0 {
					continue
				}
				if batch {
					rowIDs := rows32[off : off+n]
					if err := backend.Embed(b, s.c.k[li].Slice(s.c.n*kvd, n*kvd), k, rowIDs, kvd); err != nil {
						return err
					}
					if err := backend.Embed(b, s.c.v[li].Slice(s.c.n*kvd, n*kvd), v, rowIDs, kvd); err != nil {
						return err
					}
				}
				a := &backend.Attention{Tokens: n, Heads: cfg.Heads, KVHeads: cfg.KVHeads, Dim: cfg.HeadDim, Start: s.c.n, Window: cfg.window(li)}
				if err := backend.Attend(b, att.Slice(off*qd, n*qd), q.Slice(off*qd, n*qd), s.c.k[li], s.c.v[li], a); err != nil {
					return err
				}
			}
			return nil
		}
		run(func() error { return p.run(&m.layers[li]) })
	}
	switch {
	case rows == T:
	case len(segs) == 1:
		x, xn = x.Slice((T-1)*H, H), xn.Slice(0, H)
	default:
		// The last row of each segment, gathered.
		run(func() error { return backend.Embed(b, proj.Slice(0, rows*H), x, rowsOf, H) })
		x, xn = proj.Slice(0, rows*H), xn.Slice(0, rows*H)
	}
	logits := c.logits.Slice(0, rows*cfg.Vocab)
	run(func() error { return backend.RMSNorm(b, xn, x, m.norm, rows, H, eps) })
	if m.headPacked != nil {
		run(func() error { return backend.GemmPacked(b, rows, xn, m.headPacked, logits) })
	} else {
		gemm(rows, cfg.Vocab, H, xn, m.head, logits)
	}
	out := make([]float32, rows*cfg.Vocab)
	run(func() error { return b.Download(out, logits) })
	if err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	for _, s := range segs {
		s.c.n += len(s.tokens)
	}
	return out, nil
}

// layerPass is one decoder layer over T rows of the residual stream x [T,
// Hidden], in place: the body of Model.forward's loop, shared with Block.
// k and v receive the rows' keys (rotated) and values; attend then fills
// att from q and the caches of the rows' sequences. The other buffers are
// scratch of T rows (a8 and as only with int8 projections). tap, when not
// nil, receives the input rows of each projection as they are computed.
type layerPass struct {
	b                                   backend.Backend
	cfg                                 Config
	li, T                               int
	part                                BlockPart // Block.Part (WholeLayer elsewhere)
	pos                                 []int32
	ropeQ, ropeK                        *backend.Rotary
	x, xn, q, k, v, att, proj, gate, up backend.Buffer
	a8, as                              backend.Buffer
	attend                              func() error
	tap                                 func(in LinearInput, rows backend.Buffer, n, cols int) error
}

// run computes the layer whose tensors are d.
func (p *layerPass) run(d *deviceLayer) error {
	b, cfg, T := p.b, p.cfg, p.T
	H, qd, kvd, ff := cfg.Hidden, cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	eps := float32(cfg.RMSNormEps)
	x, xn, q, k, v, att, proj, gate, up := p.x, p.xn, p.q, p.k, p.v, p.att, p.proj, p.gate, p.up
	var err error
	run := func(f func() error) {
		if err == nil {
			err = f()
		}
	}
	// proj8 runs projection j of Int8Layer.list: W8A8 when it is int8,
	// the packed GEMM when it is packed, else the float32 GEMM on w.
	proj8 := func(j, m, n, k int, a, w, out backend.Buffer) {
		switch {
		case d.i8[j].codes != nil:
			run(func() error { return gemmW8A8(b, m, n, k, a, &d.i8[j], out, p.a8, p.as) })
		case d.pk[j] != nil:
			run(func() error { return backend.GemmPacked(b, m, a, d.pk[j], out) })
		default:
			run(func() error { return b.GemmF32(m, n, k, a, w, out) })
		}
	}
	bias := func(x, bias backend.Buffer) {
		if bias != nil {
			run(func() error { return backend.Add(b, x, x, bias) })
		}
	}
	tap := func(in LinearInput, rows backend.Buffer, cols int) {
		if p.tap != nil {
			run(func() error { return p.tap(in, rows, T, cols) })
		}
	}
	if p.part != MLPOnly {
		run(func() error { return backend.RMSNorm(b, xn, x, d.attnNorm, T, H, eps) })
		tap(QKVInput, xn, H)
		proj8(0, T, qd, H, xn, d.q, q)
		bias(q, d.qBias)
		proj8(1, T, kvd, H, xn, d.k, k)
		bias(k, d.kBias)
		proj8(2, T, kvd, H, xn, d.v, v)
		bias(v, d.vBias)
		run(func() error { return backend.RoPE(b, q, q, p.ropeQ, p.pos) })
		run(func() error { return backend.RoPE(b, k, k, p.ropeK, p.pos) })
		run(p.attend)
		tap(OInput, att, qd)
		proj8(3, T, H, qd, att, d.o, proj)
		bias(proj, d.oBias)
		run(func() error { return backend.Add(b, x, x, proj) })
	}
	if p.part != AttentionOnly {
		run(func() error { return backend.RMSNorm(b, xn, x, d.mlpNorm, T, H, eps) })
		tap(GateUpInput, xn, H)
		proj8(4, T, ff, H, xn, d.gate, gate)
		proj8(5, T, ff, H, xn, d.up, up)
		run(func() error { return backend.SwiGLU(b, gate, gate, up) })
		tap(DownInput, gate, ff)
		proj8(6, T, H, ff, gate, d.down, proj)
		run(func() error { return backend.Add(b, x, x, proj) })
	}
	return err
}

// reserve makes the cache hold positions positions and activations for
// tokens tokens with logits for rows of them (none when tokens is 0), and
// with batch scratch rows for their keys and values.
func (c *Cache) reserve(positions, tokens, rows int, batch bool) error {
	m := c.m
	b, cfg := m.b, m.Config
	if positions > c.cap {
		// Grow by doubling; the cached positions move on the device, as
		// rows that Embed copies.
		capacity := max(positions, 2*c.cap, 16)
		kvd := cfg.KVDim()
		ids := make([]int32, c.n)
		for i := range ids {
			ids[i] = int32(i)
		}
		for _, kv := range [][]backend.Buffer{c.k, c.v} {
			for li, old := range kv {
				nb, err := b.Alloc(backend.F32, capacity*kvd)
				if err != nil {
					return fmt.Errorf("lm: %w", err)
				}
				if old != nil {
					if c.n > 0 {
						if err := backend.Embed(b, nb.Slice(0, c.n*kvd), old, ids, kvd); err != nil {
							return errors.Join(fmt.Errorf("lm: %w", err), b.Free(nb))
						}
					}
					if err := b.Free(old); err != nil {
						return errors.Join(fmt.Errorf("lm: %w", err), b.Free(nb))
					}
				}
				kv[li] = nb
			}
		}
		c.cap = capacity
	}
	if tokens == 0 {
		return nil
	}
	H, qd, ff := cfg.Hidden, cfg.QDim(), cfg.Intermediate
	kvt := 0
	if batch {
		kvt = tokens * cfg.KVDim()
	}
	for _, s := range []struct {
		buf *backend.Buffer
		n   int
	}{
		{&c.x, tokens * H}, {&c.xn, tokens * H}, {&c.q, tokens * qd}, {&c.att, tokens * qd},
		{&c.proj, tokens * H}, {&c.gate, tokens * ff}, {&c.up, tokens * ff}, {&c.logits, rows * cfg.Vocab},
		{&c.kt, kvt}, {&c.vt, kvt},
	} {
		if s.n == 0 {
			continue
		}
		if *s.buf != nil && (*s.buf).Len() >= s.n {
			continue
		}
		nb, err := b.Alloc(backend.F32, s.n)
		if err != nil {
			return fmt.Errorf("lm: %w", err)
		}
		if *s.buf != nil {
			if err := b.Free(*s.buf); err != nil {
				return errors.Join(fmt.Errorf("lm: %w", err), b.Free(nb))
			}
		}
		*s.buf = nb
	}
	if m.int8 {
		return c.reserveInt8(tokens*max(H, qd, ff), tokens)
	}
	return nil
}

// Greedy appends n tokens to prompt, each the argmax of the logits after the
// tokens before it, stopping early after EOS. It returns the new tokens.
func (m *Model) Greedy(prompt []int, n int) ([]int, error) {
	c := m.NewCache()
	defer c.Close()
	logits, err := m.ForwardLast(c, prompt)
	if err != nil {
		return nil, err
	}
	var out []int
	for len(out) < n {
		next := argmax(logits)
		out = append(out, next)
		if next == m.Config.EOS {
			break
		}
		if logits, err = m.ForwardLast(c, []int{next}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// argmax is the index of the largest element, the first among equals.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// Close frees the cache's buffers on the backend and empties it; the cache
// may be used again afterwards (it allocates them anew).
func (c *Cache) Close() error {
	var errs []error
	free := func(b *backend.Buffer) {
		if *b != nil {
			errs = append(errs, c.m.b.Free(*b))
			*b = nil
		}
	}
	for i := range c.k {
		free(&c.k[i])
		free(&c.v[i])
	}
	for _, b := range []*backend.Buffer{&c.x, &c.xn, &c.q, &c.att, &c.proj, &c.gate, &c.up, &c.logits, &c.kt, &c.vt, &c.a8, &c.as} {
		free(b)
	}
	c.cap, c.n = 0, 0
	return errors.Join(errs...)
}
