//go:build cuda

package gpu

import (
	"fmt"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// gemmBenchSizes are square GEMMs and two LLM-like shapes (m tokens, a
// 4096×4096 and a 4096→11008 weight).
var gemmBenchSizes = [][3]int{
	{512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 4096, 4096}, {8192, 8192, 8192},
	{16, 4096, 4096}, {128, 11008, 4096}, {2048, 4096, 4096},
}

// benchGemm times b.N calls of run with device events and reports
// tera-operations per second (2·m·n·k per call).
func benchGemm(tb *testing.B, g *Backend, m, n, k int, run func() error) {
	if err := run(); err != nil { // warm up, and JIT caches
		tb.Fatal(err)
	}
	if err := g.Synchronize(); err != nil {
		tb.Fatal(err)
	}
	tb.ResetTimer()
	sec, err := g.Elapsed(func() error {
		for range tb.N {
			if err := run(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.StopTimer()
	tb.ReportMetric(sec/float64(tb.N)*1e6, "device-µs/op")
	tb.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(tb.N)/sec/1e12, "TOPS")
}

func BenchmarkGemmS8(tb *testing.B) {
	g := openTest(tb)
	for _, out := range []backend.DType{backend.S32, backend.F32, backend.S8} {
		for _, sz := range gemmBenchSizes {
			m, n, k := sz[0], sz[1], sz[2]
			tb.Run(fmt.Sprintf("%v/%dx%dx%d", out, m, n, k), func(tb *testing.B) {
				a := allocBench(tb, g, backend.S8, m*k)
				bt := allocBench(tb, g, backend.S8, n*k)
				c := allocBench(tb, g, out, m*n)
				var ep *backend.Epilogue
				if out != backend.S32 {
					ep = &backend.Epilogue{RowScale: ones(m), ColScale: ones(n), Bias: make([]float32, n), OutScale: 1}
				}
				benchGemm(tb, g, m, n, k, func() error { return g.GemmS8(m, n, k, a, bt, c, ep) })
			})
		}
	}
}

// BenchmarkGemmS8Padded is GemmS8 with K not a multiple of 16, which pads
// both operands on every call.
func BenchmarkGemmS8Padded(tb *testing.B) {
	g := openTest(tb)
	for _, sz := range [][3]int{{4096, 4096, 4095}, {16, 4096, 4100}} {
		m, n, k := sz[0], sz[1], sz[2]
		tb.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(tb *testing.B) {
			a := allocBench(tb, g, backend.S8, m*k)
			bt := allocBench(tb, g, backend.S8, n*k)
			c := allocBench(tb, g, backend.S32, m*n)
			benchGemm(tb, g, m, n, k, func() error { return g.GemmS8(m, n, k, a, bt, c, nil) })
		})
	}
}

func BenchmarkGemmF32(tb *testing.B) {
	g := openTest(tb)
	for _, sz := range gemmBenchSizes {
		m, n, k := sz[0], sz[1], sz[2]
		tb.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(tb *testing.B) {
			a := allocBench(tb, g, backend.F32, m*k)
			bt := allocBench(tb, g, backend.F32, n*k)
			c := allocBench(tb, g, backend.F32, m*n)
			benchGemm(tb, g, m, n, k, func() error { return g.GemmF32(m, n, k, a, bt, c) })
		})
	}
}

// allocBench allocates a buffer of pseudo-random values (the tensor
// cores draw more power, and may clock lower, on random data than on
// zeros).
func allocBench(tb *testing.B, g *Backend, dt backend.DType, n int) backend.Buffer {
	buf, err := g.Alloc(dt, n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Free(buf) })
	x := uint32(2463534242)
	next := func() uint32 { // xorshift32
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x
	}
	var host any
	switch dt {
	case backend.F32:
		h := make([]float32, n)
		for i := range h {
			h[i] = float32(int32(next()>>16)-32768) / 32768
		}
		host = h
	case backend.S8:
		h := make([]int8, n)
		for i := range h {
			h[i] = int8(next())
		}
		host = h
	case backend.U8:
		h := make([]uint8, n)
		for i := range h {
			h[i] = uint8(next())
		}
		host = h
	default:
		host = make([]int32, n)
	}
	if err := g.Upload(buf, host); err != nil {
		tb.Fatal(err)
	}
	return buf
}

func ones(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 1
	}
	return s
}
