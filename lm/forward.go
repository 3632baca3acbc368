package lm

import (
	"errors"
	"fmt"
	"math"

	"github.com/quantkit/quantkit/backend"
)

// Cache is the key/value cache of one sequence: the rotated keys and the
// values of every position processed so far, per layer, and scratch memory
// for the matrix products. A Cache belongs to one Model and one goroutine.
type Cache struct {
	m    *Model
	k, v [][]float32 // per layer, [Len][KVDim]
	n    int

	in, out backend.Buffer // scratch on the backend, grown as needed
}

// NewCache returns an empty cache for m.
func (m *Model) NewCache() *Cache {
	return &Cache{m: m, k: make([][]float32, m.Config.Layers), v: make([][]float32, m.Config.Layers)}
}

// Len is the number of positions in the cache: the position of the next token.
func (c *Cache) Len() int { return c.n }

// Reset empties the cache, keeping its memory.
func (c *Cache) Reset() {
	for i := range c.k {
		c.k[i], c.v[i] = c.k[i][:0], c.v[i][:0]
	}
	c.n = 0
}

// Forward runs tokens through the model at positions Len(), Len()+1, …,
// appends their keys and values to the cache and returns the logits,
// [len(tokens)][Vocab] row-major. Processing a prompt at once or a token at a
// time gives the same logits, to float32 rounding.
func (m *Model) Forward(c *Cache, tokens []int) ([]float32, error) {
	if c == nil || c.m != m {
		return nil, fmt.Errorf("lm: the cache belongs to another model")
	}
	cfg := m.Config
	T, H := len(tokens), cfg.Hidden
	if T == 0 {
		return nil, nil
	}
	x := make([]float32, T*H)
	for t, id := range tokens {
		if id < 0 || id >= cfg.Vocab {
			return nil, fmt.Errorf("lm: token %d out of range [0, %d)", id, cfg.Vocab)
		}
		copy(x[t*H:(t+1)*H], m.Weights.Embed[id*H:(id+1)*H])
	}
	qd, kvd, ff := cfg.QDim(), cfg.KVDim(), cfg.Intermediate
	xn := make([]float32, T*H)
	q := make([]float32, T*qd)
	k := make([]float32, T*kvd)
	v := make([]float32, T*kvd)
	att := make([]float32, T*qd)
	proj := make([]float32, T*H)
	gate := make([]float32, T*ff)
	up := make([]float32, T*ff)
	eps := float32(cfg.RMSNormEps)
	pos0 := c.n
	for li := range m.Weights.Layers {
		l, d := &m.Weights.Layers[li], &m.layers[li]
		rmsNorm(xn, x, l.AttnNorm, H, eps)
		for _, p := range []struct {
			dst  []float32
			w    backend.Buffer
			bias []float32
		}{{q, d.q, l.QBias}, {k, d.k, l.KBias}, {v, d.v, l.VBias}} {
			n := len(p.dst) / T
			if err := c.matmul(p.dst, xn, p.w, T, n, H); err != nil {
				return nil, err
			}
			addBias(p.dst, p.bias)
		}
		m.rope(q, cfg.Heads, pos0)
		m.rope(k, cfg.KVHeads, pos0)
		c.k[li] = append(c.k[li], k...)
		c.v[li] = append(c.v[li], v...)
		attention(att, q, c.k[li], c.v[li], T, pos0, cfg.Heads, cfg.KVHeads, cfg.HeadDim)
		if err := c.matmul(proj, att, d.o, T, H, qd); err != nil {
			return nil, err
		}
		addBias(proj, l.OBias)
		add(x, proj)

		rmsNorm(xn, x, l.MLPNorm, H, eps)
		if err := c.matmul(gate, xn, d.gate, T, ff, H); err != nil {
			return nil, err
		}
		if err := c.matmul(up, xn, d.up, T, ff, H); err != nil {
			return nil, err
		}
		swiGLU(gate, up)
		if err := c.matmul(proj, gate, d.down, T, H, ff); err != nil {
			return nil, err
		}
		add(x, proj)
	}
	c.n += T
	rmsNorm(xn, x, m.Weights.Norm, H, eps)
	logits := make([]float32, T*cfg.Vocab)
	if err := c.matmul(logits, xn, m.head, T, cfg.Vocab, H); err != nil {
		return nil, err
	}
	return logits, nil
}

// Greedy appends n tokens to prompt, each the argmax of the logits after the
// tokens before it, stopping early after EOS. It returns the new tokens.
func (m *Model) Greedy(prompt []int, n int) ([]int, error) {
	c := m.NewCache()
	logits, err := m.Forward(c, prompt)
	if err != nil {
		return nil, err
	}
	var out []int
	V := m.Config.Vocab
	for len(out) < n {
		next := argmax(logits[len(logits)-V:])
		out = append(out, next)
		if next == m.Config.EOS {
			break
		}
		if logits, err = m.Forward(c, []int{next}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// matmul is dst[m×n] = x[m×k]·w[n×k]ᵀ on the backend, through the cache's
// scratch buffers.
func (c *Cache) matmul(dst, x []float32, w backend.Buffer, m, n, k int) error {
	b := c.m.b
	grow := func(buf *backend.Buffer, n int) (backend.Buffer, error) {
		if *buf == nil || (*buf).Len() < n {
			nb, err := b.Alloc(backend.F32, n)
			if err != nil {
				return nil, fmt.Errorf("lm: %w", err)
			}
			if *buf != nil {
				if err := b.Free(*buf); err != nil {
					return nil, fmt.Errorf("lm: %w", err)
				}
			}
			*buf = nb
		}
		return (*buf).Slice(0, n), nil
	}
	in, err := grow(&c.in, m*k)
	if err != nil {
		return err
	}
	out, err := grow(&c.out, m*n)
	if err != nil {
		return err
	}
	if err := b.Upload(in, x[:m*k]); err != nil {
		return fmt.Errorf("lm: %w", err)
	}
	if err := b.GemmF32(m, n, k, in, w, out); err != nil {
		return fmt.Errorf("lm: %w", err)
	}
	if err := b.Download(dst[:m*n], out); err != nil {
		return fmt.Errorf("lm: %w", err)
	}
	return nil
}

// rmsNorm is, for each row of n elements,
// dst[i] = x[i] / sqrt(mean(x²) + eps) * w[i].
func rmsNorm(dst, x, w []float32, n int, eps float32) {
	for r := 0; r < len(x); r += n {
		row := x[r : r+n]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(ss/float64(n)+float64(eps)))
		for i, v := range row {
			dst[r+i] = v * inv * w[i]
		}
	}
}

// addBias is x[r·n+i] += bias[i] over the rows; nothing when bias is nil.
func addBias(x, bias []float32) {
	if bias == nil {
		return
	}
	for r := 0; r < len(x); r += len(bias) {
		for i, b := range bias {
			x[r+i] += b
		}
	}
}

// add is for i := range x { x[i] += y[i] }.
func add(x, y []float32) {
	for i := range x {
		x[i] += y[i]
	}
}

// swiGLU is for i := range g { g[i] = silu(g[i]) * u[i] }.
func swiGLU(g, u []float32) {
	for i, x := range g {
		g[i] = x / (1 + float32(math.Exp(float64(-x)))) * u[i]
	}
}

// rope rotates, in place, each head of x ([T][heads·HeadDim], token t at
// position pos0+t) in the rotate-half layout: element i of a head pairs with
// element i+d/2, rotated by angle pos·invFreq[i].
func (m *Model) rope(x []float32, heads, pos0 int) {
	d := m.Config.HeadDim
	half := d / 2
	row := heads * d
	for t := 0; t*row < len(x); t++ {
		pos := float64(pos0 + t)
		for i, f := range m.invFreq {
			s, c := math.Sincos(pos * f)
			sin, cos := float32(s), float32(c)
			for h := 0; h < heads; h++ {
				o := t*row + h*d
				a, b := x[o+i], x[o+i+half]
				x[o+i] = a*cos - b*sin
				x[o+i+half] = b*cos + a*sin
			}
		}
	}
}

// attention is grouped-query causal attention of the T queries in q (token t
// at position pos0+t) over the keys and values of positions 0…pos0+t in
// keys and vals ([pos][kvHeads·d]), written to out ([T][heads·d]).
func attention(out, q, keys, vals []float32, T, pos0, heads, kvHeads, d int) {
	group := heads / kvHeads
	kvRow := kvHeads * d
	scale := float32(1 / math.Sqrt(float64(d)))
	scores := make([]float32, pos0+T)
	for t := 0; t < T; t++ {
		n := pos0 + t + 1
		for h := 0; h < heads; h++ {
			qh := q[(t*heads+h)*d : (t*heads+h+1)*d]
			kvo := (h / group) * d
			maxS := float32(math.Inf(-1))
			for p := 0; p < n; p++ {
				kh := keys[p*kvRow+kvo : p*kvRow+kvo+d]
				var s float32
				for i, qv := range qh {
					s += qv * kh[i]
				}
				s *= scale
				scores[p] = s
				maxS = max(maxS, s)
			}
			var sum float32
			for p := 0; p < n; p++ {
				e := float32(math.Exp(float64(scores[p] - maxS)))
				scores[p] = e
				sum += e
			}
			oh := out[(t*heads+h)*d : (t*heads+h+1)*d]
			clear(oh)
			for p := 0; p < n; p++ {
				w := scores[p] / sum
				vh := vals[p*kvRow+kvo : p*kvRow+kvo+d]
				for i, vv := range vh {
					oh[i] += w * vv
				}
			}
		}
	}
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

// Close frees the cache's scratch buffers on the backend; the cache may be
// used again afterwards (it allocates them anew).
func (c *Cache) Close() error {
	var errs []error
	for _, b := range []*backend.Buffer{&c.in, &c.out} {
		if *b != nil {
			errs = append(errs, c.m.b.Free(*b))
			*b = nil
		}
	}
	return errors.Join(errs...)
}
