package gpu

// No build tag: packedEdges takes any backend, so that the default build
// runs it on the CPU backend (TestPackedEdgesSelf) and the cuda build on
// the GPU's packed kernels (TestPackedEdges in packed_test.go).

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// packedEdgeFormats are the formats packedEdges runs: every RowFormat
// kind the kernels take, with groups that do not divide k or a load width
// (2, 6, 34 values), per-channel rows (group 0: k, made even at 4 bits),
// and gguf Q8_0 and Q4_0.
func packedEdgeFormats(k int) []backend.PackedFormat {
	var fs []backend.PackedFormat
	for _, bits := range []int{8, 4} {
		for _, signed := range []bool{true, false} {
			for _, sym := range []bool{true, false} {
				for _, g := range []int{2, 6, 32, 34, 0} {
					if g == 0 {
						g = k + bits/4*(k%2)
					}
					if bits == 8 && g == 2 {
						continue
					}
					fs = append(fs, quant.RowFormat{Bits: bits, Signed: signed, Symmetric: sym, Group: g})
				}
			}
		}
	}
	if k%32 == 0 {
		fs = append(fs, gguf.TypeQ8_0, gguf.TypeQ4_0)
	}
	return fs
}

// randomPacked returns n random rows of k values in format f, written
// byte by byte (not through a quantizer), so that zero points reach the
// ends of the code range and beyond, and scales include 0 and subnormals.
// With wrapZP, zero points also take the int32 extremes, where the
// format's code − zero point wraps (as quant.Dequantize computes it), and
// scales are subnormal too: the float kernels follow the decoder there;
// the CPU's integer path computes that difference exactly instead and
// multiplies the weight's scale by the activations' (a subnormal product
// loses digits ActQ8Bound does not count), so its test leaves both out
// (no quantizer writes either).
func randomPacked(t *testing.T, rnd *rand.Rand, f backend.PackedFormat, n, k int, wrapZP bool) []byte {
	t.Helper()
	rb, err := f.RowBytes(k)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, n*rb)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	switch f := f.(type) {
	case gguf.Type: // finite float16 scales: exponent below 31
		bs := 34
		if f == gguf.TypeQ4_0 {
			bs = 18
		}
		for o := 0; o < len(data); o += bs {
			if data[o+1]&0x7c == 0x7c {
				data[o+1] &^= 0x40
			}
		}
	case quant.RowFormat:
		hdr := 4
		if !f.Symmetric {
			hdr = 8
		}
		for j := range n {
			o := j * rb
			for p0 := 0; p0 < k; p0 += f.Group {
				l := min(f.Group, k-p0)
				scales := []float32{0, float32(rnd.NormFloat64() * 0.05), -float32(rnd.Float64() * 3)}
				if wrapZP {
					scales = append(scales, 1e-40)
				}
				binary.LittleEndian.PutUint32(data[o:], math.Float32bits(scales[rnd.IntN(len(scales))]))
				if !f.Symmetric {
					zps := []int32{0, 255, 15, -128, 127, -8, 7, int32(rnd.IntN(300)) - 150, -70000, 70000}
					if wrapZP {
						zps = append(zps, math.MinInt32, math.MaxInt32)
					}
					binary.LittleEndian.PutUint32(data[o+4:], uint32(zps[rnd.IntN(len(zps))]))
				}
				nb := (l*f.Bits + 7) / 8
				if f.Bits == 4 && l%2 == 1 {
					data[o+hdr+nb-1] &= 0x0F // as PackRows leaves it
				}
				o += hdr + nb
			}
		}
	}
	return data
}

// packedEdges runs backend.GemmPacked on dev at edge shapes — k of 1, odd,
// not a multiple of any group or load width; n not a multiple of the
// GEMV's warps or the GEMM's tile; m = 1..8 (the GEMV) and beyond (the
// GEMM) — with the weights and A as views at odd offsets of larger
// buffers, and compares every output with a float64 product over the
// weights the format decodes to, within backendtest.GemmF32Bound (plus,
// when act8 is set, the rounding of the activations to 8 bits that a
// backend's integer path adds: backendtest.ActQ8Bound).
func packedEdges(t *testing.T, dev backend.Backend, act8 bool) {
	rnd := rand.New(rand.NewPCG(23, 5))
	for _, nk := range [][2]int{{1, 1}, {3, 7}, {5, 33}, {9, 64}, {37, 100}, {66, 257}, {13, 544}} {
		n, k := nk[0], nk[1]
		for _, f := range packedEdgeFormats(k) {
			data := randomPacked(t, rnd, f, n, k, !act8)
			dec := make([]float32, n*k)
			f.DecodeRows(dec, data, k)
			wOff := rnd.IntN(16)
			wbuf := upload(t, dev, append(make([]uint8, wOff), data...))
			w := &backend.Packed{N: n, K: k, Format: f, Data: wbuf.Slice(wOff, len(data))}
			for _, m := range []int{1, 2, 3, 5, 8, 9, 70} {
				a := make([]float32, m*k)
				for i := range a {
					a[i] = float32(rnd.NormFloat64())
				}
				aOff := rnd.IntN(4)
				abuf := upload(t, dev, append(make([]float32, aOff), a...))
				c, err := dev.Alloc(backend.F32, m*n)
				if err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("%v m=%d n=%d k=%d (W at +%d bytes, A at +%d floats)", f, m, n, k, wOff, aOff)
				if err := backend.GemmPacked(dev, m, abuf.Slice(aOff, m*k), w, c); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				got := make([]float32, m*n)
				if err := dev.Download(got, c); err != nil {
					t.Fatal(err)
				}
				bad := 0
				for i := range m {
					for j := range n {
						var ref, abs float64
						for p := range k {
							x := float64(a[i*k+p]) * float64(dec[j*k+p])
							ref += x
							abs += math.Abs(x)
						}
						bound := backendtest.GemmF32Bound(k, abs)
						if act8 {
							aq := backendtest.ActQ8Bound(a[i*k:(i+1)*k], dec[j*k:(j+1)*k])
							bound = backendtest.GemmF32Bound(k, abs+aq) + aq
						}
						if g := float64(got[i*n+j]); !(math.Abs(g-ref) <= bound) {
							if bad++; bad <= 3 {
								t.Errorf("%s: C[%d,%d] = %v, want %v within %.3g", what, i, j, g, ref, bound)
							}
						}
					}
				}
				for _, buf := range []backend.Buffer{abuf, c} {
					if err := dev.Free(buf); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := dev.Free(wbuf); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// upload allocates a buffer of x's type on dev and copies x into it.
func upload[T float32 | uint8](t *testing.T, dev backend.Backend, x []T) backend.Buffer {
	t.Helper()
	var dt backend.DType = backend.F32
	if _, ok := any(x).([]uint8); ok {
		dt = backend.U8
	}
	buf, err := dev.Alloc(dt, len(x))
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Upload(buf, x); err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestPackedEdgesSelf runs packedEdges with the CPU backend as the device,
// so that the default build checks the comparison itself.
func TestPackedEdgesSelf(t *testing.T) {
	t.Run("exact", func(t *testing.T) {
		defer cpu.SetExactPacked(cpu.SetExactPacked(true))
		packedEdges(t, cpu.New(), false)
	})
	t.Run("8-bit activations", func(t *testing.T) {
		defer cpu.SetExactPacked(cpu.SetExactPacked(false))
		packedEdges(t, cpu.New(), true)
	})
}
