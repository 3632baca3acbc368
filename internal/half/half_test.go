package half

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// refFloat16 is the value of float16 bits h by the textbook formula,
// computed in float64 (exactly: at most 11 significant bits).
func refFloat16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch {
	case exp == 0x1f && mant == 0:
		return math.Inf(int(sign))
	case exp == 0x1f:
		return math.NaN()
	case exp == 0:
		return sign * math.Ldexp(mant/1024, -14)
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}

// refBFloat16 is the value of bfloat16 bits b by the textbook formula.
func refBFloat16(b uint16) float64 {
	sign := 1.0
	if b&0x8000 != 0 {
		sign = -1
	}
	exp := int(b>>7) & 0xff
	mant := float64(b & 0x7f)
	switch {
	case exp == 0xff && mant == 0:
		return math.Inf(int(sign))
	case exp == 0xff:
		return math.NaN()
	case exp == 0:
		return sign * math.Ldexp(mant/128, -126)
	}
	return sign * math.Ldexp(1+mant/128, exp-127)
}

func sameFloat(got float32, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(float64(got))
	}
	// Compare bits so that -0 and +0 differ.
	return math.Float64bits(float64(got)) == math.Float64bits(want)
}

func TestFloat16ToFloat32Exhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		got := Float16ToFloat32(h)
		if want := refFloat16(h); !sameFloat(got, want) {
			t.Fatalf("Float16ToFloat32(%#04x) = %v (%#08x), want %v", h, got, math.Float32bits(got), want)
		}
		if math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("Float16ToFloat32(%#04x): sign lost", h)
		}
	}
}

func TestBFloat16ToFloat32Exhaustive(t *testing.T) {
	for i := range 1 << 16 {
		b := uint16(i)
		got := BFloat16ToFloat32(b)
		if want := refBFloat16(b); !sameFloat(got, want) {
			t.Fatalf("BFloat16ToFloat32(%#04x) = %v, want %v", b, got, want)
		}
	}
}

// Every 16-bit pattern, NaNs included, must survive 16 → 32 → 16 bits.
func TestRoundTripExhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		if got := Float32ToFloat16(Float16ToFloat32(h)); got != h {
			t.Fatalf("float16 %#04x → %v → %#04x", h, Float16ToFloat32(h), got)
		}
		if got := Float32ToBFloat16(BFloat16ToFloat32(h)); got != h {
			t.Fatalf("bfloat16 %#04x → %v → %#04x", h, BFloat16ToFloat32(h), got)
		}
	}
}

// refNarrow is the obviously right narrowing: binary search for the largest
// non-negative 16-bit pattern whose value (value(inf) taken as the next
// power of two, as IEEE rounding does) is ≤ |f|, then pick the nearer of it
// and its successor, the even one on a tie.
func refNarrow(f float32, value func(uint16) float64, inf uint16) uint16 {
	x := float64(f)
	sign := uint16(0)
	if math.Signbit(x) {
		sign = 0x8000
		x = -x
	}
	// The "value" of the Inf pattern for rounding is max + ulp(max).
	maxFinite := value(inf - 1)
	infValue := maxFinite + (maxFinite - value(inf-2))
	v := func(p uint16) float64 {
		if p == inf {
			return infValue
		}
		return value(p)
	}
	if x >= infValue {
		return sign | inf
	}
	lo, hi := uint16(0), inf // v(lo) ≤ x < v(hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if v(mid) <= x {
			lo = mid
		} else {
			hi = mid
		}
	}
	dlo, dhi := x-v(lo), v(hi)-x
	switch {
	case dlo < dhi:
		return sign | lo
	case dhi < dlo:
		return sign | hi
	case lo&1 == 0:
		return sign | lo
	}
	return sign | hi
}

func refFloat32ToFloat16(f float32) uint16 { return refNarrow(f, refFloat16, 0x7c00) }
func refFloat32ToBFloat16(f float32) uint16 {
	return refNarrow(f, refBFloat16, 0x7f80)
}

func checkNarrow(t *testing.T, f float32) {
	t.Helper()
	if math.IsNaN(float64(f)) {
		if h := Float32ToFloat16(f); h&0x7fff <= 0x7c00 || (h&0x8000 != 0) != math.Signbit(float64(f)) {
			t.Fatalf("Float32ToFloat16(NaN %#08x) = %#04x, not a NaN of the same sign", math.Float32bits(f), h)
		}
		if b := Float32ToBFloat16(f); b&0x7fff <= 0x7f80 || (b&0x8000 != 0) != math.Signbit(float64(f)) {
			t.Fatalf("Float32ToBFloat16(NaN %#08x) = %#04x, not a NaN of the same sign", math.Float32bits(f), b)
		}
		return
	}
	if got, want := Float32ToFloat16(f), refFloat32ToFloat16(f); got != want {
		t.Fatalf("Float32ToFloat16(%v = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
	}
	if got, want := Float32ToBFloat16(f), refFloat32ToBFloat16(f); got != want {
		t.Fatalf("Float32ToBFloat16(%v = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
	}
}

// Around every float16 value: the value itself, the midpoint to the next
// value (a tie), and the float32 neighbours of the midpoint on each side.
func TestFloat32ToFloat16Midpoints(t *testing.T) {
	for i := range 0x7c00 {
		a, b := refFloat16(uint16(i)), refFloat16(uint16(i+1))
		if i+1 == 0x7c00 {
			b = 65536 // Inf's rounding value
		}
		mid := float32((a + b) / 2) // exact: needs 12 significant bits
		if float64(mid) != (a+b)/2 {
			t.Fatalf("midpoint of %#04x not exact in float32", i)
		}
		for _, f := range []float32{
			float32(a), mid,
			math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1))),
		} {
			checkNarrow(t, f)
			checkNarrow(t, -f)
		}
	}
}

// Around every bfloat16 value, the same: ties and their neighbours.
func TestFloat32ToBFloat16Midpoints(t *testing.T) {
	for i := range 0x7f80 {
		bits := uint32(i)<<16 | 0x8000 // the tie above value i
		for _, u := range []uint32{uint32(i) << 16, bits - 1, bits, bits + 1} {
			f := math.Float32frombits(u)
			checkNarrow(t, f)
			checkNarrow(t, -f)
		}
	}
}

func TestNarrowSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := []struct {
		f      float32
		f16    uint16
		bf16   uint16
		reason string
	}{
		{0, 0x0000, 0x0000, "zero"},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000, "negative zero"},
		{1, 0x3c00, 0x3f80, "one"},
		{-2, 0xc000, 0xc000, "minus two"},
		{65504, 0x7bff, 0x4780, "float16 max"},
		{65519.996, 0x7bff, 0x4780, "just below the float16 overflow threshold"},
		{65520, 0x7c00, 0x4780, "float16 overflow threshold rounds to Inf"},
		{1e10, 0x7c00, 0x5015, "far beyond float16 range"},
		{inf, 0x7c00, 0x7f80, "+Inf"},
		{-inf, 0xfc00, 0xff80, "-Inf"},
		{math.MaxFloat32, 0x7c00, 0x7f80, "float32 max rounds to bfloat16 Inf"},
		{0x1p-24, 0x0001, 0x3380, "smallest float16 subnormal"},
		{0x1p-25, 0x0000, 0x3300, "half the smallest subnormal ties to zero"},
		{0x1.000002p-25, 0x0001, 0x3300, "just above half the smallest subnormal"},
		{0x3p-25, 0x0002, 0x33c0, "1.5 subnormal units ties to even 2"},
		{0x1p-14, 0x0400, 0x3880, "smallest float16 normal"},
		{0x1.ffcp-15, 0x0400, 0x3880, "subnormal rounding up into the normals"},
		{0x1p-149, 0x0000, 0x0000, "float32 subnormal"},
		{1 + 0x1p-11, 0x3c00, 0x3f80, "tie at one rounds to even"},
		{1 + 0x3p-11, 0x3c02, 0x3f80, "tie rounds up to even"},
	}
	for _, c := range cases {
		if got := Float32ToFloat16(c.f); got != c.f16 {
			t.Errorf("%s: Float32ToFloat16(%v) = %#04x, want %#04x", c.reason, c.f, got, c.f16)
		}
		if got := Float32ToBFloat16(c.f); got != c.bf16 {
			t.Errorf("%s: Float32ToBFloat16(%v) = %#04x, want %#04x", c.reason, c.f, got, c.bf16)
		}
		checkNarrow(t, c.f)
	}
	// NaNs: payloads kept where they fit, the quiet bit set where they do not.
	for _, c := range []struct {
		in        uint32
		f16, bf16 uint16
	}{
		{0x7fc00000, 0x7e00, 0x7fc0},
		{0xffc00000, 0xfe00, 0xffc0},
		{0x7f800001, 0x7e00, 0x7fc0}, // payload only in the dropped bits
		{0x7fa00000, 0x7d00, 0x7fa0}, // signalling NaN payload kept
	} {
		f := math.Float32frombits(c.in)
		if got := Float32ToFloat16(f); got != c.f16 {
			t.Errorf("Float32ToFloat16(%#08x) = %#04x, want %#04x", c.in, got, c.f16)
		}
		if got := Float32ToBFloat16(f); got != c.bf16 {
			t.Errorf("Float32ToBFloat16(%#08x) = %#04x, want %#04x", c.in, got, c.bf16)
		}
	}
}

// Random float32 bit patterns, weighted towards the float16 range.
func TestNarrowRandom(t *testing.T) {
	n := 1 << 20
	if testing.Short() {
		n = 1 << 14
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range n {
		u := rng.Uint32()
		if rng.IntN(2) == 0 {
			// exponent within float16's range and a little around it
			u = u&0x807fffff | uint32(127-28+rng.IntN(46))<<23
		}
		checkNarrow(t, math.Float32frombits(u))
	}
}

func TestSlices(t *testing.T) {
	src := []float32{0, 1, -2.5, 65504, float32(math.Inf(-1)), 0x1p-24, 3.14159}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		buf := make([]byte, 2*len(src))
		EncodeFloat16(buf, src, order)
		dst := make([]float32, len(src))
		DecodeFloat16(dst, buf, order)
		for i, v := range src {
			if want := Float16ToFloat32(Float32ToFloat16(v)); dst[i] != want {
				t.Errorf("%v float16 [%d] = %v, want %v", order, i, dst[i], want)
			}
			if h := order.Uint16(buf[2*i:]); h != Float32ToFloat16(v) {
				t.Errorf("%v float16 bytes [%d] = %#04x", order, i, h)
			}
		}
		EncodeBFloat16(buf, src, order)
		DecodeBFloat16(dst, buf, order)
		for i, v := range src {
			if want := BFloat16ToFloat32(Float32ToBFloat16(v)); dst[i] != want {
				t.Errorf("%v bfloat16 [%d] = %v, want %v", order, i, dst[i], want)
			}
		}
	}
}

func BenchmarkDecodeFloat16_4096(b *testing.B) {
	src := make([]byte, 2*4096)
	for i := range 4096 {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(i*13))
	}
	dst := make([]float32, 4096)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		DecodeFloat16(dst, src, binary.LittleEndian)
	}
}

func BenchmarkEncodeFloat16_4096(b *testing.B) {
	src := make([]float32, 4096)
	for i := range src {
		src[i] = float32(i) * 0.37
	}
	dst := make([]byte, 2*4096)
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		EncodeFloat16(dst, src, binary.LittleEndian)
	}
}
