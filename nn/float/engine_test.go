package float

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/nntest"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

func checkAgainstNaive(t *testing.T, net *nn.Net, batches []int, tol float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	e, err := New(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := e.InLen()
	for _, nb := range batches {
		x := nntest.RandSlice(rng, nb*in, 1)
		x0 := append([]float32{}, x...)
		out := make([]float32, nb*e.OutLen()+1)
		out[len(out)-1] = 42 // guard
		if err := e.Forward(x, nb, out[:nb*e.OutLen()]); err != nil {
			t.Fatal(err)
		}
		if out[len(out)-1] != 42 {
			t.Fatal("Forward wrote past its output")
		}
		for i := range x {
			if x[i] != x0[i] {
				t.Fatal("Forward changed its input")
			}
		}
		for n := range nb {
			want := nntest.NaiveForward(net, x[n*in:(n+1)*in])
			for j, w := range want {
				if g := float64(out[n*e.OutLen()+j]); math.Abs(g-w) > tol*(1+math.Abs(w)) {
					t.Fatalf("batch %d sample %d output %d: %g, want %g", nb, n, j, g, w)
				}
			}
		}
	}
}

func TestFloatEngineMatchesNaive(t *testing.T) {
	for _, softmax := range []bool{false, true} {
		net := nntest.OddNet(rand.New(rand.NewPCG(2, 2)), softmax)
		// 130 samples take two passes of the engine; 1 and 3 reuse buffers.
		checkAgainstNaive(t, net, []int{3, 1, 130}, 1e-5)
	}
	// A feature-vector input: Dense, ReLU, Dense.
	rng := rand.New(rand.NewPCG(3, 3))
	mlp := &nn.Net{Input: []int{11}, Layers: []nn.Layer{
		&nn.Dense{In: 11, Out: 6, W: nntest.RandSlice(rng, 66, 0.5), B: nntest.RandSlice(rng, 6, 0.1)}, &nn.ReLU{},
		&nn.Dense{In: 6, Out: 3, W: nntest.RandSlice(rng, 18, 0.5), B: nntest.RandSlice(rng, 3, 0.1)},
	}}
	checkAgainstNaive(t, mlp, []int{5}, 1e-5)
}

// A quantized net runs with fake-quantized weights and activations.
func TestFloatEngineFakeQuant(t *testing.T) {
	for _, bits := range []int{8, 4} {
		net := nntest.OddNet(rand.New(rand.NewPCG(4, 4)), false)
		q := &nn.Quant{WeightBits: bits, WeightScale: make([][]float32, len(net.Layers)), Act: make([]nn.ActQuant, len(net.Layers)+1)}
		for i, l := range net.Layers {
			w, outC := nn.Weights(l)
			if w == nil {
				continue
			}
			s := make([]float32, outC)
			for o := range s {
				s[o] = 0.9 / float32(int(1)<<(bits-1)-1) * float32(1+o%3)
			}
			q.WeightScale[i] = s
		}
		// The input and the output are quantized: the float32 engine and
		// the float64 reference see the very same input codes, and the
		// output step (0.25) is far coarser than their difference. The
		// output's follows a ReLU fused into the Dense before it.
		q.Act[0] = nn.ActQuant{Scale: 0.05, ZeroPoint: 3}
		q.Act[len(net.Layers)] = nn.ActQuant{Scale: 0.25, ZeroPoint: -100}
		net.Layers = append(net.Layers, &nn.ReLU{})
		q.WeightScale = append(q.WeightScale, nil)
		q.Act = append(q.Act, q.Act[len(q.Act)-1])
		q.Act[len(q.Act)-2] = nn.ActQuant{}
		net.Quant = q
		checkAgainstNaive(t, net, []int{4}, 1e-5)
		// The fake quantization changes the output.
		e, _ := New(cpu.New(), net)
		x := nntest.RandSlice(rand.New(rand.NewPCG(5, 5)), e.InLen(), 1)
		qo := make([]float32, e.OutLen())
		e.Forward(x, 1, qo)
		e.Close()
		net.Quant = nil
		fo, _ := Forward(cpu.New(), net, x, 1)
		diff := 0.0
		for i := range fo {
			diff = math.Max(diff, math.Abs(float64(fo[i]-qo[i])))
		}
		if diff == 0 {
			t.Errorf("%d-bit: quantization changed nothing", bits)
		}
	}
}

func TestFloatEngineErrors(t *testing.T) {
	net := nntest.OddNet(rand.New(rand.NewPCG(6, 6)), false)
	e, err := New(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Forward(make([]float32, 5), 1, make([]float32, e.OutLen())); err == nil {
		t.Error("short input accepted")
	}
	bad := *net
	bad.Layers = append([]nn.Layer{}, net.Layers...)
	bad.Layers[3] = &nn.Conv2D{InC: 9, OutC: 1, KH: 1, KW: 1, StrideH: 1, StrideW: 1, W: []float32{0}, B: []float32{0}}
	if _, err := New(cpu.New(), &bad); err == nil {
		t.Error("a conv of the wrong input channels accepted")
	}
	bad.Layers[3] = net.Layers[3]
	bad.Quant = &nn.Quant{WeightBits: 3, WeightScale: make([][]float32, len(net.Layers)), Act: make([]nn.ActQuant, len(net.Layers)+1)}
	if _, err := New(cpu.New(), &bad); err == nil {
		t.Error("3-bit weights accepted")
	}
}

// A convolution whose im2col for one sample fills the cache-sized chunk:
// every sample is a GEMM call of its own.
func TestFloatEngineChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	c := &nn.Conv2D{InC: 4, OutC: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1,
		W: nntest.RandSlice(rng, 3*4*9, 0.5), B: nntest.RandSlice(rng, 3, 0.1)}
	net := &nn.Net{Input: []int{4, 64, 64}, Layers: []nn.Layer{c, &nn.ReLU{}}}
	e, err := New(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	e.grow(3)
	if st := e.steps[0]; st.chunk != 1 {
		t.Fatalf("chunk %d, want 1", st.chunk)
	}
	e.Close()
	checkAgainstNaive(t, net, []int{3}, 1e-5)
}

// BenchmarkFloatEngineMNIST is the float engine on the MNIST model, 256
// images per call.
func BenchmarkFloatEngineMNIST(b *testing.B) {
	benchFloatEngineMNIST(b, 256)
}

// BenchmarkFloatEngineMNIST1 is BenchmarkFloatEngineMNIST one image at a
// time (latency).
func BenchmarkFloatEngineMNIST1(b *testing.B) {
	benchFloatEngineMNIST(b, 1)
}

// BenchmarkFloatEnginePaths is BenchmarkFloatEngineMNIST on the GEMM
// path, the planar path with parallel steps, and the planar path with
// passes spread over workers (the default).
func BenchmarkFloatEnginePaths(b *testing.B) {
	for _, c := range []struct {
		name          string
		planar, split bool
	}{{"gemm", false, false}, {"planar-steps", true, false}, {"planar-passes", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			usePlanar, splitPasses = c.planar, c.split
			defer func() { usePlanar, splitPasses = true, true }()
			benchFloatEngineMNIST(b, 256)
		})
	}
}

func benchFloatEngineMNIST(b *testing.B, batch int) {
	net, err := onnxnet.Load(nntest.MNISTONNX)
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(cpu.New(), net)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, batch*784)
	for i := range x {
		x[i] = float32(rng.IntN(256))
	}
	out := make([]float32, batch*10)
	b.ResetTimer()
	for range b.N {
		if err := e.Forward(x, batch, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
}

func TestFloatEngineCopyingBackend(t *testing.T) {
	net := nntest.OddNet(rand.New(rand.NewPCG(11, 11)), true)
	be := &nntest.CopyingBackend{Backend: cpu.New()}
	rng := rand.New(rand.NewPCG(12, 12))
	x := nntest.RandSlice(rng, 6*3*9*8, 1)
	// The same GEMMs on the host (not its planar path).
	usePlanar = false
	defer func() { usePlanar = true }()
	want, err := Forward(cpu.New(), net, x, 6)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Forward(be, net, x, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Error("outputs differ from the cpu backend's")
	}
	// Weights of 3 layers, and one GEMM per layer for the whole batch.
	if be.Uploads != 3+3 || be.Downloads != 3 {
		t.Errorf("%d Uploads, %d Downloads; want 6 and 3", be.Uploads, be.Downloads)
	}
}

// The planar path runs the nets it takes (checked against the naive
// forward pass by the tests above) and gives the GEMM path's outputs up to
// float rounding.
func TestFloatEnginePlanar(t *testing.T) {
	for _, softmax := range []bool{false, true} {
		net := nntest.OddNet(rand.New(rand.NewPCG(13, 13)), softmax)
		e, err := New(cpu.New(), net)
		if err != nil {
			t.Fatal(err)
		}
		if e.planar == nil {
			t.Fatal("the planar path does not take the odd CNN")
		}
		x := nntest.RandSlice(rand.New(rand.NewPCG(14, 14)), 7*e.InLen(), 1)
		got := make([]float32, 7*e.OutLen())
		if err := e.Forward(x, 7, got); err != nil {
			t.Fatal(err)
		}
		usePlanar = false
		want, err := Forward(cpu.New(), net, x, 7)
		usePlanar = true
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			if math.Abs(float64(got[i]-w)) > 1e-5*(1+math.Abs(float64(w))) {
				t.Fatalf("softmax %v: output %d: %g, want %g", softmax, i, got[i], w)
			}
		}
	}
}

// TestFloatEnginePlanarTrim checks the planar path where max pools leave
// the last rows and columns of the convolutions before them unread (the
// convolutions are trimmed and the padding of their inputs cut): odd
// sizes, pools of stride 2 and 3, against the GEMM path, batches of one
// and of several passes, with the SIMD kernels and their Go twins.
func TestFloatEnginePlanarTrim(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	conv := func(in, out, k, pad int) *nn.Conv2D {
		c := &nn.Conv2D{InC: in, OutC: out, KH: k, KW: k, StrideH: 1, StrideW: 1, PadT: pad, PadL: pad, PadB: pad, PadR: pad}
		c.W, c.B = nntest.RandSlice(rng, out*in*k*k, 0.5), nntest.RandSlice(rng, out, 0.1)
		return c
	}
	for _, tc := range []struct {
		in     []int
		c1, c2 *nn.Conv2D
		p1, p2 *nn.MaxPool
	}{
		// The MNIST CNN's shapes, smaller: 14 → 7, then 7 → 2 of 3×3
		// (6 of 7 rows read).
		{[]int{1, 14, 14}, conv(1, 8, 5, 2), conv(8, 16, 5, 2),
			&nn.MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, &nn.MaxPool{KH: 3, KW: 3, StrideH: 3, StrideW: 3}},
		// Odd sizes: 11 → 5 (10 of 11 read), then 5 → 2 of 2×2.
		{[]int{3, 11, 13}, conv(3, 5, 3, 1), conv(5, 9, 3, 2),
			&nn.MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, &nn.MaxPool{KH: 2, KW: 3, StrideH: 2, StrideW: 2}},
		// Padded pools (wide planes read window by window, not trimmed).
		{[]int{2, 9, 10}, conv(2, 4, 3, 1), conv(4, 6, 3, 1),
			&nn.MaxPool{KH: 3, KW: 2, StrideH: 2, StrideW: 2, PadT: 1, PadL: 1}, &nn.MaxPool{KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1}},
	} {
		net := &nn.Net{Input: tc.in, InputScale: 1, Layers: []nn.Layer{
			tc.c1, &nn.ReLU{}, tc.p1, tc.c2, &nn.ReLU{}, tc.p2, &nn.Flatten{}}}
		shapes, err := nn.Shapes(net)
		if err != nil {
			t.Fatal(err)
		}
		in := shapes[len(shapes)-1].Size()
		net.Layers = append(net.Layers, &nn.Dense{In: in, Out: 6, W: nntest.RandSlice(rng, 6*in, 0.3), B: nntest.RandSlice(rng, 6, 0.1)})
		e, err := New(cpu.New(), net)
		if err != nil {
			t.Fatal(err)
		}
		if e.planar == nil {
			t.Fatal("the planar path does not take the net")
		}
		for _, c := range []struct {
			generic bool
			n       int
		}{{false, 1}, {false, 3 * e.planar.batch}, {true, 1}, {true, 5}} {
			restore := cpu.ForceGeneric(c.generic)
			n := c.n
			x := nntest.RandSlice(rng, n*e.InLen(), 1)
			got := make([]float32, n*e.OutLen())
			if err := e.Forward(x, n, got); err != nil {
				t.Fatal(err)
			}
			usePlanar = false
			want, err := Forward(cpu.New(), net, x, n)
			usePlanar = true
			if err != nil {
				t.Fatal(err)
			}
			restore()
			for i, w := range want {
				if math.Abs(float64(got[i]-w)) > 1e-4*(1+math.Abs(float64(w))) {
					t.Fatalf("input %v, %d samples, generic kernels %v: output %d: %g, want %g", tc.in, n, c.generic, i, got[i], w)
				}
			}
		}
		e.Close()
	}
}
