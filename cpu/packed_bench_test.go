package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// BenchmarkGemmPacked runs GemmPacked at the decode step's shapes (m rows
// of A against a weight of n rows of k) for each fused format, after
// GemmF32 on the same weight widened to float32 (f32, in the same run),
// and for the formats RepackPacked interleaves, on the repacked rows too
// (r8): GB/s is weight bytes streamed per second, x_f32 the speed over
// f32's.
//
//	go test ./cpu -run - -bench GemmPacked -benchtime 20x
func BenchmarkGemmPacked(b *testing.B) {
	benchGemmPacked(b, [][3]int{{1, 2048, 2048}, {1, 11008, 4096}, {4, 2048, 2048}})
}

// BenchmarkGemmPackedPrefill runs a prefill step's shape (512 rows of A,
// the tile-decode path) of the 150M-parameter model of quantkit gen.
func BenchmarkGemmPackedPrefill(b *testing.B) { benchGemmPacked(b, [][3]int{{512, 1536, 576}}) }

func benchGemmPacked(b *testing.B, packedBenchSizes [][3]int) {
	formats := []backend.PackedFormat{
		quant.RowFormat{Bits: 8, Signed: true, Symmetric: true}, // per channel: Group set to k
		quant.RowFormat{Bits: 8, Symmetric: false},
		quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 128},
		quant.RowFormat{Bits: 4, Symmetric: false, Group: 128},
		gguf.TypeQ8_0,
		gguf.TypeQ4_0,
		gguf.TypeBF16,
	}
	for _, sz := range packedBenchSizes {
		m, n, k := sz[0], sz[1], sz[2]
		rnd := rand.New(rand.NewPCG(1, 1))
		a := make([]float32, m*k)
		for i := range a {
			a[i] = float32(rnd.NormFloat64())
		}
		c := make([]float32, m*n)
		var f32ns float64
		{
			w := make([]float32, n*k)
			for i := range w {
				w[i] = float32(rnd.NormFloat64())
			}
			b.Run(fmt.Sprintf("f32/m=%d/n=%d/k=%d", m, n, k), func(b *testing.B) {
				for b.Loop() {
					GemmF32(m, n, k, a, w, c)
				}
				f32ns = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(float64(4*n*k)/f32ns, "GB/s")
			})
		}
		for _, f := range formats {
			if rf, ok := f.(quant.RowFormat); ok && rf.Group == 0 {
				rf.Group = k
				f = rf
			}
			data := randPacked(rnd, f, n, k)
			var rep []byte // rows interleaved by eight (RepackPacked), where f has them
			if l, ok := rows8Layout(f, k); ok {
				rb, _ := f.RowBytes(k)
				rep = make([]byte, len(data))
				repackRows8(l, rep, data, n, rb)
			}
			for _, r8 := range []bool{false, true} {
				if r8 && rep == nil {
					continue
				}
				name := fmt.Sprintf("%v/m=%d/n=%d/k=%d", f, m, n, k)
				if r8 {
					name = fmt.Sprintf("%v/r8/m=%d/n=%d/k=%d", f, m, n, k)
				}
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						if r8 {
							gemmPacked(m, n, k, a, f, rep, c, true)
						} else {
							GemmPacked(m, n, k, a, f, data, c)
						}
					}
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(float64(len(data))/ns, "GB/s")
					if f32ns > 0 {
						b.ReportMetric(f32ns/ns, "x_f32")
					}
				})
			}
		}
	}
}

// BenchmarkGemmPackedQ8 runs the decode step's products of a 1B Llama
// (one row of A; 2048→2048, 2048→5632 and 5632→2048) per format with
// float activations (float: SetExactPacked(true), the kernels that widen
// each code, or for the K-quants the tiles decoded to float) and with activations rounded to 8 bits (int8: the integer
// kernels, the default; int8r8: the same on the rows RepackPacked
// interleaves, for the formats it repacks), interleaved in one run: GB/s
// is weight bytes streamed per second, x_float the integer path's speed
// over the float path's.
//
//	go test ./cpu -run - -bench GemmPackedQ8 -benchtime 50x -count 3
func BenchmarkGemmPackedQ8(b *testing.B) {
	formats := []backend.PackedFormat{
		gguf.TypeQ8_0,
		gguf.TypeQ4_0,
		quant.RowFormat{Bits: 8, Signed: true, Symmetric: true}, // per channel: Group set to k
		quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 128},
		quant.RowFormat{Bits: 4, Symmetric: false, Group: 128},
		gguf.TypeQ6_K,
		gguf.TypeQ4_K,
	}
	for _, sz := range [][3]int{{1, 2048, 2048}, {1, 5632, 2048}, {1, 2048, 5632}} {
		m, n, k := sz[0], sz[1], sz[2]
		rnd := rand.New(rand.NewPCG(1, 1))
		a := make([]float32, m*k)
		for i := range a {
			a[i] = float32(rnd.NormFloat64())
		}
		c := make([]float32, m*n)
		for _, f := range formats {
			if rf, ok := f.(quant.RowFormat); ok && rf.Group == 0 {
				rf.Group = k
				f = rf
			}
			data := randPackedQ8(rnd, f, n, k)
			paths := []string{"float", "int8"}
			var rep []byte
			if l, ok := rows8Layout(f, k); ok {
				rb, _ := f.RowBytes(k)
				rep = make([]byte, len(data))
				repackRows8(l, rep, data, n, rb)
				paths = append(paths, "int8r8")
			}
			var floatNs float64
			for _, path := range paths {
				b.Run(fmt.Sprintf("%v/%s/m=%d/n=%d/k=%d", f, path, m, n, k), func(b *testing.B) {
					defer SetExactPacked(SetExactPacked(path == "float"))
					for b.Loop() {
						if path == "int8r8" {
							gemmPacked(m, n, k, a, f, rep, c, true)
						} else {
							GemmPacked(m, n, k, a, f, data, c)
						}
					}
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(float64(len(data))/ns, "GB/s")
					if path == "float" {
						floatNs = ns
					} else if floatNs > 0 {
						b.ReportMetric(floatNs/ns, "x_float")
					}
				})
			}
		}
	}
}
