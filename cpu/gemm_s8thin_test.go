package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
)

// TestGemmS8W8A8Decode holds GemmS8 with a W8A8 projection's epilogue
// (per-token row scales, per-channel column scales, float32 out) to a
// float64 and int64 loop of the formula lm.Int8Layer documents,
//
//	y[t,o] = float32(float32(acc[t,o])·s_x[t])·Scales[o]
//
// bit for bit, on decode shapes: few token rows (1 to 5, and around the
// groups of four and the largest count read in place), weight rows that
// end in a partial block of four and span several tiles and tasks, k
// neither a multiple of 16 nor of 32, under every kernel set and thread
// count. The activation codes are QuantizeRowS8's (in [-127, 127]), and a
// second run puts -128 in them, which QuantizeRowS8 never writes but
// GemmS8 takes.
func TestGemmS8W8A8Decode(t *testing.T) {
	rnd := rand.New(rand.NewPCG(17, 8))
	type shape struct{ n, k int }
	shapes := []shape{{1001, 577}, {37, 33}, {6, 1}, {2053, 130}, {13, 2053}, {5, 15}}
	rows := []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 33}
	if testing.Short() { // the race detector's run: each path once
		shapes, rows = []shape{{1001, 577}, {37, 33}, {13, 2053}}, []int{1, 5, 33}
	}
	forKernels(t, func(t *testing.T) {
		forThreads(t, func(t *testing.T) {
			for _, sh := range shapes {
				n, k := sh.n, sh.k
				b := randS8(rnd, n*k)
				cs := make([]float32, n)
				for o := range cs {
					cs[o] = float32(rnd.Float64()+0.01) / 127
				}
				for _, m := range rows {
					x := randF32(rnd, m*k)
					a, rs := make([]int8, m*k), make([]float32, m)
					for i := range m {
						backend.QuantizeRowS8(a[i*k:(i+1)*k], &rs[i], x[i*k:(i+1)*k])
					}
					for _, extreme := range []bool{false, true} {
						if extreme {
							for p := 0; p < len(a); p += 3 {
								a[p] = -128
							}
						}
						c := make([]float32, m*n)
						if err := cpu.GemmS8(m, n, k, a, b, c, &backend.Epilogue{RowScale: rs, ColScale: cs}); err != nil {
							t.Fatal(err)
						}
						checkW8A8(t, fmt.Sprintf("%dx%dx%d extreme=%v", m, n, k, extreme), m, n, k, a, b, rs, cs, c)
					}
				}
			}
		})
	})
}

// checkW8A8 compares c with the W8A8 formula computed in int64 and float64
// (each product rounded to float32 as the formula says).
func checkW8A8(t *testing.T, name string, m, n, k int, a, b []int8, rs, cs, c []float32) {
	t.Helper()
	for i := range m {
		for j := range n {
			var acc int64
			for p := range k {
				acc += int64(a[i*k+p]) * int64(b[j*k+p])
			}
			y := float32(float64(float32(float64(float32(acc))*float64(rs[i]))) * float64(cs[j]))
			if got := c[i*n+j]; math.Float32bits(got) != math.Float32bits(y) {
				t.Fatalf("%s: y[%d,%d] = %g, want %g", name, i, j, got, y)
			}
		}
	}
}
