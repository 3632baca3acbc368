package backend

import (
	"fmt"
	"math"
)

// LMOps is implemented by backends that run, on their own memory, the
// operations a Llama forward pass needs beside its GEMMs. It is optional:
// callers use the functions of the same names in this package (RMSNorm,
// RoPE, ...), which validate their arguments, call the backend's method
// when it has one, and otherwise run the generic Go twin (RMSNormF32, ...)
// on the buffers' host memory, or on host copies moved with Download and
// Upload.
//
// Every buffer is F32 and every matrix row-major. An output may be the
// same buffer as one input (the operation runs in place) where a method
// says so; it must not overlap an input otherwise. Small integer vectors
// (token ids, positions, row limits) and the RoPE frequencies are host
// slices: the host knows them, and a device backend uploads them itself.
// What each operation must compute, and how closely, is in its twin's
// comment and in backendtest.
type LMOps interface {
	// RMSNorm is RMSNormF32 on buffers; dst may be x.
	RMSNorm(dst, x, weight Buffer, rows, cols int, eps float32) error
	// RoPE is RoPEF32 on buffers, for len(pos) rows; dst may be x.
	RoPE(dst, x Buffer, r *Rotary, pos []int32) error
	// SwiGLU is SwiGLUF32 on buffers; dst may be gate or up.
	SwiGLU(dst, gate, up Buffer) error
	// Softmax is SoftmaxF32 on buffers; dst may be x.
	Softmax(dst, x Buffer, rows, cols int, limit []int32) error
	// Embed is EmbedF32 on buffers.
	Embed(dst, table Buffer, ids []int32, dim int) error
	// Attend is AttentionF32 on buffers.
	Attend(out, q, k, v Buffer, a *Attention) error
	// Add is AddF32 on buffers; dst may be x, or y when as long as x.
	Add(dst, x, y Buffer) error
	// QuantizeRows is QuantizeRowsS8 on buffers (codes S8).
	QuantizeRows(codes, scales, x Buffer, rows, cols int) error
}

// Rotary describes rotary position embeddings over rows of Heads heads of
// Dim values each (x is [rows, Heads, Dim]).
type Rotary struct {
	Heads, Dim int
	// Interleaved selects the pairs rotated together: false pairs (i,
	// i+Dim/2), Hugging Face's rotate_half; true pairs (2i, 2i+1), as
	// llama.cpp (LLAMA_ROPE_TYPE_NORM) and llama2.c do on Q/K rows
	// permuted for it (see model/llamacpp.PermuteQK). Pair i turns by
	// the angle of frequency i in both layouts.
	Interleaved bool
	// Freqs are the Dim/2 inverse frequencies, from RoPEFreqs.
	Freqs []float32
	// Scale multiplies cos and sin, each rounded to float32 before the
	// rotation, as transformers multiplies its cos/sin tables by the
	// rotary embedding's attention_scaling (YaRN's mscale, for example
	// 0.1·ln(factor)+1); rotating q and k both by it scales the attention
	// scores by Scale². 0 means 1 (no scaling).
	Scale float32
}

// scale is the effective cos/sin multiplier.
func (r *Rotary) scale() float32 {
	if r.Scale != 0 {
		return r.Scale
	}
	return 1
}

// Check reports whether r is valid: Dim even and positive, Heads
// positive, Dim/2 frequencies, Scale 0 or positive and finite.
func (r *Rotary) Check() error {
	switch {
	case r == nil:
		return fmt.Errorf("rope: no parameters")
	case r.Heads <= 0 || r.Dim <= 0 || r.Dim%2 != 0:
		return fmt.Errorf("rope: %d heads of dimension %d: want a positive count and a positive even dimension", r.Heads, r.Dim)
	case len(r.Freqs) != r.Dim/2:
		return fmt.Errorf("rope: %d frequencies for dimension %d, want %d", len(r.Freqs), r.Dim, r.Dim/2)
	case r.Scale < 0 || math.IsInf(float64(r.Scale), 0) || r.Scale != r.Scale:
		return fmt.Errorf("rope: cos/sin scale %g is not positive and finite", r.Scale)
	}
	return nil
}

// RoPEFreqs returns the d/2 inverse frequencies of rotary embeddings of
// dimension d and base theta, in float32 exactly as transformers'
// LlamaRotaryEmbedding (rope_type "default") computes them:
//
//	for i := range d/2 {
//		e := float32(2*i) / float32(d)                         // arange(0, d, 2).float() / d
//		freqs[i] = 1 / float32(math.Pow(float64(theta), float64(e))) // 1.0 / base**e, in float32
//		if factors != nil {
//			freqs[i] /= factors[i]                             // float32
//		}
//	}
//
// where the float32 power is correctly rounded (torch's powf may differ in
// the last bit for some i). factors, when not nil, holds d/2 divisors as
// llama.cpp's rope_freqs tensor stores Llama 3's rope_scaling (ggml_rope_ext
// divides each angle by them); Hugging Face's "llama3" rope_type computes
// the same scaled frequencies in its own float32 steps, which may differ
// in the last bit. llama.cpp computes angles differently, pos·θ^(-2i/d)
// by repeated float32 multiplication, so its angles drift from these by a
// few ulps per pair index: the same function, not the same bits.
//
// Computing the table once on the host fixes the frequencies bit for bit
// on every device; an operation then needs only float32(pos)·freq and
// cos/sin.
func RoPEFreqs(theta float32, d int, factors []float32) ([]float32, error) {
	if d <= 0 || d%2 != 0 {
		return nil, fmt.Errorf("rope: dimension %d is not positive and even", d)
	}
	if factors != nil && len(factors) != d/2 {
		return nil, fmt.Errorf("rope: %d frequency factors for dimension %d, want %d", len(factors), d, d/2)
	}
	if !(theta > 0) || math.IsInf(float64(theta), 0) {
		return nil, fmt.Errorf("rope: theta %g is not positive and finite", theta)
	}
	freqs := make([]float32, d/2)
	for i := range freqs {
		e := float32(2*i) / float32(d)
		freqs[i] = 1 / float32(math.Pow(float64(theta), float64(e)))
		if factors != nil {
			freqs[i] /= factors[i]
		}
	}
	return freqs, nil
}

// Attention describes causal scaled dot-product attention of Tokens new
// tokens against one layer's KV cache, with grouped-query heads.
//
//	q, out: [Tokens, Heads, Dim]
//	k, v:   [capacity, KVHeads, Dim], capacity ≥ Start+Tokens
//
// Token t sits at position p = Start+t and attends to cache positions
// lo..p inclusive, lo = 0 or, with a Window, max(0, p-Window+1) (the
// cache must already hold its own key and value); query head h reads KV
// head h/(Heads/KVHeads). Cache positions past Start+Tokens-1 are never
// read, nor, with a window, those before lo.
type Attention struct {
	Tokens, Heads, KVHeads, Dim int
	Start                       int
	// Scale multiplies the scores; 0 means float32(1/√Dim), as
	// transformers' head_dim**-0.5.
	Scale float32
	// Window, when positive, limits each query to the Window most recent
	// positions, its own included: a query at position p attends to keys
	// at positions j with p-Window < j ≤ p, transformers' sliding-window
	// causal mask (masking_utils.sliding_window_overlay: kv_idx > q_idx -
	// sliding_window, and causal kv_idx ≤ q_idx), as Mistral's and
	// Qwen2's sliding_window. Window 1 attends to itself only. 0 means no
	// window (full causal attention).
	Window int
}

// first is the first cache position that the query at position p reads.
func (a *Attention) first(p int) int {
	if a.Window > 0 && p >= a.Window {
		return p - a.Window + 1
	}
	return 0
}

// scale is the effective scale.
func (a *Attention) scale() float32 {
	if a.Scale != 0 {
		return a.Scale
	}
	return float32(1 / math.Sqrt(float64(a.Dim)))
}

// Check reports whether a is valid for q and out of lq elements and k
// and v of lk and lv.
func (a *Attention) Check(lq, lout, lk, lv int) error {
	if a == nil {
		return fmt.Errorf("attention: no parameters")
	}
	if a.Tokens < 0 || a.Heads <= 0 || a.KVHeads <= 0 || a.Dim <= 0 || a.Start < 0 {
		return fmt.Errorf("attention: %d tokens at %d, %d heads, %d KV heads, dimension %d", a.Tokens, a.Start, a.Heads, a.KVHeads, a.Dim)
	}
	if a.Window < 0 {
		return fmt.Errorf("attention: window %d is negative", a.Window)
	}
	if a.Heads%a.KVHeads != 0 {
		return fmt.Errorf("attention: %d heads do not share %d KV heads evenly", a.Heads, a.KVHeads)
	}
	hd, ok1 := mulOK(a.Heads, a.Dim)
	n, ok2 := mulOK(a.Tokens, hd)
	kvd, ok3 := mulOK(a.KVHeads, a.Dim)
	need, ok4 := mulOK(a.Start+a.Tokens, kvd)
	if !ok1 || !ok2 || !ok3 || !ok4 || a.Start > math.MaxInt-a.Tokens {
		return fmt.Errorf("attention: sizes overflow")
	}
	switch {
	case lq != n:
		return fmt.Errorf("attention: q has %d elements, want %d", lq, n)
	case lout != n:
		return fmt.Errorf("attention: out has %d elements, want %d", lout, n)
	case lk != lv:
		return fmt.Errorf("attention: K cache has %d elements, V cache %d", lk, lv)
	case lk%kvd != 0 || lk < need:
		return fmt.Errorf("attention: the KV cache has %d elements, want a multiple of %d and at least %d", lk, kvd, need)
	}
	return nil
}

// CheckRMSNorm reports whether RMSNorm's operands fit rows×cols.
func CheckRMSNorm(ld, lx, lw, rows, cols int) error {
	n, ok := mulOK(rows, cols)
	switch {
	case rows < 0 || cols <= 0 || !ok:
		return fmt.Errorf("rmsnorm: %d rows of %d", rows, cols)
	case lx != n || ld != n:
		return fmt.Errorf("rmsnorm: x has %d elements and dst %d, want %d·%d", lx, ld, rows, cols)
	case lw != cols:
		return fmt.Errorf("rmsnorm: weight has %d elements, want %d", lw, cols)
	}
	return nil
}

// CheckRoPE reports whether RoPE's operands fit r and len(pos) rows.
func CheckRoPE(ld, lx int, r *Rotary, pos []int32) error {
	if err := r.Check(); err != nil {
		return err
	}
	n := len(pos) * r.Heads * r.Dim
	if lx != n || ld != n {
		return fmt.Errorf("rope: x has %d elements and dst %d, want %d positions·%d heads·%d", lx, ld, len(pos), r.Heads, r.Dim)
	}
	for i, p := range pos {
		if p < 0 {
			return fmt.Errorf("rope: position %d of row %d is negative", p, i)
		}
	}
	return nil
}

// CheckSwiGLU reports whether SwiGLU's operands agree.
func CheckSwiGLU(ld, lg, lu int) error {
	if lg != lu || ld != lg {
		return fmt.Errorf("swiglu: dst, gate and up have %d, %d and %d elements", ld, lg, lu)
	}
	return nil
}

// CheckSoftmax reports whether Softmax's operands fit rows×cols and its
// limits lie in [1, cols].
func CheckSoftmax(ld, lx, rows, cols int, limit []int32) error {
	n, ok := mulOK(rows, cols)
	switch {
	case rows < 0 || cols <= 0 || !ok:
		return fmt.Errorf("softmax: %d rows of %d", rows, cols)
	case lx != n || ld != n:
		return fmt.Errorf("softmax: x has %d elements and dst %d, want %d·%d", lx, ld, rows, cols)
	case limit != nil && len(limit) != rows:
		return fmt.Errorf("softmax: %d limits for %d rows", len(limit), rows)
	}
	for r, l := range limit {
		if l < 1 || int(l) > cols {
			return fmt.Errorf("softmax: row %d's limit %d is outside [1, %d]", r, l, cols)
		}
	}
	return nil
}

// CheckEmbed reports whether Embed's operands fit: a table of rows of
// dim, every id a row of it.
func CheckEmbed(ld, lt int, ids []int32, dim int) error {
	if dim <= 0 || lt%dim != 0 {
		return fmt.Errorf("embed: a table of %d elements has no rows of %d", lt, dim)
	}
	if n, ok := mulOK(len(ids), dim); !ok || ld != n {
		return fmt.Errorf("embed: dst has %d elements, want %d ids·%d", ld, len(ids), dim)
	}
	vocab := lt / dim
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("embed: token %d at %d is outside a vocabulary of %d", id, i, vocab)
		}
	}
	return nil
}

// RMSNormF32 is, for each row r of x [rows, cols], as transformers'
// LlamaRMSNorm computes it for float32 models:
//
//	var ss float32
//	for c := range cols {
//		ss += x[r,c] * x[r,c]                        // float32, left to right
//	}
//	s := float32(1 / math.Sqrt(float64(ss/float32(cols) + eps)))
//	for c := range cols {
//		dst[r,c] = weight[c] * (x[r,c] * s)           // float32
//	}
//
// The sum of squares accumulates in float32 as Hugging Face's does (its
// summation order is torch's, not this loop's); llama.cpp's ggml_rms_norm
// accumulates the float32 squares in double and applies the weight as a
// separate multiplication. Both overflow to Inf, and so give zeros, once
// x² does (|x| ≳ 1.8e19). dst may be x. It panics when the sizes do not
// agree (CheckRMSNorm).
func RMSNormF32(dst, x, weight []float32, rows, cols int, eps float32) {
	if err := CheckRMSNorm(len(dst), len(x), len(weight), rows, cols); err != nil {
		panic(err)
	}
	for r := range rows {
		xr, dr := x[r*cols:(r+1)*cols], dst[r*cols:(r+1)*cols]
		var ss float32
		for _, v := range xr {
			ss += float32(v * v)
		}
		s := float32(1 / math.Sqrt(float64(ss/float32(cols)+eps)))
		for c, v := range xr {
			dr[c] = weight[c] * float32(v*s)
		}
	}
}

// RoPEF32 rotates each head of x [len(pos), r.Heads, r.Dim] by its row's
// position, as transformers' apply_rotary_pos_emb (r.Interleaved false)
// or llama.cpp's rope (true) does: for row t, head h and pair i,
//
//	angle := float32(pos[t]) * r.Freqs[i]          // float32
//	c, s := cos(angle), sin(angle)                 // rounded to float32
//	if r.Scale != 0 {
//		c, s = c*r.Scale, s*r.Scale                // float32, each rounded
//	}
//	a, b := x[t,h,i], x[t,h,i+Dim/2]               // interleaved: x[t,h,2i], x[t,h,2i+1]
//	dst[a's place] = a*c - b*s                     // float32, each product rounded
//	dst[b's place] = b*c + a*s
//
// The angle is one float32 product, bit-identical everywhere; at position
// 100000 its rounding already moves it by up to ~0.004 rad, which is why
// the angle, not the exact pos·freq, is specified. dst may be x. It
// panics when the operands do not fit (CheckRoPE).
func RoPEF32(dst, x []float32, r *Rotary, pos []int32) {
	if err := CheckRoPE(len(dst), len(x), r, pos); err != nil {
		panic(err)
	}
	d, half := r.Dim, r.Dim/2
	scale := r.scale()
	for t, p := range pos {
		for h := range r.Heads {
			off := (t*r.Heads + h) * d
			xs, ds := x[off:off+d], dst[off:off+d]
			for i, f := range r.Freqs {
				angle := float32(p) * f
				c := float32(math.Cos(float64(angle)))
				s := float32(math.Sin(float64(angle)))
				if scale != 1 {
					c, s = c*scale, s*scale
				}
				ia, ib := i, i+half
				if r.Interleaved {
					ia, ib = 2*i, 2*i+1
				}
				a, b := xs[ia], xs[ib]
				ds[ia] = float32(a*c) - float32(b*s)
				ds[ib] = float32(b*c) + float32(a*s)
			}
		}
	}
}

// SwiGLUF32 is the gated activation of Llama's MLP:
//
//	for i := range dst {
//		g := gate[i]
//		dst[i] = g / (1 + exp(-g)) * up[i]   // float32; exp rounded to float32
//	}
//
// silu(g)·up as transformers (act_fn(gate_proj(x)) * up_proj(x)) and
// llama.cpp (ggml_silu_f32) compute it. exp(-g) overflows float32 for g
// below about -88.7, and silu is then -0; the exact value there is below
// 2^-119 in magnitude. dst may be gate or up. It panics when the lengths
// differ.
func SwiGLUF32(dst, gate, up []float32) {
	if err := CheckSwiGLU(len(dst), len(gate), len(up)); err != nil {
		panic(err)
	}
	for i, g := range gate {
		e := float32(math.Exp(float64(-g)))
		dst[i] = g / (1 + e) * up[i]
	}
}

// SoftmaxF32 is, for each row r of x [rows, cols], over its first n
// columns (n = limit[r], or cols when limit is nil):
//
//	m := max(x[r,0:n])
//	for c := range n { e[c] = exp(x[r,c] - m) }   // float32; exp rounded to float32
//	sum := e[0] + e[1] + ...                      // float32, left to right
//	dst[r,c] = e[c] / sum  for c < n;  dst[r,c] = 0  for c ≥ n
//
// Subtracting the row's maximum keeps exp from overflowing: a softmax of
// values up to ±1e38 is exact to a few ulps. Columns at and past the limit
// are not read (a causal mask for attention scores: row r of a query at
// position p sees p+1 keys). Entries of -Inf get probability 0; a row
// whose first n entries hold a NaN or +Inf, or only -Inf, gives NaNs.
// dst may be x. It panics when the operands do not fit (CheckSoftmax).
func SoftmaxF32(dst, x []float32, rows, cols int, limit []int32) {
	if err := CheckSoftmax(len(dst), len(x), rows, cols, limit); err != nil {
		panic(err)
	}
	for r := range rows {
		n := cols
		if limit != nil {
			n = int(limit[r])
		}
		softmaxRow(dst[r*cols:r*cols+n], x[r*cols:r*cols+n])
		clear(dst[r*cols+n : (r+1)*cols])
	}
}

// softmaxRow writes the softmax of x into dst (which may be x).
func softmaxRow(dst, x []float32) {
	m := x[0]
	for _, v := range x[1:] {
		if v > m || v != v {
			m = v
		}
	}
	var sum float32
	for c, v := range x {
		e := float32(math.Exp(float64(v - m)))
		dst[c] = e
		sum += e
	}
	for c := range dst {
		dst[c] /= sum
	}
}

// EmbedF32 copies the rows of table [vocab, dim] that ids name:
//
//	for t, id := range ids {
//		copy(dst[t*dim:(t+1)*dim], table[id*dim:(id+1)*dim])
//	}
//
// bit for bit. It panics when an id is outside the table or the sizes do
// not agree (CheckEmbed).
func EmbedF32(dst, table []float32, ids []int32, dim int) {
	if err := CheckEmbed(len(dst), len(table), ids, dim); err != nil {
		panic(err)
	}
	for t, id := range ids {
		copy(dst[t*dim:(t+1)*dim], table[int(id)*dim:(int(id)+1)*dim])
	}
}

// AttentionF32 is causal grouped-query attention (see Attention for the
// layouts): for each token t and head h, with kh = h/(Heads/KVHeads),
// p = Start+t, lo = 0, or max(0, p-Window+1) when Window > 0, and scale
// = a.Scale or float32(1/√Dim),
//
//	for j := lo; j <= p; j++ {
//		s[j] = scale * Σ_i q[t,h,i]·k[j,kh,i]        // float32 dot, left to right
//	}
//	w := softmax(s[lo:p+1])                         // as SoftmaxF32
//	out[t,h,i] = Σ_j w[j]·v[j,kh,i]                 // float32, j ascending from lo
//
// as transformers' eager attention computes it for float32 models
// (matmul, scaling, causal or sliding-window mask, softmax in float32,
// matmul): masked positions get probability exactly 0 there too. It
// panics when the operands do not fit (Attention.Check).
func AttentionF32(out, q, k, v []float32, a *Attention) {
	if err := a.Check(len(q), len(out), len(k), len(v)); err != nil {
		panic(err)
	}
	AttentionRangeF32(out, q, k, v, a, 0, a.Tokens*a.Heads, nil)
}

// AttentionRangeF32 is AttentionF32 for the (token, head) pairs t·Heads+h
// in [from, to), so that a backend can share the pairs among threads.
// scores, when it holds at least Start+Tokens elements, is scratch space
// (one per thread); nil allocates. It does not check the operands.
func AttentionRangeF32(out, q, k, v []float32, a *Attention, from, to int, scores []float32) {
	d, group := a.Dim, a.Heads/a.KVHeads
	kvStride := a.KVHeads * d
	scale := a.scale()
	if len(scores) < a.Start+a.Tokens {
		scores = make([]float32, a.Start+a.Tokens)
	}
	for th := from; th < to; th++ {
		t, h := th/a.Heads, th%a.Heads
		kh := h / group
		p := a.Start + t
		lo := a.first(p)
		qs := q[th*d : (th+1)*d]
		s := scores[:p+1-lo]
		for js := range s {
			j := lo + js
			ks := k[j*kvStride+kh*d : j*kvStride+(kh+1)*d]
			var dot float32
			for i, qv := range qs {
				dot += float32(qv * ks[i])
			}
			s[js] = scale * dot
		}
		softmaxRow(s, s)
		os := out[th*d : (th+1)*d]
		clear(os)
		for js, w := range s {
			j := lo + js
			vs := v[j*kvStride+kh*d : j*kvStride+(kh+1)*d]
			for i, vv := range vs {
				os[i] += float32(w * vv)
			}
		}
	}
}
