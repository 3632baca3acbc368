package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// The element-wise kernels (elem_amd64.s and their Go twins) against
// package quant and naive loops, on every path this processor has.

// elemPaths are the kernel choices to test: the pure-Go one always, AVX2
// alone and everything the processor has, where it has them.
func elemPaths() []struct {
	name string
	isa  isa
} {
	ps := []struct {
		name string
		isa  isa
	}{{"generic", isa{}}}
	if hw.AVX2FMA {
		ps = append(ps, struct {
			name string
			isa  isa
		}{"avx2", isa{AVX2FMA: true}})
	}
	if hw.AVX512 {
		ps = append(ps, struct {
			name string
			isa  isa
		}{"avx512", hw})
	}
	return ps
}

// onPaths runs fn as a subtest on every path, restoring the choice after.
func onPaths(t *testing.T, fn func(t *testing.T)) {
	for _, p := range elemPaths() {
		t.Run(p.name, func(t *testing.T) {
			prev := use
			use = p.isa
			defer func() { use = prev }()
			fn(t)
		})
	}
}

// adversarial fills x with values the kernels must treat as the reference
// does: NaN, ±Inf, ±0, the largest finite values, subnormals, exact ties
// k+½ of the scale and their neighbours, values far past the code range,
// and random bit patterns; sc is the typical scale of the data.
func adversarial(rnd *rand.Rand, x []float32, sc float32) {
	special := []float32{
		float32(math.NaN()), math.Float32frombits(0xFFC00001), float32(math.Inf(1)), float32(math.Inf(-1)),
		0, float32(math.Copysign(0, -1)), math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 0x1p-127, 1e30, -1e30,
	}
	for i := range x {
		switch r := rnd.IntN(10); {
		case r == 0:
			x[i] = special[rnd.IntN(len(special))]
		case r == 1:
			x[i] = math.Float32frombits(rnd.Uint32())
		case r <= 4:
			// Ties and near-ties: (k + ½)·sc, exact when sc is a
			// power of two, and its float32 neighbours.
			v := float32(float64(rnd.IntN(600)-300)+0.5) * sc
			switch rnd.IntN(3) {
			case 1:
				v = math.Nextafter32(v, float32(math.Inf(1)))
			case 2:
				v = math.Nextafter32(v, float32(math.Inf(-1)))
			}
			x[i] = v
		default:
			x[i] = float32(rnd.NormFloat64()*40) * sc
		}
	}
}

// elemSchemes are the schemes the quantize and dequantize tests run,
// each with the shapes of n elements it is tried on.
var elemSchemes = []string{
	"int8-sym-tensor", "int8-asym-tensor", "uint8-asym-tensor",
	"int4-sym-tensor", "int4-asym-tensor", "uint4-asym-tensor",
	"int8-sym-channel", "uint8-asym-channel", "int4-asym-channel",
	"int8-asym-channel1", "uint8-asym-channel1", "int4-sym-channel1", "uint4-asym-channel1",
	"int8-sym-group32", "uint8-asym-group32", "int8-asym-group128", "int4-sym-group32", "uint4-asym-group128", "int4-asym-group64",
}

// elemShape gives a shape of n elements for s: two dimensions where the
// scheme needs them (channels or groups along rows of cols), else one.
func elemShape(s quant.Scheme, n, cols int) []int {
	if s.Granularity == quant.PerTensor || n%cols != 0 || n == 0 {
		if s.Granularity == quant.PerChannel && s.Axis == 1 {
			return []int{1, n}
		}
		return []int{n}
	}
	return []int{n / cols, cols}
}

// randParams gives parameters for s on shape with scales of every kind:
// powers of two (exact ties), ordinary values, tiny and huge ones, and
// zero points anywhere in the code range.
func randParams(t *testing.T, rnd *rand.Rand, s quant.Scheme, shape []int) *quant.Params {
	p, err := quant.NewParams(s, shape)
	if err != nil {
		t.Fatal(err)
	}
	qmin, qmax := s.QMin(), s.QMax()
	for k := range p.Scales {
		switch rnd.IntN(6) {
		case 0:
			p.Scales[k] = float32(math.Ldexp(1, rnd.IntN(40)-20))
		case 1:
			p.Scales[k] = float32(math.Ldexp(1+rnd.Float64(), rnd.IntN(253)-126))
		case 2:
			p.Scales[k] = math.SmallestNonzeroFloat32 * float32(1+rnd.IntN(5))
		default:
			p.Scales[k] = float32(math.Ldexp(0.5+rnd.Float64(), rnd.IntN(12)-8))
		}
		if !s.Symmetric {
			p.ZeroPoints[k] = qmin + int32(rnd.IntN(int(qmax-qmin+1)))
		}
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	return p
}

const guardByte = 0xA5

// TestQuantizeKernels holds Quantize to quant.Quantize byte for byte on
// every length up to 100 and a few long ones, at unaligned starts, with
// guard bytes around the codes.
func TestQuantizeKernels(t *testing.T) {
	lengths := []int{}
	for n := range 101 {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 255, 256, 4099)
	colsList := []int{0, 32, 35, 128}
	if !testing.Short() {
		lengths = append(lengths, 1000, 4096, 40000)
		colsList = append(colsList, 64, 2*128)
	}
	onPaths(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(1, 1))
		for _, name := range elemSchemes {
			s, err := quant.ParseScheme(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range lengths {
				for _, cols := range colsList {
					if cols == 0 {
						cols = n // one row
					}
					shape := elemShape(s, n, max(cols, 1))
					p := randParams(t, rnd, s, shape)
					off := rnd.IntN(4)
					buf := make([]float32, n+off)
					x := buf[off:]
					sc := float32(1)
					if len(p.Scales) > 0 {
						sc = p.Scales[0]
					}
					adversarial(rnd, x, sc)
					if rnd.IntN(8) == 0 {
						clear(x) // all zeros
					}
					want := make([]byte, s.PackedLen(n))
					if err := quant.Quantize(want, x, p); err != nil {
						t.Fatal(err)
					}
					cbuf := make([]byte, len(want)+off+8)
					for i := range cbuf {
						cbuf[i] = guardByte
					}
					got := cbuf[off : off+len(want)]
					if err := Quantize(got, x, p); err != nil {
						t.Fatal(err)
					}
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("%s shape %v: code byte %d = %#x, want %#x (x = %v, scale %g, zp %d)",
								name, shape, i, got[i], want[i], x[i*8/s.Bits], p.Scales[p.Index(i*8/s.Bits)], p.ZeroPoints[p.Index(i*8/s.Bits)])
						}
					}
					for i, c := range cbuf {
						if (i < off || i >= off+len(want)) && c != guardByte {
							t.Fatalf("%s shape %v: guard byte %d overwritten", name, shape, i-off)
						}
					}
				}
			}
		}
	})
}

// TestDequantizeKernels holds Dequantize to quant.Dequantize bit for bit
// on random codes, with guard values around the output.
func TestDequantizeKernels(t *testing.T) {
	lengths := []int{}
	for n := range 101 {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 255, 256, 1025)
	if !testing.Short() {
		lengths = append(lengths, 1000, 4099, 40000)
	}
	guard := math.Float32frombits(0x7FC0BEEF)
	onPaths(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(2, 2))
		for _, name := range elemSchemes {
			s, err := quant.ParseScheme(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range lengths {
				for _, cols := range []int{0, 32, 35, 128} {
					if cols == 0 {
						cols = n // one row
					}
					shape := elemShape(s, n, max(cols, 1))
					p := randParams(t, rnd, s, shape)
					codes := make([]byte, s.PackedLen(n))
					for i := range codes {
						codes[i] = byte(rnd.Uint32())
					}
					if s.Bits == 4 && n%2 == 1 {
						codes[n/2] &= 0x0F
					}
					want := make([]float32, n)
					if err := quant.Dequantize(want, codes, p); err != nil {
						t.Fatal(err)
					}
					off := rnd.IntN(4)
					buf := make([]float32, n+off+4)
					for i := range buf {
						buf[i] = guard
					}
					got := buf[off : off+n]
					if err := Dequantize(got, codes, p); err != nil {
						t.Fatal(err)
					}
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s shape %v: x[%d] = %v, want %v", name, shape, i, got[i], want[i])
						}
					}
					for i, v := range buf {
						if (i < off || i >= off+n) && math.Float32bits(v) != math.Float32bits(guard) {
							t.Fatalf("%s shape %v: guard value %d overwritten", name, shape, i-off)
						}
					}
				}
			}
		}
	})
}

// TestAbsMaxKernels holds AbsMax to the naive loop of its documentation.
func TestAbsMaxKernels(t *testing.T) {
	onPaths(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(3, 3))
		for n := range 300 {
			for _, sc := range []float32{1, 0x1p-140, 0x1p100} {
				off := rnd.IntN(4)
				x := make([]float32, n+off)[off:]
				adversarial(rnd, x, sc)
				var want float32
				for _, v := range x {
					if a := float32(math.Abs(float64(v))); a <= math.MaxFloat32 && a > want {
						want = a
					}
				}
				if got := AbsMax(x); math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("n %d: AbsMax = %v, want %v", n, got, want)
				}
			}
		}
		// The maximum at every position of a long vector.
		x := make([]float32, 1000)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		for i := range x {
			old := x[i]
			x[i] = -math.MaxFloat32
			if got := AbsMax(x); got != math.MaxFloat32 {
				t.Fatalf("max at %d: AbsMax = %v", i, got)
			}
			x[i] = float32(math.Inf(-1))
			if got := AbsMax(x); got != 3 {
				t.Fatalf("-Inf at %d: AbsMax = %v, want 3", i, got)
			}
			x[i] = old
		}
	})
}

// TestHistogramAbsKernels holds HistogramAbs to floor(|x|/width) in float64
// (exact for a power-of-two width, up to the float32 rounding of a
// product that underflows or overflows, which the bins below avoid or
// clamp) and to the naive loop of its documentation.
func TestHistogramAbsKernels(t *testing.T) {
	onPaths(t, func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(4, 4))
		lengths := []int{0, 1, 7, 8, 9, 31, 33, 100, 127, 128, 129, 1000, 4099, 1 << 16}
		if !testing.Short() {
			lengths = append(lengths, 1<<17)
		}
		for _, n := range lengths {
			for _, nb := range []int{1, 2, 3, 64, 2048, 1 << 14, 1<<14 + 1} {
				for _, width := range []float32{0x1p-8, 1, 0x1p-126, 0x1p100} {
					off := rnd.IntN(4)
					x := make([]float32, n+off)[off:]
					adversarial(rnd, x, width*float32(rnd.IntN(nb+2)))
					if n > 1000 {
						// Long runs of one bin: zeros, NaN, values past the
						// last bin, and one in the middle.
						runs := []float32{0, float32(math.NaN()), math.MaxFloat32, width * float32(nb/2)}
						for r, v := range runs {
							for i := r * n / 8; i < (r+1)*n/8; i++ {
								x[i] = v
							}
						}
					}
					want := make([]int64, nb)
					var wantNF int64
					for _, v := range x {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							wantNF++
							continue
						}
						bin := math.Floor(float64(float32(math.Abs(float64(v))) * (1 / width)))
						want[int(min(bin, float64(nb-1)))]++
					}
					got := make([]int64, nb)
					got[0] = 5 // adds to what is there
					nf := HistogramAbs(x, width, got)
					got[0] -= 5
					if nf != wantNF {
						t.Fatalf("n %d, %d bins of %g: %d non-finite, want %d", n, nb, width, nf, wantNF)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("n %d, %d bins of %g: bin %d = %d, want %d", n, nb, width, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// FuzzElemKernels compares the assembly with the generic path on arbitrary
// float32 bit patterns: Quantize under a scheme, scale and zero point the
// input picks, AbsMax and HistogramAbs. Inputs are capped at 4096 values.
func FuzzElemKernels(f *testing.F) {
	f.Add([]byte{0, 0, 0xC0, 0x7F, 0, 0, 0x80, 0xFF, 0, 0, 0, 0x80}, uint8(0), float32(0.5), int8(3))
	f.Add(make([]byte, 4*257), uint8(5), float32(1e-30), int8(-1))
	schemes := []string{"int8-sym-tensor", "uint8-asym-tensor", "int4-sym-group32", "uint4-asym-tensor", "int8-asym-group64", "int4-asym-channel1"}
	f.Fuzz(func(t *testing.T, data []byte, which uint8, sc float32, zp int8) {
		if !hw.AVX2FMA {
			t.Skip("no assembly on this processor")
		}
		n := min(len(data)/4, 4096)
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		s, err := quant.ParseScheme(schemes[int(which)%len(schemes)])
		if err != nil {
			t.Fatal(err)
		}
		cols := 64
		shape := []int{n}
		if s.Granularity != quant.PerTensor {
			if n%cols != 0 {
				return
			}
			shape = []int{n / cols, cols}
		}
		p, err := quant.NewParams(s, shape)
		if err != nil {
			t.Fatal(err)
		}
		if !(sc > 0) || math.IsInf(float64(sc), 0) {
			sc = 1
		}
		for k := range p.Scales {
			p.Scales[k] = sc
			if !s.Symmetric {
				p.ZeroPoints[k] = s.QMin() + int32(uint8(zp))%(s.QMax()-s.QMin()+1)
			}
		}
		run := func(generic bool) ([]byte, float32, []int64, int64) {
			defer ForceGeneric(generic)()
			codes := make([]byte, s.PackedLen(n))
			if err := Quantize(codes, x, p); err != nil {
				t.Fatal(err)
			}
			counts := make([]int64, 1+int(which)%64)
			nf := HistogramAbs(x, 0x1p-4, counts)
			return codes, AbsMax(x), counts, nf
		}
		c1, m1, h1, nf1 := run(false)
		c0, m0, h0, nf0 := run(true)
		if string(c1) != string(c0) {
			t.Errorf("%v: Quantize differs between the paths", s)
		}
		if math.Float32bits(m1) != math.Float32bits(m0) {
			t.Errorf("AbsMax %v, generic %v", m1, m0)
		}
		if nf1 != nf0 || fmt.Sprint(h1) != fmt.Sprint(h0) {
			t.Errorf("HistogramAbs %v (%d non-finite), generic %v (%d)", h1, nf1, h0, nf0)
		}
	})
}
