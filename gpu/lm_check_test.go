package gpu

// No build tag: lmAgainstCPU takes any backend, so that the default build
// runs it on the CPU backend (TestLMAgainstCPUSelf) and the cuda build on
// the GPU (TestLMAgainstCPU in lm_test.go).

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
)

// lmAgainstCPU runs the operations of backend.LMOps on dev at the shapes
// of a small Llama (GQA 8/2, head dimension 128 and 64, a cache past
// several attention chunks) and compares them with the CPU backend: Embed,
// Add, QuantizeRows and RoPE bit for bit, the others within a relative
// tolerance (backendtest.RunLM holds each to its exact bound). Several
// calls with different host vectors (ids, positions, limits) are queued
// before anything is read back, so that a device backend reusing scratch
// memory for them must keep each call's values.
func lmAgainstCPU(t *testing.T, dev backend.Backend) {
	ref := cpu.New()
	rnd := rand.New(rand.NewPCG(17, 3))
	vals := func(n int, scale float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rnd.NormFloat64() * scale)
		}
		return x
	}
	type pair struct{ d, r backend.Buffer }
	up := func(x []float32) pair {
		t.Helper()
		var p pair
		for i, b := range []backend.Backend{dev, ref} {
			buf, err := b.Alloc(backend.F32, len(x))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Upload(buf, x); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				p.d = buf
				t.Cleanup(func() { dev.Free(buf) })
			} else {
				p.r = buf
			}
		}
		return p
	}
	zeros := func(n int) pair { return up(make([]float32, n)) }
	both := func(what string, f func(b backend.Backend, sel func(pair) backend.Buffer) error) {
		t.Helper()
		if err := f(dev, func(p pair) backend.Buffer { return p.d }); err != nil {
			t.Fatalf("%s on %s: %v", what, dev.Name(), err)
		}
		if err := f(ref, func(p pair) backend.Buffer { return p.r }); err != nil {
			t.Fatalf("%s on cpu: %v", what, err)
		}
	}
	type check struct {
		what string
		p    pair
		tol  float64 // relative to the largest |value|; 0: bit for bit
	}
	var checks []check

	const tokens, heads, kvHeads, dim, start, vocab = 5, 8, 2, 128, 300, 97
	hidden := heads * dim
	table := up(vals(vocab*hidden, 1))
	ids1, ids2 := []int32{3, 96, 0, 3, 50}, []int32{1, 2, 4, 8, 16}
	e1, e2 := zeros(tokens*hidden), zeros(tokens*hidden)
	both("Embed", func(b backend.Backend, s func(pair) backend.Buffer) error {
		if err := backend.Embed(b, s(e1), s(table), ids1, hidden); err != nil {
			return err
		}
		return backend.Embed(b, s(e2), s(table), ids2, hidden)
	})
	checks = append(checks, check{"embed ids1", e1, 0}, check{"embed ids2", e2, 0})

	w := up(vals(hidden, 1))
	n1, n2 := zeros(tokens*hidden), up(vals(tokens*hidden, 30))
	both("RMSNorm", func(b backend.Backend, s func(pair) backend.Buffer) error {
		if err := backend.RMSNorm(b, s(n1), s(e1), s(w), tokens, hidden, 1e-5); err != nil {
			return err
		}
		return backend.RMSNorm(b, s(n2), s(n2), s(w), tokens, hidden, 1e-6) // in place
	})
	checks = append(checks, check{"rmsnorm", n1, 1e-5}, check{"rmsnorm in place", n2, 1e-5})

	for _, d := range []int{dim, 64} {
		freqs, err := backend.RoPEFreqs(500000, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, il := range []bool{false, true} {
			r := &backend.Rotary{Heads: hidden / d, Dim: d, Interleaved: il, Freqs: freqs}
			x := up(vals(tokens*hidden, 1))
			y1, y2 := zeros(tokens*hidden), zeros(tokens*hidden)
			pos1, pos2 := []int32{300, 301, 302, 303, 304}, []int32{0, 1, 7, 4095, 131071}
			both("RoPE", func(b backend.Backend, s func(pair) backend.Buffer) error {
				if err := backend.RoPE(b, s(y1), s(x), r, pos1); err != nil {
					return err
				}
				if err := backend.RoPE(b, s(y2), s(x), r, pos2); err != nil {
					return err
				}
				return backend.RoPE(b, s(x), s(x), r, pos1) // in place, pos1 again
			})
			name := fmt.Sprintf("rope dim %d interleaved %v", d, il)
			checks = append(checks, check{name + " pos1", y1, 0}, check{name + " pos2", y2, 0}, check{name + " in place", x, 0})
		}
	}

	// Attention over a cache of start+tokens positions (three chunks of keys).
	capacity := start + tokens + 3
	q := up(vals(tokens*hidden, 1))
	k, v := up(vals(capacity*kvHeads*dim, 1)), up(vals(capacity*kvHeads*dim, 1))
	att := zeros(tokens * hidden)
	both("Attend", func(b backend.Backend, s func(pair) backend.Buffer) error {
		return backend.Attend(b, s(att), s(q), s(k), s(v), &backend.Attention{Tokens: tokens, Heads: heads, KVHeads: kvHeads, Dim: dim, Start: start})
	})
	checks = append(checks, check{"attention", att, 1e-4})

	// Scores of the same shape through Softmax, causal and not.
	cols := start + tokens
	sc := up(vals(heads*tokens*cols, 4))
	lim1, lim2 := make([]int32, heads*tokens), make([]int32, heads*tokens)
	for i := range lim1 {
		lim1[i] = int32(start + i%tokens + 1)
		lim2[i] = int32(1 + i%cols)
	}
	s1, s2, s3 := zeros(len(lim1)*cols), zeros(len(lim1)*cols), zeros(len(lim1)*cols)
	both("Softmax", func(b backend.Backend, s func(pair) backend.Buffer) error {
		if err := backend.Softmax(b, s(s1), s(sc), len(lim1), cols, lim1); err != nil {
			return err
		}
		if err := backend.Softmax(b, s(s2), s(sc), len(lim1), cols, lim2); err != nil {
			return err
		}
		return backend.Softmax(b, s(s3), s(sc), len(lim1), cols, nil)
	})
	checks = append(checks, check{"softmax lim1", s1, 1e-5}, check{"softmax lim2", s2, 1e-5}, check{"softmax", s3, 1e-5})

	// MLP: SwiGLU, the residual and a bias, the activation quantization.
	const inter = 1000
	g, u := up(vals(tokens*inter, 3)), up(vals(tokens*inter, 1))
	act, res, bias := zeros(tokens*inter), zeros(tokens*hidden), up(vals(hidden, 1))
	both("SwiGLU/Add", func(b backend.Backend, s func(pair) backend.Buffer) error {
		if err := backend.SwiGLU(b, s(act), s(g), s(u)); err != nil {
			return err
		}
		if err := backend.Add(b, s(res), s(att), s(n1)); err != nil {
			return err
		}
		return backend.Add(b, s(res), s(res), s(bias))
	})
	checks = append(checks, check{"swiglu", act, 1e-5}, check{"add", res, 0})

	for _, c := range checks {
		got, want := make([]float32, c.p.d.Len()), make([]float32, c.p.r.Len())
		if err := dev.Download(got, c.p.d); err != nil {
			t.Fatal(err)
		}
		if err := ref.Download(want, c.p.r); err != nil {
			t.Fatal(err)
		}
		compareF32(t, c.what, got, want, c.tol)
	}

	// QuantizeRows of the activations, bit for bit.
	codes := make([]backend.Buffer, 2)
	scales := make([]backend.Buffer, 2)
	for i, b := range []backend.Backend{dev, ref} {
		var err error
		if codes[i], err = b.Alloc(backend.S8, tokens*inter); err != nil {
			t.Fatal(err)
		}
		if scales[i], err = b.Alloc(backend.F32, tokens); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { dev.Free(codes[0]); dev.Free(scales[0]) })
	if err := backend.QuantizeRows(dev, codes[0], scales[0], act.d, tokens, inter); err != nil {
		t.Fatal(err)
	}
	if err := backend.QuantizeRows(ref, codes[1], scales[1], act.r, tokens, inter); err != nil {
		t.Fatal(err)
	}
	gc, wc := make([]int8, tokens*inter), make([]int8, tokens*inter)
	gs, ws := make([]float32, tokens), make([]float32, tokens)
	for _, e := range []error{dev.Download(gc, codes[0]), ref.Download(wc, codes[1]), dev.Download(gs, scales[0]), ref.Download(ws, scales[1])} {
		if e != nil {
			t.Fatal(e)
		}
	}
	// The activations may differ in the last bits (SwiGLU is within a
	// bound), so the codes are compared for the device's own activations.
	ga := make([]float32, tokens*inter)
	if err := dev.Download(ga, act.d); err != nil {
		t.Fatal(err)
	}
	backend.QuantizeRowsS8(wc, ws, ga, tokens, inter)
	compareF32(t, "quantize rows scales", gs, ws, 0)
	for i := range gc {
		if gc[i] != wc[i] {
			t.Errorf("quantize rows: code %d is %d, want %d", i, gc[i], wc[i])
			break
		}
	}
}

// compareF32 reports elements of got off want by more than tol·max|want|
// (tol 0: bit for bit).
func compareF32(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	scale := 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	bad := 0
	for i := range want {
		ok := math.Float32bits(got[i]) == math.Float32bits(want[i])
		if tol > 0 {
			ok = math.Abs(float64(got[i])-float64(want[i])) <= tol*scale
		}
		if !ok {
			if bad++; bad <= 3 {
				t.Errorf("%s: element %d is %v, want %v", what, i, got[i], want[i])
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d elements differ", what, bad)
	}
}

// TestLMAgainstCPUSelf runs lmAgainstCPU with the CPU backend as the
// device, so that the default build checks the comparison itself runs.
func TestLMAgainstCPUSelf(t *testing.T) {
	lmAgainstCPU(t, cpu.New())
}
