package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// The attention kernels against their Go twins and float64 references,
// on row lengths around the vector width (the masked tails), strides with
// NaN between the rows (the kernels must not read there), and guard
// values after the outputs (nor write there).

const (
	unit  = 0x1p-24
	guard = float32(-12345.5)
)

var attnDims = []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 256}

// attnRows returns n rows of d random normal values at stride (≥ d), the
// gaps between rows NaN.
func attnRows(rnd *rand.Rand, n, d, stride int) []float32 {
	if n == 0 {
		return nil
	}
	x := make([]float32, (n-1)*stride+d)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	for j := range n {
		for i := range d {
			x[j*stride+i] = float32(rnd.NormFloat64())
		}
	}
	return x
}

// kernels runs f with the assembly kernels (where the processor has
// them) and with the Go twins.
func kernels(t *testing.T, f func(t *testing.T)) {
	for _, generic := range []bool{false, true} {
		name := "asm"
		if generic {
			name = "generic"
		}
		t.Run(name, func(t *testing.T) {
			defer ForceGeneric(generic)()
			f(t)
		})
	}
}

func TestAttnDots(t *testing.T) {
	kernels(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(1, 1))
		for _, d := range attnDims {
			for _, n := range []int{0, 1, 3, 4, 5, 8, 13, 100} {
				stride := d + 3
				q := attnRows(rnd, 1, d, d)
				k := attnRows(rnd, n, d, stride)
				s := make([]float32, n+2)
				s[n], s[n+1] = guard, guard
				scale := float32(0.37)
				mx := attnDots(s[:n], q, k, stride, scale)
				wantMax := math.Inf(-1)
				for j := range n {
					dot, abs := 0.0, 0.0
					for i := range d {
						p := float64(q[i]) * float64(k[j*stride+i])
						dot += p
						abs += math.Abs(p)
					}
					want := float64(scale) * dot
					if e := math.Abs(float64(s[j]) - want); e > unit*float64(d+2)*float64(scale)*abs {
						t.Errorf("d %d, n %d: s[%d] = %g, want %g (error %g)", d, n, j, s[j], want, e)
					}
					wantMax = math.Max(wantMax, float64(s[j]))
				}
				if float64(mx) != wantMax {
					t.Errorf("d %d, n %d: max %g, want %g", d, n, mx, wantMax)
				}
				if s[n] != guard || s[n+1] != guard {
					t.Errorf("d %d, n %d: wrote past s", d, n)
				}
			}
		}
	})
}

func TestAttnAccum(t *testing.T) {
	kernels(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(2, 2))
		for _, d := range attnDims {
			for _, n := range []int{0, 1, 2, 5, 64, 300} {
				stride := 2*d + 1
				v := attnRows(rnd, n, d, stride)
				p := make([]float32, n)
				for j := range p {
					p[j] = rnd.Float32()
				}
				o := make([]float32, d+2)
				for i := range d {
					o[i] = float32(rnd.NormFloat64())
				}
				o[d], o[d+1] = guard, guard
				o0 := append([]float32(nil), o...)
				f := float32(0.625)
				attnAccum(o[:d], p, v, stride, f)
				for i := range d {
					want, mag := float64(f)*float64(o0[i]), math.Abs(float64(f)*float64(o0[i]))
					for j := range n {
						x := float64(p[j]) * float64(v[j*stride+i])
						want += x
						mag += math.Abs(x)
					}
					if e := math.Abs(float64(o[i]) - want); e > unit*float64(n+2)*mag {
						t.Errorf("d %d, n %d: o[%d] = %g, want %g (error %g)", d, n, i, o[i], want, e)
					}
				}
				if o[d] != guard || o[d+1] != guard {
					t.Errorf("d %d, n %d: wrote past o", d, n)
				}
			}
		}
	})
}

func TestAttnExp(t *testing.T) {
	kernels(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(3, 3))
		for _, n := range []int{1, 2, 7, 8, 9, 16, 23, 1000} {
			s := make([]float32, n+1)
			for j := range n {
				s[j] = float32(-100 * rnd.Float64())
			}
			s[0] = 0
			if n > 4 {
				s[1], s[2], s[3] = float32(math.Inf(-1)), -87.5, -88.5
			}
			s[n] = guard
			x := append([]float32(nil), s...)
			m := float32(0.75)
			sum := attnExp(s[:n], m)
			wantSum, sumMag := 0.0, 0.0
			for j := range n {
				want := math.Exp(float64(x[j] - m))
				// 3 units of e^x's float32, or what flushing below
				// e^-87.3 (the smallest normal float32) leaves out.
				if e := math.Abs(float64(s[j]) - want); e > 3*unit*want && e > 0x1p-125 {
					t.Errorf("n %d: exp(%g) = %g, want %g", n, x[j]-m, s[j], want)
				}
				wantSum += want
				sumMag += float64(s[j])
			}
			if e := math.Abs(float64(sum) - wantSum); e > unit*float64(n+3)*sumMag+0x1p-120 {
				t.Errorf("n %d: sum %g, want %g", n, sum, wantSum)
			}
			if s[n] != guard {
				t.Errorf("n %d: wrote past s", n)
			}
		}
		// NaN stays NaN; e^0 is 1.
		s := []float32{float32(math.NaN()), 1, 1, 1, 1, 1, 1, 1, 1}
		sum := attnExp(s, 1)
		if !math.IsNaN(float64(s[0])) || !math.IsNaN(float64(sum)) || s[1] != 1 || s[8] != 1 {
			t.Errorf("exp of [NaN, 0...] = %v, sum %g", s, sum)
		}
	})
}

// TestExpF32 checks the scalar exp over its range against math.Exp.
func TestExpF32(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.0123 {
		want := math.Exp(float64(x))
		if e := math.Abs(float64(expF32(x))-want) / want; e > 2*unit {
			t.Fatalf("expF32(%g) = %g, want %g (relative error %g units)", x, expF32(x), want, e/unit)
		}
	}
	if expF32(float32(math.Inf(-1))) != 0 || expF32(-200) != 0 || !math.IsNaN(float64(expF32(float32(math.NaN())))) || expF32(0) != 1 {
		t.Errorf("expF32(-Inf, -200, NaN, 0) = %g, %g, %g, %g", expF32(float32(math.Inf(-1))), expF32(-200), expF32(float32(math.NaN())), expF32(0))
	}
}

// refAttend is attention in float64 with the error bound that backendtest
// allows AttentionF32 (see backendtest.refAttention).
func refAttend(q, k, v []float32, a *backend.Attention) (want, bound []float64) {
	scale := float64(a.Scale)
	if scale == 0 {
		scale = float64(float32(1 / math.Sqrt(float64(a.Dim))))
	}
	d, row := a.Dim, a.KVHeads*a.Dim
	want, bound = make([]float64, len(q)), make([]float64, len(q))
	for t := range a.Tokens {
		p := a.Start + t
		lo := 0
		if a.Window > 0 {
			lo = max(0, p-a.Window+1)
		}
		n := p + 1 - lo
		for h := range a.Heads {
			kh := h / (a.Heads / a.KVHeads)
			qs := q[(t*a.Heads+h)*d : (t*a.Heads+h+1)*d]
			s := make([]float64, n)
			maxA, m := 0.0, math.Inf(-1)
			for js := range s {
				dot, abs := 0.0, 0.0
				for i := range d {
					x := float64(qs[i]) * float64(k[(lo+js)*row+kh*d+i])
					dot += x
					abs += math.Abs(x)
				}
				s[js] = scale * dot
				maxA, m = math.Max(maxA, scale*abs), math.Max(m, s[js])
			}
			sum, maxD := 0.0, 0.0
			for _, x := range s {
				sum += math.Exp(x - m)
				maxD = math.Max(maxD, m-x)
			}
			for i := range d {
				o, mag, vmax := 0.0, 0.0, 0.0
				for js := range s {
					w := math.Exp(s[js]-m) / sum
					x := float64(v[(lo+js)*row+kh*d+i])
					o += w * x
					mag += w * math.Abs(x)
					vmax = math.Max(vmax, math.Abs(x))
				}
				idx := (t*a.Heads+h)*d + i
				want[idx] = o
				bound[idx] = unit*(2*float64(d+2)*maxA+2*maxD+2*float64(n)+16)*mag + 0x1p-120*vmax
			}
		}
	}
	return want, bound
}

// TestAttendF32 checks the blocked attention on edge shapes against the
// float64 reference within the twin's bound, and that the result does
// not depend on the thread count.
func TestAttendF32(t *testing.T) {
	rnd := rand.New(rand.NewPCG(4, 4))
	for _, c := range []backend.Attention{
		{Tokens: 1, Heads: 1, KVHeads: 1, Dim: 1},
		{Tokens: 5, Heads: 2, KVHeads: 1, Dim: 1},
		{Tokens: 9, Heads: 4, KVHeads: 4, Dim: 3},
		{Tokens: 33, Heads: 8, KVHeads: 2, Dim: 64},
		{Tokens: 20, Heads: 8, KVHeads: 1, Dim: 128, Start: 30},
		{Tokens: 3, Heads: 4, KVHeads: 2, Dim: 256, Start: 600},
		{Tokens: 1, Heads: 6, KVHeads: 3, Dim: 17, Start: 2999}, // one token, thousands of keys
		{Tokens: 40, Heads: 4, KVHeads: 2, Dim: 16, Window: 7},  // window shorter than a key block
		{Tokens: 2, Heads: 2, KVHeads: 1, Dim: 64, Start: 1000, Window: 300},
		{Tokens: 70, Heads: 2, KVHeads: 2, Dim: 32, Start: 5, Window: 1},
		{Tokens: 4, Heads: 4, KVHeads: 1, Dim: 65, Start: 3, Scale: 0.5, Window: 1000},
	} {
		a := c
		name := fmt.Sprintf("t%d_h%d_kv%d_d%d_at%d_w%d", a.Tokens, a.Heads, a.KVHeads, a.Dim, a.Start, a.Window)
		t.Run(name, func(t *testing.T) {
			row := a.KVHeads * a.Dim
			ctx := a.Start + a.Tokens
			q := attnRows(rnd, 1, a.Tokens*a.Heads*a.Dim, 0)
			k, v := attnRows(rnd, 1, (ctx+2)*row, 0), attnRows(rnd, 1, (ctx+2)*row, 0)
			// Never read: positions past the last token and, with a
			// window, before the first token's window.
			for i := ctx * row; i < len(k); i++ {
				k[i], v[i] = float32(math.NaN()), float32(math.NaN())
			}
			if a.Window > 0 {
				for i := 0; i < (a.Start-a.Window+1)*row; i++ {
					k[i], v[i] = float32(math.NaN()), float32(math.NaN())
				}
			}
			want, bound := refAttend(q, k, v, &a)
			var first []float32
			for _, thr := range []int{1, 2, 3} {
				kernels(t, func(t *testing.T) {
					defer SetThreads(SetThreads(thr))
					out := make([]float32, len(q))
					attendF32(out, q, k, v, &a)
					for i := range out {
						if e := math.Abs(float64(out[i]) - want[i]); !(e <= bound[i]) {
							t.Fatalf("%d threads: out[%d] = %g, want %g (error %g, bound %g)", thr, i, out[i], want[i], e, bound[i])
						}
					}
					if !use.AVX2FMA || !hw.AVX2FMA {
						return
					}
					if first == nil {
						first = out
					} else {
						for i := range out {
							if out[i] != first[i] {
								t.Fatalf("%d threads: out[%d] = %g, with 1 thread %g", thr, i, out[i], first[i])
							}
						}
					}
				})
			}
		})
	}
}

// BenchmarkAttend times the blocked attention against the scalar twin
// (backend.AttentionRangeF32 on one thread, the former cpu Attend's
// kernel) for a 512-token prefill and a decode step at 4096 positions, 8
// heads over 2 KV heads of 64.
func BenchmarkAttend(b *testing.B) {
	rnd := rand.New(rand.NewPCG(5, 5))
	for _, c := range []struct {
		name string
		a    backend.Attention
	}{
		{"prefill512_h8_kv2_d64", backend.Attention{Tokens: 512, Heads: 8, KVHeads: 2, Dim: 64}},
		{"decode_at4096_h8_kv2_d64", backend.Attention{Tokens: 1, Heads: 8, KVHeads: 2, Dim: 64, Start: 4095}},
	} {
		a := c.a
		row := a.KVHeads * a.Dim
		q := attnRows(rnd, 1, a.Tokens*a.Heads*a.Dim, 0)
		k, v := attnRows(rnd, 1, (a.Start+a.Tokens)*row, 0), attnRows(rnd, 1, (a.Start+a.Tokens)*row, 0)
		out := make([]float32, len(q))
		b.Run(c.name+"/blocked", func(b *testing.B) {
			for b.Loop() {
				attendF32(out, q, k, v, &a)
			}
		})
		b.Run(c.name+"/twin_1thread", func(b *testing.B) {
			scores := make([]float32, a.Start+a.Tokens)
			for b.Loop() {
				backend.AttentionRangeF32(out, q, k, v, &a, 0, a.Tokens*a.Heads, scores)
			}
		})
		b.Run(c.name+"/blocked_1thread", func(b *testing.B) {
			defer SetThreads(SetThreads(1))
			for b.Loop() {
				attendF32(out, q, k, v, &a)
			}
		})
	}
}
