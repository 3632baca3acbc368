package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// roundBF16 rounds scales to bfloat16 (to nearest, ties to even), as a
// checkpoint with BF16 scales stores them.
func roundBF16(sc []float32) error {
	for i, v := range sc {
		b := math.Float32bits(v)
		b += 0x7FFF + b>>16&1
		sc[i] = math.Float32frombits(b &^ 0xFFFF)
	}
	return nil
}

// clampF16 caps scales at 65504, the largest float16, as a checkpoint
// with F16 scales does: a group's values can then be far past its codes.
func clampF16(sc []float32) error {
	for i, v := range sc {
		sc[i] = min(v, 65504)
	}
	return nil
}

// fitQuantizeGroupsRef is FitQuantizeGroups as its documentation states
// it, with the sums in float64 over the dequantized values.
func fitQuantizeGroupsRef(t *testing.T, s quant.Scheme, x []float32, cols int, round func([]float32) error) (codes []byte, scales []float32, sig, noise float64) {
	t.Helper()
	shape := []int{len(x) / cols, cols}
	p, err := quant.FitAbsMax(s, x, shape, func(x []float32) float32 {
		var m float32
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); a <= math.MaxFloat32 && a > m {
				m = a
			}
		}
		return m
	})
	if err != nil {
		t.Fatal(err)
	}
	if round != nil {
		if err := round(p.Scales); err != nil {
			t.Fatal(err)
		}
	}
	codes = make([]byte, s.PackedLen(len(x)))
	if err := quant.Quantize(codes, x, p); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, len(x))
	if err := quant.Dequantize(y, codes, p); err != nil {
		t.Fatal(err)
	}
	for i, v := range x {
		d := float64(v) - float64(y[i])
		sig += float64(v) * float64(v)
		noise += d * d
	}
	return codes, p.Scales, sig, noise
}

// TestFitQuantizeGroups holds FitQuantizeGroups to the fit, rounding and
// quantization of package quant bit for bit, and its sums to the float64
// sums over the dequantized values, on every kernel path, one and two
// threads: random and adversarial values (NaN, ±Inf, huge, subnormal),
// all-zero groups, rows that end in a partial group, odd rows of 4-bit
// codes, group sizes the kernels take and others; with guard bytes
// around the codes and the input checked untouched.
func TestFitQuantizeGroups(t *testing.T) {
	type shape struct{ rows, cols, group int }
	shapes := []shape{
		{1, 128, 128}, {3, 256, 128}, {5, 4096, 128}, {2, 300, 128}, {3, 129, 128}, {4, 77, 32},
		{2, 64, 64}, {3, 192, 64}, {1, 4160, 64}, {3, 96, 32}, {7, 33, 32}, {2, 50, 48}, {3, 15, 5},
		{1, 1, 128}, {0, 128, 128}, {9, 4096 + 64, 128}, {3, 960, 128}, {2, 416, 128}, {3, 1000, 128},
		{17, 4097, 32}, // two workers (two threads), odd rows of 4-bit codes split in pairs
	}
	if !testing.Short() {
		shapes = append(shapes, shape{17, 11008, 128}, shape{64, 1024, 256}, shape{5, 4095, 32})
	}
	schemes := []quant.Scheme{quant.Int4PerGroup128,
		{Bits: 8, Signed: true, Symmetric: true, Granularity: quant.PerGroup},
		{Bits: 4, Signed: false, Symmetric: true, Granularity: quant.PerGroup},
		{Bits: 8, Signed: false, Symmetric: true, Granularity: quant.PerGroup}}
	rounds := []struct {
		name string
		fn   func([]float32) error
	}{{"f32", nil}, {"bf16", roundBF16}, {"f16max", clampF16}}
	onPaths(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(1, 1))
		for _, base := range schemes {
			for _, sh := range shapes {
				for _, kind := range []string{"normal", "zeros", "adversarial", "huge"} {
					for _, rd := range rounds {
						for _, threads := range []int{1, 2} {
							s := base
							s.GroupSize = sh.group
							name := fmt.Sprintf("%v/%dx%d/%s/%s/%d", s, sh.rows, sh.cols, kind, rd.name, threads)
							checkFitQuantizeGroups(t, name, rnd, s, sh.rows, sh.cols, kind, rd.fn, threads)
						}
					}
				}
			}
		}
	})
}

func checkFitQuantizeGroups(t *testing.T, name string, rnd *rand.Rand, s quant.Scheme, rows, cols int, kind string, round func([]float32) error, threads int) {
	t.Helper()
	n := rows * cols
	off := rnd.IntN(4)
	x := make([]float32, n+off)[off:]
	for i := range x {
		x[i] = float32(rnd.NormFloat64()) * 0.02
	}
	switch kind {
	case "zeros": // whole groups and rows of zeros among others
		for i := range x {
			if i/s.GroupSize%3 == 0 || i/cols%4 == 1 {
				x[i] = 0
			}
		}
	case "adversarial":
		adversarial(rnd, x, 0.01)
	case "huge":
		for i := range x {
			x[i] *= 1e34
			if i%97 == 0 {
				x[i] = math.SmallestNonzeroFloat32
			}
		}
	}
	in := append([]float32(nil), x...)
	wantCodes, wantScales, wantSig, wantNoise := fitQuantizeGroupsRef(t, s, x, cols, round)
	cbuf := make([]byte, len(wantCodes)+off+8)
	for i := range cbuf {
		cbuf[i] = guardByte
	}
	codes := cbuf[off : off+len(wantCodes)]
	scales := make([]float32, len(wantScales))
	sig, noise, err := fitQuantizeGroupsOn(threads, codes, scales, x, s, cols, round)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(in[i]) {
			t.Fatalf("%s: input %d changed", name, i)
		}
	}
	for k := range scales {
		if math.Float32bits(scales[k]) != math.Float32bits(wantScales[k]) {
			t.Fatalf("%s: scale %d = %g, want %g", name, k, scales[k], wantScales[k])
		}
	}
	for i := range codes {
		if codes[i] != wantCodes[i] {
			t.Fatalf("%s: code byte %d = %#x, want %#x", name, i, codes[i], wantCodes[i])
		}
	}
	for i, c := range cbuf {
		if (i < off || i >= off+len(codes)) && c != guardByte {
			t.Fatalf("%s: guard byte %d overwritten", name, i-off)
		}
	}
	if math.IsInf(wantSig, 0) || math.IsNaN(wantSig) {
		// NaN or ±Inf in x: the sums say so, and the caller measures
		// again on the values made finite.
		if !math.IsInf(sig, 1) && !math.IsNaN(sig) {
			t.Fatalf("%s: Σx² = %g for values with NaN or ±Inf, want NaN or +Inf", name, sig)
		}
		return
	}
	for _, c := range []struct {
		what      string
		got, want float64
	}{{"Σx²", sig, wantSig}, {"Σ(x−x̂)²", noise, wantNoise}} {
		switch {
		case math.IsInf(c.want, 1):
			// x̂ overflowed (a code times a scale past MaxFloat32).
			if !math.IsInf(c.got, 1) {
				t.Fatalf("%s: %s = %g, want +Inf", name, c.what, c.got)
			}
		case math.IsInf(c.got, 1):
			// Only a scale rounded far below its group's values may
			// overflow the float32 sums.
			if round == nil {
				t.Fatalf("%s: %s overflowed, want %g", name, c.what, c.want)
			}
		case !near(c.got, c.want, 1e-5):
			// x − x̂ is within a float32 rounding of itself on both
			// sides, and the squares of a group add in float32:
			// relative errors of about 1e-7, a few of them.
			t.Fatalf("%s: %s = %g, want %g (float64)", name, c.what, c.got, c.want)
		}
	}
}

// near reports whether got is within rel of want, relatively (or both
// are 0).
func near(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// TestFitQuantizeGroupsErrors checks the arguments FitQuantizeGroups
// refuses.
func TestFitQuantizeGroupsErrors(t *testing.T) {
	s := quant.Int4PerGroup128
	x := make([]float32, 256)
	for _, c := range []struct {
		name   string
		s      quant.Scheme
		codes  int
		scales int
		cols   int
	}{
		{"asymmetric", quant.Scheme{Bits: 4, Granularity: quant.PerGroup, GroupSize: 128}, 128, 2, 256},
		{"per channel", quant.Int8PerChannel, 256, 1, 256},
		{"cols", s, 128, 2, 100},
		{"scales", s, 128, 3, 256},
		{"codes", s, 129, 2, 256},
	} {
		if _, _, err := FitQuantizeGroups(make([]byte, c.codes), make([]float32, c.scales), x, c.s, c.cols, nil); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// BenchmarkFitQuantizeGroups is the fused path against the passes it
// replaces (fit, quantize, dequantize, SQNR sums), on one goroutine, on
// a block of 256 rows of 4096 values at int4 group-128.
func BenchmarkFitQuantizeGroups(b *testing.B) {
	const rows, cols = 256, 4096
	s := quant.Int4PerGroup128
	rnd := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rnd.NormFloat64()) * 0.02
	}
	codes := make([]byte, s.PackedLen(len(x)))
	y := make([]float32, len(x))
	k := QuantKernels{Serial: true}
	b.Run(fmt.Sprintf("fused/%dx%d", rows, cols), func(b *testing.B) {
		scales := make([]float32, rows*cols/128)
		b.SetBytes(int64(4 * len(x)))
		for b.Loop() {
			if _, _, err := k.FitQuantizeGroups(codes, scales, x, s, cols, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("passes/%dx%d", rows, cols), func(b *testing.B) {
		b.SetBytes(int64(4 * len(x)))
		for b.Loop() {
			p, err := quant.FitAbsMax(s, x, []int{rows, cols}, k.AbsMax)
			if err != nil {
				b.Fatal(err)
			}
			if err := k.Quantize(codes, x, p); err != nil {
				b.Fatal(err)
			}
			if err := k.Dequantize(y, codes, p); err != nil {
				b.Fatal(err)
			}
			k.SQNRSums(x, y)
		}
	})
}
