package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/quant"
)

// naiveForward is the float64 reference of one sample through net, layer
// by layer as net.go defines them, with the fake quantization of a
// quantized net (weights codes·scale, activations quantize→dequantize).
func naiveForward(net *Net, x []float32) []float64 {
	shape := append([]int{}, net.Input...)
	if len(shape) == 1 {
		shape = []int{shape[0], 1, 1}
	}
	cur := make([]float64, len(x))
	for i, v := range x {
		cur[i] = float64(v)
	}
	fq := func(i int) {
		if net.Quant == nil || net.Quant.Act[i].Scale == 0 {
			return
		}
		a := net.Quant.Act[i]
		for j, v := range cur {
			cur[j] = float64(quant.DequantizeValue(quant.QuantizeValue(float32(v), a.Scale, a.ZeroPoint, -128, 127), a.Scale, a.ZeroPoint))
		}
	}
	weights := func(i int, w []float32) []float32 {
		if net.Quant == nil || net.Quant.WeightScale[i] == nil {
			return w
		}
		s := net.Quant.WeightScale[i]
		qmax := int32(1)<<(net.Quant.WeightBits-1) - 1
		out := make([]float32, len(w))
		k := len(w) / len(s)
		for j, v := range w {
			out[j] = float32(quant.QuantizeValue(v, s[j/k], 0, -qmax, qmax)) * s[j/k]
		}
		return out
	}
	for i, l := range net.Layers {
		fq(i)
		C, H, W := shape[0], shape[1], shape[2]
		switch l := l.(type) {
		case *Conv2D:
			w := weights(i, l.W)
			OH := (H+l.PadT+l.PadB-l.KH)/l.StrideH + 1
			OW := (W+l.PadL+l.PadR-l.KW)/l.StrideW + 1
			y := make([]float64, l.OutC*OH*OW)
			for o := range l.OutC {
				for a := range OH {
					for b := range OW {
						s := float64(l.B[o])
						for c := range C {
							for u := range l.KH {
								for v := range l.KW {
									h, ww := a*l.StrideH+u-l.PadT, b*l.StrideW+v-l.PadL
									if h >= 0 && h < H && ww >= 0 && ww < W {
										s += float64(w[((o*C+c)*l.KH+u)*l.KW+v]) * cur[(c*H+h)*W+ww]
									}
								}
							}
						}
						y[(o*OH+a)*OW+b] = s
					}
				}
			}
			cur, shape = y, []int{l.OutC, OH, OW}
		case *Dense:
			w := weights(i, l.W)
			y := make([]float64, l.Out)
			for o := range l.Out {
				s := float64(l.B[o])
				for j := range l.In {
					s += float64(w[o*l.In+j]) * cur[j]
				}
				y[o] = s
			}
			cur, shape = y, []int{l.Out, 1, 1}
		case *ReLU:
			for j, v := range cur {
				cur[j] = math.Max(v, 0)
			}
		case *MaxPool:
			OH := (H+l.PadT+l.PadB-l.KH)/l.StrideH + 1
			OW := (W+l.PadL+l.PadR-l.KW)/l.StrideW + 1
			y := make([]float64, C*OH*OW)
			for c := range C {
				for a := range OH {
					for b := range OW {
						m := math.Inf(-1)
						for u := range l.KH {
							for v := range l.KW {
								h, ww := a*l.StrideH+u-l.PadT, b*l.StrideW+v-l.PadL
								if h >= 0 && h < H && ww >= 0 && ww < W {
									m = math.Max(m, cur[(c*H+h)*W+ww])
								}
							}
						}
						y[(c*OH+a)*OW+b] = m
					}
				}
			}
			cur, shape = y, []int{C, OH, OW}
		case *Flatten:
			shape = []int{C * H * W, 1, 1}
		case *Softmax:
			m := math.Inf(-1)
			for _, v := range cur {
				m = math.Max(m, v)
			}
			var s float64
			for _, v := range cur {
				s += math.Exp(v - m)
			}
			for j, v := range cur {
				cur[j] = math.Exp(v-m) / s
			}
		}
	}
	fq(len(net.Layers))
	return cur
}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// oddNet has odd sizes, strides, asymmetric pads and every layer kind.
func oddNet(rng *rand.Rand, softmax bool) *Net {
	c1 := &Conv2D{Name: "c1", InC: 3, OutC: 4, KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadT: 1, PadL: 0, PadB: 2, PadR: 1}
	c1.W, c1.B = randSlice(rng, 4*3*3*2, 0.5), randSlice(rng, 4, 0.1)
	c2 := &Conv2D{Name: "c2", InC: 4, OutC: 5, KH: 1, KW: 1, StrideH: 1, StrideW: 1}
	c2.W, c2.B = randSlice(rng, 5*4, 0.5), randSlice(rng, 5, 0.1)
	net := &Net{Input: []int{3, 9, 8}, InputScale: 1, Layers: []Layer{
		c1, &ReLU{}, &MaxPool{KH: 2, KW: 3, StrideH: 1, StrideW: 2, PadT: 1, PadL: 1}, c2, &ReLU{}, &Flatten{},
	}}
	shapes, err := chainShapes(net)
	if err != nil {
		panic(err)
	}
	in := shapes[len(shapes)-1].size()
	d := &Dense{Name: "d", In: in, Out: 7, W: randSlice(rng, 7*in, 0.3), B: randSlice(rng, 7, 0.1)}
	net.Layers = append(net.Layers, d)
	if softmax {
		net.Layers = append(net.Layers, &Softmax{})
	}
	return net
}

func checkAgainstNaive(t *testing.T, net *Net, batches []int, tol float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	e, err := NewFloatEngine(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := e.InLen()
	for _, nb := range batches {
		x := randSlice(rng, nb*in, 1)
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
			want := naiveForward(net, x[n*in:(n+1)*in])
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
		net := oddNet(rand.New(rand.NewPCG(2, 2)), softmax)
		// 130 samples take two passes of the engine; 1 and 3 reuse buffers.
		checkAgainstNaive(t, net, []int{3, 1, 130}, 1e-5)
	}
	// A feature-vector input: Dense, ReLU, Dense.
	rng := rand.New(rand.NewPCG(3, 3))
	mlp := &Net{Input: []int{11}, Layers: []Layer{
		&Dense{In: 11, Out: 6, W: randSlice(rng, 66, 0.5), B: randSlice(rng, 6, 0.1)}, &ReLU{},
		&Dense{In: 6, Out: 3, W: randSlice(rng, 18, 0.5), B: randSlice(rng, 3, 0.1)},
	}}
	checkAgainstNaive(t, mlp, []int{5}, 1e-5)
}

// A quantized net runs with fake-quantized weights and activations.
func TestFloatEngineFakeQuant(t *testing.T) {
	for _, bits := range []int{8, 4} {
		net := oddNet(rand.New(rand.NewPCG(4, 4)), false)
		q := &Quant{WeightBits: bits, WeightScale: make([][]float32, len(net.Layers)), Act: make([]ActQuant, len(net.Layers)+1)}
		for i, l := range net.Layers {
			w, outC := weightsOf(l)
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
		q.Act[0] = ActQuant{Scale: 0.05, ZeroPoint: 3}
		q.Act[len(net.Layers)] = ActQuant{Scale: 0.25, ZeroPoint: -100}
		net.Layers = append(net.Layers, &ReLU{})
		q.WeightScale = append(q.WeightScale, nil)
		q.Act = append(q.Act, q.Act[len(q.Act)-1])
		q.Act[len(q.Act)-2] = ActQuant{}
		net.Quant = q
		checkAgainstNaive(t, net, []int{4}, 1e-5)
		// The fake quantization changes the output.
		e, _ := NewFloatEngine(cpu.New(), net)
		x := randSlice(rand.New(rand.NewPCG(5, 5)), e.InLen(), 1)
		qo := make([]float32, e.OutLen())
		e.Forward(x, 1, qo)
		e.Close()
		net.Quant = nil
		fo, _ := net.Forward(cpu.New(), x, 1)
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
	net := oddNet(rand.New(rand.NewPCG(6, 6)), false)
	e, err := NewFloatEngine(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Forward(make([]float32, 5), 1, make([]float32, e.OutLen())); err == nil {
		t.Error("short input accepted")
	}
	bad := *net
	bad.Layers = append([]Layer{}, net.Layers...)
	bad.Layers[3] = &Conv2D{InC: 9, OutC: 1, KH: 1, KW: 1, StrideH: 1, StrideW: 1, W: []float32{0}, B: []float32{0}}
	if _, err := NewFloatEngine(cpu.New(), &bad); err == nil {
		t.Error("a conv of the wrong input channels accepted")
	}
	bad.Layers[3] = net.Layers[3]
	bad.Quant = &Quant{WeightBits: 3, WeightScale: make([][]float32, len(net.Layers)), Act: make([]ActQuant, len(net.Layers)+1)}
	if _, err := NewFloatEngine(cpu.New(), &bad); err == nil {
		t.Error("3-bit weights accepted")
	}
}

func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		v    []float32
		want int
	}{{[]float32{1, 3, 3, 2}, 1}, {[]float32{nan, 1, 2}, 2}, {[]float32{1, nan, 0}, 0}, {[]float32{-5}, 0}} {
		if got := Argmax(c.v); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.v, got, c.want)
		}
	}
}

// A convolution whose im2col for one sample fills the cache-sized chunk:
// every sample is a GEMM call of its own.
func TestFloatEngineChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	c := &Conv2D{InC: 4, OutC: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1,
		W: randSlice(rng, 3*4*9, 0.5), B: randSlice(rng, 3, 0.1)}
	net := &Net{Input: []int{4, 64, 64}, Layers: []Layer{c, &ReLU{}}}
	e, err := NewFloatEngine(cpu.New(), net)
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
	net, err := LoadONNX(mnistONNX)
	if err != nil {
		b.Fatal(err)
	}
	e, err := NewFloatEngine(cpu.New(), net)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	const batch = 256
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

// copyingBackend is the cpu backend with buffers whose memory the host
// cannot reach, as a GPU's: the engine must Upload and Download.
type copyingBackend struct {
	backend.Backend
	uploads, downloads int
}

type hiddenBuffer struct{ b backend.Buffer }

func (h hiddenBuffer) DType() backend.DType { return h.b.DType() }
func (h hiddenBuffer) Len() int             { return h.b.Len() }
func (h hiddenBuffer) Slice(off, n int) backend.Buffer {
	return hiddenBuffer{h.b.Slice(off, n)}
}

func (c *copyingBackend) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	b, err := c.Backend.Alloc(dt, n)
	return hiddenBuffer{b}, err
}
func (c *copyingBackend) Free(b backend.Buffer) error { return c.Backend.Free(b.(hiddenBuffer).b) }
func (c *copyingBackend) Upload(dst backend.Buffer, src any) error {
	c.uploads++
	return c.Backend.Upload(dst.(hiddenBuffer).b, src)
}
func (c *copyingBackend) Download(dst any, src backend.Buffer) error {
	c.downloads++
	return c.Backend.Download(dst, src.(hiddenBuffer).b)
}
func (c *copyingBackend) GemmF32(m, n, k int, a, b, cc backend.Buffer) error {
	return c.Backend.GemmF32(m, n, k, a.(hiddenBuffer).b, b.(hiddenBuffer).b, cc.(hiddenBuffer).b)
}

func TestFloatEngineCopyingBackend(t *testing.T) {
	net := oddNet(rand.New(rand.NewPCG(11, 11)), true)
	be := &copyingBackend{Backend: cpu.New()}
	rng := rand.New(rand.NewPCG(12, 12))
	x := randSlice(rng, 6*3*9*8, 1)
	want, err := net.Forward(cpu.New(), x, 6)
	if err != nil {
		t.Fatal(err)
	}
	got, err := net.Forward(be, x, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Error("outputs differ from the cpu backend's")
	}
	// Weights of 3 layers, and one GEMM per layer for the whole batch.
	if be.uploads != 3+3 || be.downloads != 3 {
		t.Errorf("%d uploads, %d downloads; want 6 and 3", be.uploads, be.downloads)
	}
}

func TestAccuracyProgress(t *testing.T) {
	s := &dataset.Set{Name: "t", N: 5, C: 1, H: 1, W: 2, Classes: 2, Pixels: []uint8{0, 9, 9, 0, 1, 2, 2, 1, 5, 5}, Labels: []uint8{1, 0, 1, 0, 1}}
	// Dense identity: the class is the larger pixel (the first on ties).
	net := &Net{Input: []int{1, 1, 2}, Layers: []Layer{&Flatten{}, &Dense{In: 2, Out: 2, W: []float32{1, 0, 0, 1}, B: []float32{0, 0}}}}
	e, err := NewFloatEngine(cpu.New(), net)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var calls [][2]int
	correct, total, err := AccuracyProgress(e, s, 1, 0, 2, func(done, n int) { calls = append(calls, [2]int{done, n}) })
	// Samples: 0<9 → 1 ✓, 9>0 → 0 ✓, 1<2 → 1 ✓, 2>1 → 0 ✓, tie → 0 ✗.
	if err != nil || correct != 4 || total != 5 || len(calls) != 3 || calls[2] != [2]int{5, 5} || calls[0] != [2]int{2, 5} {
		t.Errorf("%d / %d, %v, progress %v", correct, total, err, calls)
	}
	if c, n, _ := Accuracy(e, s, 1, 3, 0); c != 3 || n != 3 {
		t.Errorf("limit 3: %d / %d", c, n)
	}
	s.Classes = 3
	if _, _, err := Accuracy(e, s, 1, 0, 2); err == nil {
		t.Error("a set with more classes than outputs")
	}
}

func TestSizeWithin(t *testing.T) {
	for _, c := range []struct {
		s    sampleShape
		want bool
	}{{sampleShape{8, 28, 28}, true}, {sampleShape{1 << 26, 1, 1}, true}, {sampleShape{1<<26 + 1, 1, 1}, false},
		{sampleShape{1 << 28, 1 << 26, 1 << 26}, false}, {sampleShape{1 << 40, 1 << 40, 1}, false}, {sampleShape{0, 1, 1}, false}} {
		if got := sizeWithin(c.s, MaxSampleSize); got != c.want {
			t.Errorf("sizeWithin(%v) = %v", c.s, got)
		}
	}
}
