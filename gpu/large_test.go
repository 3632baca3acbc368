//go:build cuda

package gpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// TestLargeAgainstCPU runs every kernel at shapes that are large, not
// multiples of the tiles, and long in K (many pipeline stages), three
// times each: results must equal the CPU backend's exactly (integers,
// codes) and not change between runs (a change is a race).
func TestLargeAgainstCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("large shapes")
	}
	b := openTest(t)
	rnd := rand.New(rand.NewPCG(11, 11))
	for _, s := range [][3]int{{1000, 1500, 2048}, {4099, 257, 1040}, {129, 4111, 4096}} {
		m, n, k := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("gemm_s8/%dx%dx%d", m, n, k), func(t *testing.T) {
			a, bt := randS8(rnd, m*k), randS8(rnd, n*k)
			want := make([]int32, m*n)
			cpu.GemmS8S32(m, n, k, a, bt, want)
			ab, bb := mustUpload(t, b, a), mustUpload(t, b, bt)
			c, err := b.Alloc(backend.S32, m*n)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Free(c)
			for run := range 3 {
				if err := b.GemmS8(m, n, k, ab, bb, c, nil); err != nil {
					t.Fatal(err)
				}
				if got := mustDownload[int32](t, b, c); !slices.Equal(got, want) {
					i := firstDiff(got, want)
					t.Fatalf("run %d: C[%d,%d] = %d, want %d", run, i/n, i%n, got[i], want[i])
				}
			}
		})
	}
	t.Run("gemm_f32/1031x517x2049", func(t *testing.T) {
		m, n, k := 1031, 517, 2049
		a, bt := make([]float32, m*k), make([]float32, n*k)
		for i := range a {
			a[i] = float32(rnd.IntN(17) - 8) // small integers: every order of summation is exact
		}
		for i := range bt {
			bt[i] = float32(rnd.IntN(17) - 8)
		}
		want := make([]float32, m*n)
		cpu.GemmF32(m, n, k, a, bt, want)
		ab, bb := mustUpload(t, b, a), mustUpload(t, b, bt)
		c, _ := b.Alloc(backend.F32, m*n)
		defer b.Free(c)
		for run := range 3 {
			if err := b.GemmF32(m, n, k, ab, bb, c); err != nil {
				t.Fatal(err)
			}
			if got := mustDownload[float32](t, b, c); !slices.Equal(got, want) {
				i := firstDiff(got, want)
				t.Fatalf("run %d: C[%d,%d] = %g, want %g", run, i/n, i%n, got[i], want[i])
			}
		}
	})
	const big = 1<<24 + 5
	x := make([]float32, big)
	for i := range x {
		x[i] = float32(rnd.NormFloat64())
		if i%3 == 0 {
			x[i] = 0 // ReLU-like skew on bin 0
		}
	}
	xb := mustUpload(t, b, x)
	for _, name := range []string{"int8-sym-tensor", "uint8-asym-channel1", "int4-sym-group128", "int4-asym-channel"} {
		t.Run("quantize/"+name, func(t *testing.T) {
			s, err := quant.ParseScheme(name)
			if err != nil {
				t.Fatal(err)
			}
			n, shape := big, []int{big}
			if s.Granularity == quant.PerChannel {
				n = big / 16 * 16
				shape = []int{n / 16, 16} // channel1: 16 channels along the last axis; channel: n/16 rows
			}
			p, err := quant.FitMinMax(s, x[:n], shape)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, s.PackedLen(n))
			if err := quant.Quantize(want, x[:n], p); err != nil {
				t.Fatal(err)
			}
			codes, _ := b.Alloc(backend.U8, len(want))
			defer b.Free(codes)
			back, _ := b.Alloc(backend.F32, n)
			defer b.Free(back)
			wantBack := make([]float32, n)
			quant.Dequantize(wantBack, want, p)
			for run := range 3 {
				if err := b.Quantize(codes, xb.Slice(0, n), p); err != nil {
					t.Fatal(err)
				}
				if got := mustDownload[uint8](t, b, codes); !slices.Equal(got, want) {
					i := firstDiff(got, want)
					t.Fatalf("run %d: code byte %d = %#x, want %#x", run, i, got[i], want[i])
				}
				if err := b.Dequantize(back, codes, p); err != nil {
					t.Fatal(err)
				}
				if got := mustDownload[float32](t, b, back); !slices.Equal(got, wantBack) {
					i := firstDiff(got, wantBack)
					t.Fatalf("run %d: dequantized %d = %g, want %g", run, i, got[i], wantBack[i])
				}
			}
		})
	}
	t.Run("histogram/2048", func(t *testing.T) {
		h := quant.NewHistogram(quant.DefaultBins)
		h.Add(x)
		want := h.Counts()
		width := float32(h.Width())
		for run := range 3 {
			got := make([]int64, len(want))
			if _, err := b.HistogramAbs(xb, width, got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				i := firstDiff(got, want)
				t.Fatalf("run %d: bin %d = %d, want %d", run, i, got[i], want[i])
			}
		}
	})
}

func firstDiff[T comparable](a, b []T) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}
