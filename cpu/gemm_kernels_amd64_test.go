//go:build !noasm && !gccgo && !safe

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The micro-kernels against the loops their doc comments state, on
// random and extreme inputs, storing and accumulating into a C whose rows
// are longer than the tile (guard values in between must survive).

func TestF32MicroKernels(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 3))
	for _, k := range []*f32Kern{&f32AVX512, &f32AVX2} {
		if (k == &f32AVX512 && !hw.AVX512) || !hw.AVX2FMA {
			continue
		}
		for _, kc := range []int{1, 2, 7, 64, 300} {
			lda, ldc := kc+3, k.nr+5
			a, b := make([]float32, k.mr*lda), make([]float32, kc*k.nr)
			for i := range a {
				a[i] = float32(rnd.NormFloat64())
			}
			for i := range b {
				b[i] = float32(rnd.NormFloat64())
			}
			for _, acc := range []bool{false, true} {
				c := make([]float32, k.mr*ldc)
				for i := range c {
					c[i] = float32(i%9) - 4
				}
				want := append([]float32(nil), c...)
				k.fn(kc, &a[0], lda, &b[0], &c[0], ldc, acc)
				for r := range k.mr {
					for j := range k.nr {
						var s, abs float64
						for p := range kc {
							v := float64(a[r*lda+p]) * float64(b[p*k.nr+j])
							s += v
							abs += math.Abs(v)
						}
						if acc {
							s += float64(want[r*ldc+j])
							abs += math.Abs(float64(want[r*ldc+j]))
						}
						want[r*ldc+j] = float32(s)
						if d := math.Abs(float64(c[r*ldc+j]) - s); d > 1e-6*abs*float64(kc+1)+1e-30 {
							t.Fatalf("%s kc=%d acc=%v: C[%d,%d] = %v, want %v", k.name, kc, acc, r, j, c[r*ldc+j], s)
						}
					}
					for j := k.nr; j < ldc; j++ {
						if c[r*ldc+j] != want[r*ldc+j] {
							t.Fatalf("%s kc=%d: wrote C[%d,%d] outside the tile", k.name, kc, r, j)
						}
					}
				}
			}
		}
	}
}

func TestS8MicroKernels(t *testing.T) {
	rnd := rand.New(rand.NewPCG(4, 4))
	fills := []func() int8{
		func() int8 { return int8(rnd.Uint32()) },
		func() int8 { return -128 },
		func() int8 { return 127 },
		func() int8 { return [...]int8{-128, 127}[rnd.IntN(2)] },
	}
	for _, k := range []*s8Kern{&s8AVX512VNNI, &s8AVXVNNI, &s8AVX2} {
		if (k == &s8AVX512VNNI && !hw.AVX512VNNI) || (k == &s8AVXVNNI && !hw.AVXVNNI) || !hw.AVX2FMA {
			continue
		}
		for fi, fa := range fills {
			fb := fills[(fi+1)%len(fills)]
			for _, kc := range []int{1, 3, 64, 513} {
				steps := 4
				if k.fn2 != nil {
					steps = 2
				}
				lda, ldc := steps*kc+4, k.nr+3
				a, b := make([]int8, k.mr*lda), make([]int8, k.nr*steps*kc)
				for i := range a {
					a[i] = fa()
				}
				for i := range b {
					b[i] = fb()
				}
				// A[r, p] = a[r*lda+p], B[j, p] = b[j*steps*kc+p], packed as
				// each kernel reads them.
				bw := make([]uint32, kc*k.nr)
				a16, b16 := make([]int16, 2*kc*k.mr), make([]int16, 2*kc*k.nr)
				for g := range kc {
					for j := range k.nr {
						for t := range steps {
							v := b[j*steps*kc+steps*g+t]
							if steps == 4 {
								bw[g*k.nr+j] |= uint32(uint8(v)^0x80) << (8 * t)
							} else {
								b16[(g*k.nr+j)*2+t] = int16(v)
							}
						}
					}
					for r := range k.mr {
						for t := range 2 {
							a16[(g*k.mr+r)*2+t] = int16(a[r*lda+2*g+t])
						}
					}
				}
				for _, acc := range []bool{false, true} {
					c := make([]int32, k.mr*ldc)
					for i := range c {
						c[i] = int32(i*2654435761) >> 2
					}
					want := append([]int32(nil), c...)
					// Starting values per row (the offset correction the
					// driver passes), extreme in some rows.
					var init [14]int32
					for r := range init {
						init[r] = [...]int32{0, -1 << 31, 1<<31 - 1, 12345}[r%4] - int32(r)
					}
					if steps == 4 {
						k.fn4(kc, &a[0], lda, &bw[0], &c[0], ldc, acc, &init[0])
					} else {
						k.fn2(kc, &a16[0], &b16[0], &c[0], ldc, acc)
					}
					for r := range k.mr {
						var sumA int32
						for p := range steps * kc {
							sumA += int32(a[r*lda+p])
						}
						for j := range k.nr {
							var s int32
							for p := range steps * kc {
								s += int32(a[r*lda+p]) * int32(b[j*steps*kc+p])
							}
							if steps == 4 {
								s += 128*sumA + init[r] // the offset and the start
							}
							if acc {
								s += want[r*ldc+j]
							}
							if c[r*ldc+j] != s {
								t.Fatalf("%s fill %d kc=%d acc=%v: C[%d,%d] = %d, want %d", k.name, fi, kc, acc, r, j, c[r*ldc+j], s)
							}
						}
						for j := k.nr; j < ldc; j++ {
							if c[r*ldc+j] != want[r*ldc+j] {
								t.Fatalf("%s: wrote C[%d,%d] outside the tile", k.name, r, j)
							}
						}
					}
				}
			}
		}
	}
}

// TestSumS8 holds the word-parallel row sum to a plain loop, on lengths
// around its 8-byte words and 128-word folds, with extreme values.
func TestSumS8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{0, 1, 7, 8, 9, 1023, 1024, 1025, 4099, 200000} {
		for _, fill := range []func() int8{
			func() int8 { return int8(rnd.Uint32()) },
			func() int8 { return -128 },
			func() int8 { return 127 },
		} {
			x := make([]int8, n)
			var want int32
			for i := range x {
				x[i] = fill()
				want += int32(x[i])
			}
			if got := sumS8(x); got != want {
				t.Fatalf("sumS8 of %d: %d, want %d", n, got, want)
			}
			if got := sumS8Go(x); got != want {
				t.Fatalf("sumS8Go of %d: %d, want %d", n, got, want)
			}
		}
	}
}

// BenchmarkGemmMicroKernel times each micro-kernel alone on panels of 256
// steps that stay in L1, one goroutine: the peak its GEMM approaches.
func BenchmarkGemmMicroKernel(b *testing.B) {
	const kc = 256
	for _, k := range []*f32Kern{&f32AVX512, &f32AVX2} {
		b.Run(fmt.Sprintf("f32/%s", strings.ReplaceAll(k.name, " ", "-")), func(b *testing.B) {
			if (k == &f32AVX512 && !hw.AVX512) || !hw.AVX2FMA {
				b.Skip("not supported here")
			}
			a, p, c := make([]float32, k.mr*kc), make([]float32, k.nr*kc), make([]float32, k.mr*k.nr)
			for b.Loop() {
				k.fn(kc, &a[0], kc, &p[0], &c[0], k.nr, true)
			}
			b.ReportMetric(float64(2*k.mr*k.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
	for _, k := range []*s8Kern{&s8AVX512VNNI, &s8AVXVNNI, &s8AVX2} {
		b.Run(fmt.Sprintf("s8/%s", strings.ReplaceAll(k.name, " ", "-")), func(b *testing.B) {
			if (k == &s8AVX512VNNI && !hw.AVX512VNNI) || (k == &s8AVXVNNI && !hw.AVXVNNI) || !hw.AVX2FMA {
				b.Skip("not supported here")
			}
			a, p, c := make([]int8, 4*k.mr*kc), make([]uint32, k.nr*kc), make([]int32, k.mr*k.nr)
			var init [14]int32
			a16, p16 := make([]int16, 2*k.mr*kc), make([]int16, 2*k.nr*kc)
			steps := 4
			if k.fn2 != nil {
				steps = 2
			}
			for b.Loop() {
				if k.fn4 != nil {
					k.fn4(kc, &a[0], 4*kc, &p[0], &c[0], k.nr, true, &init[0])
				} else {
					k.fn2(kc, &a16[0], &p16[0], &c[0], k.nr, true)
				}
			}
			b.ReportMetric(float64(2*k.mr*k.nr*kc*steps)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
		})
	}
}
