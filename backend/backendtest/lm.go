package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// FlushBound is the magnitude below which the results of the operations
// of backend.LMOps that pass through exp (SwiGLU, Softmax, attention
// weights) may be flushed to zero: float32 exp overflows or underflows
// there, and a device may flush subnormals.
const FlushBound = 0x1p-120

// RunLM checks the operations of backend.LMOps through the dispatching
// functions of package backend: on b's own methods when b implements
// LMOps, on the Go twins through b's memory otherwise. Each result is
// compared with a float64 reference written here, independently of the
// twins, within the bound stated by each check; Embed must be exact.
// Outputs carry guards, inputs must be left untouched, and operations
// that may run in place are also run so.
func RunLM(t *testing.T, b backend.Backend) {
	_, native := b.(backend.LMOps)
	t.Logf("%s implements backend.LMOps: %v", b.Name(), native)
	t.Run("rmsnorm", func(t *testing.T) { testRMSNorm(t, b) })
	t.Run("rope-freqs", testRoPEFreqs)
	t.Run("rope", func(t *testing.T) { testRoPE(t, b) })
	t.Run("swiglu", func(t *testing.T) { testSwiGLU(t, b) })
	t.Run("softmax", func(t *testing.T) { testSoftmax(t, b) })
	t.Run("embed", func(t *testing.T) { testEmbed(t, b) })
	t.Run("attention", func(t *testing.T) { testAttention(t, b) })
	t.Run("add", func(t *testing.T) { testAdd(t, b) })
	t.Run("quantize-rows", func(t *testing.T) { testQuantizeRows(t, b) })
	t.Run("errors", func(t *testing.T) { testLMErrors(t, b) })
}

// inPlace is an output buffer with guards that holds x: an operation run
// with it as both input and output works in place.
func inPlace(t *testing.T, b backend.Backend, x []float32) *output[float32] {
	t.Helper()
	o := newOutput[float32](t, b, len(x))
	if err := b.Upload(o.mid, x); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	return o
}

// withinBounds reports mismatches of got against want beyond bound[i].
func withinBounds(t *testing.T, what string, got []float32, want, bound []float64) {
	t.Helper()
	m := &mismatches{t: t}
	for i, g := range got {
		if d := math.Abs(float64(g) - want[i]); !(d <= bound[i]) {
			if !m.add("%s: element %d is %g, want %g within %.3g (off by %.3g)", what, i, g, want[i], bound[i], d) {
				break
			}
		}
	}
	m.done(what)
}

// lmValues is n values: normal times scale, with every seventh value one
// of the adversarial ones (zeros of both signs, ±scale·1e3, tiny values).
func lmValues(rnd *rand.Rand, n int, scale float64) []float32 {
	x := randNormF32(rnd, n, scale)
	adv := []float32{0, float32(math.Copysign(0, -1)), float32(scale * 1e3), float32(-scale * 1e3), 1e-30, -3e-39}
	for i := 3; i < n; i += 7 {
		x[i] = adv[rnd.IntN(len(adv))]
	}
	return x
}

func testRMSNorm(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		rows, cols int
		scale      float64
		eps        float32
	}{
		{1, 1, 1, 1e-5}, {1, 1, 1e15, 1e-6}, {3, 7, 1, 1e-5}, {5, 64, 0.01, 1e-6},
		{4, 257, 100, 1e-5}, {2, 1000, 1e15, 1e-5}, {3, 33, 1e-25, 1e-6},
	} {
		t.Run(sizeName(c.rows, c.cols), func(t *testing.T) {
			x := lmValues(rnd, c.rows*c.cols, c.scale)
			// Adversarial rows: all zeros, all equal, one spike.
			if c.rows >= 3 {
				clear(x[:c.cols])
				for i := range c.cols {
					x[c.cols+i] = float32(c.scale)
				}
				x[2*c.cols] = float32(c.scale * 1e4)
			}
			w := lmValues(rnd, c.cols, 1)
			want, bound := refRMSNorm(x, w, c.rows, c.cols, c.eps)
			xb, wb := upload(t, b, x), upload(t, b, w)
			out := newOutput[float32](t, b, len(x))
			if err := backend.RMSNorm(b, out.mid, xb, wb, c.rows, c.cols, c.eps); err != nil {
				t.Fatal(err)
			}
			withinBounds(t, "rmsnorm", out.read(t, b), want, bound)
			checkUnchanged(t, b, xb, x, "x")
			checkUnchanged(t, b, wb, w, "weight")
			io := inPlace(t, b, x)
			if err := backend.RMSNorm(b, io.mid, io.mid, wb, c.rows, c.cols, c.eps); err != nil {
				t.Fatal(err)
			}
			withinBounds(t, "rmsnorm in place", io.read(t, b), want, bound)
		})
	}
}

// refRMSNorm is x·w/√(mean(x²)+eps) in float64, with the bound
// (cols+8)·Unit·|y| + 4·Subnormal: the float32 sum of cols positive
// squares, then six roundings.
func refRMSNorm(x, w []float32, rows, cols int, eps float32) (want, bound []float64) {
	want, bound = make([]float64, len(x)), make([]float64, len(x))
	for r := range rows {
		ss := 0.0
		for c := range cols {
			v := float64(x[r*cols+c])
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss/float64(cols)+float64(eps))
		for c := range cols {
			i := r*cols + c
			want[i] = float64(x[i]) * inv * float64(w[c])
			bound[i] = float64(cols+8)*Unit*math.Abs(want[i]) + 4*Subnormal
		}
	}
	return want, bound
}

// testRoPEFreqs holds backend.RoPEFreqs to its formula, bit for bit, and
// to values known exactly.
func testRoPEFreqs(t *testing.T) {
	f, err := backend.RoPEFreqs(10000, 4, nil)
	if err != nil || len(f) != 2 || f[0] != 1 || f[1] != float32(0.01) {
		t.Errorf("RoPEFreqs(10000, 4) = %v, %v; want [1 0.01]", f, err)
	}
	for _, c := range []struct {
		theta float32
		d     int
	}{{10000, 2}, {10000, 6}, {10000, 64}, {500000, 128}, {10000, 80}, {1e6, 130}} {
		var factors []float32
		if c.d == 128 {
			factors = make([]float32, c.d/2)
			for i := range factors {
				factors[i] = 1 + float32(i)/8 // Llama 3's rope_freqs run from 1 to 8
			}
		}
		got, err := backend.RoPEFreqs(c.theta, c.d, factors)
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.d / 2 {
			e := float32(i*2) / float32(c.d)
			want := float32(1) / float32(math.Pow(float64(c.theta), float64(e)))
			if factors != nil {
				want /= factors[i]
			}
			if got[i] != want {
				t.Errorf("theta %g d %d: frequency %d is %g, want %g", c.theta, c.d, i, got[i], want)
			}
		}
	}
	for _, bad := range []func() error{
		func() error { _, err := backend.RoPEFreqs(10000, 5, nil); return err },
		func() error { _, err := backend.RoPEFreqs(10000, 0, nil); return err },
		func() error { _, err := backend.RoPEFreqs(0, 4, nil); return err },
		func() error { _, err := backend.RoPEFreqs(10000, 4, []float32{1}); return err },
	} {
		mustFail(t, "RoPEFreqs with bad arguments", bad)
	}
}

func testRoPE(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	pos := []int32{0, 1, 2, 7, 4095, 100000, 131071, 1 << 20}
	for _, c := range []struct {
		heads, d int
		theta    float32
		scaled   bool
	}{{1, 2, 10000, false}, {3, 6, 10000, false}, {2, 64, 10000, false}, {4, 10, 500000, true}, {1, 128, 500000, true}, {5, 130, 1e6, false}} {
		var factors []float32
		if c.scaled {
			factors = make([]float32, c.d/2)
			for i := range factors {
				factors[i] = 1 + 7*float32(i)/float32(c.d/2)
			}
		}
		freqs, err := backend.RoPEFreqs(c.theta, c.d, factors)
		if err != nil {
			t.Fatal(err)
		}
		for _, interleaved := range []bool{false, true} {
			// A cos/sin scale (YaRN's mscale) on the scaled cases.
			var scale float32
			if c.scaled {
				scale = 1.2079442
			}
			r := &backend.Rotary{Heads: c.heads, Dim: c.d, Interleaved: interleaved, Freqs: freqs, Scale: scale}
			name := sizeName(len(pos), c.heads, c.d)
			if interleaved {
				name += "-interleaved"
			}
			if scale != 0 {
				name += "-mscale"
			}
			t.Run(name, func(t *testing.T) {
				x := lmValues(rnd, len(pos)*c.heads*c.d, 1)
				want, bound := refRoPE(x, pos, c.heads, c.d, freqs, interleaved, scale)
				xb := upload(t, b, x)
				out := newOutput[float32](t, b, len(x))
				if err := backend.RoPE(b, out.mid, xb, r, pos); err != nil {
					t.Fatal(err)
				}
				withinBounds(t, "rope", out.read(t, b), want, bound)
				checkUnchanged(t, b, xb, x, "x")
				io := inPlace(t, b, x)
				if err := backend.RoPE(b, io.mid, io.mid, r, pos); err != nil {
					t.Fatal(err)
				}
				withinBounds(t, "rope in place", io.read(t, b), want, bound)
			})
		}
	}
}

// refRoPE rotates in float64 by the specified angle, float32(float32(pos)
// ·freq) (the float64 product of two float32s is exact, so converting it
// rounds once), and multiplies by scale (1 when 0), with the bound
// 10·Unit·scale·(|a|+|b|) + 4·Subnormal: the roundings of cos, sin, their
// scaling, two products and a sum, and a device's cosf and sinf a few
// ulps from correct.
func refRoPE(x []float32, pos []int32, heads, d int, freqs []float32, interleaved bool, scale32 float32) (want, bound []float64) {
	scale := 1.0
	if scale32 != 0 {
		scale = float64(scale32)
	}
	want, bound = make([]float64, len(x)), make([]float64, len(x))
	for t, p := range pos {
		for h := range heads {
			base := (t*heads + h) * d
			for i := range d / 2 {
				angle := float64(float32(float64(p) * float64(freqs[i])))
				ia, ib := base+i, base+i+d/2
				if interleaved {
					ia, ib = base+2*i, base+2*i+1
				}
				a, bb := float64(x[ia]), float64(x[ib])
				c, s := scale*math.Cos(angle), scale*math.Sin(angle)
				want[ia] = a*c - bb*s
				want[ib] = a*s + bb*c
				e := 10*Unit*scale*(math.Abs(a)+math.Abs(bb)) + 4*Subnormal
				bound[ia], bound[ib] = e, e
			}
		}
	}
	return want, bound
}

func testSwiGLU(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 7, 1000, 4099} {
		t.Run(sizeName(n), func(t *testing.T) {
			g, u := lmValues(rnd, n, 4), lmValues(rnd, n, 1)
			// Where exp(-g) overflows or underflows, and around it.
			edge := []float32{-88, -88.8, -89, -100, -104, -1e30, 88, 89, 1e30, 20, -20, 1e-40}
			for i := 0; i < n; i += 5 {
				g[i] = edge[(i/5)%len(edge)]
			}
			want, bound := make([]float64, n), make([]float64, n)
			for i := range n {
				gv := float64(g[i])
				want[i] = gv / (1 + math.Exp(-gv)) * float64(u[i])
				bound[i] = 8*Unit*math.Abs(want[i]) + FlushBound*math.Abs(float64(u[i])) + 2*Subnormal
			}
			gb, ub := upload(t, b, g), upload(t, b, u)
			out := newOutput[float32](t, b, n)
			if err := backend.SwiGLU(b, out.mid, gb, ub); err != nil {
				t.Fatal(err)
			}
			withinBounds(t, "swiglu", out.read(t, b), want, bound)
			checkUnchanged(t, b, gb, g, "gate")
			checkUnchanged(t, b, ub, u, "up")
			io := inPlace(t, b, g)
			if err := backend.SwiGLU(b, io.mid, io.mid, ub); err != nil {
				t.Fatal(err)
			}
			withinBounds(t, "swiglu into gate", io.read(t, b), want, bound)
			io = inPlace(t, b, u)
			if err := backend.SwiGLU(b, io.mid, gb, io.mid); err != nil {
				t.Fatal(err)
			}
			withinBounds(t, "swiglu into up", io.read(t, b), want, bound)
		})
	}
}

func testSoftmax(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	nan := float32(math.NaN())
	for _, c := range []struct {
		rows, cols int
		scale      float64
		causal     bool
	}{{1, 1, 1, false}, {3, 5, 1, false}, {4, 129, 10, false}, {2, 1000, 1e30, false}, {6, 6, 1, true}, {5, 300, 30, true}} {
		name := sizeName(c.rows, c.cols)
		if c.causal {
			name += "-causal"
		}
		t.Run(name, func(t *testing.T) {
			x := randNormF32(rnd, c.rows*c.cols, c.scale)
			var limit []int32
			if c.causal {
				limit = make([]int32, c.rows)
				for r := range limit {
					limit[r] = int32(c.cols - c.rows + r + 1)
					// Masked columns must not be read.
					for j := int(limit[r]); j < c.cols; j++ {
						x[r*c.cols+j] = nan
					}
				}
			}
			// Adversarial rows: all equal, -Inf entries, one dominant value.
			if c.rows >= 3 && c.cols >= 3 {
				n0 := c.cols
				if limit != nil {
					n0 = int(limit[0])
				}
				for j := range n0 {
					x[j] = 7
				}
				x[c.cols] = float32(math.Inf(-1))
				x[c.cols+2] = float32(math.Inf(-1))
				x[2*c.cols+1] = 1e30
			}
			want, bound := refSoftmax(x, c.rows, c.cols, limit)
			xb := upload(t, b, x)
			out := newOutput[float32](t, b, len(x))
			if err := backend.Softmax(b, out.mid, xb, c.rows, c.cols, limit); err != nil {
				t.Fatal(err)
			}
			got := out.read(t, b)
			withinBounds(t, "softmax", got, want, bound)
			checkUnchanged(t, b, xb, x, "x")
			io := inPlace(t, b, x)
			if err := backend.Softmax(b, io.mid, io.mid, c.rows, c.cols, limit); err != nil {
				t.Fatal(err)
			}
			withinBounds(t, "softmax in place", io.read(t, b), want, bound)
		})
	}
}

// refSoftmax is the softmax of each row's first limit[r] values in float64,
// 0 past them, with the bound 2·Unit·p·(n + 8 + |x−max|) + FlushBound:
// the rounding of x−max moves exp's argument by Unit·|x−max|, and exp,
// the float32 sum of n terms and the division round.
func refSoftmax(x []float32, rows, cols int, limit []int32) (want, bound []float64) {
	want, bound = make([]float64, len(x)), make([]float64, len(x))
	for r := range rows {
		n := cols
		if limit != nil {
			n = int(limit[r])
		}
		row := x[r*cols : r*cols+n]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - m)
		}
		for j, v := range row {
			p := math.Exp(float64(v)-m) / sum
			d := float64(v) - m
			if math.IsInf(d, 0) {
				d = 0
			}
			want[r*cols+j] = p
			bound[r*cols+j] = 2*Unit*p*(float64(n)+8+math.Abs(d)) + FlushBound
		}
	}
	return want, bound
}

func testEmbed(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct{ vocab, dim int }{{1, 1}, {5, 7}, {512, 64}, {300, 33}} {
		t.Run(sizeName(c.vocab, c.dim), func(t *testing.T) {
			table := lmValues(rnd, c.vocab*c.dim, 1)
			table[0] = float32(math.Inf(1))
			ids := []int32{0, int32(c.vocab - 1), 0, int32(c.vocab / 2)}
			for range 9 {
				ids = append(ids, int32(rnd.IntN(c.vocab)))
			}
			tb := upload(t, b, table)
			out := newOutput[float32](t, b, len(ids)*c.dim)
			if err := backend.Embed(b, out.mid, tb, ids, c.dim); err != nil {
				t.Fatal(err)
			}
			got := out.read(t, b)
			m := &mismatches{t: t}
			for i, id := range ids {
				for j := range c.dim {
					if w := table[int(id)*c.dim+j]; !same(got[i*c.dim+j], w) {
						if !m.add("token %d (id %d) element %d: %v, want %v", i, id, j, got[i*c.dim+j], w) {
							break
						}
					}
				}
			}
			m.done("embed")
			checkUnchanged(t, b, tb, table, "table")
		})
	}
}

func testAttention(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		tokens, heads, kvHeads, d, start, spare int
		qScale                                  float64
		scale                                   float32
		window                                  int
	}{
		{1, 1, 1, 1, 0, 0, 1, 0, 0},
		{3, 4, 4, 8, 0, 2, 1, 0, 0},   // GQA ratio 1 (multi-head)
		{4, 6, 3, 6, 5, 1, 1, 0, 0},   // ratio 2
		{5, 8, 2, 10, 2, 3, 1, 0, 0},  // ratio 4
		{2, 8, 1, 64, 37, 4, 1, 0, 0}, // ratio 8
		{7, 16, 4, 17, 0, 0, 1, 0, 0}, // odd head dimension
		{3, 4, 2, 16, 20, 5, 30, 0, 0},
		{2, 4, 1, 12, 11, 0, 1, 0.5, 0},
		{2, 2, 1, 4, 100000, 3, 1, 0, 0}, // far positions
		// Sliding windows: shorter than the prompt, than the cache, of
		// one position, and longer than everything (no effect).
		{9, 4, 2, 8, 0, 1, 1, 0, 4},
		{5, 6, 3, 6, 7, 2, 1, 0, 3},
		{4, 2, 1, 4, 3, 0, 1, 0, 1},
		{3, 4, 4, 5, 2, 1, 1, 0, 100},
		{2, 2, 1, 4, 100000, 3, 1, 0, 4096},
	} {
		a := &backend.Attention{Tokens: c.tokens, Heads: c.heads, KVHeads: c.kvHeads, Dim: c.d, Start: c.start, Scale: c.scale, Window: c.window}
		name := sizeName(c.tokens, c.heads, c.kvHeads, c.d, c.start)
		if c.window > 0 {
			name += fmt.Sprintf("-window%d", c.window)
		}
		t.Run(name, func(t *testing.T) {
			capacity := c.start + c.tokens + c.spare
			row := c.kvHeads * c.d
			q := randNormF32(rnd, c.tokens*c.heads*c.d, c.qScale)
			k := randNormF32(rnd, capacity*row, 1)
			v := lmValues(rnd, capacity*row, 1)
			// Positions after a token's own are in the cache but masked:
			// keys there would dominate its scores if read. Positions past
			// the last token are NaN, and never read.
			for j := c.start + 1; j < c.start+c.tokens; j++ {
				for i := range row {
					k[j*row+i] = 50 * float32(math.Copysign(1, float64(q[i%len(q)])))
				}
			}
			for i := (c.start + c.tokens) * row; i < len(k); i++ {
				k[i], v[i] = float32(math.NaN()), float32(math.NaN())
			}
			// With a window, the positions before every query's window
			// are NaN: they must not be read.
			if c.window > 0 {
				for i := 0; i < (c.start-c.window+1)*row; i++ {
					k[i], v[i] = float32(math.NaN()), float32(math.NaN())
				}
			}
			want, bound := refAttention(q, k, v, c.tokens, c.heads, c.kvHeads, c.d, c.start, c.scale, c.window)
			qb, kb, vb := upload(t, b, q), upload(t, b, k), upload(t, b, v)
			out := newOutput[float32](t, b, len(q))
			if err := backend.Attend(b, out.mid, qb, kb, vb, a); err != nil {
				t.Fatal(err)
			}
			withinBounds(t, "attention", out.read(t, b), want, bound)
			checkUnchanged(t, b, qb, q, "q")
			checkUnchanged(t, b, kb, k, "K cache")
			checkUnchanged(t, b, vb, v, "V cache")
		})
	}
}

// refAttention is causal grouped-query attention in float64, scale being
// float32(1/√d) when 0; with window > 0 the query at position p sees the
// keys at j with p-window < j ≤ p (transformers' sliding-window causal
// mask). Its bound, for each output, is
//
//	Unit·(2(d+2)·A + 2·D + 2n + 16)·Σ_j p_j|v_j| + FlushBound·max_j|v_j|
//
// where A is the largest scale·Σ_i|q_i·k_ji| (a float32 dot product errs
// by (d+2)·Unit of it, and a score's error moves p_j and the normaliser),
// D the largest |s_j − max s| (its subtraction rounds), and n the number
// of positions summed.
func refAttention(q, k, v []float32, tokens, heads, kvHeads, d, start int, scale32 float32, window int) (want, bound []float64) {
	if scale32 == 0 {
		scale32 = float32(1 / math.Sqrt(float64(d)))
	}
	scale := float64(scale32)
	want, bound = make([]float64, len(q)), make([]float64, len(q))
	row := kvHeads * d
	for t := range tokens {
		pos := start + t
		// The keys query pos sees, as transformers' mask functions say it.
		var seen []int
		for j := 0; j <= pos; j++ {
			if window <= 0 || j > pos-window {
				seen = append(seen, j)
			}
		}
		n := len(seen)
		for h := range heads {
			kh := h * kvHeads / heads
			qs := q[(t*heads+h)*d : (t*heads+h+1)*d]
			s := make([]float64, n)
			maxA, m := 0.0, math.Inf(-1)
			for js, j := range seen {
				dot, abs := 0.0, 0.0
				for i := range d {
					p := float64(qs[i]) * float64(k[j*row+kh*d+i])
					dot += p
					abs += math.Abs(p)
				}
				s[js] = scale * dot
				maxA = math.Max(maxA, scale*abs)
				m = math.Max(m, s[js])
			}
			sum, maxD := 0.0, 0.0
			for js := range seen {
				sum += math.Exp(s[js] - m)
				maxD = math.Max(maxD, m-s[js])
			}
			for i := range d {
				o, mag, vmax := 0.0, 0.0, 0.0
				for js, j := range seen {
					p := math.Exp(s[js]-m) / sum
					vv := float64(v[j*row+kh*d+i])
					o += p * vv
					mag += p * math.Abs(vv)
					vmax = math.Max(vmax, math.Abs(vv))
				}
				idx := (t*heads+h)*d + i
				want[idx] = o
				bound[idx] = Unit*(2*float64(d+2)*maxA+2*maxD+2*float64(n)+16)*mag + FlushBound*vmax
			}
		}
	}
	return want, bound
}

// testLMErrors checks that operands that do not fit are refused, both by
// the functions of package backend and by b's own methods.
func testLMErrors(t *testing.T, b backend.Backend) {
	f := func(n int) backend.Buffer { return upload(t, b, make([]float32, n)) }
	s := upload(t, b, make([]int32, 4))
	freqs, _ := backend.RoPEFreqs(10000, 4, nil)
	r := &backend.Rotary{Heads: 1, Dim: 4, Freqs: freqs}
	a := &backend.Attention{Tokens: 1, Heads: 4, KVHeads: 2, Dim: 2, Start: 1}
	calls := map[string]func() error{
		"RMSNorm wrong weight": func() error { return backend.RMSNorm(b, f(6), f(6), f(2), 2, 3, 1e-5) },
		"RMSNorm zero cols":    func() error { return backend.RMSNorm(b, f(0), f(0), f(0), 2, 0, 1e-5) },
		"RMSNorm s32 input":    func() error { return backend.RMSNorm(b, f(4), s, f(4), 1, 4, 1e-5) },
		"RoPE odd dim": func() error {
			return backend.RoPE(b, f(3), f(3), &backend.Rotary{Heads: 1, Dim: 3, Freqs: freqs[:1]}, []int32{0})
		},
		"RoPE wrong rows":        func() error { return backend.RoPE(b, f(4), f(4), r, []int32{0, 1}) },
		"RoPE negative position": func() error { return backend.RoPE(b, f(4), f(4), r, []int32{-1}) },
		"SwiGLU lengths":         func() error { return backend.SwiGLU(b, f(3), f(3), f(4)) },
		"Softmax limit 0":        func() error { return backend.Softmax(b, f(4), f(4), 2, 2, []int32{1, 0}) },
		"Softmax limit past end": func() error { return backend.Softmax(b, f(4), f(4), 2, 2, []int32{1, 3}) },
		"Embed id past vocab":    func() error { return backend.Embed(b, f(2), f(6), []int32{3}, 2) },
		"Embed negative id":      func() error { return backend.Embed(b, f(2), f(6), []int32{-1}, 2) },
		"Attend GQA uneven": func() error {
			return backend.Attend(b, f(6), f(6), f(8), f(8), &backend.Attention{Tokens: 1, Heads: 3, KVHeads: 2, Dim: 2})
		},
		"Attend short cache": func() error { return backend.Attend(b, f(8), f(8), f(4), f(4), a) },
		"Attend negative window": func() error {
			return backend.Attend(b, f(8), f(8), f(8), f(8), &backend.Attention{Tokens: 1, Heads: 4, KVHeads: 2, Dim: 2, Start: 1, Window: -1})
		},
		"RoPE negative scale": func() error {
			return backend.RoPE(b, f(4), f(4), &backend.Rotary{Heads: 1, Dim: 4, Freqs: freqs, Scale: -1}, []int32{0})
		},
		"Add y not dividing": func() error { return backend.Add(b, f(6), f(6), f(4)) },
		"Add empty y":        func() error { return backend.Add(b, f(6), f(6), f(0)) },
		"Add dst length":     func() error { return backend.Add(b, f(4), f(6), f(6)) },
	}
	if lm, ok := b.(backend.LMOps); ok {
		calls["method RMSNorm wrong weight"] = func() error { return lm.RMSNorm(f(6), f(6), f(2), 2, 3, 1e-5) }
		calls["method RoPE wrong rows"] = func() error { return lm.RoPE(f(4), f(4), r, []int32{0, 1}) }
		calls["method SwiGLU lengths"] = func() error { return lm.SwiGLU(f(3), f(3), f(4)) }
		calls["method Softmax limit past end"] = func() error { return lm.Softmax(f(4), f(4), 2, 2, []int32{1, 3}) }
		calls["method Embed id past vocab"] = func() error { return lm.Embed(f(2), f(6), []int32{3}, 2) }
		calls["method Attend short cache"] = func() error { return lm.Attend(f(8), f(8), f(4), f(4), a) }
		calls["method Attend negative window"] = func() error {
			return lm.Attend(f(8), f(8), f(8), f(8), &backend.Attention{Tokens: 1, Heads: 4, KVHeads: 2, Dim: 2, Start: 1, Window: -1})
		}
		calls["method RoPE NaN scale"] = func() error {
			return lm.RoPE(f(4), f(4), &backend.Rotary{Heads: 1, Dim: 4, Freqs: freqs, Scale: float32(math.NaN())}, []int32{0})
		}
		calls["method Add y not dividing"] = func() error { return lm.Add(f(6), f(6), f(4)) }
	}
	for what, fn := range calls {
		mustFail(t, what, fn)
	}
}
