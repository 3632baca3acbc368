package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// forThreads runs fn with one goroutine, with three (more than this
// machine may have, so that chunks are uneven), and with the default.
func forThreads(t *testing.T, fn func(t *testing.T)) {
	for _, n := range []int{1, 3, 0} {
		t.Run(fmt.Sprintf("threads=%d", n), func(t *testing.T) {
			prev := cpu.SetThreads(n)
			defer cpu.SetThreads(prev)
			fn(t)
		})
	}
}

func randF32(rnd *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rnd.NormFloat64())
	}
	return x
}

func randS8(rnd *rand.Rand, n int) []int8 {
	x := make([]int8, n)
	for i := range x {
		x[i] = int8(rnd.Uint32())
	}
	return x
}

// kernelSizes cover the direct and packed paths, swapped roles, tails of
// every width and several blocks of k.
var kernelSizes = [][3]int{
	{1, 1, 1}, {1, 13, 5}, {2, 300, 7}, {3, 5, 600}, {4, 4, 4}, {5, 5, 5},
	{6, 1, 9}, {40, 3, 17}, {70, 6, 300}, {13, 29, 513}, {65, 15, 257},
	{130, 70, 64}, {200, 97, 31},
}

// TestGemmF32 checks GemmF32 and GemmF32Serial (the caller's goroutine
// alone) against float64 sums.
func TestGemmF32(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	forThreads(t, func(t *testing.T) {
		for si, sz := range kernelSizes {
			m, n, k := sz[0], sz[1], sz[2]
			a, b := randF32(rnd, m*k), randF32(rnd, n*k)
			c := randF32(rnd, m*n) // overwritten, not accumulated into
			if si%2 == 0 {
				cpu.GemmF32(m, n, k, a, b, c)
			} else {
				cpu.GemmF32Serial(m, n, k, a, b, c)
			}
			for i := range m {
				for j := range n {
					var s, abs float64
					for p := range k {
						v := float64(a[i*k+p]) * float64(b[j*k+p])
						s += v
						abs += math.Abs(v)
					}
					if d := math.Abs(float64(c[i*n+j]) - s); d > backendtest.GemmF32Bound(k, abs) {
						t.Fatalf("%dx%dx%d: C[%d,%d] = %v, want %v", m, n, k, i, j, c[i*n+j], s)
					}
				}
			}
		}
	})
}

func TestGemmS8S32(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	forThreads(t, func(t *testing.T) {
		for _, sz := range kernelSizes {
			m, n, k := sz[0], sz[1], sz[2]
			a, b := randS8(rnd, m*k), randS8(rnd, n*k)
			c := make([]int32, m*n)
			cpu.GemmS8S32(m, n, k, a, b, c)
			checkS8(t, m, n, k, a, b, c)
		}
	})
}

// TestGemmS8S32Wraps runs sums past int32, which wrap exactly as int32
// accumulation does, on the direct and the packed path.
func TestGemmS8S32Wraps(t *testing.T) {
	const k = 140000 // 140000·128·128 > 2^31
	for _, mn := range [][2]int{{1, 2}, {5, 6}} {
		m, n := mn[0], mn[1]
		a, b := make([]int8, m*k), make([]int8, n*k)
		for i := range a {
			a[i] = -128
		}
		for i := range b {
			b[i] = [...]int8{-128, 127, -128}[i/k%3]
		}
		c := make([]int32, m*n)
		cpu.GemmS8S32(m, n, k, a, b, c)
		checkS8(t, m, n, k, a, b, c)
	}
}

// checkS8 compares c with the int32 loop GemmS8S32 documents.
func checkS8(t *testing.T, m, n, k int, a, b []int8, c []int32) {
	t.Helper()
	for i := range m {
		for j := range n {
			var s int32
			for p := range k {
				s += int32(a[i*k+p]) * int32(b[j*k+p])
			}
			if c[i*n+j] != s {
				t.Fatalf("%dx%dx%d: C[%d,%d] = %d, want %d", m, n, k, i, j, c[i*n+j], s)
			}
		}
	}
}

func TestGemmS8Epilogue(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	forThreads(t, func(t *testing.T) {
		for _, sz := range kernelSizes {
			m, n, k := sz[0], sz[1], sz[2]
			a, b := randS8(rnd, m*k), randS8(rnd, n*k)
			acc := make([]int32, m*n)
			cpu.GemmS8S32(m, n, k, a, b, acc)
			ep := &backend.Epilogue{
				ColOffset: make([]int32, n), RowScale: make([]float32, m), ColScale: []float32{0.75},
				Bias: make([]float32, n), ReLU: true, OutScale: 0.37, OutZeroPoint: -4,
			}
			for j := range n {
				ep.ColOffset[j] = int32(rnd.IntN(2001) - 1000)
				ep.Bias[j] = float32(rnd.NormFloat64())
			}
			for i := range m {
				ep.RowScale[i] = float32(rnd.Float64()) / float32(10*k+1)
			}
			f32, s8 := make([]float32, m*n), make([]int8, m*n)
			if err := cpu.GemmS8(m, n, k, a, b, f32, ep); err != nil {
				t.Fatal(err)
			}
			if err := cpu.GemmS8(m, n, k, a, b, s8, ep); err != nil {
				t.Fatal(err)
			}
			for i := range m {
				for j := range n {
					y := float32(acc[i*n+j] + ep.ColOffset[j])
					y = float32(y * ep.RowScale[i])
					y = float32(y * ep.ColScale[0])
					y = max(float32(y+ep.Bias[j]), 0)
					if f32[i*n+j] != y {
						t.Fatalf("%dx%dx%d: f32 C[%d,%d] = %v, want %v", m, n, k, i, j, f32[i*n+j], y)
					}
					if q := int8(quant.QuantizeValue(y, ep.OutScale, ep.OutZeroPoint, -128, 127)); s8[i*n+j] != q {
						t.Fatalf("%dx%dx%d: s8 C[%d,%d] = %d, want %d", m, n, k, i, j, s8[i*n+j], q)
					}
				}
			}
		}
	})
}

func TestGemmErrors(t *testing.T) {
	a, b := make([]int8, 6), make([]int8, 6)
	for _, tc := range []struct {
		name string
		c    any
		ep   *backend.Epilogue
	}{
		{"float64 output", make([]float64, 4), nil},
		{"short output", make([]int32, 3), nil},
		{"int8 output without epilogue", make([]int8, 4), nil},
		{"int8 output with zero OutScale", make([]int8, 4), &backend.Epilogue{}},
		{"int8 output with infinite OutScale", make([]int8, 4), &backend.Epilogue{OutScale: float32(math.Inf(1))}},
		{"three column scales for two columns", make([]int32, 4), &backend.Epilogue{ColScale: []float32{1, 2, 3}}},
	} {
		if err := cpu.GemmS8(2, 2, 3, a, b, tc.c, tc.ep); err == nil {
			t.Errorf("GemmS8 with %s: no error", tc.name)
		}
	}
	mustPanic(t, "GemmF32 with a short A", func() { cpu.GemmF32(2, 2, 3, make([]float32, 5), make([]float32, 6), make([]float32, 4)) })
	mustPanic(t, "GemmS8S32 with a long C", func() { cpu.GemmS8S32(2, 2, 3, a, b, make([]int32, 5)) })
	mustPanic(t, "GemmF32 with negative k", func() { cpu.GemmF32(2, 2, -1, nil, nil, make([]float32, 4)) })
	mustPanic(t, "HistogramAbs with width 3", func() { cpu.HistogramAbs(nil, 3, make([]int64, 1)) })
	mustPanic(t, "HistogramAbs without bins", func() { cpu.HistogramAbs(nil, 1, nil) })
}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if r := recover(); r == nil {
			t.Errorf("%s did not panic", what)
		} else if !strings.HasPrefix(fmt.Sprint(r), "cpu: ") {
			t.Errorf("%s panicked without context: %v", what, r)
		}
	}()
	fn()
}

// streamData is long enough for several goroutines, with specials and
// runs of zeros.
func streamData(rnd *rand.Rand, n int) []float32 {
	x := randF32(rnd, n)
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, 1e30, 0x1p-149}
	for i := range x {
		switch {
		case i%1000 < 100:
			x[i] = 0
		case rnd.IntN(100) == 0:
			x[i] = specials[rnd.IntN(len(specials))]
		}
	}
	return x
}

func TestAbsMax(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	forThreads(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 3, 5, 64, 65, 1 << 16, 1<<18 + 7} {
			x := streamData(rnd, n)
			if n > 0 {
				x[rnd.IntN(n)] = -77777
			}
			var want float32
			for _, v := range x {
				if a := float32(math.Abs(float64(v))); a <= math.MaxFloat32 {
					want = max(want, a)
				}
			}
			if got := cpu.AbsMax(x); got != want {
				t.Errorf("AbsMax of %d = %v, want %v", n, got, want)
			}
		}
	})
}

func TestSQNRSums(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 1))
	for _, n := range []int{0, 1, 15, 16, 17, 100, 1<<16 + 5} {
		x, y := make([]float32, n), make([]float32, n)
		for i := range x {
			x[i] = float32(rnd.NormFloat64() * 3)
			y[i] = x[i] + float32(rnd.NormFloat64()*0.01)
		}
		var wantSig, wantNoise float64
		for i, v := range x {
			d := float64(v) - float64(y[i])
			wantSig += float64(v) * float64(v)
			wantNoise += d * d
		}
		sig, noise := cpu.SQNRSums(x, y)
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"Σx²", sig, wantSig}, {"Σ(x−y)²", noise, wantNoise}} {
			if math.Abs(c.got-c.want) > 1e-12*c.want {
				t.Errorf("n=%d: %s = %v, want %v", n, c.name, c.got, c.want)
			}
		}
		if n > 0 {
			x[rnd.IntN(n)] = float32(math.Inf(-1))
			if sig, _ := cpu.SQNRSums(x, y); !math.IsInf(sig, 1) {
				t.Errorf("n=%d with -Inf: Σx² = %v, want +Inf", n, sig)
			}
			x[rnd.IntN(n)] = float32(math.NaN())
			if sig, _ := cpu.SQNRSums(x, y); !math.IsNaN(sig) {
				t.Errorf("n=%d with NaN: Σx² = %v, want NaN", n, sig)
			}
		}
	}
}

func TestHistogramAbs(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	forThreads(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 3, 1000, 1<<18 + 7} {
			for _, bins := range []int{1, 3, 100, 20000} {
				x := streamData(rnd, n)
				const width = 0x1p-5
				got := make([]int64, bins)
				got[0] = 5
				want := slices.Clone(got)
				var wantNF int64
				for _, v := range x {
					a := math.Abs(float64(v))
					if math.IsNaN(a) || math.IsInf(a, 0) {
						wantNF++
						continue
					}
					want[min(int(min(a/width, 1e9)), bins-1)]++
				}
				if nf := cpu.HistogramAbs(x, width, got); nf != wantNF {
					t.Errorf("n=%d bins=%d: %d non-finite, want %d", n, bins, nf, wantNF)
				}
				if !slices.Equal(got, want) {
					t.Errorf("n=%d bins=%d: counts differ", n, bins)
				}
			}
		}
	})
}

// TestQuantizeChunks runs every granularity on tensors long enough to be
// split, with odd groups and channels so that runs and 4-bit bytes cross
// the chunk boundaries.
func TestQuantizeChunks(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	var schemes []quant.Scheme
	for _, bits := range []int{8, 4} {
		for _, g := range []quant.Scheme{
			{Granularity: quant.PerTensor},
			{Granularity: quant.PerChannel},
			{Granularity: quant.PerChannel, Axis: 1},
			{Granularity: quant.PerChannel, Axis: 2},
			{Granularity: quant.PerGroup, GroupSize: 7},
			{Granularity: quant.PerGroup, GroupSize: 64},
		} {
			g.Bits, g.Signed = bits, bits == 8
			schemes = append(schemes, g)
		}
	}
	shape := []int{37, 101, 27} // 100899 elements, odd everywhere
	n := 37 * 101 * 27
	x := streamData(rnd, n)
	forThreads(t, func(t *testing.T) {
		for _, s := range schemes {
			p, err := quant.FitMinMax(s, x, shape)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, s.PackedLen(n))
			if err := quant.Quantize(want, x, p); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(want))
			for i := range got {
				got[i] = 0xEE
			}
			if err := cpu.Quantize(got, x, p); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%v: Quantize differs from quant.Quantize", s)
			}
			wantX := make([]float32, n)
			if err := quant.Dequantize(wantX, want, p); err != nil {
				t.Fatal(err)
			}
			gotX := make([]float32, n)
			if err := cpu.Dequantize(gotX, got, p); err != nil {
				t.Fatal(err)
			}
			for i := range gotX {
				if math.Float32bits(gotX[i]) != math.Float32bits(wantX[i]) {
					t.Errorf("%v: Dequantize differs from quant.Dequantize at %d: %v, want %v", s, i, gotX[i], wantX[i])
					break
				}
			}
		}
	})
}

func TestSetThreads(t *testing.T) {
	prev := cpu.SetThreads(5)
	defer cpu.SetThreads(prev)
	if cpu.Threads() != 5 {
		t.Errorf("Threads() = %d after SetThreads(5)", cpu.Threads())
	}
	if !strings.Contains(cpu.New().Describe(), "5 threads") {
		t.Errorf("Describe() = %q, want the thread count", cpu.New().Describe())
	}
	cpu.SetThreads(-1)
	if cpu.Threads() < 1 {
		t.Errorf("Threads() = %d by default", cpu.Threads())
	}
}

func TestBuffersAreHostMemory(t *testing.T) {
	b := cpu.New()
	for _, dt := range []backend.DType{backend.F32, backend.S8, backend.U8, backend.S32} {
		buf, err := b.Alloc(dt, 5)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := buf.(backend.HostBuffer); !ok {
			t.Errorf("a %v buffer is not a backend.HostBuffer", dt)
		}
		if _, ok := buf.Slice(1, 2).(backend.HostBuffer); !ok {
			t.Errorf("a view of a %v buffer is not a backend.HostBuffer", dt)
		}
	}
}
