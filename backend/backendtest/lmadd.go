package backendtest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// testAdd checks backend.Add bit for bit against float32 sums computed
// here (a NaN for a NaN, whatever its payload): a residual (y as long as x), a bias repeated over rows, and both
// run in place, with infinities, NaN and signed zeros among the values.
func testAdd(t *testing.T, b backend.Backend) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct{ n, ny int }{{1, 1}, {7, 7}, {12, 3}, {4099, 4099}, {64 * 33, 33}} {
		t.Run(sizeName(c.n, c.ny), func(t *testing.T) {
			x, y := lmValues(rnd, c.n, 3), lmValues(rnd, c.ny, 3)
			edge := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), float32(math.Copysign(0, -1)), 0, 3e38, -3e38, 1e-40}
			for i := 0; i < c.n; i += 11 {
				x[i] = edge[(i/11)%len(edge)]
			}
			if c.ny > 2 {
				y[1], y[2] = float32(math.Copysign(0, -1)), 3e38
			}
			want := make([]float32, c.n)
			for i := range want {
				want[i] = x[i] + y[i%c.ny]
			}
			check := func(what string, got []float32) {
				t.Helper()
				m := &mismatches{t: t}
				for i, g := range got {
					if !same(g, want[i]) && !(g != g && want[i] != want[i]) { // any NaN for NaN
						if !m.add("%s: element %d is %v, want %v", what, i, g, want[i]) {
							break
						}
					}
				}
				m.done(what)
			}
			xb, yb := upload(t, b, x), upload(t, b, y)
			out := newOutput[float32](t, b, c.n)
			if err := backend.Add(b, out.mid, xb, yb); err != nil {
				t.Fatal(err)
			}
			check("add", out.read(t, b))
			checkUnchanged(t, b, xb, x, "x")
			checkUnchanged(t, b, yb, y, "y")
			io := inPlace(t, b, x)
			if err := backend.Add(b, io.mid, io.mid, yb); err != nil {
				t.Fatal(err)
			}
			check("add into x", io.read(t, b))
			if c.ny == c.n {
				io = inPlace(t, b, y)
				if err := backend.Add(b, io.mid, xb, io.mid); err != nil {
					t.Fatal(err)
				}
				check("add into y", io.read(t, b))
			}
		})
	}
}
