package float

import (
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/nntest"
)

func im2colStep(inC, h, w, k, pad, outC int) *step {
	c := &nn.Conv2D{InC: inC, OutC: outC, KH: k, KW: k, StrideH: 1, StrideW: 1, PadT: pad, PadL: pad, PadB: pad, PadR: pad}
	in := nn.Shape{C: inC, H: h, W: w}
	out := nn.Shape{C: outC, H: h + 2*pad - k + 1, W: w + 2*pad - k + 1}
	return &step{kind: conv, conv: c, in: in, out: out, m1: out.H * out.W, k: inC * k * k, n: outC}
}

func BenchmarkIm2colMNIST(b *testing.B) {
	for _, st := range []*step{im2colStep(1, 28, 28, 5, 2, 8), im2colStep(8, 14, 14, 5, 2, 16)} {
		const nb = 8
		rng := rand.New(rand.NewPCG(1, 1))
		x := nntest.RandSlice(rng, nb*st.in.Size(), 1)
		a := make([]float32, nb*st.m1*st.k)
		b.Run(nn.Describe(st.conv), func(b *testing.B) {
			for range b.N {
				im2col(a, x, nb, st)
			}
			b.ReportMetric(float64(b.N*nb)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
