package backendtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/quant"
)

// quantCase is one scheme on one shape.
type quantCase struct {
	s     quant.Scheme
	shape []int
}

func (c quantCase) name() string { return c.s.String() + "/" + sizeName(c.shape...) }

// quantCases lists every scheme (8 and 4 bits, signed and unsigned,
// symmetric and asymmetric; per tensor, per channel on the first, a middle
// and the last axis, per group of 32, 64 and 128) on empty, unit, odd,
// ragged and large (1<<20 elements) shapes; with -short (the race run)
// the large ones are 4 to 8 times smaller, still several times
// cpu's smallest parallel split.
func quantCases() []quantCase {
	var cs []quantCase
	large := func(full, short []int) []int {
		if testing.Short() {
			return short
		}
		return full
	}
	for _, bits := range []int{8, 4} {
		for _, signed := range []bool{true, false} {
			for _, sym := range []bool{true, false} {
				base := quant.Scheme{Bits: bits, Signed: signed, Symmetric: sym}
				add := func(s quant.Scheme, shapes ...[]int) {
					for _, sh := range shapes {
						cs = append(cs, quantCase{s, sh})
					}
				}
				s := base
				s.Granularity = quant.PerTensor
				add(s, []int{0}, []int{}, []int{1}, []int{7}, []int{33}, []int{67, 45}, large([]int{1 << 20}, []int{1 << 17}))
				s.Granularity = quant.PerChannel
				add(s, []int{1, 1}, []int{7, 1}, []int{3, 7}, []int{67, 45}, []int{0, 5}, large([]int{1024, 1024}, []int{256, 512}))
				s.Axis = 1
				add(s, []int{1, 7}, []int{7, 3}, []int{45, 67}, []int{3, 5, 7}, large([]int{1023, 1025}, []int{255, 513}))
				s.Axis = 2
				add(s, []int{3, 5, 7}, []int{4, 3, 1})
				for _, g := range []int{32, 64, 128} {
					s := base
					s.Granularity = quant.PerGroup
					s.GroupSize = g
					add(s, []int{1, 1}, []int{3, 7}, []int{5, 100}, []int{3, g + 1}, []int{2, 3*g - 5}, []int{7, g}, []int{0, g})
					if g == 128 {
						add(s, large([]int{512, 2048}, []int{128, 1024}))
					} else {
						add(s, []int{1001, 2*g + 3})
					}
				}
			}
		}
	}
	return cs
}

// quantData gives values for a case: mostly normal values of a scale that
// varies along the tensor, with specials sprinkled in.
func quantData(rnd *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rnd.NormFloat64() * math.Ldexp(1, (i/97)%9-4))
		if rnd.IntN(40) == 0 {
			x[i] = specials[rnd.IntN(len(specials))]
		}
	}
	return x
}

// quantParams gives parameters for x: fitted to it, or (adversarial)
// powers-of-two scales with zero points at both ends of the range.
func quantParams(t *testing.T, rnd *rand.Rand, c quantCase, x []float32, fitted bool) *quant.Params {
	t.Helper()
	if fitted {
		p, err := quant.FitMinMax(c.s, x, c.shape)
		if err != nil {
			t.Fatalf("FitMinMax: %v", err)
		}
		return p
	}
	p, err := quant.NewParams(c.s, c.shape)
	if err != nil {
		t.Fatalf("NewParams: %v", err)
	}
	qmin, qmax := c.s.QMin(), c.s.QMax()
	for k := range p.Scales {
		p.Scales[k] = float32(math.Ldexp(1, rnd.IntN(13)-8))
		switch {
		case k%17 == 3:
			p.Scales[k] = 0x1p-126 // smallest normal: large x/scale overflow
		case k%17 == 5:
			p.Scales[k] = 3e38
		}
		if !c.s.Symmetric {
			p.ZeroPoints[k] = [...]int32{qmin, qmax, (qmin + qmax) / 2, qmin + int32(rnd.IntN(int(qmax-qmin+1)))}[k%4]
		}
	}
	return p
}

// ties puts values exactly halfway between codes into x under p, so that
// rounding half to even is tested.
func ties(rnd *rand.Rand, x []float32, p *quant.Params) {
	p.Runs(func(start, end, k int) {
		for i := start; i < end; i++ {
			if rnd.IntN(4) == 0 {
				x[i] = float32(float64(rnd.IntN(41)-20)+0.5) * p.Scales[k]
			}
		}
	})
}

func cloneParams(p *quant.Params) *quant.Params {
	c := *p
	c.Shape = slices.Clone(p.Shape)
	c.Scales = slices.Clone(p.Scales)
	c.ZeroPoints = slices.Clone(p.ZeroPoints)
	return &c
}

func sameParams(a, b *quant.Params) bool {
	return a.Scheme == b.Scheme && slices.Equal(a.Shape, b.Shape) &&
		slices.Equal(a.Scales, b.Scales) && slices.Equal(a.ZeroPoints, b.ZeroPoints)
}

func testQuantize(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, c := range quantCases() {
		t.Run(c.name(), func(t *testing.T) {
			n, _ := quant.NumElements(c.shape)
			x := quantData(rnd, n)
			for _, fitted := range []bool{true, false} {
				p := quantParams(t, rnd, c, x, fitted)
				xs := slices.Clone(x)
				if !fitted && n < 1<<16 {
					ties(rnd, xs, p)
				}
				checkQuantize(t, b, xs, p)
			}
		})
	}
	t.Run("nonfinite", func(t *testing.T) { testQuantizeNonFinite(t, b) })
	t.Run("errors", func(t *testing.T) { testQuantErrors(t, b, true) })
}

// testQuantizeNonFinite states the conventions directly: NaN quantizes to
// the zero point, +Inf to qmax and -Inf to qmin.
func testQuantizeNonFinite(t *testing.T, b backend.Backend) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	x := []float32{nan, inf, -inf, 0, -nan, -inf, inf}
	for _, bits := range []int{8, 4} {
		for _, signed := range []bool{true, false} {
			s := quant.Scheme{Bits: bits, Signed: signed, Granularity: quant.PerTensor}
			p, err := quant.NewParams(s, []int{len(x)})
			if err != nil {
				t.Fatal(err)
			}
			p.Scales[0], p.ZeroPoints[0] = 0.1, s.QMin()+3
			xb := upload(t, b, x)
			codes := newOutput[uint8](t, b, s.PackedLen(len(x)))
			if err := b.Quantize(codes.mid, xb, p); err != nil {
				t.Fatalf("Quantize: %v", err)
			}
			got := codes.read(t, b)
			zp := p.ZeroPoints[0]
			want := []int32{zp, s.QMax(), s.QMin(), zp, zp, s.QMin(), s.QMax()}
			for i, w := range want {
				if c := quant.Code(got, bits, signed, i); c != w {
					t.Errorf("%v: code of %v is %d, want %d", s, x[i], c, w)
				}
			}
		}
	}
}

func checkQuantize(t *testing.T, b backend.Backend, x []float32, p *quant.Params) {
	t.Helper()
	want := make([]byte, p.Scheme.PackedLen(len(x)))
	for i := range want {
		want[i] = 0xA5 // the reference must overwrite every byte too
	}
	if err := quant.Quantize(want, x, p); err != nil {
		t.Fatalf("quant.Quantize: %v", err)
	}
	orig := cloneParams(p)
	xb := upload(t, b, x)
	codes := newOutput[uint8](t, b, len(want))
	if err := b.Quantize(codes.mid, xb, p); err != nil {
		t.Fatalf("Quantize: %v", err)
	}
	got := codes.read(t, b)
	bad := mismatches{t: t}
	for i := range want {
		if got[i] != want[i] {
			if !bad.add("%v: code byte %d = %#02x, want %#02x (x = %v)", p.Scheme, i, got[i], want[i], x[i*8/p.Scheme.Bits]) {
				break
			}
		}
	}
	bad.done("Quantize")
	checkUnchanged(t, b, xb, x, "x")
	if !sameParams(p, orig) {
		t.Errorf("Quantize changed its parameters")
	}
}

func testDequantize(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, c := range quantCases() {
		t.Run(c.name(), func(t *testing.T) {
			n, _ := quant.NumElements(c.shape)
			x := quantData(rnd, n)
			for _, fitted := range []bool{true, false} {
				p := quantParams(t, rnd, c, x, fitted)
				// Every code, including the unused high nibble of an odd
				// count of 4-bit codes, which must be ignored.
				codes := make([]byte, c.s.PackedLen(n))
				for i := range codes {
					codes[i] = byte(rnd.Uint32())
				}
				checkDequantize(t, b, codes, n, p)
			}
		})
	}
	t.Run("errors", func(t *testing.T) { testQuantErrors(t, b, false) })
}

func checkDequantize(t *testing.T, b backend.Backend, codes []byte, n int, p *quant.Params) {
	t.Helper()
	want := make([]float32, n)
	if err := quant.Dequantize(want, codes, p); err != nil {
		t.Fatalf("quant.Dequantize: %v", err)
	}
	orig := cloneParams(p)
	cb := upload(t, b, codes)
	x := newOutput[float32](t, b, n)
	if err := b.Dequantize(x.mid, cb, p); err != nil {
		t.Fatalf("Dequantize: %v", err)
	}
	got := x.read(t, b)
	bad := mismatches{t: t}
	for i := range want {
		if !same(got[i], want[i]) {
			if !bad.add("%v: x[%d] = %v, want %v", p.Scheme, i, got[i], want[i]) {
				break
			}
		}
	}
	bad.done("Dequantize")
	checkUnchanged(t, b, cb, codes, "codes")
	if !sameParams(p, orig) {
		t.Errorf("Dequantize changed its parameters")
	}
}

// testQuantErrors checks that bad parameters and lengths are errors.
func testQuantErrors(t *testing.T, b backend.Backend, quantize bool) {
	op := func(codes, x backend.Buffer, p *quant.Params) error {
		if quantize {
			return b.Quantize(codes, x, p)
		}
		return b.Dequantize(x, codes, p)
	}
	s := quant.Int4PerGroup128
	p, err := quant.NewParams(s, []int{3, 5})
	if err != nil {
		t.Fatal(err)
	}
	x := upload(t, b, make([]float32, 15))
	codes := upload(t, b, make([]uint8, 8))
	if err := op(codes, x, p); err != nil {
		t.Fatalf("valid call: %v", err)
	}
	short := upload(t, b, make([]uint8, 7))
	f14 := upload(t, b, make([]float32, 14))
	s8 := upload(t, b, make([]int8, 8))
	mustFail(t, "7 code bytes for 15 int4 values", func() error { return op(short, x, p) })
	mustFail(t, "14 values for shape [3 5]", func() error { return op(codes, f14, p) })
	mustFail(t, "s8 codes", func() error { return op(s8, x, p) })
	mustFail(t, "nil parameters", func() error { return op(codes, x, nil) })
	bad := cloneParams(p)
	bad.Scales[1] = 0
	mustFail(t, "a zero scale", func() error { return op(codes, x, bad) })
	bad = cloneParams(p)
	bad.Scales = bad.Scales[:2]
	mustFail(t, "too few scales", func() error { return op(codes, x, bad) })
	bad = cloneParams(p)
	bad.ZeroPoints[0] = 1
	mustFail(t, "a zero point in a symmetric scheme", func() error { return op(codes, x, bad) })
}
