package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/half"
)

// The reference quantizers below transcribe ggml's C line by line
// (ggml-quants.c, and the scalar float16 conversions of ggml-impl.h, which
// come from the FP16 library), independently of quant.go and of
// internal/half, so that a shared mistake is unlikely.

func fp32FromBits(w uint32) float32 { return math.Float32frombits(w) }
func fp32ToBits(f float32) uint32   { return math.Float32bits(f) }

func fabsf(f float32) float32 { return float32(math.Abs(float64(f))) }

// roundf rounds half away from zero, as C's roundf.
func roundf(f float32) float32 {
	if f < 0 {
		return -float32(math.Floor(float64(-f) + 0.5))
	}
	return float32(math.Floor(float64(f) + 0.5))
}

// cMAX and cMIN are ggml's MAX and MIN macros.
func cMAX(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

func cMINint(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// ggmlComputeFP32ToFP16 is ggml_compute_fp32_to_fp16.
func ggmlComputeFP32ToFP16(f float32) uint16 {
	scaleToInf := fp32FromBits(0x77800000)
	scaleToZero := fp32FromBits(0x08800000)
	base := float32(fabsf(f)*scaleToInf) * scaleToZero

	w := fp32ToBits(f)
	shl1W := w + w
	sign := w & 0x80000000
	bias := shl1W & 0xFF000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}

	base = fp32FromBits((bias>>1)+0x07800000) + base
	bits := fp32ToBits(base)
	expBits := (bits >> 13) & 0x00007C00
	mantissaBits := bits & 0x00000FFF
	nonsign := expBits + mantissaBits
	if shl1W > 0xFF000000 {
		return uint16(sign>>16) | 0x7E00
	}
	return uint16(sign>>16) | uint16(nonsign)
}

// ggmlComputeFP16ToFP32 is ggml_compute_fp16_to_fp32.
func ggmlComputeFP16ToFP32(h uint16) float32 {
	w := uint32(h) << 16
	sign := w & 0x80000000
	twoW := w + w

	const expOffset = uint32(0xE0) << 23
	expScale := fp32FromBits(0x7800000)
	normalizedValue := fp32FromBits((twoW>>4)+expOffset) * expScale

	const magicMask = uint32(126) << 23
	const magicBias = float32(0.5)
	denormalizedValue := fp32FromBits((twoW>>17)|magicMask) - magicBias

	const denormalizedCutoff = uint32(1) << 27
	var result uint32
	if twoW < denormalizedCutoff {
		result = sign | fp32ToBits(denormalizedValue)
	} else {
		result = sign | fp32ToBits(normalizedValue)
	}
	return fp32FromBits(result)
}

// refQuantizeRowQ8_0 is quantize_row_q8_0_ref.
func refQuantizeRowQ8_0(x []float32) []byte {
	const QK8_0 = 32
	k := len(x)
	nb := k / QK8_0
	y := make([]byte, nb*34) // block_q8_0 { ggml_half d; int8_t qs[32]; }
	for i := 0; i < nb; i++ {
		amax := float32(0.0) // absolute max
		for j := 0; j < QK8_0; j++ {
			v := x[i*QK8_0+j]
			amax = cMAX(amax, fabsf(v))
		}
		d := amax / ((1 << 7) - 1)
		id := float32(0.0)
		if d != 0 {
			id = 1.0 / d
		}
		binary.LittleEndian.PutUint16(y[i*34:], ggmlComputeFP32ToFP16(d))
		for j := 0; j < QK8_0; j++ {
			x0 := float32(x[i*QK8_0+j] * id)
			y[i*34+2+j] = byte(int8(roundf(x0)))
		}
	}
	return y
}

// refQuantizeRowQ4_0 is quantize_row_q4_0_ref.
func refQuantizeRowQ4_0(x []float32) []byte {
	const qk = 32
	k := len(x)
	nb := k / qk
	y := make([]byte, nb*18) // block_q4_0 { ggml_half d; uint8_t qs[16]; }
	for i := 0; i < nb; i++ {
		amax := float32(0.0) // absolute max
		max := float32(0.0)
		for j := 0; j < qk; j++ {
			v := x[i*qk+j]
			if amax < fabsf(v) {
				amax = fabsf(v)
				max = v
			}
		}
		d := max / -8
		id := float32(0.0)
		if d != 0 {
			id = 1.0 / d
		}
		binary.LittleEndian.PutUint16(y[i*18:], ggmlComputeFP32ToFP16(d))
		for j := 0; j < qk/2; j++ {
			x0 := float32(x[i*qk+0+j] * id)
			x1 := float32(x[i*qk+qk/2+j] * id)
			xi0 := uint8(cMINint(15, int(int8(x0+8.5))))
			xi1 := uint8(cMINint(15, int(int8(x1+8.5))))
			y[i*18+2+j] = xi0
			y[i*18+2+j] |= xi1 << 4
		}
	}
	return y
}

// The transcribed float16 conversions agree with internal/half (which is
// tested against a brute-force search), so the references round d as ggml
// does on every platform: F16C's vcvtps2ph rounds to nearest even too.
func TestReferenceFloat16(t *testing.T) {
	for h := range 1 << 16 {
		got, want := ggmlComputeFP16ToFP32(uint16(h)), half.Float16ToFloat32(uint16(h))
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("fp16 %#04x: reference %g, half %g", h, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 1 << 20 {
		var f float32
		switch i % 3 {
		case 0:
			f = math.Float32frombits(r.Uint32())
		case 1:
			f = float32(r.NormFloat64() * math.Exp(r.Float64()*60-40))
		default: // near ties: float16 values plus half an ulp, roughly
			f = half.Float16ToFloat32(uint16(r.Uint32())) * (1 + 0x1p-11)
		}
		if f != f {
			continue
		}
		if got, want := ggmlComputeFP32ToFP16(f), half.Float32ToFloat16(f); got != want {
			t.Fatalf("fp32 %g (%#08x): reference %#04x, half %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

// quantRows are the inputs the quantizers are checked on, by name.
func quantRows() []struct {
	name string
	x    []float32
} {
	r := rand.New(rand.NewPCG(1, 1))
	gen := func(n int, f func(i int) float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = f(i)
		}
		return x
	}
	// Ties: with amax 127, Q8_0 has d = 1 and id = 1, so x·id is exactly
	// k+0.5 and roundf must round away from zero; with max −8, Q4_0 has
	// d = 1 and x·id + 8.5 lands exactly on integers and halves.
	ties := gen(64, func(i int) float32 { return float32(i%16) - 7.5 })
	ties[0], ties[33] = 127, -127
	q4ties := gen(64, func(i int) float32 { return float32(i%33)/2 - 8 })
	q4ties[0], q4ties[40] = -8, 8 // the first of largest magnitude wins: −8
	return []struct {
		name string
		x    []float32
	}{
		{"normal", gen(32*9, func(int) float32 { return float32(r.NormFloat64()) })},
		{"uniform", gen(32*3, func(int) float32 { return float32(r.Float64()*2 - 1) })},
		{"heavy-tailed", gen(32*16, func(int) float32 { return float32(r.NormFloat64() / (r.Float64() + 1e-3)) })},
		{"log-normal scales", gen(32*16, func(int) float32 { return float32(r.NormFloat64() * math.Exp(r.NormFloat64()*4)) })},
		{"outlier", gen(32*2, func(i int) float32 {
			if i == 17 {
				return -1000
			}
			return float32(r.NormFloat64())
		})},
		{"all zero", make([]float32, 32*2)},
		{"negative zero", gen(32, func(int) float32 { return float32(math.Copysign(0, -1)) })},
		{"constant", gen(32*2, func(int) float32 { return 0.7 })},
		{"negative constant", gen(32, func(int) float32 { return -3 })},
		{"one nonzero", gen(32, func(i int) float32 { return float32(max(0, i-30)) })},
		{"ties", ties},
		{"q4 ties", q4ties},
		{"integers", gen(32*4, func(int) float32 { return float32(r.IntN(255) - 127) })},
		{"tiny", gen(32, func(int) float32 { return float32(r.NormFloat64() * 1e-30) })},
		{"float16 overflow", gen(32, func(int) float32 { return float32(r.NormFloat64() * 1e30) })},
		{"float16 subnormal d", gen(32, func(int) float32 { return float32(r.NormFloat64() * 1e-4) })},
	}
}

// checkQuantizer compares quantize against ref on every row, checking that
// it writes exactly the blocks (guard bytes after them stay) and leaves x
// as it was.
func checkQuantizer(t *testing.T, quantize func([]byte, []float32), ref func([]float32) []byte) {
	for _, row := range quantRows() {
		want := ref(row.x)
		in := slices.Clone(row.x)
		dst := bytes.Repeat([]byte{0xa5}, len(want)+7)
		quantize(dst, in)
		if !slices.Equal(in, row.x) && !slices.EqualFunc(in, row.x, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
			t.Errorf("%s: input modified", row.name)
		}
		if !bytes.Equal(dst[len(want):], bytes.Repeat([]byte{0xa5}, 7)) {
			t.Errorf("%s: wrote past the blocks: % x", row.name, dst[len(want):])
		}
		if !bytes.Equal(dst[:len(want)], want) {
			for i := range want {
				if dst[i] != want[i] {
					t.Errorf("%s: byte %d is %#02x, reference %#02x (block %d)", row.name, i, dst[i], want[i], i/(len(want)/(len(row.x)/32)))
					break
				}
			}
		}
	}
}

func TestQuantizeQ8_0MatchesReference(t *testing.T) {
	checkQuantizer(t, QuantizeQ8_0, refQuantizeRowQ8_0)
	// The tie row must have rounded half away from zero.
	var dst [34]byte
	x := make([]float32, 32)
	x[0], x[1], x[2], x[3], x[4] = 127, 2.5, -2.5, 0.5, -0.5
	QuantizeQ8_0(dst[:], x)
	if got := []int8{int8(dst[2]), int8(dst[3]), int8(dst[4]), int8(dst[5]), int8(dst[6])}; !slices.Equal(got, []int8{127, 3, -3, 1, -1}) {
		t.Errorf("ties: q = %v, want [127 3 -3 1 -1]", got)
	}
}

func TestQuantizeQ4_0MatchesReference(t *testing.T) {
	checkQuantizer(t, QuantizeQ4_0, refQuantizeRowQ4_0)
	// Layout: byte j holds element j low and element j+16 high; d = max/−8.
	x := make([]float32, 32)
	x[0], x[16], x[1], x[17] = -8, 7, 1, -1.5 // d = 1: q = trunc(x+8.5)
	var dst [18]byte
	QuantizeQ4_0(dst[:], x)
	if d := half.Float16ToFloat32(binary.LittleEndian.Uint16(dst[:])); d != 1 {
		t.Errorf("d = %g, want 1", d)
	}
	if dst[2] != 0|15<<4 || dst[3] != 9|7<<4 || dst[4] != 8|8<<4 {
		t.Errorf("qs = % x, want 0xf0 0x79 0x88...", dst[2:5])
	}
}

func TestQuantizePanics(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func()
		want string
	}{
		{"q8 partial block", func() { QuantizeQ8_0(make([]byte, 100), make([]float32, 33)) }, "QuantizeQ8_0: 33 values are not a multiple of the block size 32"},
		{"q8 short dst", func() { QuantizeQ8_0(make([]byte, 67), make([]float32, 64)) }, "QuantizeQ8_0: 64 values need 68 bytes, buffer has 67"},
		{"q4 partial block", func() { QuantizeQ4_0(make([]byte, 100), make([]float32, 16)) }, "QuantizeQ4_0: 16 values are not a multiple"},
		{"q4 short dst", func() { QuantizeQ4_0(make([]byte, 17), make([]float32, 32)) }, "QuantizeQ4_0: 32 values need 18 bytes"},
		{"dq8 short src", func() { DequantizeQ8_0(make([]float32, 64), make([]byte, 34)) }, "DequantizeQ8_0: 64 values need 68 bytes"},
		{"dq4 partial", func() { DequantizeQ4_0(make([]float32, 31), make([]byte, 18)) }, "DequantizeQ4_0: 31 values are not a multiple"},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, c.want) {
					t.Errorf("panic %v, want %q", r, c.want)
				}
			}()
			c.f()
		})
	}
	// Non-finite input: unspecified codes, but no panic.
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		x := make([]float32, 32)
		x[3] = v
		QuantizeQ8_0(make([]byte, 34), x)
		QuantizeQ4_0(make([]byte, 18), x)
	}
}

// Dequantizing gives q·fp16(d) for every element, computed here from the
// bytes independently of quant.go.
func TestDequantizeLayout(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	src := make([]byte, 3*34)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	for b := range 3 {
		binary.LittleEndian.PutUint16(src[b*34:], ggmlComputeFP32ToFP16(float32(r.NormFloat64())))
	}
	got := make([]float32, 96)
	DequantizeQ8_0(got, src)
	for i, v := range got {
		blk := src[i/32*34:]
		want := float32(int8(blk[2+i%32])) * ggmlComputeFP16ToFP32(binary.LittleEndian.Uint16(blk))
		if v != want {
			t.Fatalf("Q8_0 element %d: %g, want %g", i, v, want)
		}
	}
	src = src[:3*18]
	for b := range 3 {
		binary.LittleEndian.PutUint16(src[b*18:], ggmlComputeFP32ToFP16(float32(r.NormFloat64())))
	}
	DequantizeQ4_0(got, src)
	for i, v := range got {
		blk := src[i/32*18:]
		j := i % 32
		q := blk[2+j%16] & 0xf
		if j >= 16 {
			q = blk[2+j%16] >> 4
		}
		want := float32(int(q)-8) * ggmlComputeFP16ToFP32(binary.LittleEndian.Uint16(blk))
		if v != want {
			t.Fatalf("Q4_0 element %d: %g, want %g", i, v, want)
		}
	}
}

// TestDequantizeErrorBound checks |x − dequantize(quantize(x))| per
// element. With d the float32 scale, d16 its float16 rounding and q the
// code (q−8 for Q4_0):
//
//	Q8_0: |x − q·d16| ≤ |d|·(1/2 + 1e-4) + |q|·|d − d16|
//	Q4_0: |x − q·d16| ≤ |d|·(1/2 + 1e-4) + 8·|d − d16|, except for the
//	      elements that min(15, ·) clips (x·id + 8.5 ≥ 16: they lie on
//	      the side opposite the largest magnitude, which maps to −8):
//	      ≤ |d|·(1 + 1e-4) + 7·|d − d16|
//
// and the largest-magnitude element of a Q4_0 block comes back as −8·d16
// exactly. The 1e-4·|d| covers the float32 rounding of d, 1/d and x·id
// (at most about 127·2·2^-24 ≈ 1.5e-5 of d). Where d16 is a normal
// float16, |d − d16| ≤ 2^-11·|d|, so the error is below |d|·(1/2 + 0.062)
// for Q8_0 and |d|·(1/2 + 0.004) for unclipped Q4_0 elements; where d
// underflows the bound degrades to |q|·|d| (the value is lost), and where
// d16 overflows to Inf it says nothing.
func TestDequantizeErrorBound(t *testing.T) {
	for _, row := range quantRows() {
		n := len(row.x)
		q8 := make([]byte, n/32*34)
		QuantizeQ8_0(q8, row.x)
		y := make([]float32, n)
		DequantizeQ8_0(y, q8)
		for i, x := range row.x {
			blk := row.x[i/32*32 : i/32*32+32]
			var amax float32
			for _, v := range blk {
				amax = max(amax, fabsf(v))
			}
			d := float64(amax / 127)
			d16 := float64(half.Float16ToFloat32(half.Float32ToFloat16(float32(d))))
			q := float64(int8(q8[i/32*34+2+i%32]))
			bound := d*(0.5+1e-4) + math.Abs(q)*math.Abs(d-d16)
			if err := math.Abs(float64(x) - float64(y[i])); err > bound {
				t.Errorf("%s: Q8_0 element %d: |%g − %g| = %g > %g (d %g)", row.name, i, x, y[i], err, bound, d)
			}
		}
		q4 := make([]byte, n/32*18)
		QuantizeQ4_0(q4, row.x)
		DequantizeQ4_0(y, q4)
		for i, x := range row.x {
			blk := row.x[i/32*32 : i/32*32+32]
			var amax, vmax float32
			for _, v := range blk {
				if fabsf(v) > amax {
					amax, vmax = fabsf(v), v
				}
			}
			d32 := vmax / -8
			d := math.Abs(float64(d32))
			d16 := math.Abs(float64(half.Float16ToFloat32(half.Float32ToFloat16(d32))))
			var id float32
			if d32 != 0 {
				id = 1 / d32
			}
			bound := d*(0.5+1e-4) + 8*math.Abs(d-d16)
			if x0 := float32(x * id); x0+8.5 >= 16 {
				bound = d*(1+1e-4) + 7*math.Abs(d-d16)
			}
			if err := math.Abs(float64(x) - float64(y[i])); err > bound {
				t.Errorf("%s: Q4_0 element %d: |%g − %g| = %g > %g (d %g)", row.name, i, x, y[i], err, bound, d)
			}
			if x == vmax && float64(y[i]) != -8*float64(half.Float16ToFloat32(half.Float32ToFloat16(d32))) {
				t.Errorf("%s: Q4_0 element %d, the block's largest, is %g, want −8·d16", row.name, i, y[i])
			}
		}
	}
}

// The table's conversions are the named functions.
func TestEncodeDecodeFloat32(t *testing.T) {
	x := quantRows()[0].x[:64]
	for _, c := range []struct {
		typ  Type
		q    func([]byte, []float32)
		dq   func([]float32, []byte)
		size int
	}{
		{TypeQ8_0, QuantizeQ8_0, DequantizeQ8_0, 68},
		{TypeQ4_0, QuantizeQ4_0, DequantizeQ4_0, 36},
	} {
		want := make([]byte, c.size)
		c.q(want, x)
		got := make([]byte, c.size+3)
		if err := EncodeFloat32(got, x, c.typ); err != nil || !bytes.Equal(got[:c.size], want) {
			t.Errorf("EncodeFloat32 %v: %v", c.typ, err)
		}
		wantF := make([]float32, 64)
		c.dq(wantF, want)
		gotF := make([]float32, 64)
		if err := DecodeFloat32(gotF, want, c.typ); err != nil || !slices.Equal(gotF, wantF) {
			t.Errorf("DecodeFloat32 %v: %v", c.typ, err)
		}
	}
	// Plain types: F32 exactly, F16 and BF16 rounded to nearest.
	vals := []float32{1, -2.5, 65504, 1e-8, float32(math.Inf(-1)), 3.14159}
	for _, typ := range []Type{TypeF32, TypeF16, TypeBF16} {
		b := make([]byte, len(vals)*typ.TypeSize())
		if err := EncodeFloat32(b, vals, typ); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(vals))
		if err := DecodeFloat32(got, b, typ); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			want := v
			switch typ {
			case TypeF16:
				want = half.Float16ToFloat32(half.Float32ToFloat16(v))
			case TypeBF16:
				want = half.BFloat16ToFloat32(half.Float32ToBFloat16(v))
			}
			if got[i] != want {
				t.Errorf("%v: %g came back as %g, want %g", typ, v, got[i], want)
			}
		}
	}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"decode unsupported", DecodeFloat32(make([]float32, 256), make([]byte, 110), TypeIQ3_S), "gguf: conversion of IQ3_S to float32 not supported (supported: F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K I8 I16 I32 I64 F64 BF16)"},
		{"encode unsupported", EncodeFloat32(make([]byte, 4), make([]float32, 1), TypeI32), "gguf: conversion of float32 to I32 not supported (supported: F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K BF16)"},
		{"encode unknown", EncodeFloat32(nil, nil, 4), "gguf: conversion of float32 to type 4 (Q4_2, removed from ggml) not supported (supported: F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K BF16)"},
		{"decode partial block", DecodeFloat32(make([]float32, 40), make([]byte, 100), TypeQ8_0), "gguf: Q8_0: 40 elements are not a multiple of the block size 32"},
		{"decode short", DecodeFloat32(make([]float32, 64), make([]byte, 67), TypeQ8_0), "gguf: 67 bytes of Q8_0 hold fewer than 64 elements"},
		{"encode short", EncodeFloat32(make([]byte, 7), make([]float32, 2), TypeF32), "gguf: 2 elements of F32 need 8 bytes, dst has 7"},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.name, c.err, c.want)
		}
	}
}

func TestTypeTable(t *testing.T) {
	want := map[Type][2]int{ // block size, bytes per block (ggml-common.h)
		TypeF32: {1, 4}, TypeF16: {1, 2}, TypeQ4_0: {32, 18}, TypeQ4_1: {32, 20}, TypeQ5_0: {32, 22},
		TypeQ5_1: {32, 24}, TypeQ8_0: {32, 34}, TypeQ8_1: {32, 36}, TypeQ2_K: {256, 84}, TypeQ3_K: {256, 110},
		TypeQ4_K: {256, 144}, TypeQ5_K: {256, 176}, TypeQ6_K: {256, 210}, TypeQ8_K: {256, 292},
		TypeIQ2_XXS: {256, 66}, TypeIQ2_XS: {256, 74}, TypeIQ3_XXS: {256, 98}, TypeIQ1_S: {256, 50},
		TypeIQ4_NL: {32, 18}, TypeIQ3_S: {256, 110}, TypeIQ2_S: {256, 82}, TypeIQ4_XS: {256, 136},
		TypeI8: {1, 1}, TypeI16: {1, 2}, TypeI32: {1, 4}, TypeI64: {1, 8}, TypeF64: {1, 8},
		TypeIQ1_M: {256, 56}, TypeBF16: {1, 2}, TypeTQ1_0: {256, 54}, TypeTQ2_0: {256, 66}, TypeMXFP4: {32, 17},
	}
	for id := range Type(64) {
		w, ok := want[id]
		if id.Known() != ok {
			t.Errorf("%d: Known() = %v", id, id.Known())
			continue
		}
		if !ok {
			if id.BlockSize() != 0 || id.TypeSize() != 0 || id.CanDecode() || id.CanEncode() {
				t.Errorf("unknown %v has a size or conversions", id)
			}
			if _, err := id.RowSize(32); err == nil {
				t.Errorf("RowSize of unknown %v succeeded", id)
			}
			continue
		}
		if id.BlockSize() != w[0] || id.TypeSize() != w[1] {
			t.Errorf("%v: block %d of %d bytes, want %d of %d", id, id.BlockSize(), id.TypeSize(), w[0], w[1])
		}
		if p, ok := ParseType(strings.ToLower(id.String())); !ok || p != id {
			t.Errorf("ParseType(%q) = %v, %v", strings.ToLower(id.String()), p, ok)
		}
		if n, err := id.RowSize(int64(3 * w[0])); err != nil || n != int64(3*w[1]) {
			t.Errorf("%v: RowSize(%d) = %d, %v", id, 3*w[0], n, err)
		}
		if _, err := id.RowSize(int64(w[0] + 1)); (err == nil) != (w[0] == 1) {
			t.Errorf("%v: RowSize of a partial block: %v", id, err)
		}
	}
	if len(want) != 32 {
		t.Errorf("%d types in the test table", len(want))
	}
	if s := Type(31).String(); s != "type 31 (Q4_0_4_4, removed from ggml)" {
		t.Errorf("Type(31) = %q", s)
	}
	if s := Type(1000).String(); s != "type 1000" {
		t.Errorf("Type(1000) = %q", s)
	}
	if _, ok := ParseType("Q4_2"); ok {
		t.Error("ParseType of a removed type succeeded")
	}
	if _, err := TypeF32.RowSize(-1); err == nil {
		t.Error("RowSize(-1) succeeded")
	}
}

func BenchmarkQuantizeQ8_0_1M(b *testing.B) { benchQuant(b, QuantizeQ8_0, 34) }
func BenchmarkQuantizeQ4_0_1M(b *testing.B) { benchQuant(b, QuantizeQ4_0, 18) }

func benchQuant(b *testing.B, q func([]byte, []float32), blockBytes int) {
	x := make([]float32, 1<<20)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	dst := make([]byte, len(x)/32*blockBytes)
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		q(dst, x)
	}
}
