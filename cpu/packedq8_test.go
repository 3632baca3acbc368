package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// The integer kernels of GemmPacked (packedq8_amd64.s and their Go twin
// packedDotQ8Go) against a float64 product of the weights the format's
// own DecodeRows gives with the activations rounded to 8 bits by a
// quantizer of this file (refQ8), on the shapes and random packed rows of
// packed_test.go.

// refQ8 rounds the values of one block of activations as llama.cpp's
// quantize_row_q8_0 (in float32, to nearest even as its AVX2 code): d = max|x|/127, q = round(x·(1/d)).
func refQ8(x []float32) (q []int32, d float32) {
	var amax float64
	for _, v := range x {
		amax = math.Max(amax, math.Abs(float64(v)))
	}
	d = float32(amax) / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	q = make([]int32, len(x))
	for p, v := range x {
		q[p] = int32(math.RoundToEven(float64(v * id)))
	}
	return q, d
}

// refQ8Row is row a rounded to 8 bits in blocks of 32, as float64 values
// q·d (exact: an int8 times a float32).
func refQ8Row(a []float32) []float64 {
	out := make([]float64, len(a))
	for t := 0; t < len(a); t += 32 {
		q, d := refQ8(a[t:min(t+32, len(a))])
		for p := range q {
			out[t+p] = float64(q[p]) * float64(d)
		}
	}
	return out
}

// checkQ8 checks c [m, n] against the product of a rounded by refQ8Row
// and W decoded by f, in float64, within the rounding of the kernels'
// float sums.
func checkQ8(t *testing.T, what string, m, n, k int, a []float32, f backend.PackedFormat, data []byte, c []float32) {
	t.Helper()
	w := make([]float32, n*k)
	f.DecodeRows(w, data, k)
	bad := 0
	for i := range m {
		x := refQ8Row(a[i*k : (i+1)*k])
		for j := range n {
			var s, abs float64
			for p := range k {
				v := x[p] * float64(w[j*k+p])
				s += v
				abs += math.Abs(v)
			}
			got := float64(c[i*n+j])
			if d := math.Abs(got - s); !(d <= backendtest.GemmF32Bound(k, abs)) {
				if bad++; bad <= 3 {
					t.Errorf("%s: c[%d,%d] = %g, want %g (±%g)", what, i, j, got, s, backendtest.GemmF32Bound(k, abs))
				}
			}
		}
	}
}

// q8Cases are packedCases with the formats only the integer kernels run.
func q8Cases() []packedCase {
	cs := packedCases()
	for _, k := range []int{256, 512, 2048} {
		cs = append(cs, packedCase{gguf.TypeQ6_K, k}, packedCase{gguf.TypeQ4_K, k})
	}
	return cs
}

// randPackedQ8 is randPacked, with Q6_K and Q4_K: random bytes, and d
// (and dmin) every finite float16.
func randPackedQ8(rnd *rand.Rand, f backend.PackedFormat, n, k int) []byte {
	if f == gguf.TypeQ4_K {
		// Random bytes; d and dmin every finite float16.
		data := make([]byte, n*k/256*144)
		for i := range data {
			data[i] = byte(rnd.Uint32())
		}
		for o := 0; o < len(data); o += 144 {
			for h := 0; h < 4; h += 2 {
				v := uint16(rnd.Uint32())
				for v&0x7C00 == 0x7C00 {
					v = uint16(rnd.Uint32())
				}
				binary.LittleEndian.PutUint16(data[o+h:], v)
			}
		}
		return data
	}
	if f != gguf.TypeQ6_K {
		return randPacked(rnd, f, n, k)
	}
	data := make([]byte, n*k/256*210)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	for o := 0; o < len(data); o += 210 {
		h := uint16(rnd.Uint32())
		for h&0x7C00 == 0x7C00 {
			h = uint16(rnd.Uint32())
		}
		binary.LittleEndian.PutUint16(data[o+208:], h)
	}
	return data
}

// TestQuantizeQ8 holds quantizeQ8's codes, scales and block sums to refQ8,
// on random rows with runs of zeros, huge and tiny values, at lengths
// around the chunks of 32 and for both code orders.
func TestQuantizeQ8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 5))
	for _, pc := range q8Cases() {
		l, ok := q8LayoutOf(pc.f, pc.k)
		if !ok {
			continue
		}
		k, m := pc.k, 3
		a := make([]float32, m*k)
		for i := range a {
			a[i] = float32(rnd.NormFloat64() * math.Ldexp(1, rnd.IntN(40)-20))
		}
		clear(a[:min(k, 40)]) // an all-zero chunk
		lay := newQ8Layout(l, k)
		for _, set := range KernelSets() {
			x := make([]byte, m*lay.ldx)
			restore := UseKernelSet(set)
			quantizeQ8(x, a, m, k, l, lay)
			restore()
			checkQuantizeQ8(t, fmt.Sprintf("%v k=%d %s", pc.f, k, set), x, a, m, k, l, lay)
		}
	}
}

// checkQuantizeQ8 checks the records and block sums in x against refQ8.
func checkQuantizeQ8(t *testing.T, what string, x []byte, a []float32, m, k int, l pkLayout, lay q8Layout) {
	t.Helper()
	{
		for i := range m {
			row := x[i*lay.ldx:]
			var sums []float64
			for c := range lay.kc {
				blk := a[i*k+32*c : i*k+min(32*c+32, k)]
				q, d := refQ8(blk)
				rec := row[q8Rec*c:]
				if got := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:])); got != d {
					t.Fatalf("%s row %d chunk %d: scale %g, want %g", what, i, c, got, d)
				}
				var s int32
				for e := range 32 {
					want, pos := int32(0), e
					if e < len(q) {
						want = q[e]
						s += q[e]
					}
					if len(q) == 32 {
						pos = q8Pos(l.evenOdd(), e)
					}
					if got := int32(int8(rec[pos])); got != want {
						t.Fatalf("%s row %d chunk %d: code %d is %d, want %d", what, i, c, e, got, want)
					}
				}
				if got := int32(binary.LittleEndian.Uint32(rec[36:])); got != s {
					t.Fatalf("%s row %d chunk %d: sum of codes %d, want %d", what, i, c, got, s)
				}
				sums = append(sums, float64(d)*float64(s))
			}
			for b := range l.blocks {
				n := l.group
				if b == l.blocks-1 {
					n = l.last
				}
				var want float64
				for c := range n / 32 {
					want += sums[b*l.group/32+c]
				}
				if got := math.Float32frombits(binary.LittleEndian.Uint32(row[lay.sums+4*b:])); got != float32(want) {
					t.Fatalf("%s row %d block %d: sum %g, want %g", what, i, b, got, want)
				}
			}
		}
	}
}

func TestPackedDotQ8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(6, 6))
	const n = 13
	for _, pc := range q8Cases() {
		f, k := pc.f, pc.k
		l, ok := q8LayoutOf(f, k)
		if !ok {
			continue
		}
		data := randPackedQ8(rnd, f, n, k)
		rb, _ := f.RowBytes(k)
		lay := newQ8Layout(l, k)
		for m := 1; m <= packedFusedRows; m++ {
			a := make([]float32, m*k)
			for i := range a {
				a[i] = float32(rnd.NormFloat64())
			}
			x := make([]byte, m*lay.ldx)
			quantizeQ8(x, a, m, k, l, lay)
			name := fmt.Sprintf("%v k=%d m=%d", f, k, m)
			c := make([]float32, m*n)
			packedDotQ8Go(l, m, x, lay, data, rb, n, c, n)
			checkQ8(t, name+" Go twin", m, n, k, a, f, data, c)
			for _, set := range KernelSets() {
				restore := UseKernelSet(set)
				kern := packedQ8KernelFor(l, m)
				clear(c)
				// Rows [3, n): the kernels start anywhere in W and C.
				packedDotQ8(l, m, n, x, lay, data, rb, c, 0, 3)
				packedDotQ8(l, m, n, x, lay, data, rb, c, 3, n)
				restore()
				checkQ8(t, name+" "+set, m, n, k, a, f, data, c)
				if set != "generic" && kern == nil {
					t.Errorf("%s %s: no assembly kernel", name, set)
				}
			}
		}
	}
}

// TestPackedDotQ8Exact runs the integer kernels where every product and
// sum is exact in float32: weight scales 1 or 2, activations whose every
// chunk of 32 holds ±127·2^e (so that its scale is 2^e) and small
// integers times 2^e, k up to a few chunks. The integer sums must then
// come out exactly, whatever the order of the float sums: a kernel that
// drops, repeats or misplaces a product fails however small it is.
func TestPackedDotQ8Exact(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	const n = 5
	for _, pc := range q8Cases() {
		f, k := pc.f, pc.k
		l, ok := q8LayoutOf(f, k)
		if !ok || k > 260 {
			continue
		}
		data := randPackedQ8(rnd, f, n, k)
		rb, _ := f.RowBytes(k)
		p := &pkFormats[l.kind]
		for r := range n {
			if l.kind == pkQ4_K {
				// d 1 or 2, dmin 1, mins and scales random.
				for b := range l.blocks / 8 {
					blk := data[r*rb+144*b:]
					binary.LittleEndian.PutUint16(blk, 0x3C00+uint16(rnd.IntN(2))<<10)
					binary.LittleEndian.PutUint16(blk[2:], 0x3C00)
				}
				continue
			}
			if l.kind == pkQ6_K {
				// d 1 or 2, scales −4..4.
				for b := range l.blocks {
					blk := data[r*rb+210*b:]
					for i := range 16 {
						blk[192+i] = byte(int8(rnd.IntN(9) - 4))
					}
					binary.LittleEndian.PutUint16(blk[208:], 0x3C00+uint16(rnd.IntN(2))<<10)
				}
				continue
			}
			row := data[r*rb : (r+1)*rb]
			for b := range l.blocks {
				cnt := l.group
				if b == l.blocks-1 {
					cnt = l.last
				}
				if p.f16 {
					binary.LittleEndian.PutUint16(row, 0x3C00+uint16(rnd.IntN(2))<<10) // 1 or 2
				} else {
					binary.LittleEndian.PutUint32(row, math.Float32bits(float32(1+rnd.IntN(2))))
				}
				row = row[p.blockBytes(cnt):]
			}
		}
		w := make([]float32, n*k)
		f.DecodeRows(w, data, k)
		lay := newQ8Layout(l, k)
		for m := 1; m <= packedFusedRows; m++ {
			a := make([]float32, m*k)
			for i := range m {
				for c := 0; c < k; c += 32 {
					e := float32(1 + rnd.IntN(2)) // scale 1 or 2... as 2^e
					blk := a[i*k+c : i*k+min(c+32, k)]
					for p := range blk {
						blk[p] = float32(rnd.IntN(3)-1) * e
					}
					blk[rnd.IntN(len(blk))] = float32(127*(2*rnd.IntN(2)-1)) * e
				}
			}
			x := make([]byte, m*lay.ldx)
			quantizeQ8(x, a, m, k, l, lay)
			for _, set := range KernelSets() {
				c := make([]float32, m*n)
				restore := UseKernelSet(set)
				packedDotQ8(l, m, n, x, lay, data, rb, c, 0, n)
				restore()
				for i := range m {
					for j := range n {
						var s float64
						for p := range k {
							s += float64(a[i*k+p]) * float64(w[j*k+p])
						}
						if float64(c[i*n+j]) != s {
							t.Fatalf("%v k=%d m=%d %s: c[%d,%d] = %g, want %g exactly", f, k, m, set, i, j, c[i*n+j], s)
						}
					}
				}
			}
		}
	}
}

// TestGemmPackedQ8 runs the exported GemmPacked at the decode sizes on two
// threads, m from 1 to 37 (groups of rows past packedFusedRows): by
// default within ActQ8Bound of the exact product (and not
// equal to the float kernels' result, which shows the integer path ran),
// with SetExactPacked(true) within the float bound; and a row holding a
// NaN or an infinity gives NaN.
func TestGemmPackedQ8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(8, 8))
	defer SetThreads(SetThreads(2))
	for _, pc := range []packedCase{
		{quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 2048}, 2048},
		{quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 128}, 512},
		{quant.RowFormat{Bits: 4, Group: 128, Symmetric: false}, 1000},
		{quant.RowFormat{Bits: 8, Group: 64, Symmetric: false}, 320},
		{gguf.TypeQ4_0, 512},
		{gguf.TypeQ8_0, 512},
		{gguf.TypeQ6_K, 768},
		{gguf.TypeQ4_K, 512},
	} {
		const n = 301
		data := randPackedQ8(rnd, pc.f, n, pc.k)
		w := make([]float32, n*pc.k)
		pc.f.DecodeRows(w, data, pc.k)
		for _, m := range []int{1, 2, 3, 4, 5, 2 * packedFusedRows, 37} {
			k := pc.k
			a := make([]float32, m*k)
			for i := range a {
				a[i] = float32(rnd.NormFloat64())
			}
			for _, set := range KernelSets() {
				name := fmt.Sprintf("%v k=%d m=%d %s", pc.f, k, m, set)
				c, exact := make([]float32, m*n), make([]float32, m*n)
				restore := UseKernelSet(set)
				GemmPacked(m, n, k, a, pc.f, data, c)
				prev := SetExactPacked(true)
				GemmPacked(m, n, k, a, pc.f, data, exact)
				SetExactPacked(prev)
				restore()
				checkPacked(t, name+" exact", m, n, k, a, pc.f, data, exact)
				same := 0
				for i := range m {
					for j := range n {
						ai, wj := a[i*k:(i+1)*k], w[j*k:(j+1)*k]
						var s, abs float64
						for p := range k {
							v := float64(ai[p]) * float64(wj[p])
							s, abs = s+v, abs+math.Abs(v)
						}
						aq := backendtest.ActQ8Bound(ai, wj)
						bound := backendtest.GemmF32Bound(k, abs+aq) + aq
						if got := float64(c[i*n+j]); !(math.Abs(got-s) <= bound) {
							t.Fatalf("%s: c[%d,%d] = %g, want %g (±%g)", name, i, j, got, s, bound)
						}
						if c[i*n+j] == exact[i*n+j] {
							same++
						}
					}
				}
				if same == m*n {
					t.Errorf("%s: the default path gives the float kernels' result exactly", name)
				}
			}
		}
	}
	f := gguf.TypeQ8_0
	data := randPacked(rnd, f, 9, 64)
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		a := make([]float32, 64)
		a[40] = bad
		c := make([]float32, 9)
		GemmPacked(1, 9, 64, a, f, data, c)
		for j, v := range c {
			if v == v {
				t.Errorf("a row holding %v: c[%d] = %v, want NaN", bad, j, v)
			}
		}
	}
}
