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

// The fused GemmPacked kernels (packed_amd64.s and their Go twin
// packedDotGo) against a float64 product with the weights the format's
// own DecodeRows gives, on packed rows of random bytes (every code, the
// zero points at the ends of their range and random ones, scales from
// tiny to huge, float16 scales of every exponent; float16 and bfloat16
// weights of every exponent that cannot overflow), for m = 1..4 and
// shapes around the chunks of 32: one block a row of k not a multiple of
// 32, groups with a partial last block, k below one chunk, odd k at 4
// bits.

// packedCase is a format and a row length.
type packedCase struct {
	f backend.PackedFormat
	k int
}

func packedCases() []packedCase {
	var cs []packedCase
	for _, bits := range []int{8, 4} {
		for _, signed := range []bool{true, false} {
			for _, sym := range []bool{true, false} {
				rf := func(g int) quant.RowFormat {
					return quant.RowFormat{Bits: bits, Signed: signed, Symmetric: sym, Group: g}
				}
				for _, k := range []int{32, 96, 100, 20, 2048} {
					cs = append(cs, packedCase{rf(k + k%2), k}) // per channel
				}
				for _, gk := range [][2]int{{32, 256}, {64, 200}, {128, 160}, {128, 1000}, {32, 33}, {64, 65}} {
					cs = append(cs, packedCase{rf(gk[0]), gk[1]}) // groups, partial last blocks
				}
			}
		}
	}
	for _, t := range []gguf.Type{gguf.TypeQ8_0, gguf.TypeQ4_0} {
		for _, k := range []int{32, 64, 256, 2080} {
			cs = append(cs, packedCase{t, k})
		}
	}
	for _, t := range []gguf.Type{gguf.TypeF16, gguf.TypeBF16, gguf.TypeF32} {
		for _, k := range []int{7, 32, 100, 2048} {
			cs = append(cs, packedCase{t, k})
		}
	}
	return cs
}

// randPacked returns n rows of random packed bytes in format f, with valid
// scales: finite, of magnitudes from 2^-60 to 2^40 (float32) or every
// finite float16; zero points at the ends of the code range or random.
func randPacked(rnd *rand.Rand, f backend.PackedFormat, n, k int) []byte {
	rb, err := f.RowBytes(k)
	if err != nil {
		panic(err)
	}
	data := make([]byte, n*rb)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	switch f := f.(type) {
	case gguf.Type:
		if f == gguf.TypeF32 {
			// Magnitudes 2^-60 to 2^40, so that no sum overflows.
			for i := 0; i < len(data); i += 4 {
				u := rnd.Uint32()&0x807FFFFF | uint32(127-60+rnd.IntN(100))<<23
				binary.LittleEndian.PutUint32(data[i:], u)
			}
			return data
		}
		if f == gguf.TypeF16 || f == gguf.TypeBF16 {
			// Every finite float16 (subnormals too); bfloat16 of magnitudes
			// 2^-60 to 2^40, so that no sum overflows.
			for i := 0; i < len(data); i += 2 {
				h := uint16(rnd.Uint32())
				if f == gguf.TypeF16 {
					for h&0x7C00 == 0x7C00 {
						h = uint16(rnd.Uint32())
					}
				} else {
					h = h&0x807F | uint16(127-60+rnd.IntN(100))<<7
				}
				binary.LittleEndian.PutUint16(data[i:], h)
			}
			return data
		}
		bb := 34
		if f == gguf.TypeQ4_0 {
			bb = 18
		}
		for o := 0; o < len(data); o += bb {
			h := uint16(rnd.Uint32())
			for h&0x7C00 == 0x7C00 { // Inf or NaN
				h = uint16(rnd.Uint32())
			}
			binary.LittleEndian.PutUint16(data[o:], h)
		}
	case quant.RowFormat:
		lo, hi := int32(0), int32(1)<<f.Bits-1
		if f.Signed {
			lo, hi = -(hi+1)/2, hi/2
		}
		for r := range n {
			row := data[r*rb : (r+1)*rb]
			for b := 0; b*f.Group < k; b++ {
				cnt := min(f.Group, k-b*f.Group)
				sc := float32(math.Ldexp(0.5+rnd.Float64(), rnd.IntN(100)-60))
				if rnd.IntN(2) == 0 {
					sc = -sc
				}
				binary.LittleEndian.PutUint32(row, math.Float32bits(sc))
				hdr := 4
				if !f.Symmetric {
					zp := []int32{lo, hi, lo + rnd.Int32N(hi-lo+1)}[rnd.IntN(3)]
					binary.LittleEndian.PutUint32(row[4:], uint32(zp))
					hdr = 8
				}
				row = row[hdr+(cnt*f.Bits+7)/8:]
			}
		}
	}
	return data
}

// checkPacked checks c [m, n] against a·Wᵀ in float64, W decoded by f.
func checkPacked(t *testing.T, what string, m, n, k int, a []float32, f backend.PackedFormat, data []byte, c []float32) {
	t.Helper()
	w := make([]float32, n*k)
	f.DecodeRows(w, data, k)
	bad := 0
	for i := range m {
		for j := range n {
			var s, abs float64
			for p := range k {
				x := float64(a[i*k+p]) * float64(w[j*k+p])
				s += x
				abs += math.Abs(x)
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

func TestPackedDot(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	const n = 13
	for _, pc := range packedCases() {
		f, k := pc.f, pc.k
		l, ok := packedLayout(f, k)
		if !ok {
			t.Fatalf("%v k=%d: no fused layout", f, k)
		}
		data := randPacked(rnd, f, n, k)
		rb, _ := f.RowBytes(k)
		for m := 1; m <= packedFusedRows; m++ {
			a := make([]float32, m*k)
			for i := range a {
				a[i] = float32(rnd.NormFloat64())
			}
			name := fmt.Sprintf("%v k=%d m=%d", f, k, m)
			c := make([]float32, m*n)
			packedDotGo(l, m, a, k, data, rb, n, c, n)
			checkPacked(t, name+" Go twin", m, n, k, a, f, data, c)
			for _, set := range KernelSets() {
				restore := UseKernelSet(set)
				kern := packedKernelFor(l, m)
				clear(c)
				// Rows [3, n): the kernels start anywhere in W and C.
				packedDot(l, m, n, k, a, nil, data, rb, c, 0, 3)
				packedDot(l, m, n, k, a, nil, data, rb, c, 3, n)
				restore()
				checkPacked(t, name+" "+set, m, n, k, a, f, data, c)
				if set != "generic" && kern == nil && (l.blocks == 1 || l.group%32 == 0) {
					t.Errorf("%s %s: no assembly kernel", name, set)
				}
			}
		}
	}
}

// TestPackedDotExact runs the kernels on weights whose every product and
// sum is exact (codes times powers of two, a small integers), where the
// order of the sums cannot matter: the kernels must give the float64
// product exactly, so that a kernel that drops or repeats a term fails
// however small the term.
func TestPackedDotExact(t *testing.T) {
	rnd := rand.New(rand.NewPCG(2, 2))
	const n = 5
	for _, pc := range packedCases() {
		f, k := pc.f, pc.k
		l, _ := packedLayout(f, k)
		data := randPacked(rnd, f, n, k)
		rb, _ := f.RowBytes(k)
		// Scales 1 or 2 (float32 and float16 alike), zero points kept;
		// 16-bit floats small integers.
		rf, isRF := f.(quant.RowFormat)
		if p := &pkFormats[l.kind]; p.wide == "F32" {
			for i := 0; i < len(data); i += 4 {
				binary.LittleEndian.PutUint32(data[i:], math.Float32bits(float32(rnd.IntN(9)-4)))
			}
		} else if p.wide != "" {
			for i := 0; i < len(data); i += 2 {
				v := float32(rnd.IntN(9) - 4)
				h := uint16(math.Float32bits(v) >> 16) // exact in bfloat16
				if p.wide == "F16" {
					h = map[float32]uint16{-4: 0xC400, -3: 0xC200, -2: 0xC000, -1: 0xBC00, 0: 0, 1: 0x3C00, 2: 0x4000, 3: 0x4200, 4: 0x4400}[v]
				}
				binary.LittleEndian.PutUint16(data[i:], h)
			}
		}
		for r := range n {
			if !isRF && pkFormats[l.kind].wide != "" {
				break
			}
			row := data[r*rb : (r+1)*rb]
			for b := 0; b < l.blocks; b++ {
				cnt := l.group
				if b == l.blocks-1 {
					cnt = l.last
				}
				if isRF {
					binary.LittleEndian.PutUint32(row, math.Float32bits(float32(1+rnd.IntN(2))))
					hdr := 4
					if !rf.Symmetric {
						hdr = 8
					}
					row = row[hdr+(cnt*rf.Bits+7)/8:]
				} else {
					binary.LittleEndian.PutUint16(row, 0x3C00+uint16(rnd.IntN(2))<<10) // 1 or 2
					row = row[pkFormats[l.kind].blockBytes(32):]
				}
			}
		}
		for m := 1; m <= packedFusedRows; m++ {
			a := make([]float32, m*k)
			for i := range a {
				a[i] = float32(rnd.IntN(7) - 3)
			}
			w := make([]float32, n*k)
			f.DecodeRows(w, data, k)
			for _, set := range KernelSets() {
				c := make([]float32, m*n)
				restore := UseKernelSet(set)
				packedDot(l, m, n, k, a, nil, data, rb, c, 0, n)
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

// TestGemmPackedFused runs the exported GemmPacked with float activations
// (SetExactPacked) at the decode sizes on two threads (each a range of
// rows) and past packedFusedRows (the tile path), on every kernel set.
func TestGemmPackedFused(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 3))
	defer SetThreads(SetThreads(2))
	defer SetExactPacked(SetExactPacked(true))
	for _, pc := range []packedCase{
		{quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 512}, 512},
		{quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 32}, 512},
		{quant.RowFormat{Bits: 4, Group: 128, Symmetric: false}, 1000},
		{gguf.TypeQ4_0, 512},
		{gguf.TypeQ8_0, 512},
	} {
		const n = 301
		data := randPacked(rnd, pc.f, n, pc.k)
		for _, m := range []int{1, 2, 4, 5, 9} {
			a := make([]float32, m*pc.k)
			for i := range a {
				a[i] = float32(rnd.NormFloat64())
			}
			for _, set := range KernelSets() {
				c := make([]float32, m*n)
				restore := UseKernelSet(set)
				GemmPacked(m, n, pc.k, a, pc.f, data, c)
				restore()
				checkPacked(t, fmt.Sprintf("%v k=%d m=%d %s", pc.f, pc.k, m, set), m, n, pc.k, a, pc.f, data, c)
			}
		}
	}
}

// TestDecodeRowsFast holds the SIMD decode of quant.RowFormat tiles to
// the format's DecodeRows, bit for bit.
func TestDecodeRowsFast(t *testing.T) {
	rnd := rand.New(rand.NewPCG(4, 4))
	for _, pc := range packedCases() {
		if _, ok := pc.f.(quant.RowFormat); !ok {
			continue
		}
		const n = 3
		data := randPacked(rnd, pc.f, n, pc.k)
		want := make([]float32, n*pc.k)
		pc.f.DecodeRows(want, data, pc.k)
		for _, set := range KernelSets() {
			got := make([]float32, n*pc.k)
			restore := UseKernelSet(set)
			decodeRowsFast(pc.f, got, data, pc.k)
			restore()
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v k=%d %s: value %d is %g, DecodeRows gives %g", pc.f, pc.k, set, i, got[i], want[i])
				}
			}
		}
	}
}
