package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// newQuantizers are the conversions added beside Q8_0 and Q4_0, with
// their transcribed references (kquant_ref_test.go) and block sizes.
var newQuantizers = []struct {
	typ  Type
	q    func([]byte, []float32)
	dq   func([]float32, []byte)
	ref  func([]float32) []byte
	qk   int
	size int
}{
	{TypeQ4_1, QuantizeQ4_1, DequantizeQ4_1, refQuantizeRowQ4_1, 32, 20},
	{TypeQ5_0, QuantizeQ5_0, DequantizeQ5_0, refQuantizeRowQ5_0, 32, 22},
	{TypeQ5_1, QuantizeQ5_1, DequantizeQ5_1, refQuantizeRowQ5_1, 32, 24},
	{TypeQ4_K, QuantizeQ4_K, DequantizeQ4_K, refQuantizeRowQ4_K, 256, 144},
	{TypeQ5_K, QuantizeQ5_K, DequantizeQ5_K, refQuantizeRowQ5_K, 256, 176},
	{TypeQ6_K, QuantizeQ6_K, DequantizeQ6_K, refQuantizeRowQ6_K, 256, 210},
}

// testRows are the adversarial rows of 256, 512 and 4096 values, the rows
// with NaN and Inf, and (for 32-element blocks) the rows of the Q8_0 and
// Q4_0 tests.
func testRows(qk int) []namedRow {
	var rows []namedRow
	for _, n := range []int{256, 512, 4096} {
		for _, r := range adversarialRows(n, uint64(n)) {
			rows = append(rows, namedRow{fmt.Sprintf("%s (%d)", r.name, n), r.x})
		}
	}
	rows = append(rows, nonFiniteRows(256)...)
	if qk == 32 {
		for _, r := range quantRows() {
			rows = append(rows, namedRow{r.name, r.x})
		}
	}
	return rows
}

// Each quantizer writes exactly the bytes of its line-by-line
// transcription of ggml, on every test row, writes nothing past its
// blocks and leaves its input alone. (The integration test compares with
// ggml itself.)
func TestNewQuantizersMatchTranscription(t *testing.T) {
	for _, c := range newQuantizers {
		t.Run(c.typ.String(), func(t *testing.T) {
			for _, row := range testRows(c.qk) {
				want := c.ref(row.x)
				in := slices.Clone(row.x)
				dst := bytes.Repeat([]byte{0xa5}, len(want)+7)
				c.q(dst, in)
				if !slices.EqualFunc(in, row.x, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
					t.Errorf("%s: input modified", row.name)
				}
				if !bytes.Equal(dst[len(want):], bytes.Repeat([]byte{0xa5}, 7)) {
					t.Errorf("%s: wrote past the blocks: % x", row.name, dst[len(want):])
				}
				if i := firstDiffBytes(dst[:len(want)], want); i >= 0 {
					t.Errorf("%s: byte %d (block %d, byte %d) is %#02x, reference %#02x", row.name, i, i/c.size, i%c.size, dst[i], want[i])
				}
				// Stale bytes in dst must not leak into the result.
				dst2 := make([]byte, len(want))
				c.q(dst2, row.x)
				if !bytes.Equal(dst2, dst[:len(want)]) {
					t.Errorf("%s: output depends on dst's previous contents", row.name)
				}
			}
		})
	}
}

func firstDiffBytes(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// F16 and BF16 encode as ggml does (ggml_compute_fp32_to_fp16 and
// ggml_compute_fp32_to_bf16, transcribed in the tests) for every test
// value and 2^20 random bit patterns, NaNs included; F16 decodes as
// ggml_compute_fp16_to_fp32 for all 65536 values, NaN bits included.
func TestFloat16MatchesGGML(t *testing.T) {
	var vals []float32
	for _, row := range testRows(32) {
		vals = append(vals, row.x...)
	}
	r := rand.New(rand.NewPCG(3, 3))
	for range 1 << 20 {
		vals = append(vals, math.Float32frombits(r.Uint32()))
	}
	for _, b := range []uint32{0x7f800001, 0xff800001, 0x7f810000, 0x7fc00000, 0x7fbfffff, 0x7f7fffff, 0x477ff000, 0x477fefff, 0x33000000, 0x33000001} {
		vals = append(vals, math.Float32frombits(b))
	}
	f16 := make([]byte, 2*len(vals))
	bf16 := make([]byte, 2*len(vals))
	if err := EncodeFloat32(f16, vals, TypeF16); err != nil {
		t.Fatal(err)
	}
	if err := EncodeFloat32(bf16, vals, TypeBF16); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if got, want := binary.LittleEndian.Uint16(f16[2*i:]), ggmlComputeFP32ToFP16(v); got != want {
			t.Fatalf("F16 of %#08x: %#04x, ggml %#04x", math.Float32bits(v), got, want)
		}
		if got, want := binary.LittleEndian.Uint16(bf16[2*i:]), ggmlComputeFP32ToBF16(v); got != want {
			t.Fatalf("BF16 of %#08x: %#04x, ggml %#04x", math.Float32bits(v), got, want)
		}
	}
	all := make([]byte, 2<<16)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(all[2*h:], uint16(h))
	}
	got := make([]float32, 1<<16)
	if err := DecodeFloat32(got, all, TypeF16); err != nil {
		t.Fatal(err)
	}
	for h, v := range got {
		if want := ggmlComputeFP16ToFP32(uint16(h)); math.Float32bits(v) != math.Float32bits(want) {
			t.Fatalf("F16 %#04x: %#08x, ggml %#08x", h, math.Float32bits(v), math.Float32bits(want))
		}
	}
}

// refDequantElement decodes element e of block b of type typ from the
// bytes, by the layout of ggml-common.h, independently of the dequantizers
// (the float32 operations are dequantize_row_*'s).
func refDequantElement(typ Type, b []byte, e int) float32 {
	h := func(off int) float32 { return refFP32(binary.LittleEndian.Uint16(b[off:])) }
	nib := func(qs []byte, i int) uint8 { // Q4_0's layout: i < 16 low, else high
		if i < 16 {
			return qs[i] & 0xf
		}
		return qs[i-16] >> 4
	}
	switch typ {
	case TypeQ4_1:
		return float32(float32(nib(b[4:], e))*h(0)) + h(2)
	case TypeQ5_0, TypeQ5_1:
		off := 2
		if typ == TypeQ5_1 {
			off = 4
		}
		qh := binary.LittleEndian.Uint32(b[off:])
		q := nib(b[off+4:], e) | uint8(qh>>e&1)<<4
		if typ == TypeQ5_0 {
			return float32(int(q)-16) * h(0)
		}
		return float32(float32(q)*h(0)) + h(2)
	case TypeQ4_K, TypeQ5_K:
		c, r := e/64, e%64 // chunk of 64, position in it
		qs := b[16:]
		if typ == TypeQ5_K {
			qs = b[48:]
		}
		q := qs[32*c+r%32] & 0xf
		if r >= 32 {
			q = qs[32*c+r%32] >> 4
		}
		if typ == TypeQ5_K {
			bit := 2 * c
			if r >= 32 {
				bit++
			}
			q |= (b[16+r%32] >> bit & 1) << 4
		}
		sc, m := refGetScaleMinK4(e/32, b[4:16])
		return float32(float32(h(0)*float32(sc))*float32(q)) - float32(h(2)*float32(m))
	case TypeQ6_K:
		n, r := e/128, e%128
		k, l := r/32, r%32 // quarter, position
		qlb := b[64*n+l+32*(k&1)]
		q := qlb & 0xf
		if k >= 2 {
			q = qlb >> 4
		}
		q |= (b[128+32*n+l] >> (2 * k) & 3) << 4
		sc := int8(b[192+8*n+l/16+2*k])
		return float32(h(208)*float32(sc)) * float32(int8(q)-32)
	}
	panic(typ)
}

// The dequantizers give, for random blocks with finite scales, what the
// layout says element by element.
func TestDequantizeNewLayouts(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, c := range newQuantizers {
		const nb = 5
		src := make([]byte, nb*c.size)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		for b := range nb { // finite float16 scales
			blk := src[b*c.size : (b+1)*c.size]
			for _, off := range map[Type][]int{TypeQ4_1: {0, 2}, TypeQ5_0: {0}, TypeQ5_1: {0, 2}, TypeQ4_K: {0, 2}, TypeQ5_K: {0, 2}, TypeQ6_K: {208}}[c.typ] {
				binary.LittleEndian.PutUint16(blk[off:], uint16(r.Uint32())&0xbbff)
			}
		}
		got := make([]float32, nb*c.qk)
		c.dq(got, src)
		for i, v := range got {
			if want := refDequantElement(c.typ, src[i/c.qk*c.size:], i%c.qk); math.Float32bits(v) != math.Float32bits(want) {
				t.Errorf("%v element %d: %g, layout says %g", c.typ, i, v, want)
				break
			}
		}
	}
}

// kquantSubBlock returns, for element e of a K-quant block, the code q and
// the sub-block's scale d and offset dm in float64 (exact: float16 times a
// small integer), so that the element comes back as d·q − dm (Q6_K: dm = 0
// and q signed).
func kquantSubBlock(typ Type, b []byte, e int) (q int, d, dm float64) {
	h := func(off int) float64 { return float64(refFP32(binary.LittleEndian.Uint16(b[off:]))) }
	switch typ {
	case TypeQ6_K:
		d := h(208) * float64(int8(b[192+e/16]))
		n, r := e/128, e%128
		k, l := r/32, r%32
		qlb := b[64*n+l+32*(k&1)]
		qq := int(qlb & 0xf)
		if k >= 2 {
			qq = int(qlb >> 4)
		}
		qq |= int(b[128+32*n+l]>>(2*k)&3) << 4
		return qq - 32, d, 0
	default:
		sc, m := refGetScaleMinK4(e/32, b[4:16])
		c, r := e/64, e%64
		qs := b[16:]
		if typ == TypeQ5_K {
			qs = b[48:]
		}
		qq := int(qs[32*c+r%32] & 0xf)
		if r >= 32 {
			qq = int(qs[32*c+r%32] >> 4)
		}
		if typ == TypeQ5_K {
			bit := 2 * c
			if r >= 32 {
				bit++
			}
			qq |= int(b[16+r%32]>>bit&1) << 4
		}
		return qq, h(0) * float64(sc), h(2) * float64(m)
	}
}

// A float64 statement of the K-quants' last pass: wherever a sub-block's
// rounded scale d is not zero, every weight's code is the nearest level,
// (x + dm)/d rounded and clamped to the code range; so the round-trip
// error of an unclamped weight is at most d/2 (plus float32 rounding of
// the quotient). Checked on every finite test row whose scales are finite
// float16 values.
func TestKQuantNearestLevel(t *testing.T) {
	for _, c := range newQuantizers {
		if c.qk != QK_K {
			continue
		}
		lo, hi := 0, 15
		switch c.typ {
		case TypeQ5_K:
			hi = 31
		case TypeQ6_K:
			lo, hi = -32, 31
		}
		checked := 0
		for _, row := range testRows(QK_K) {
			if strings.Contains(row.name, "Inf") || strings.Contains(row.name, "NaN") {
				continue
			}
			q := make([]byte, len(row.x)/QK_K*c.size)
			c.q(q, row.x)
			y := make([]float32, len(row.x))
			c.dq(y, q)
			for e, x := range row.x {
				b := q[e/QK_K*c.size : (e/QK_K+1)*c.size]
				code, d, dm := kquantSubBlock(c.typ, b, e%QK_K)
				if d == 0 || math.IsInf(d, 0) || math.IsInf(dm, 0) || math.IsNaN(d) || math.IsNaN(dm) {
					continue // d16 or dmin16 overflowed: nothing to promise
				}
				tq := (float64(x) + dm) / d
				if math.Abs(tq) > 4194303 { // beyond nearest_int's range
					continue
				}
				tol := 0.5 + 4*math.Abs(tq)*0x1p-24 + 4*(math.Abs(float64(x))+dm)/math.Abs(d)*0x1p-24
				ok := math.Abs(tq-float64(code)) <= tol ||
					(code == lo && tq <= float64(lo)+tol) || (code == hi && tq >= float64(hi)-tol)
				if !ok {
					t.Errorf("%v %s element %d: x %g, d %g, dm %g: code %d, nearest level %g", c.typ, row.name, e, x, d, dm, code, tq)
					break
				}
				checked++
				if code > lo && code < hi {
					err := math.Abs(float64(x) - float64(y[e]))
					if bound := math.Abs(d)*tol + 4*(math.Abs(float64(x))+dm)*0x1p-24; err > bound {
						t.Errorf("%v %s element %d: |%g − %g| = %g > %g", c.typ, row.name, e, x, y[e], err, bound)
						break
					}
				}
			}
		}
		if checked < 100000 {
			t.Errorf("%v: only %d weights checked", c.typ, checked)
		}
	}
}

// Round trips of the 32-element types: with d the float32 scale, d16 and
// m16 the stored float16 scale and minimum,
//
//	Q4_1, Q5_1: |x − (q·d16 + m16)| ≤ |d|·(1/2 + 1e-4) + q·|d − d16| + |min − m16|
//	Q5_0:       |x − (q−16)·d16| ≤ |d|·(1/2 + 1e-4) + 16·|d − d16|, or for
//	            the elements min(31, ·) clips, |d|·(1 + 1e-4) + 15·|d − d16|
//
// on the finite test rows whose scales are finite float16 values and d is
// a normal float32 (below that 1/d is inexact by more than 1e-4); and
// for normal data the relative RMS error of every type is below a bound
// a little above what ggml's quantizers achieve.
func TestNewRoundTripErrorBounds(t *testing.T) {
	for _, c := range newQuantizers[:3] {
		for _, row := range testRows(32) {
			if strings.Contains(row.name, "Inf") || strings.Contains(row.name, "NaN") {
				continue
			}
			q := make([]byte, len(row.x)/32*c.size)
			c.q(q, row.x)
			y := make([]float32, len(row.x))
			c.dq(y, q)
			for i, x := range row.x {
				blk := row.x[i/32*32 : i/32*32+32]
				b := q[i/32*c.size:]
				d16 := float64(refFP32(binary.LittleEndian.Uint16(b)))
				var d, bound float64
				if c.typ == TypeQ5_0 {
					var amax, vmax float32
					for _, v := range blk {
						if fabsf(v) > amax {
							amax, vmax = fabsf(v), v
						}
					}
					d32 := vmax / -16
					d = float64(d32)
					bound = math.Abs(d)*(0.5+1e-4) + 16*math.Abs(d-d16)
					var id float32
					if d32 != 0 {
						id = 1 / d32
					}
					if float32(x*id)+16.5 >= 32 {
						bound = math.Abs(d)*(1+1e-4) + 15*math.Abs(d-d16)
					}
				} else {
					lo, hi := slices.Min(blk), slices.Max(blk)
					nmax := float32(15)
					if c.typ == TypeQ5_1 {
						nmax = 31
					}
					d = float64((hi - lo) / nmax)
					m16 := float64(refFP32(binary.LittleEndian.Uint16(b[2:])))
					j := i % 32
					qs := b[4:]
					if c.typ == TypeQ5_1 {
						qs = b[8:]
					}
					qv := float64(qs[j%16] & 0xf)
					if j >= 16 {
						qv = float64(qs[j%16] >> 4)
					}
					if c.typ == TypeQ5_1 {
						qv += float64(binary.LittleEndian.Uint32(b[4:]) >> j & 1 * 16)
					}
					bound = math.Abs(d)*(0.5+1e-4) + qv*math.Abs(d-d16) + math.Abs(float64(lo)-m16)
				}
				if math.IsInf(d16, 0) || math.IsInf(d, 0) || math.IsNaN(bound) || math.Abs(d) < 0x1p-126 {
					continue // overflow, or a float32 subnormal d, whose 1/d is far off
				}
				if err := math.Abs(float64(x) - float64(y[i])); err > bound {
					t.Errorf("%v %s element %d: |%g − %g| = %g > %g", c.typ, row.name, i, x, y[i], err, bound)
					break
				}
			}
		}
	}
	// Relative RMS error on 64K standard normal values.
	r := rand.New(rand.NewPCG(9, 9))
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	limits := map[Type]float64{TypeQ4_1: 0.085, TypeQ5_0: 0.047, TypeQ5_1: 0.042, TypeQ4_K: 0.078, TypeQ5_K: 0.040, TypeQ6_K: 0.020}
	for _, c := range newQuantizers {
		q := make([]byte, len(x)/c.qk*c.size)
		c.q(q, x)
		y := make([]float32, len(x))
		c.dq(y, q)
		var se, ss float64
		for i := range x {
			se += (float64(x[i]) - float64(y[i])) * (float64(x[i]) - float64(y[i]))
			ss += float64(x[i]) * float64(x[i])
		}
		rel := math.Sqrt(se / ss)
		t.Logf("%v: relative RMS error %.4f", c.typ, rel)
		if rel > limits[c.typ] {
			t.Errorf("%v: relative RMS error %.4f > %.3f", c.typ, rel, limits[c.typ])
		}
	}
}

// The table rows are the named functions, and partial blocks or short
// buffers panic with the function's name.
func TestNewTypesInTable(t *testing.T) {
	x := adversarialRows(512, 1)[8].x // normal
	for _, c := range newQuantizers {
		want := make([]byte, 512/c.qk*c.size)
		c.q(want, x)
		got := make([]byte, len(want)+3)
		if err := EncodeFloat32(got, x, c.typ); err != nil || !bytes.Equal(got[:len(want)], want) {
			t.Errorf("EncodeFloat32 %v: %v", c.typ, err)
		}
		wantF := make([]float32, 512)
		c.dq(wantF, want)
		gotF := make([]float32, 512)
		if err := DecodeFloat32(gotF, want, c.typ); err != nil || !slices.Equal(gotF, wantF) {
			t.Errorf("DecodeFloat32 %v: %v", c.typ, err)
		}
		if c.typ.BlockSize() != c.qk || c.typ.TypeSize() != c.size {
			t.Errorf("%v: %d, %d", c.typ, c.typ.BlockSize(), c.typ.TypeSize())
		}
		name := "Quantize" + c.typ.String()
		for _, f := range []func(){
			func() { c.q(make([]byte, 10*c.size), make([]float32, c.qk+1)) },
			func() { c.q(make([]byte, c.size-1), make([]float32, c.qk)) },
			func() { c.dq(make([]float32, 2*c.qk), make([]byte, 2*c.size-1)) },
		} {
			func() {
				defer func() {
					if s, _ := recover().(string); !strings.Contains(s, "gguf: ") || !strings.Contains(s, "uantize"+c.typ.String()) {
						t.Errorf("%s: panic %q", name, s)
					}
				}()
				f()
			}()
		}
	}
}

func BenchmarkQuantizeQ4_1_1M(b *testing.B) { benchQuant(b, QuantizeQ4_1, blockQ4_1Size) }
func BenchmarkQuantizeQ5_0_1M(b *testing.B) { benchQuant(b, QuantizeQ5_0, blockQ5_0Size) }
func BenchmarkQuantizeQ5_1_1M(b *testing.B) { benchQuant(b, QuantizeQ5_1, blockQ5_1Size) }
func BenchmarkQuantizeQ4_K_1M(b *testing.B) { benchQuantK(b, QuantizeQ4_K, blockQ4_KSize) }
func BenchmarkQuantizeQ5_K_1M(b *testing.B) { benchQuantK(b, QuantizeQ5_K, blockQ5_KSize) }
func BenchmarkQuantizeQ6_K_1M(b *testing.B) { benchQuantK(b, QuantizeQ6_K, blockQ6_KSize) }
func BenchmarkQuantizeF16_1M(b *testing.B)  { benchQuant(b, encodeF16, 64) }
func BenchmarkQuantizeBF16_1M(b *testing.B) { benchQuant(b, encodeBF16, 64) }

// The transcriptions, as the naive baseline the fast paths are measured
// against.
func BenchmarkQuantizeQ4_KReference_1M(b *testing.B) {
	benchQuantK(b, func(dst []byte, x []float32) { copy(dst, refQuantizeRowQ4_K(x)) }, blockQ4_KSize)
}
func BenchmarkQuantizeQ6_KReference_1M(b *testing.B) {
	benchQuantK(b, func(dst []byte, x []float32) { copy(dst, refQuantizeRowQ6_K(x)) }, blockQ6_KSize)
}

// benchQuantK is benchQuant for blocks of QK_K (benchQuant's blockBytes
// are per 32 values).
func benchQuantK(b *testing.B, q func([]byte, []float32), blockBytes int) {
	x := make([]float32, 1<<20)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	dst := make([]byte, len(x)/QK_K*blockBytes)
	b.SetBytes(int64(4 * len(x)))
	b.ReportAllocs()
	for b.Loop() {
		q(dst, x)
	}
}

func BenchmarkDequantizeQ4_K_1M(b *testing.B) { benchDequant(b, TypeQ4_K) }
func BenchmarkDequantizeQ6_K_1M(b *testing.B) { benchDequant(b, TypeQ6_K) }
func BenchmarkDequantizeQ8_0_1M(b *testing.B) { benchDequant(b, TypeQ8_0) }

func benchDequant(b *testing.B, typ Type) {
	x := make([]float32, 1<<20)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	size, _ := typ.RowSize(int64(len(x)))
	q := make([]byte, size)
	if err := EncodeFloat32(q, x, typ); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * len(x)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeFloat32(x, q, typ); err != nil {
			b.Fatal(err)
		}
	}
}

// roundfInt8's fast path agrees with roundf (transcribed in quant_test.go)
// on every half-integer and its float32 neighbours up to ±300, and on
// random values.
func TestRoundfInt8(t *testing.T) {
	check := func(f float32) {
		if got, want := roundfInt8(f), int8(int32(roundf(f))); got != want {
			t.Fatalf("roundfInt8(%g) = %d, roundf %d", f, got, want)
		}
	}
	for k := -600; k <= 600; k++ {
		h := float32(k) / 2
		check(h)
		check(math.Nextafter32(h, float32(math.Inf(1))))
		check(math.Nextafter32(h, float32(math.Inf(-1))))
	}
	r := rand.New(rand.NewPCG(8, 8))
	for range 1 << 16 {
		check(float32(r.NormFloat64() * 100))
	}
	for _, f := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e10, -1e10, 0x1p22, -0x1p22} {
		if got, want := roundfInt8(f), cInt8(float32(math.Round(float64(f)))); got != want {
			t.Errorf("roundfInt8(%g) = %d, want %d", f, got, want)
		}
	}
}
