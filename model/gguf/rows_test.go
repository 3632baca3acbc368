package gguf

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// namedRow is one input row for the quantizer tests.
type namedRow struct {
	name string
	x    []float32
}

// adversarialRows returns rows of n values (n a multiple of 256) meant to
// reach every branch of ggml's reference quantizers: zeros of both signs,
// constants, exact ties of the rounding steps, single outliers, magnitudes
// from subnormal to near the float32 maximum (where max−min overflows to
// Inf), sub-blocks whose scales differ by orders of magnitude (so that
// some 6-bit scales round to 0), one-signed rows (a K-quant minimum of 0),
// heavy tails and raw random bit patterns. None holds NaN or Inf (see
// nonFiniteRows). The same seed gives the same rows.
func adversarialRows(n int, seed uint64) []namedRow {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	gen := func(f func(i int) float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = f(i)
		}
		return x
	}
	normal := func(int) float32 { return float32(r.NormFloat64()) }
	rows := []namedRow{
		{"all zero", make([]float32, n)},
		{"negative zero", gen(func(int) float32 { return float32(math.Copysign(0, -1)) })},
		{"zeros of both signs", gen(func(i int) float32 { return float32(math.Copysign(0, float64(i%3-1))) })},
		{"constant", gen(func(int) float32 { return 0.7 })},
		{"negative constant", gen(func(int) float32 { return -3 })},
		{"constant 1e-20", gen(func(int) float32 { return 1e-20 })},
		{"one nonzero per block", gen(func(i int) float32 {
			if i%32 == 5 {
				return float32(i%7) - 3
			}
			return 0
		})},
		{"one nonzero per super-block", gen(func(i int) float32 {
			if i%256 == 200 {
				return -2.5
			}
			return 0
		})},
		{"normal", gen(normal)},
		{"uniform", gen(func(int) float32 { return float32(r.Float64()*2 - 1) })},
		{"positive", gen(func(int) float32 { return float32(r.Float64() + 0.5) })},
		{"negative", gen(func(int) float32 { return float32(-r.Float64() - 0.01) })},
		{"heavy-tailed (cauchy-like)", gen(func(int) float32 { return float32(r.NormFloat64() / (r.Float64() + 1e-3)) })},
		{"log-normal scales", gen(func(int) float32 { return float32(r.NormFloat64() * math.Exp(r.NormFloat64()*4)) })},
		{"outlier", gen(func(i int) float32 {
			if i == n/3 {
				return -1000
			}
			return float32(r.NormFloat64())
		})},
		{"outlier per super-block", gen(func(i int) float32 {
			if i%256 == 77 {
				return 500
			}
			return float32(r.NormFloat64() * 0.01)
		})},
		{"sub-block scales 1e-6..1e6", func() []float32 {
			x := make([]float32, n)
			for b := 0; b < n; b += 16 {
				s := math.Pow(10, float64(r.IntN(13)-6))
				for i := b; i < b+16; i++ {
					x[i] = float32(r.NormFloat64() * s)
				}
			}
			return x
		}()},
		{"sub-block scales 1..1e3", func() []float32 {
			x := make([]float32, n)
			for b := 0; b < n; b += 32 {
				s := math.Pow(10, r.Float64()*3)
				for i := b; i < b+32; i++ {
					x[i] = float32(r.NormFloat64() * s)
				}
			}
			return x
		}()},
		{"integers ±127", gen(func(int) float32 { return float32(r.IntN(255) - 127) })},
		{"integers ±8", gen(func(int) float32 { return float32(r.IntN(17) - 8) })},
		{"halves ±8", gen(func(int) float32 { return float32(r.IntN(33)-16) / 2 })},
		{"halves ±16", gen(func(int) float32 { return float32(r.IntN(65)-32) / 2 })},
		{"halves ±32", gen(func(int) float32 { return float32(r.IntN(129)-64) / 2 })},
		{"ramp", gen(func(i int) float32 { return float32(i%32) - 15.5 })},
		{"ramp 0..31", gen(func(i int) float32 { return float32(i % 32) })},
		{"ramp 0..15 scaled", gen(func(i int) float32 { return float32(i%16) * 0.25 })},
		{"q ties (max −8, −16, −32 first)", func() []float32 {
			x := gen(func(int) float32 { return float32(r.IntN(33)-16) / 2 })
			for b := 0; b < n; b += 32 {
				x[b] = []float32{-8, -16, -32, 8}[b/32%4]
			}
			return x
		}()},
		{"float16-exact values", gen(func(int) float32 { return fp32(uint16(r.Uint32()) & 0x7bff) })},
		{"tiny 1e-30", gen(func(int) float32 { return float32(r.NormFloat64() * 1e-30) })},
		{"tiny 1e-38", gen(func(int) float32 { return float32(r.NormFloat64() * 1e-38) })},
		{"subnormal", gen(func(int) float32 { return float32(r.NormFloat64() * 1e-42) })},
		{"subnormal and zero", gen(func(i int) float32 {
			if i%2 == 0 {
				return 0
			}
			return math.Float32frombits(uint32(r.IntN(1 << 23)))
		})},
		{"float16 subnormal scales", gen(func(int) float32 { return float32(r.NormFloat64() * 1e-4) })},
		{"below float16 scales", gen(func(int) float32 { return float32(r.NormFloat64() * 1e-7) })},
		{"huge 1e30", gen(func(int) float32 { return float32(r.NormFloat64() * 1e30) })},
		{"float16 overflow 1e5", gen(func(int) float32 { return float32(r.NormFloat64() * 1e5) })},
		{"near float32 max", gen(func(int) float32 { return float32((r.Float64()*2 - 1) * 3.4e38) })},
		{"range overflows", gen(func(i int) float32 {
			switch i % 32 {
			case 3:
				return 3e38
			case 20:
				return -3e38
			}
			return float32(r.NormFloat64())
		})},
		{"random finite bits", gen(func(int) float32 {
			for {
				v := math.Float32frombits(r.Uint32())
				if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
					return v
				}
			}
		})},
		{"bf16 ties", gen(func(i int) float32 {
			return math.Float32frombits(uint32(r.Uint32()&0x7f7f0000) | 0x8000 | uint32(i%2)<<16)
		})},
	}
	for k := range 8 {
		df := []float64{1, 2, 3, 5}[k%4]
		rows = append(rows, namedRow{fmt.Sprintf("student-t df %g #%d", df, k), gen(func(int) float32 {
			var s float64
			for range int(df) {
				z := r.NormFloat64()
				s += z * z
			}
			return float32(r.NormFloat64() / math.Sqrt(s/df))
		})})
	}
	return rows
}

// nonFiniteRows are rows with NaN or ±Inf, on which ggml's quantizers give
// codes no one should rely on (but deterministic ones).
func nonFiniteRows(n int) []namedRow {
	r := rand.New(rand.NewPCG(7, 7))
	row := func(v float32, at int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		x[at] = v
		return x
	}
	nans := make([]float32, n)
	for i := range nans {
		// Quiet and signaling NaNs of both signs with assorted payloads,
		// between ordinary values.
		bits := []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7f810000, 0x7fbfffff, 0xffff0000, 0x7fc0ffff}
		if i%2 == 0 {
			nans[i] = math.Float32frombits(bits[i/2%len(bits)])
		} else {
			nans[i] = float32(r.NormFloat64())
		}
	}
	return []namedRow{
		{"+Inf", row(float32(math.Inf(1)), 3)},
		{"-Inf", row(float32(math.Inf(-1)), 40)},
		{"NaN", row(float32(math.NaN()), 100)},
		{"Inf of both signs", func() []float32 {
			x := row(float32(math.Inf(1)), 7)
			x[200] = float32(math.Inf(-1))
			return x
		}()},
		{"NaN payloads", nans},
	}
}
