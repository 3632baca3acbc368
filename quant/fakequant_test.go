package quant

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestFakeQuantMatchesQuantizeDequantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 60 {
		shape := randomShape(rng)
		n, _ := NumElements(shape)
		x := randomTensor(rng, n, true)
		orig := slices.Clone(x)
		for _, s := range allSchemes() {
			if !applies(s, shape) {
				continue
			}
			p, err := FitMinMax(s, x, shape)
			if err != nil {
				t.Fatal(err)
			}
			// Shrink the scales so that some values clip.
			if trial%2 == 0 {
				for k := range p.Scales {
					p.Scales[k] *= 0.7
				}
			}
			codes := make([]byte, s.PackedLen(n))
			want := make([]float32, n)
			if err := Quantize(codes, x, p); err != nil {
				t.Fatal(err)
			}
			if err := Dequantize(want, codes, p); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, n)
			mask := make([]bool, n)
			if err := FakeQuant(y, mask, x, p); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(toBits(y), toBits(want)) {
				t.Fatalf("%v %v: FakeQuant differs from Dequantize(Quantize(x))", s, shape)
			}
			gradOut := make([]float32, n)
			for i := range gradOut {
				gradOut[i] = float32(rng.NormFloat64())
			}
			gradIn := make([]float32, n)
			if err := FakeQuantBackward(gradIn, gradOut, mask); err != nil {
				t.Fatal(err)
			}
			qmin, qmax := float64(s.QMin()), float64(s.QMax())
			for i, v := range x {
				k := naiveIndex(s, shape, i)
				sc, zp := float64(p.Scales[k]), float64(p.ZeroPoints[k])
				lo, hi := float64(float32((qmin-zp)*sc)), float64(float32((qmax-zp)*sc))
				in := float64(v) >= lo && float64(v) <= hi // false for NaN
				if mask[i] != in {
					t.Fatalf("%v %v: element %d = %g in [%g, %g]: mask %v, want %v", s, shape, i, v, lo, hi, mask[i], in)
				}
				g := float32(0)
				if in {
					g = gradOut[i]
				}
				if gradIn[i] != g {
					t.Fatalf("%v: gradient %d = %g, want %g", s, i, gradIn[i], g)
				}
			}
		}
		if !slices.Equal(toBits(x), toBits(orig)) {
			t.Fatal("input modified")
		}
	}
}

func TestFakeQuantPerChannel(t *testing.T) {
	// Two channels of three: scales 1 and 0.5, int8 symmetric [-127, 127].
	p := &Params{Scheme: Int8PerChannel, Shape: []int{2, 3}, Scales: []float32{1, 0.5}, ZeroPoints: []int32{0, 0}}
	nan := float32(math.NaN())
	x := []float32{2.5, -200, 127, 0.3, 63.6, nan}
	y := make([]float32, 6)
	mask := make([]bool, 6)
	if err := FakeQuant(y, mask, x, p); err != nil {
		t.Fatal(err)
	}
	wantY := []float32{2, -127, 127, 0.5, 63.5, 0}
	wantMask := []bool{true, false, true, true, false, false}
	if !slices.Equal(y, wantY) || !slices.Equal(mask, wantMask) {
		t.Errorf("y %v mask %v; want %v %v", y, mask, wantY, wantMask)
	}
	// In place, without a mask.
	if err := FakeQuant(x, nil, x, p); err != nil || !slices.Equal(x, wantY) {
		t.Errorf("in place: %v, %v", x, err)
	}
	g := []float32{1, 2, 3, 4, 5, 6}
	if err := FakeQuantBackward(g, g, mask); err != nil || !slices.Equal(g, []float32{1, 0, 3, 4, 0, 0}) {
		t.Errorf("backward in place: %v, %v", g, err)
	}
}

func TestFakeQuantErrors(t *testing.T) {
	p, _ := NewParams(Int8PerTensor, []int{4})
	x := make([]float32, 4)
	if err := FakeQuant(make([]float32, 3), nil, x, p); err == nil {
		t.Error("short output: no error")
	}
	if err := FakeQuant(x, make([]bool, 3), x, p); err == nil {
		t.Error("short mask: no error")
	}
	if err := FakeQuant(x[:3], nil, x[:3], p); err == nil {
		t.Error("wrong element count: no error")
	}
	p.Scales[0] = 0
	if err := FakeQuant(x, nil, x, p); err == nil {
		t.Error("zero scale: no error")
	}
	if err := FakeQuantBackward(x, x[:3], make([]bool, 4)); err == nil {
		t.Error("backward length mismatch: no error")
	}
}
