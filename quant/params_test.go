package quant

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveIndex is the parameter index of flat element i of shape under s,
// from the multi-index, independently of layout.
func naiveIndex(s Scheme, shape []int, i int) int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
	switch s.Granularity {
	case PerChannel:
		return idx[s.Axis]
	case PerGroup:
		cols := shape[len(shape)-1]
		perRow := (cols + s.GroupSize - 1) / s.GroupSize
		row := 0
		for d := 0; d < len(shape)-1; d++ {
			row = row*shape[d] + idx[d]
		}
		return row*perRow + idx[len(idx)-1]/s.GroupSize
	}
	return 0
}

// naiveNumParams counts distinct naive indices the hard way.
func naiveNumParams(s Scheme, shape []int) int {
	switch s.Granularity {
	case PerChannel:
		return shape[s.Axis]
	case PerGroup:
		rows := 1
		for _, d := range shape[:len(shape)-1] {
			rows *= d
		}
		cols := shape[len(shape)-1]
		return rows * ((cols + s.GroupSize - 1) / s.GroupSize)
	}
	return 1
}

var testDims = []int{0, 1, 1, 2, 3, 5, 7, 16, 33, 64, 130}

// randomShape returns a shape of rank 0 to 4 with at most about 3000
// elements, odd sizes, ones and zeros included.
func randomShape(rng *rand.Rand) []int {
	for {
		shape := make([]int, rng.IntN(5))
		n := 1
		for i := range shape {
			shape[i] = testDims[rng.IntN(len(testDims))]
			n *= shape[i]
		}
		if n <= 3000 {
			return shape
		}
	}
}

// applies reports whether s can describe a tensor of the given shape.
func applies(s Scheme, shape []int) bool {
	switch s.Granularity {
	case PerChannel:
		return s.Axis < len(shape)
	case PerGroup:
		return len(shape) > 0
	}
	return true
}

func TestLayoutMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 200 {
		shape := randomShape(rng)
		for _, s := range allSchemes() {
			p, err := NewParams(s, shape)
			if !applies(s, shape) {
				if err == nil {
					t.Errorf("%v on shape %v: no error", s, shape)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%v on shape %v: %v", s, shape, err)
			}
			n, _ := NumElements(shape)
			if want := naiveNumParams(s, shape); n > 0 && len(p.Scales) != want {
				t.Errorf("%v on shape %v: %d params, want %d", s, shape, len(p.Scales), want)
			}
			next := 0
			p.Runs(func(start, end, k int) {
				if start != next || end <= start {
					t.Errorf("%v on shape %v: run [%d, %d) after %d", s, shape, start, end, next)
				}
				next = end
				for i := start; i < end; i++ {
					if want := naiveIndex(s, shape, i); k != want || p.Index(i) != want {
						t.Fatalf("%v on shape %v: element %d: run index %d, Index %d, want %d", s, shape, i, k, p.Index(i), want)
					}
				}
			})
			if next != n {
				t.Errorf("%v on shape %v: runs cover %d of %d elements", s, shape, next, n)
			}
		}
	}
}

// randomTensor fills n values: normal, shifted and scaled by a random
// magnitude so asymmetric and one-signed ranges occur, with scattered NaN
// and ±Inf when specials is set.
func randomTensor(rng *rand.Rand, n int, specials bool) []float32 {
	x := make([]float32, n)
	mag := math.Pow(10, rng.Float64()*8-4)
	shift := []float64{0, 0, 3, -3, 1}[rng.IntN(5)]
	for i := range x {
		x[i] = float32((rng.NormFloat64() + shift) * mag)
		if specials && rng.IntN(100) == 0 {
			x[i] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}[rng.IntN(3)]
		}
	}
	return x
}

// TestQuantizeRoundTripProperty fits every scheme to random tensors and
// checks that quantize then dequantize is within half a step of every
// finite value the scheme can represent, and that the fitted range covers
// the data.
func TestQuantizeRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 150 {
		shape := randomShape(rng)
		n, _ := NumElements(shape)
		x := randomTensor(rng, n, trial%3 == 0)
		orig := slices.Clone(x)
		for _, s := range allSchemes() {
			if !applies(s, shape) {
				continue
			}
			p, err := FitMinMax(s, x, shape)
			if err != nil {
				t.Fatalf("FitMinMax %v %v: %v", s, shape, err)
			}
			codes := make([]byte, s.PackedLen(n))
			for i := range codes {
				codes[i] = 0xA5 // garbage Quantize must overwrite
			}
			if err := Quantize(codes, x, p); err != nil {
				t.Fatalf("Quantize %v %v: %v", s, shape, err)
			}
			if s.Bits == 4 && n%2 == 1 && codes[len(codes)-1]>>4 != 0 {
				t.Errorf("%v: odd count leaves high nibble %#x", s, codes[len(codes)-1])
			}
			y := make([]float32, n)
			if err := Dequantize(y, codes, p); err != nil {
				t.Fatalf("Dequantize %v %v: %v", s, shape, err)
			}
			qmin, qmax := float64(s.QMin()), float64(s.QMax())
			for i, v := range x {
				k := naiveIndex(s, shape, i)
				sc, zp := float64(p.Scales[k]), float64(p.ZeroPoints[k])
				lo, hi := (qmin-zp)*sc, (qmax-zp)*sc
				got := float64(y[i])
				switch {
				case math.IsNaN(float64(v)):
					if got != 0 {
						t.Fatalf("%v %v: NaN dequantizes to %g", s, shape, got)
					}
					continue
				case math.IsInf(float64(v), 1):
					if got != float64(float32(hi)) {
						t.Fatalf("%v %v: +Inf dequantizes to %g, want %g", s, shape, got, hi)
					}
					continue
				case math.IsInf(float64(v), -1):
					if got != float64(float32(lo)) {
						t.Fatalf("%v %v: -Inf dequantizes to %g, want %g", s, shape, got, lo)
					}
					continue
				}
				half := sc / 2 * (1 + 1e-4)
				in := float64(v) >= lo-half && float64(v) <= hi+half
				if !in && (s.Signed || !s.Symmetric || v >= 0) {
					t.Fatalf("%v %v: element %d = %g outside the fitted range [%g, %g] (scale %g, zero point %g)",
						s, shape, i, v, lo, hi, sc, zp)
				}
				if in && math.Abs(got-float64(v)) > half+math.Abs(float64(v))*1e-6 {
					t.Fatalf("%v %v: element %d = %g round-trips to %g, error %g > scale/2 = %g",
						s, shape, i, v, got, math.Abs(got-float64(v)), sc/2)
				}
			}
		}
		if !slices.Equal(toBits(x), toBits(orig)) {
			t.Fatalf("input modified")
		}
	}
}

func toBits(x []float32) []uint32 {
	b := make([]uint32, len(x))
	for i, v := range x {
		b[i] = math.Float32bits(v)
	}
	return b
}

func TestQuantizeValue(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		x, scale   float32
		zp         int32
		qmin, qmax int32
		want       int32
	}{
		// Round half to even.
		{2.5, 1, 0, -127, 127, 2},
		{3.5, 1, 0, -127, 127, 4},
		{-2.5, 1, 0, -127, 127, -2},
		{-3.5, 1, 0, -127, 127, -4},
		{0.5, 1, 0, -127, 127, 0},
		{1.5, 1, 0, -127, 127, 2},
		{1.25, 0.5, 0, -127, 127, 2},
		{2.5, 1, 10, 0, 255, 12},
		// Saturation.
		{1000, 1, 0, -127, 127, 127},
		{-1000, 1, 0, -127, 127, -127},
		{-1000, 1, 0, -128, 127, -128},
		{1e30, 1e-30, 0, -7, 7, 7},
		{-5, 1, 3, 0, 255, 0},
		// Specials: NaN to the zero point, ±Inf to the ends.
		{nan, 1, 0, -127, 127, 0},
		{nan, 0.1, 17, 0, 255, 17},
		{inf, 1, 0, -127, 127, 127},
		{-inf, 1, 0, -127, 127, -127},
		{-inf, 1, 5, 0, 15, 0},
		// x/scale overflows float32.
		{3e38, 1e-10, 0, -127, 127, 127},
		{-3e38, 1e-10, 0, -128, 127, -128},
	} {
		if got := QuantizeValue(c.x, c.scale, c.zp, c.qmin, c.qmax); got != c.want {
			t.Errorf("QuantizeValue(%g, %g, %d, %d, %d) = %d, want %d", c.x, c.scale, c.zp, c.qmin, c.qmax, got, c.want)
		}
	}
}

func TestInt4Packing(t *testing.T) {
	for _, c := range []struct {
		scheme string
		x      []float32
		want   []byte
	}{
		// 1 → 0x1, -2 → 0xE: byte 0xE1 (low nibble first); 7, -8 → 0x87; 3 alone → 0x03.
		{"int4-asym-tensor", []float32{1, -2, 7, -8, 3}, []byte{0xE1, 0x87, 0x03}},
		{"uint4-asym-tensor", []float32{15, 0, 9}, []byte{0x0F, 0x09}},
		{"int8-asym-tensor", []float32{-1, 127, -128}, []byte{0xFF, 0x7F, 0x80}},
		{"uint8-asym-tensor", []float32{255, 0, 200}, []byte{0xFF, 0x00, 0xC8}},
	} {
		s, err := ParseScheme(c.scheme)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewParams(s, []int{len(c.x)})
		if err != nil {
			t.Fatal(err)
		}
		codes := make([]byte, s.PackedLen(len(c.x)))
		for i := range codes {
			codes[i] = 0xFF
		}
		if err := Quantize(codes, c.x, p); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(codes, c.want) {
			t.Errorf("%s %v: codes % x, want % x", c.scheme, c.x, codes, c.want)
		}
		y := make([]float32, len(c.x))
		if err := Dequantize(y, codes, p); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(y, c.x) {
			t.Errorf("%s: dequantized %v, want %v", c.scheme, y, c.x)
		}
		for i, v := range c.x {
			if got := Code(codes, s.Bits, s.Signed, i); got != int32(v) {
				t.Errorf("%s: Code %d = %d, want %d", c.scheme, i, got, int32(v))
			}
		}
	}
}

func TestScaleZeroPoint(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		scheme string
		lo, hi float32
		scale  float32
		zp     int32
	}{
		{"int8-sym-tensor", -1, 2, float32(2.0 / 127), 0},
		{"int8-sym-tensor", -3, 2, float32(3.0 / 127), 0},
		{"int8-sym-tensor", 2, -3, float32(3.0 / 127), 0}, // swapped bounds
		{"uint8-asym-tensor", -1, 3, float32(4.0 / 255), 64},
		{"uint8-asym-tensor", 1, 3, float32(3.0 / 255), 0},     // widened to include 0
		{"uint8-asym-tensor", -3, -1, float32(3.0 / 255), 255}, // widened to include 0
		{"int8-asym-tensor", -1, 3, float32(4.0 / 255), -64},
		{"int4-asym-tensor", 0, 15, 1, -8},
		{"int4-sym-tensor", -7, 7, 1, 0},
		// All zero and non-finite bounds: never NaN.
		{"int8-sym-tensor", 0, 0, 1, 0},
		{"uint8-asym-tensor", 0, 0, 1, 0},
		{"int8-asym-tensor", 0, 0, 1, -128},
		{"int8-sym-tensor", nan, nan, 1, 0},
		{"int8-sym-tensor", nan, 127, 1, 0},
		{"int8-sym-tensor", -inf, 0, float32(math.MaxFloat32 / 127), 0},
		// Tiny ranges keep a normal scale.
		{"int8-sym-tensor", 0, 1e-40, 0x1p-126, 0},
	} {
		s, err := ParseScheme(c.scheme)
		if err != nil {
			t.Fatal(err)
		}
		sc, zp := s.ScaleZeroPoint(c.lo, c.hi)
		if sc != c.scale || zp != c.zp {
			t.Errorf("%s ScaleZeroPoint(%g, %g) = (%g, %d), want (%g, %d)", c.scheme, c.lo, c.hi, sc, zp, c.scale, c.zp)
		}
	}
}

func TestAllZeroTensor(t *testing.T) {
	for _, s := range allSchemes() {
		shape := []int{4, 4, 4, 6}
		if !applies(s, shape) {
			continue
		}
		x := make([]float32, 4*4*4*6)
		p, err := FitMinMax(s, x, shape)
		if err != nil {
			t.Fatal(err)
		}
		for k, sc := range p.Scales {
			if sc != 1 {
				t.Fatalf("%v: scale %d = %g, want 1", s, k, sc)
			}
		}
		codes := make([]byte, s.PackedLen(len(x)))
		y := make([]float32, len(x))
		if err := Quantize(codes, x, p); err != nil {
			t.Fatal(err)
		}
		if err := Dequantize(y, codes, p); err != nil {
			t.Fatal(err)
		}
		for i, v := range y {
			if v != 0 {
				t.Fatalf("%v: element %d dequantizes to %g", s, i, v)
			}
		}
	}
}

func TestFitMinMaxNonFiniteGroup(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	s := Scheme{Bits: 8, Signed: true, Symmetric: true, Granularity: PerChannel}
	p, err := FitMinMax(s, []float32{nan, inf, -inf, 1, -254, 127}, []int{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if p.Scales[0] != 1 || p.Scales[1] != 2 {
		t.Errorf("scales %v, want [1 2]", p.Scales)
	}
}

func TestParamsErrors(t *testing.T) {
	p, err := NewParams(Int8PerChannel, []int{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 6)
	for name, c := range map[string]struct {
		edit  func(p *Params)
		codes int
		vals  int
	}{
		"zero scale":         {func(p *Params) { p.Scales[0] = 0 }, 6, 6},
		"NaN scale":          {func(p *Params) { p.Scales[1] = float32(math.NaN()) }, 6, 6},
		"Inf scale":          {func(p *Params) { p.Scales[1] = float32(math.Inf(1)) }, 6, 6},
		"symmetric zp":       {func(p *Params) { p.ZeroPoints[0] = 1 }, 6, 6},
		"too few scales":     {func(p *Params) { p.Scales = p.Scales[:1] }, 6, 6},
		"short codes":        {func(*Params) {}, 5, 6},
		"short values":       {func(*Params) {}, 6, 5},
		"axis out of range":  {func(p *Params) { p.Scheme.Axis = 2 }, 6, 6},
		"negative dimension": {func(p *Params) { p.Shape = []int{-2, -3} }, 6, 6},
	} {
		q := &Params{Scheme: p.Scheme, Shape: slices.Clone(p.Shape), Scales: slices.Clone(p.Scales), ZeroPoints: slices.Clone(p.ZeroPoints)}
		c.edit(q)
		if err := Quantize(make([]byte, c.codes), x[:c.vals], q); err == nil {
			t.Errorf("%s: Quantize: no error", name)
		}
		if err := Dequantize(x[:c.vals], make([]byte, c.codes), q); err == nil {
			t.Errorf("%s: Dequantize: no error", name)
		}
	}
	if _, err := FitMinMax(Int8PerTensor, x, []int{7}); err == nil {
		t.Error("FitMinMax with 6 values for 7 elements: no error")
	}
	if _, err := NumElements([]int{math.MaxInt / 2, 3}); err == nil {
		t.Error("NumElements: overflow not reported")
	}
}

// FitMinMax ignores NaN and ±Inf and always includes 0 in the range.
func TestFitMinMaxSkipsNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	s := Scheme{Bits: 8, Signed: true, Symmetric: false, Granularity: PerTensor}
	p, err := FitMinMax(s, []float32{nan, inf, -inf, 2, -3, nan}, []int{6})
	if err != nil {
		t.Fatal(err)
	}
	wantScale, wantZP := s.ScaleZeroPoint(-3, 2)
	if p.Scales[0] != wantScale || p.ZeroPoints[0] != wantZP {
		t.Errorf("scale %g zp %d, want %g %d (range [-3, 2])", p.Scales[0], p.ZeroPoints[0], wantScale, wantZP)
	}
	p, _ = FitMinMax(s, []float32{-inf, 5, 7}, []int{3}) // all positive: the range starts at 0
	if ws, wz := s.ScaleZeroPoint(0, 7); p.Scales[0] != ws || p.ZeroPoints[0] != wz {
		t.Errorf("positive data: scale %g zp %d, want %g %d", p.Scales[0], p.ZeroPoints[0], ws, wz)
	}
}

// paramsValid against the plain comparisons it replaces, on every edge of
// the float32 and int32 ranges.
func TestParamsValid(t *testing.T) {
	scales := []float32{1, 0x1p-149, 0x1p-126, math.MaxFloat32, 0, float32(math.Copysign(0, -1)), -1,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -math.MaxFloat32}
	zps := []int32{0, 1, -1, 7, 8, -8, -9, 127, 128, -128, -129, 255, 256, math.MaxInt32, math.MinInt32}
	for _, r := range [][2]int32{{-8, 7}, {0, 15}, {-128, 127}, {0, 255}, {-7, 7}} {
		for _, sym := range []bool{false, true} {
			for _, sc := range scales {
				for _, zp := range zps {
					lo, hi := r[0], r[1]
					if sym {
						lo, hi = 0, 0
					}
					want := sc > 0 && !math.IsInf(float64(sc), 0) && zp >= lo && zp <= hi
					// One bad pair among good ones, at each end.
					s := []float32{1, sc, 2}
					z := []int32{lo, zp, hi}
					if got := paramsValid(s, z, r[0], r[1], sym); got != want {
						t.Errorf("range %v sym %v: scale %g zero point %d: valid %v, want %v", r, sym, sc, zp, got, want)
					}
				}
			}
		}
	}
}

// FitAbsMax with a plain abs-max loop gives FitMinMax's parameters to the
// bit, for every symmetric granularity, including a channel axis in the
// middle (whose parameter indices recur along the outer axis) and values
// that are NaN, infinite, subnormal or huge.
func TestFitAbsMax(t *testing.T) {
	absMax := func(x []float32) float32 {
		var m float32
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); a > m && a <= math.MaxFloat32 {
				m = a
			}
		}
		return m
	}
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0x1p-149, -math.MaxFloat32, 0}
	rnd := rand.New(rand.NewPCG(7, 7))
	for _, name := range []string{"int8-sym-tensor", "int8-sym-channel", "int8-sym-channel1", "int4-sym-channel2",
		"int4-sym-group32", "int8-sym-group64", "uint8-sym-tensor"} {
		s, err := ParseScheme(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, shape := range [][]int{{3, 5, 64}, {4, 6, 128}} {
			n, _ := NumElements(shape)
			for pattern := range 3 {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(rnd.NormFloat64() * math.Exp(2*rnd.NormFloat64()))
					if pattern == 1 && rnd.IntN(20) == 0 || pattern == 2 && i%64 < 50 {
						x[i] = specials[rnd.IntN(len(specials))]
					}
				}
				want, werr := FitMinMax(s, x, shape)
				got, gerr := FitAbsMax(s, x, shape, absMax)
				if werr != nil || gerr != nil {
					t.Fatalf("%s %v: %v, %v", name, shape, gerr, werr)
				}
				if !slices.Equal(got.Scales, want.Scales) || !slices.Equal(got.ZeroPoints, want.ZeroPoints) {
					t.Errorf("%s %v pattern %d: FitAbsMax differs from FitMinMax", name, shape, pattern)
				}
			}
		}
	}
	s, _ := ParseScheme("int8-asym-channel")
	if _, err := FitAbsMax(s, make([]float32, 8), []int{2, 4}, absMax); err == nil {
		t.Error("FitAbsMax took an asymmetric scheme")
	}
}
