package nn

import (
	"math/rand/v2"
	"testing"
)

func im2colStep(inC, h, w, k, pad, outC int) *f32Step {
	c := &Conv2D{InC: inC, OutC: outC, KH: k, KW: k, StrideH: 1, StrideW: 1, PadT: pad, PadL: pad, PadB: pad, PadR: pad}
	in := sampleShape{inC, h, w}
	out := sampleShape{outC, h + 2*pad - k + 1, w + 2*pad - k + 1}
	return &f32Step{kind: f32Conv, conv: c, in: in, out: out, m1: out.H * out.W, k: inC * k * k, n: outC}
}

func BenchmarkIm2colMNIST(b *testing.B) {
	for _, st := range []*f32Step{im2colStep(1, 28, 28, 5, 2, 8), im2colStep(8, 14, 14, 5, 2, 16)} {
		const nb = 8
		rng := rand.New(rand.NewPCG(1, 1))
		x := randSlice(rng, nb*st.in.size(), 1)
		a := make([]float32, nb*st.m1*st.k)
		b.Run(Describe(st.conv), func(b *testing.B) {
			for range b.N {
				f32Im2col(a, x, nb, st)
			}
			b.ReportMetric(float64(b.N*nb)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
