package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// gemmBenchSizes are m = n = k of the GEMM benchmarks, whose names end
// in the size.
var gemmBenchSizes = []int{256, 512, 1024, 2048}

func benchF32(n int) []float32 {
	rnd := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rnd.NormFloat64())
	}
	return x
}

func benchS8(n int) []int8 {
	rnd := rand.New(rand.NewPCG(1, 1))
	x := make([]int8, n)
	for i := range x {
		x[i] = int8(rnd.Uint32())
	}
	return x
}

// reportOps reports ops per second (ops per iteration) in G/s.
func reportOps(b *testing.B, ops float64, unit string) {
	b.ReportMetric(ops*float64(b.N)/b.Elapsed().Seconds()/1e9, unit)
}

// BenchmarkGemmF32 runs the fastest kernels the processor supports
// (cpu.Features), BenchmarkGemmF32Generic the pure-Go ones.
func BenchmarkGemmF32(b *testing.B) { benchGemmF32(b) }

func BenchmarkGemmF32Generic(b *testing.B) {
	defer cpu.ForceGeneric(true)()
	benchGemmF32(b)
}

func benchGemmF32(b *testing.B) {
	for _, n := range gemmBenchSizes {
		a, bt, c := benchF32(n*n), benchF32(n*n), make([]float32, n*n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				cpu.GemmF32(n, n, n, a, bt, c)
			}
			reportOps(b, 2*float64(n)*float64(n)*float64(n), "GFLOP/s")
		})
	}
}

// BenchmarkGonumSgemm is the baseline for BenchmarkGemmF32: gonum's
// Sgemm (assembly inner loops) computing the same A·Bᵀ.
func BenchmarkGonumSgemm(b *testing.B) {
	for _, n := range gemmBenchSizes {
		g := func(d []float32) blas32.General { return blas32.General{Rows: n, Cols: n, Stride: n, Data: d} }
		a, bt, c := g(benchF32(n*n)), g(benchF32(n*n)), g(make([]float32, n*n))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				blas32.Gemm(blas.NoTrans, blas.Trans, 1, a, bt, 0, c)
			}
			reportOps(b, 2*float64(n)*float64(n)*float64(n), "GFLOP/s")
		})
	}
}

// BenchmarkGemmS8 runs the fastest kernels the processor supports,
// BenchmarkGemmS8Generic the pure-Go ones.
func BenchmarkGemmS8(b *testing.B) { benchGemmS8(b) }

func BenchmarkGemmS8Generic(b *testing.B) {
	defer cpu.ForceGeneric(true)()
	benchGemmS8(b)
}

func benchGemmS8(b *testing.B) {
	for _, n := range gemmBenchSizes {
		a, bt := benchS8(n*n), benchS8(n*n)
		c32, c8 := make([]int32, n*n), make([]int8, n*n)
		b.Run(fmt.Sprintf("s32/%d", n), func(b *testing.B) {
			for b.Loop() {
				cpu.GemmS8S32(n, n, n, a, bt, c32)
			}
			reportOps(b, 2*float64(n)*float64(n)*float64(n), "GOP/s")
		})
		// Scales that map the sums (about ±5e4 at n = 256) onto the int8
		// codes, as calibration would, with a few saturating.
		rs, cs := make([]float32, n), make([]float32, n)
		for i := range rs {
			rs[i] = 1e-2 / float32(n/256) * (1 + float32(i%7)/7)
			cs[i] = 1e-2 * (1 + float32(i%5)/5)
		}
		ep := &backend.Epilogue{RowScale: rs, ColScale: cs, Bias: benchF32(n), ReLU: true, OutScale: 0.1}
		cf := make([]float32, n*n)
		b.Run(fmt.Sprintf("f32-epilogue/%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := cpu.GemmS8(n, n, n, a, bt, cf, ep); err != nil {
					b.Fatal(err)
				}
			}
			reportOps(b, 2*float64(n)*float64(n)*float64(n), "GOP/s")
		})
		b.Run(fmt.Sprintf("s8-epilogue/%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := cpu.GemmS8(n, n, n, a, bt, c8, ep); err != nil {
					b.Fatal(err)
				}
			}
			reportOps(b, 2*float64(n)*float64(n)*float64(n), "GOP/s")
		})
	}
}

// BenchmarkGemmS8Columns16 runs an int8 GEMM with int8 output and 16
// columns, the shape of a small convolution as im2col lays it out (a
// batch of 64 images of 28×28 positions, 8 channels of 5×5 in, 16 out):
// C has too few columns for the kernels' tiles, so they run on Cᵀ and the
// epilogue writes C a column at a time.
func BenchmarkGemmS8Columns16(b *testing.B) {
	const m, n, k = 64 * 28 * 28, 16, 8 * 5 * 5
	a, bt := benchS8(m*k), benchS8(n*k)
	rs, cs := make([]float32, m), make([]float32, n)
	for i := range rs {
		rs[i] = 1e-3 * (1 + float32(i%7)/7)
	}
	for j := range cs {
		cs[j] = 1e-2 * (1 + float32(j%5)/5)
	}
	ep := &backend.Epilogue{RowScale: rs, ColScale: cs, Bias: benchF32(n), ReLU: true, OutScale: 0.02}
	c := make([]int8, m*n)
	b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
		for b.Loop() {
			if err := cpu.GemmS8(m, n, k, a, bt, c, ep); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b, 2*float64(m)*float64(n)*float64(k), "GOP/s")
	})
}

// BenchmarkGemmThin runs GEMMs with one side of one or four rows (a
// matrix-vector product and a small batch) against a 4096×4096 matrix, on
// the fastest kernels and on the generic ones.
func BenchmarkGemmThin(b *testing.B) {
	const n, k = 4096, 4096
	bf, b8 := benchF32(n*k), benchS8(n*k)
	for _, m := range []int{1, 4} {
		af, a8 := benchF32(m*k), benchS8(m*k)
		cf, c32 := make([]float32, m*n), make([]int32, m*n)
		for _, generic := range []bool{false, true} {
			kind := "simd"
			if generic {
				kind = "generic"
			}
			b.Run(fmt.Sprintf("f32/%s/%dx%dx%d", kind, m, n, k), func(b *testing.B) {
				defer cpu.ForceGeneric(generic)()
				for b.Loop() {
					cpu.GemmF32(m, n, k, af, bf, cf)
				}
				reportOps(b, 2*float64(m*n*k), "GFLOP/s")
			})
			b.Run(fmt.Sprintf("s32/%s/%dx%dx%d", kind, m, n, k), func(b *testing.B) {
				defer cpu.ForceGeneric(generic)()
				for b.Loop() {
					cpu.GemmS8S32(m, n, k, a8, b8, c32)
				}
				reportOps(b, 2*float64(m*n*k), "GOP/s")
			})
		}
	}
}

// BenchmarkGemmS8Decode runs the int8 GEMMs of a W8A8 decode step (one
// row of activations, or a batch of 4, 16 or 32, times a weight matrix,
// float32 out through row and column scales) on the fastest kernels and,
// for up to four rows, on the generic ones. The shapes are a 1B Llama's
// (2048×2048, 5632×2048, 2048×5632), a 150M one's largest (1536×576) and
// a 7B one's (11008×4096).
//
//	go test ./cpu -run - -bench GemmS8Decode/simd -count 5
func BenchmarkGemmS8Decode(b *testing.B) {
	for _, nk := range [][2]int{{2048, 2048}, {5632, 2048}, {2048, 5632}, {1536, 576}, {11008, 4096}} {
		n, k := nk[0], nk[1]
		bt := benchS8(n * k)
		cs := make([]float32, n)
		for i := range cs {
			cs[i] = 1e-3 * (1 + float32(i%5)/5)
		}
		for _, m := range []int{1, 4, 16, 32} {
			a, cf := benchS8(m*k), make([]float32, m*n)
			rs := make([]float32, m)
			for i := range rs {
				rs[i] = 1e-2
			}
			ep := &backend.Epilogue{RowScale: rs, ColScale: cs}
			for _, generic := range []bool{false, true} {
				kind := "simd"
				if generic {
					if m > 4 {
						continue
					}
					kind = "generic"
				}
				b.Run(fmt.Sprintf("%s/%dx%dx%d", kind, m, n, k), func(b *testing.B) {
					defer cpu.ForceGeneric(generic)()
					for b.Loop() {
						if err := cpu.GemmS8(m, n, k, a, bt, cf, ep); err != nil {
							b.Fatal(err)
						}
					}
					reportOps(b, 2*float64(m*n*k), "GOP/s")
				})
			}
		}
	}
}

// elemBench is the element count of the streaming benchmarks: 16M
// float32s, 64 MiB, well past the caches.
const elemBench = 16 << 20

// BenchmarkCopy is the baseline for the streaming kernels: copying the
// same 64 MiB of float32s.
func BenchmarkCopy(b *testing.B) {
	x, y := benchF32(elemBench), make([]float32, elemBench)
	b.Run("16M", func(b *testing.B) {
		copy(y, x) // fault the pages in before timing
		b.SetBytes(4 * elemBench)
		for b.Loop() {
			copy(y, x)
		}
	})
}

var benchSchemes = []string{"int8-sym-tensor", "uint8-asym-channel1", "int4-sym-group128", "int4-asym-channel"}

func benchParams(b *testing.B, name string, x []float32) *quant.Params {
	s, err := quant.ParseScheme(name)
	if err != nil {
		b.Fatal(err)
	}
	p, err := quant.FitMinMax(s, x, []int{4096, elemBench / 4096})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkQuantize(b *testing.B) {
	x := benchF32(elemBench)
	codes := make([]byte, elemBench)
	for _, name := range benchSchemes {
		p := benchParams(b, name, x)
		c := codes[:p.Scheme.PackedLen(elemBench)]
		b.Run(name+"/16M", func(b *testing.B) {
			cpu.Quantize(c, x, p) // fault the pages in before timing
			b.SetBytes(4 * elemBench)
			for b.Loop() {
				if err := cpu.Quantize(c, x, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDequantize(b *testing.B) {
	x, y := benchF32(elemBench), make([]float32, elemBench)
	codes := make([]byte, elemBench)
	for _, name := range benchSchemes {
		p := benchParams(b, name, x)
		c := codes[:p.Scheme.PackedLen(elemBench)]
		if err := cpu.Quantize(c, x, p); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/16M", func(b *testing.B) {
			cpu.Dequantize(y, c, p) // fault the pages in before timing
			b.SetBytes(4 * elemBench)
			for b.Loop() {
				if err := cpu.Dequantize(y, c, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHistogramAbs(b *testing.B) {
	x := benchF32(elemBench)
	zeros := make([]float32, elemBench)
	for _, in := range []struct {
		name string
		x    []float32
	}{{"normal", x}, {"zeros", zeros}} {
		counts := make([]int64, 2048)
		b.Run(in.name+"/16M", func(b *testing.B) {
			b.SetBytes(4 * elemBench)
			for b.Loop() {
				cpu.HistogramAbs(in.x, 0x1p-8, counts)
			}
		})
	}
}

func BenchmarkAbsMax(b *testing.B) {
	x := benchF32(elemBench)
	b.Run("16M", func(b *testing.B) {
		b.SetBytes(4 * elemBench)
		for b.Loop() {
			cpu.AbsMax(x)
		}
	})
}
