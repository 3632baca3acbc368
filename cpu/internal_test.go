package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

// TestQuantizeValue holds the inlined quantizeValue to
// quant.QuantizeValue on random bit patterns (every exponent, NaN, Inf,
// subnormals), on ties and on every code range.
func TestQuantizeValue(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	ranges := [][2]int32{{-127, 127}, {-128, 127}, {0, 255}, {-7, 7}, {-8, 7}, {0, 15}}
	for it := range 2_000_000 {
		r := ranges[it%len(ranges)]
		zp := r[0] + int32(rnd.IntN(int(r[1]-r[0]+1)))
		sc := float32(math.Ldexp(0.5+rnd.Float64(), rnd.IntN(80)-40))
		if it%7 == 0 {
			sc = float32(math.Ldexp(1, rnd.IntN(253)-126))
		}
		x := math.Float32frombits(rnd.Uint32())
		if it%3 == 0 {
			x = float32(float64(rnd.IntN(700)-350)/2) * sc // ties and near-ties
		}
		want := quant.QuantizeValue(x, sc, zp, r[0], r[1])
		if got := quantizeValue(x, sc, zp, float64(r[0]), float64(r[1])); got != want {
			t.Fatalf("quantizeValue(%v, %v, %d, %v) = %d, want %d", x, sc, zp, r, got, want)
		}
	}
}

// TestS8Lanes checks the lane separation at the largest sums a block of
// gemmS8KC steps can produce, of both signs in both lanes.
func TestS8Lanes(t *testing.T) {
	const hi = 1 << gemmS8LaneShift
	for _, s0 := range []int64{0, 1, -1, gemmS8KC * 128 * 128, -gemmS8KC * 128 * 127, 12345} {
		for _, s1 := range []int64{0, 1, -1, gemmS8KC * 128 * 128, -gemmS8KC * 128 * 127, -54321} {
			var v [gemmS8Pairs]float64
			var acc [gemmS8NR]int32
			v[3] = float64(s0) + float64(s1)*hi
			acc[6], acc[7] = 10, -10
			addS8Lanes(&v, &acc)
			if acc[6] != int32(s0)+10 || acc[7] != int32(s1)-10 {
				t.Errorf("lanes of %d + %d·2^26 gave %d, %d", s0, s1, acc[6]-10, acc[7]+10)
			}
		}
	}
	if gemmS8KC*128*128 >= 1<<25 {
		t.Errorf("gemmS8KC = %d lets a lane reach 2^25", gemmS8KC)
	}
}
