package gguf

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// k23Types are the 2- and 3-bit K-quants with their functions.
var k23Types = []struct {
	typ  Type
	size int
	q    func([]byte, []float32)
	dq   func([]float32, []byte)
}{
	{TypeQ2_K, 84, QuantizeQ2_K, DequantizeQ2_K},
	{TypeQ3_K, 110, QuantizeQ3_K, DequantizeQ3_K},
}

// k23GoldenRows is the fixed input of TestK23Golden: the test rows of
// QK_K blocks (adversarial rows of 256, 512 and 4096 values, and rows with
// NaN and Inf).
func k23GoldenRows() []float32 {
	var x []float32
	for _, r := range testRows(QK_K) {
		x = append(x, r.x...)
	}
	return x
}

// k23Golden are SHA-256 digests of ggml_quantize_chunk's output without an
// importance matrix (quantize_row_q2_K_ref, quantize_row_q3_K_ref of
// llama.cpp v0.4.0-80fb11ac73e6, node-llama-cpp 3.21.1) for
// k23GoldenRows, as TestK23GoldenFromGGML prints them in make integration.
var k23Golden = map[Type]string{
	TypeQ2_K: "f3d44dfdd8786682ed93b6c05598db2886575b6b55f20754e9673621cc30d63a",
	TypeQ3_K: "a3be6086fc14a3d92d591c413712cbdbcfb7ab0d9e91b691c881754a5fb42864",
}

// TestK23Golden checks QuantizeQ2_K and QuantizeQ3_K against ggml's own
// bytes without llama.cpp at hand.
func TestK23Golden(t *testing.T) {
	x := k23GoldenRows()
	for _, c := range k23Types {
		dst := make([]byte, len(x)/QK_K*c.size)
		c.q(dst, x)
		sum := sha256.Sum256(dst)
		if got := hex.EncodeToString(sum[:]); got != k23Golden[c.typ] {
			t.Errorf("%v: digest %s, ggml's %s", c.typ, got, k23Golden[c.typ])
		}
	}
}

// refDequantQ2_K is dequantize_row_q2_K in float64, element by element
// from ggml-common.h's layout: weight 128n + 32k + 16h + l (k the 2-bit
// slot, h the half) is d·sc·q − dmin·m with sc, m the nibbles of scales[8n
// + 2k + h] and q bits 2k, 2k+1 of qs[32n + 16h + l].
func refDequantQ2_K(b []byte, e int) float64 {
	d := float64(refFP32(binary.LittleEndian.Uint16(b[80:])))
	dmin := float64(refFP32(binary.LittleEndian.Uint16(b[82:])))
	n, r := e/128, e%128
	k, h, l := r/32, r%32/16, r%16
	s := b[8*n+2*k+h]
	q := b[16+32*n+16*h+l] >> (2 * k) & 3
	return d*float64(s&0xf)*float64(q) - dmin*float64(s>>4)
}

// refDequantQ3_K is dequantize_row_q3_K in float64: weight 128n + 32k +
// 16h + l is d·(sc−32)·(q−4), q's low bits as Q2_K's (qs from byte 32),
// its third bit bit 4n + k of hmask[16h + l], sc sub-block j = 8n + 2k + h's
// 6-bit scale (low nibble in byte j or the high one of byte j−8 of the 12
// scale bytes at 96, top bits 2·(j/4) of byte 104 + j%4).
func refDequantQ3_K(b []byte, e int) float64 {
	d := float64(refFP32(binary.LittleEndian.Uint16(b[108:])))
	n, r := e/128, e%128
	k, h, l := r/32, r%32/16, r%16
	j := 8*n + 2*k + h
	sc := b[96:108]
	var lo byte
	if j < 8 {
		lo = sc[j] & 0xf
	} else {
		lo = sc[j-8] >> 4
	}
	s := int(lo) | int(sc[8+j%4]>>(2*(j/4))&3)<<4
	q := int(b[32+32*n+16*h+l] >> (2 * k) & 3)
	if b[16*h+l]>>(4*n+k)&1 == 0 {
		q -= 4
	}
	return d * float64(s-32) * float64(q)
}

// The decoders give the float64 transcription's values, rounded once to
// float32 (the float32 products are exact: a float16 times small
// integers), for the blocks the quantizers write from the test rows and
// for random blocks of any bytes.
func TestDequantizeK23MatchesFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 23))
	for _, c := range k23Types {
		ref := map[Type]func([]byte, int) float64{TypeQ2_K: refDequantQ2_K, TypeQ3_K: refDequantQ3_K}[c.typ]
		var blocks []byte
		for _, row := range testRows(QK_K) {
			q := make([]byte, len(row.x)/QK_K*c.size)
			c.q(q, row.x)
			blocks = append(blocks, q...)
		}
		for range 64 * c.size {
			blocks = append(blocks, byte(r.Uint32()))
		}
		nb := len(blocks) / c.size
		got := make([]float32, nb*QK_K+3)
		got[nb*QK_K] = 7
		c.dq(got[:nb*QK_K], blocks)
		if got[nb*QK_K] != 7 {
			t.Errorf("%v: wrote past the values", c.typ)
		}
		bad := 0
		for i, v := range got[:nb*QK_K] {
			want := float32(ref(blocks[i/QK_K*c.size:], i%QK_K))
			same := math.Float32bits(v) == math.Float32bits(want) || (v != v && want != want)
			if !same {
				if bad++; bad <= 3 {
					t.Errorf("%v element %d (block %d): %g, ggml's formula %g", c.typ, i, i/QK_K, v, want)
				}
			}
		}
	}
}

// A float64 statement of the last pass: wherever a sub-block's rounded
// scale d is not zero, every weight's code is the nearest level, (x+dm)/d
// (Q2_K, codes 0..3) or x/d (Q3_K, codes −4..3) rounded and clamped, so
// the round trip of an unclamped weight is within d/2; and on normal data
// the relative RMS error is below a bound a little above what ggml's
// quantizers achieve.
func TestK23NearestLevel(t *testing.T) {
	for _, c := range k23Types {
		lo, hi := 0, 3
		if c.typ == TypeQ3_K {
			lo, hi = -4, 3
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
				code, d, dm := k23SubBlock(c.typ, b, e%QK_K)
				if d == 0 || math.IsInf(d, 0) || math.IsInf(dm, 0) || math.IsNaN(d) || math.IsNaN(dm) {
					continue
				}
				tq := (float64(x) + dm) / d
				if math.Abs(tq) > 4194303 {
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
		if checked < 50000 {
			t.Errorf("%v: only %d weights checked", c.typ, checked)
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	limits := map[Type]float64{TypeQ2_K: 0.31, TypeQ3_K: 0.16}
	for _, c := range k23Types {
		q := make([]byte, len(x)/QK_K*c.size)
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

// k23SubBlock returns, for element e of a Q2_K or Q3_K block, its code
// (Q3_K: signed, −4..3) and the sub-block's scale d and offset dm in
// float64, so that the element comes back as d·code − dm.
func k23SubBlock(typ Type, b []byte, e int) (code int, d, dm float64) {
	n, r := e/128, e%128
	k, h, l := r/32, r%32/16, r%16
	j := 8*n + 2*k + h
	if typ == TypeQ2_K {
		s := b[j]
		code = int(b[16+32*n+16*h+l] >> (2 * k) & 3)
		d = float64(refFP32(binary.LittleEndian.Uint16(b[80:]))) * float64(s&0xf)
		dm = float64(refFP32(binary.LittleEndian.Uint16(b[82:]))) * float64(s>>4)
		return code, d, dm
	}
	q := int(b[32+32*n+16*h+l] >> (2 * k) & 3)
	if b[16*h+l]>>(4*n+k)&1 == 0 {
		q -= 4
	}
	return q, float64(refFP32(binary.LittleEndian.Uint16(b[108:]))) * float64(q3Scale(b[96:108], j)), 0
}

// With an importance matrix of ones and one of random weights the
// quantizers stay deterministic, write only their blocks, leave their
// input alone, and do not depend on dst's previous contents; a zero row
// quantizes to zeros that decode to zeros.
func TestK23Hygiene(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 512)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	imp := make([]float32, 512)
	for i := range imp {
		imp[i] = float32(r.ExpFloat64())
	}
	for _, c := range k23Types {
		for _, w := range [][]float32{nil, imp} {
			in := slices.Clone(x)
			size := 2 * c.size
			dst := bytes.Repeat([]byte{0xa5}, size+5)
			if err := EncodeRowsImportance(dst, in, c.typ, 512, w); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(in, x) {
				t.Errorf("%v: input modified", c.typ)
			}
			if !bytes.Equal(dst[size:], bytes.Repeat([]byte{0xa5}, 5)) {
				t.Errorf("%v: wrote past the blocks", c.typ)
			}
			dst2 := make([]byte, size)
			if err := EncodeRowsImportance(dst2, x, c.typ, 512, w); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dst2, dst[:size]) {
				t.Errorf("%v (importance %v): output depends on dst's previous contents", c.typ, w != nil)
			}
		}
		zero := make([]float32, QK_K)
		q := bytes.Repeat([]byte{0xff}, c.size)
		c.q(q, zero)
		y := make([]float32, QK_K)
		c.dq(y, q)
		for i, v := range y {
			if v != 0 {
				t.Errorf("%v: zero row decodes to %g at %d", c.typ, v, i)
				break
			}
		}
		if !c.typ.UsesImportance() || !c.typ.CanDecode() || !c.typ.CanEncode() || c.typ.TypeSize() != c.size || c.typ.BlockSize() != QK_K {
			t.Errorf("%v: table row", c.typ)
		}
		for _, f := range []func(){
			func() { c.q(make([]byte, 10*c.size), make([]float32, QK_K+1)) },
			func() { c.q(make([]byte, c.size-1), make([]float32, QK_K)) },
			func() { c.dq(make([]float32, 2*QK_K), make([]byte, 2*c.size-1)) },
		} {
			func() {
				defer func() {
					if s, _ := recover().(string); !strings.Contains(s, "gguf: ") || !strings.Contains(s, "uantize"+c.typ.String()) {
						t.Errorf("%v: panic %q", c.typ, s)
					}
				}()
				f()
			}()
		}
	}
}

// Importance steers the codes: weighting one column heavily makes its
// round-trip error no worse, over many rows, than without the matrix.
func TestK23ImportanceSteers(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const rows, n = 64, 256
	x := make([]float32, rows*n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	imp := make([]float32, n)
	for i := range imp {
		imp[i] = 1e-3
	}
	for i := 0; i < n; i += 16 {
		imp[i] = 1000 // the first weight of every sub-block matters
	}
	for _, c := range k23Types {
		errOf := func(w []float32) float64 {
			q := make([]byte, rows*c.size)
			if err := EncodeRowsImportance(q, x, c.typ, n, w); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(x))
			c.dq(y, q)
			var se float64
			for i := 0; i < len(x); i += 16 {
				se += (float64(x[i]) - float64(y[i])) * (float64(x[i]) - float64(y[i]))
			}
			return se
		}
		plain, weighted := errOf(nil), errOf(imp)
		t.Logf("%v: squared error of the important weights %.3f without, %.3f with the matrix", c.typ, plain, weighted)
		if !(weighted < plain/2) {
			t.Errorf("%v: important weights' error %.3f with the matrix, %.3f without", c.typ, weighted, plain)
		}
	}
}

func BenchmarkQuantizeQ2_K_1M(b *testing.B)   { benchQuantK(b, QuantizeQ2_K, blockQ2_KSize) }
func BenchmarkQuantizeQ3_K_1M(b *testing.B)   { benchQuantK(b, QuantizeQ3_K, blockQ3_KSize) }
func BenchmarkDequantizeQ2_K_1M(b *testing.B) { benchDequant(b, TypeQ2_K) }
func BenchmarkDequantizeQ3_K_1M(b *testing.B) { benchDequant(b, TypeQ3_K) }
