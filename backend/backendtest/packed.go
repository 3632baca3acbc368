package backendtest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// packedFormats are the formats the GemmPacked tests run: quantkit's row
// layouts (int8 per channel, asymmetric uint8, int4 and uint4 groups) and
// llama.cpp block types (legacy and K-quants, F16).
var packedFormats = []struct {
	s quant.Scheme
	g gguf.Type
}{
	{s: quant.Int8PerChannel},
	{s: quant.Scheme{Bits: 8, Granularity: quant.PerChannel}},
	{s: quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 32}},
	{s: quant.Scheme{Bits: 4, Granularity: quant.PerGroup, GroupSize: 64}},
	{g: gguf.TypeQ8_0}, {g: gguf.TypeQ4_0}, {g: gguf.TypeQ4_K}, {g: gguf.TypeQ6_K}, {g: gguf.TypeF16},
}

// packedSizes are m, n, k: decode steps (m = 1..4), prefill-like blocks,
// n not a multiple of any tile, k one and several blocks of 256.
var packedSizes = [][3]int{{1, 1, 256}, {1, 37, 256}, {3, 5, 512}, {4, 130, 256}, {17, 9, 768}, {70, 300, 256}}

// packWeights quantizes a random n×k weight into format i of
// packedFormats and returns the format and the packed rows.
func packWeights(t *testing.T, rnd *rand.Rand, i, n, k int) (backend.PackedFormat, []byte) {
	t.Helper()
	x := randNormF32(rnd, n*k, 1)
	pf := packedFormats[i]
	if pf.g != 0 {
		rb, err := pf.g.RowBytes(k)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, n*rb)
		if err := gguf.EncodeFloat32(data, x, pf.g); err != nil {
			t.Fatal(err)
		}
		return pf.g, data
	}
	p, err := quant.FitMinMax(pf.s, x, []int{n, k})
	if err != nil {
		t.Fatal(err)
	}
	codes := make([]byte, pf.s.PackedLen(len(x)))
	if err := quant.Quantize(codes, x, p); err != nil {
		t.Fatal(err)
	}
	f, data, err := quant.PackRows(codes, p)
	if err != nil {
		t.Fatal(err)
	}
	return f, data
}

// RunGemmPacked checks backend.GemmPacked on b (b's PackedGemmer method
// where it has one, else the host twin through b's buffers) against a
// float64 product with the weights the format itself decodes to, within
// the rounding of the sums and of 8-bit activations (ActQ8Bound), which
// backend.PackedGemmer allows.
func RunGemmPacked(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(7, 7))
	for i := range packedFormats {
		for _, sz := range packedSizes {
			m, n, k := sz[0], sz[1], sz[2]
			f, data := packWeights(t, rnd, i, n, k)
			t.Run(f.String()+"/"+sizeName(m, n, k), func(t *testing.T) {
				checkGemmPacked(t, b, m, n, k, randNormF32(rnd, m*k, 1), f, data)
			})
		}
	}
	t.Run("errors", func(t *testing.T) {
		f, data := packWeights(t, rnd, 0, 4, 32)
		a, c := upload(t, b, make([]float32, 2*32)), upload(t, b, make([]float32, 2*4))
		w := &backend.Packed{N: 4, K: 32, Format: f, Data: upload(t, b, data)}
		mustFail(t, "GemmPacked with a short A", func() error { return backend.GemmPacked(b, 3, a, w, c) })
		short := &backend.Packed{N: 4, K: 32, Format: f, Data: upload(t, b, data[:len(data)-1])}
		mustFail(t, "GemmPacked with short data", func() error { return backend.GemmPacked(b, 2, a, short, c) })
		odd := &backend.Packed{N: 4, K: 31, Format: quant.RowFormat{Bits: 4, Group: 32, Symmetric: true}, Data: w.Data}
		mustFail(t, "GemmPacked with k not in whole blocks", func() error { return backend.GemmPacked(b, 2, a, odd, c) })
		f32 := &backend.Packed{N: 4, K: 32, Format: f, Data: a}
		mustFail(t, "GemmPacked with F32 data", func() error { return backend.GemmPacked(b, 2, a, f32, c) })
	})
}

// ActQ8Bound is how far the dot product of an activation row a with a
// decoded weight row w may move when a backend rounds a to 8 bits before
// multiplying, as backend.PackedGemmer allows: with d_t = max|a_p|/127
// over block t of 32 consecutive values (the last one shorter), each a_p
// is replaced by q·d_t, |q| ≤ 127, q = round(a_p/d_t) computed in float32,
// which is off by at most d_t/2 plus three roundings of a_p, so
//
//	|Δ| ≤ Σ_t Σ_{p in t} |w_p|·(d_t/2 + 3·Unit·|a_p|)
//
// The products of the rounded values are then summed as GemmF32's are:
// a backend's output may lie GemmF32Bound(k, abs + ActQ8Bound) +
// ActQ8Bound from the exact product (abs its Σ|a·w|). The bound takes
// normal scales and zero points within the code range (what quantizers
// write): a subnormal weight scale times d_t, or a code − zero point that
// overflows int32 (which the format's decoder wraps), is outside it.
func ActQ8Bound(a, w []float32) float64 {
	var bound float64
	for t := 0; t < len(a); t += 32 {
		blk := a[t:min(t+32, len(a))]
		var amax float64
		for _, v := range blk {
			amax = max(amax, math.Abs(float64(v)))
		}
		d := amax / 127
		for p, v := range blk {
			bound += math.Abs(float64(w[t+p])) * (d/2 + 3*Unit*math.Abs(float64(v)))
		}
	}
	return bound
}

func checkGemmPacked(t *testing.T, b backend.Backend, m, n, k int, a []float32, f backend.PackedFormat, data []byte) {
	t.Helper()
	dec := make([]float32, n*k)
	f.DecodeRows(dec, data, k)
	ab := upload(t, b, a)
	w := &backend.Packed{N: n, K: k, Format: f, Data: upload(t, b, data)}
	c := newOutput[float32](t, b, m*n)
	if err := backend.GemmPacked(b, m, ab, w, c.mid); err != nil {
		t.Fatalf("GemmPacked(%d, %d, %d) %v: %v", m, n, k, f, err)
	}
	got := c.read(t, b)
	checkUnchanged(t, b, ab, a, "A")
	checkUnchanged(t, b, w.Data, data, "W")
	bad := mismatches{t: t}
	for i := range m {
		for j := range n {
			ai, wj := a[i*k:(i+1)*k], dec[j*k:(j+1)*k]
			ref, abs := dot64(ai, wj)
			aq := ActQ8Bound(ai, wj)
			bound := GemmF32Bound(k, abs+aq) + aq
			if g := got[i*n+j]; !closeTo(g, ref, bound) {
				if !bad.add("C[%d,%d] = %v, want %v within %.3g", i, j, g, ref, bound) {
					return
				}
			}
		}
	}
	bad.done("GemmPacked " + f.String())
}
