package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// testNet is a small CNN exercising padding (asymmetric too), strides,
// a ReLU after a pool (on codes, not fused), Flatten order and a Dense
// head: [2,9,8] → conv 3×3 (3) → ReLU → pool 2 → conv 3×3/2 (4) → pool
// 2/1 → ReLU → flatten → dense 5.
func testNet(rng *rand.Rand) *Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c1 := &Conv2D{Name: "c1", InC: 2, OutC: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1,
		W: rnd(3*2*9, 0.4), B: rnd(3, 0.1)}
	c2 := &Conv2D{Name: "c2", InC: 3, OutC: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadT: 1, PadL: 0, PadB: 1, PadR: 2,
		W: rnd(4*3*9, 0.4), B: rnd(4, 0.1)}
	// c2's input 3×4×4 → out H (4+2−3)/2+1 = 2, W (4+2−3)/2+1 = 2.
	d := &Dense{Name: "d", In: 4, Out: 5, W: rnd(5*4, 0.5), B: rnd(5, 0.1)}
	return &Net{
		Input:      []int{2, 9, 8},
		Layers:     []Layer{c1, &ReLU{}, &MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, c2, &MaxPool{KH: 2, KW: 2, StrideH: 1, StrideW: 1}, &ReLU{}, &Flatten{}, d},
		InputScale: 1,
	}
}

// testNet2 has a wider spatial Dense input (so Flatten order matters)
// and a non-negative input: [1,6,6] → conv 3×3 (3, pad 1) → ReLU →
// flatten → dense 4 → ReLU → dense 3.
func testNet2(rng *rand.Rand) *Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c := &Conv2D{InC: 1, OutC: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1, W: rnd(27, 0.05), B: rnd(3, 0.1)}
	d1 := &Dense{In: 108, Out: 4, W: rnd(432, 0.1), B: rnd(4, 0.1)}
	d2 := &Dense{In: 4, Out: 3, W: rnd(12, 0.5), B: rnd(3, 0.1)}
	return &Net{Input: []int{1, 6, 6}, Layers: []Layer{c, &ReLU{}, &Flatten{}, d1, &ReLU{}, d2}, InputScale: 1}
}

// testNet3 has kernel rows of whole 8-code words, moved word by word:
// [4,5,6] → conv 2×4 (4, pads 1,1,0,1: rows of 16 codes) → ReLU → pool 2
// → conv 2×2 (3: rows of 8 codes) → flatten → dense 2.
func testNet3(rng *rand.Rand) *Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c1 := &Conv2D{InC: 4, OutC: 4, KH: 2, KW: 4, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadR: 1, W: rnd(128, 0.3), B: rnd(4, 0.1)}
	// c1: 5+1−2+1 = 5 rows, 6+2−4+1 = 5 columns; pool → 2×2.
	c2 := &Conv2D{InC: 4, OutC: 3, KH: 2, KW: 2, StrideH: 1, StrideW: 1, W: rnd(48, 0.3), B: rnd(3, 0.1)}
	d := &Dense{In: 3, Out: 2, W: rnd(6, 0.5), B: rnd(2, 0.1)}
	return &Net{Input: []int{4, 5, 6}, InputScale: 1, Layers: []Layer{c1, &ReLU{}, &MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, c2, &Flatten{}, d}}
}

// testNet4 has more channels (70) before a pool than the pooled
// requantization keeps on its stack: [3,4,4] → conv 1×1 (70) → ReLU →
// pool 2 → flatten → dense 3.
func testNet4(rng *rand.Rand) *Net {
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	c := &Conv2D{InC: 3, OutC: 70, KH: 1, KW: 1, StrideH: 1, StrideW: 1, W: rnd(210, 0.5), B: rnd(70, 0.1)}
	d := &Dense{In: 280, Out: 3, W: rnd(840, 0.1), B: rnd(3, 0.1)}
	return &Net{Input: []int{3, 4, 4}, InputScale: 1, Layers: []Layer{c, &ReLU{}, &MaxPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, &Flatten{}, d}}
}

// testSamples are n random inputs: normal (signed) or pixels 0..255.
func testSamples(net *Net, n int, pixels bool, seed uint64) *Samples {
	size := 1
	for _, d := range net.Input {
		size *= d
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n*size)
	labels := make([]uint8, n)
	for i := range x {
		if pixels {
			x[i] = float32(rng.IntN(256))
		} else {
			x[i] = float32(rng.NormFloat64())
		}
	}
	for i := range labels {
		labels[i] = uint8(rng.IntN(3))
	}
	return &Samples{N: n, Labels: labels, Fill: func(dst []float32, idx []int) {
		for k, i := range idx {
			copy(dst[k*size:(k+1)*size], x[i*size:(i+1)*size])
		}
	}}
}

func testInputs(s *Samples, size int) []float32 {
	x := make([]float32, s.N*size)
	idx := make([]int, s.N)
	for i := range idx {
		idx[i] = i
	}
	s.Fill(x, idx)
	return x
}

func TestPTQDoesNotModifyNet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	net := testNet(rng)
	ref := calibClone(net)
	st, err := CollectActStats(net, testSamples(net, 40, false, 1), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range quant.CalibratorNames() {
		if _, err := PTQ(net, st, PTQOptions{Method: m, WeightBits: 4}); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range net.Layers {
		w, _ := weightsOf(l)
		rw, _ := weightsOf(ref.Layers[i])
		for k := range w {
			if w[k] != rw[k] {
				t.Fatalf("layer %d weight %d changed", i, k)
			}
		}
	}
	if net.Quant != nil {
		t.Fatal("PTQ set the float net's Quant")
	}
}

func TestPTQParams(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	net := testNet2(rng)
	st, err := CollectActStats(net, testSamples(net, 64, true, 2), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := PTQ(net, st, PTQOptions{Method: "max", WeightBits: 8})
	if err != nil {
		t.Fatal(err)
	}
	// Raw pixels reach 255 (64·36 uniform draws): scale 1, zero point −128, exact.
	if a := q.Quant.Act[0]; a.Scale != 1 || a.ZeroPoint != -128 {
		t.Errorf("input quantization %+v, want scale 1 zero point −128", a)
	}
	// The dense input follows a ReLU: non-negative, asymmetric, amax = max.
	if a := q.Quant.Act[3]; a.ZeroPoint != -128 || math.Abs(float64(a.Scale)-float64(st.Max[3])/255) > 1e-6*float64(st.Max[3]) {
		t.Errorf("dense input quantization %+v for max %g", a, st.Max[3])
	}
	// Weight scales: max |w| per row / 127.
	d := net.Layers[3].(*Dense)
	for o := range d.Out {
		var m float64
		for _, v := range d.W[o*d.In : (o+1)*d.In] {
			m = math.Max(m, math.Abs(float64(v)))
		}
		if got := q.Quant.WeightScale[3][o]; got != float32(m/127) {
			t.Errorf("row %d scale %g, want %g", o, got, m/127)
		}
	}
	if q.Quant.WeightScale[1] != nil || q.Quant.Act[1].Scale != 0 {
		t.Error("the ReLU got quantization parameters")
	}
	if got, want := WeightBytes(q), 3*9+3*8+4*108+4*8+3*4+3*8; got != want {
		t.Errorf("WeightBytes = %d, want %d", got, want)
	}
	q4, _ := PTQ(net, st, PTQOptions{Method: "max", WeightBits: 4})
	if got, want := WeightBytes(q4), 3*5+3*8+4*54+4*8+3*2+3*8; got != want {
		t.Errorf("int4 WeightBytes = %d, want %d", got, want)
	}
}

// int8Ref is the naive integer reference of one engine step on NHWC
// codes: the window sums Σ(qa−za)·qw in int64 over the cells inside the
// image, then the epilogue exactly as backend.Epilogue states it, in
// float32. It also returns, for every output, the same value computed
// in float64 (for the simulation test).
func int8Ref(t *testing.T, e *Int8Engine, st *int8Step, in []int8, nb int, net *Net) (codes []int8, f32 []float32, y64 []float64) {
	q := net.Quant
	outN := nb * st.out.size()
	switch st.kind {
	case int8Pool:
		codes = make([]int8, outN)
		l := st.pool
		for n := range nb {
			for c := range st.in.C {
				for oh := range st.out.H {
					for ow := range st.out.W {
						best := -1000
						for u := range l.KH {
							for v := range l.KW {
								ih, iw := oh*l.StrideH+u-l.PadT, ow*l.StrideW+v-l.PadL
								if ih >= 0 && ih < st.in.H && iw >= 0 && iw < st.in.W {
									best = max(best, int(in[n*st.in.size()+(ih*st.in.W+iw)*st.in.C+c]))
								}
							}
						}
						codes[n*st.out.size()+(oh*st.out.W+ow)*st.in.C+c] = int8(best)
					}
				}
			}
		}
		return codes, nil, nil
	case int8ReLU:
		codes = make([]int8, len(in))
		for k, v := range in {
			codes[k] = max(v, int8(st.zp))
		}
		return codes, nil, nil
	case int8Flatten:
		return in, nil, nil
	}
	i := st.layer
	sa, za := q.Act[i].Scale, q.Act[i].ZeroPoint
	sw := q.WeightScale[i]
	qmax := int32(1)<<(q.WeightBits-1) - 1
	wq := func(w float32, o int) int64 { return int64(quant.QuantizeValue(w, sw[o], 0, -qmax, qmax)) }
	acc := make([]int64, nb*st.m1*st.n) // NHWC
	var bias []float32
	switch l := net.Layers[i].(type) {
	case *Conv2D:
		bias = l.B
		for n := range nb {
			for o := range l.OutC {
				for oh := range st.out.H {
					for ow := range st.out.W {
						var s int64
						for c := range l.InC {
							for u := range l.KH {
								for v := range l.KW {
									ih, iw := oh*l.StrideH+u-l.PadT, ow*l.StrideW+v-l.PadL
									if ih < 0 || ih >= st.in.H || iw < 0 || iw >= st.in.W {
										continue
									}
									a := int64(in[n*st.in.size()+(ih*st.in.W+iw)*st.in.C+c]) - int64(za)
									s += a * wq(l.W[((o*l.InC+c)*l.KH+u)*l.KW+v], o)
								}
							}
						}
						acc[((n*st.out.H+oh)*st.out.W+ow)*l.OutC+o] = s
					}
				}
			}
		}
	case *Dense:
		bias = l.B
		P := st.in
		for n := range nb {
			for o := range l.Out {
				var s int64
				for c := range P.C {
					for h := range P.H {
						for x := range P.W {
							a := int64(in[n*P.size()+(h*P.W+x)*P.C+c]) - int64(za)
							s += a * wq(l.W[o*l.In+(c*P.H+h)*P.W+x], o)
						}
					}
				}
				acc[n*l.Out+o] = s
			}
		}
	}
	y64 = make([]float64, len(acc))
	if st.final {
		f32 = make([]float32, len(acc))
	} else {
		codes = make([]int8, len(acc))
	}
	for k, s := range acc {
		o := k % st.n
		y := float32(float32(s) * float32(sa*sw[o])) // as ColScale = sa·sw[o]
		y = float32(y + bias[o])
		yd := float64(s)*float64(sa)*float64(sw[o]) + float64(bias[o])
		if st.ep.ReLU {
			y, yd = max(y, 0), math.Max(yd, 0)
		}
		y64[k] = yd
		if st.final {
			f32[k] = y
		} else {
			codes[k] = int8(quant.QuantizeValue(y, st.ep.OutScale, st.ep.OutZeroPoint, -128, 127))
		}
	}
	return codes, f32, y64
}

// runTraced runs the engine on x and returns each step's input and
// output (codes or float32).
func runTraced(t *testing.T, e *Int8Engine, x []float32, nb int) (ins, outs [][]int8, fouts [][]float32, logits []float32) {
	ins = make([][]int8, len(e.steps))
	outs = make([][]int8, len(e.steps))
	fouts = make([][]float32, len(e.steps))
	defer func(b int) { int8HostBatch = b }(int8HostBatch)
	int8HostBatch = nb // one pass, which the trace sees whole
	e.trace = func(si, _ int, codes []int8, f []float32) {
		outs[si] = append([]int8(nil), codes...)
		fouts[si] = append([]float32(nil), f...)
	}
	defer func() { e.trace = nil }()
	logits = make([]float32, nb*e.OutLen())
	if err := e.Forward(x, nb, logits); err != nil {
		t.Fatal(err)
	}
	// The input codes, quantized independently: NCHW → NHWC.
	in := e.in
	q0 := make([]int8, nb*in.size())
	for n := range nb {
		for c := range in.C {
			for p := range in.H * in.W {
				q0[n*in.size()+p*in.C+c] = int8(quant.QuantizeValue(x[n*in.size()+c*in.H*in.W+p], e.inAct.Scale, e.inAct.ZeroPoint, -128, 127))
			}
		}
	}
	ins[0] = q0
	for si := 1; si < len(e.steps); si++ {
		ins[si] = outs[si-1]
	}
	return ins, outs, fouts, logits
}

// TestInt8EngineExact checks every step of the integer engine on small
// nets, 4- and 8-bit weights and every calibrator, against the naive
// integer reference: codes and float outputs equal to the bit.
func TestInt8EngineExact(t *testing.T) {
	be := cpu.New()
	for ni, mk := range []func(*rand.Rand) *Net{testNet, testNet2, testNet3, testNet4} {
		rng := rand.New(rand.NewPCG(uint64(ni)+3, 3))
		net := mk(rng)
		data := testSamples(net, 37, ni == 1, uint64(ni))
		st, err := CollectActStats(net, data, 0, 256)
		if err != nil {
			t.Fatal(err)
		}
		x := testInputs(data, data.N*0+trainShapesMust(t, net)[0].size())
		for _, fuse := range []bool{true, false} {
			int8FusePool = fuse
			for _, bits := range []int{8, 4} {
				for _, m := range quant.CalibratorNames() {
					q, err := PTQ(net, st, PTQOptions{Method: m, WeightBits: bits})
					if err != nil {
						t.Fatal(err)
					}
					e, err := NewInt8Engine(be, q)
					if err != nil {
						t.Fatal(err)
					}
					ins, outs, fouts, logits := runTraced(t, e, x, data.N)
					var prev []int8 // the reference output of an int32 GEMM step
					fused := 0
					for si, s := range e.steps {
						in := ins[si]
						if in == nil {
							in = prev
						}
						codes, f32, _ := int8Ref(t, e, s, in, data.N, q)
						if s.s32 {
							prev = codes
							fused++
							continue
						}
						if f32 != nil && !s.final {
							t.Fatalf("step %d float", si)
						}
						if s.final && s.kind <= int8Dense {
							for k := range f32 {
								if f32[k] != fouts[si][k] {
									t.Fatalf("net %d, %s int%d, step %d (layer %d): float output %d = %g, reference %g", ni, m, bits, si, s.layer, k, fouts[si][k], f32[k])
								}
							}
							continue
						}
						if codes == nil {
							continue
						}
						if len(codes) != len(outs[si]) {
							t.Fatalf("step %d: %d codes, reference %d", si, len(outs[si]), len(codes))
						}
						for k := range codes {
							if codes[k] != outs[si][k] {
								t.Fatalf("net %d, %s int%d, step %d (layer %d): code %d = %d, reference %d", ni, m, bits, si, s.layer, k, outs[si][k], codes[k])
							}
						}
					}
					// Forward in odd batch sizes gives the same logits.
					one := make([]float32, e.OutLen())
					for _, n := range []int{0, 5, data.N - 1} {
						if err := e.Forward(x[n*e.in.size():(n+1)*e.in.size()], 1, one); err != nil {
							t.Fatal(err)
						}
						for k, v := range one {
							if v != logits[n*e.OutLen()+k] {
								t.Fatalf("sample %d alone: logit %d = %g, in the batch %g", n, k, v, logits[n*e.OutLen()+k])
							}
						}
					}
					e.Close()
					if ni == 0 && fuse != (fused > 0) { // testNet has a pool after a conv
						t.Fatalf("fuse %v: %d GEMMs with int32 output", fuse, fused)
					}
				}
			}
		}
		int8FusePool = true
	}
}

// TestInt8EngineFloatSimulation checks the engine against a float64
// simulation of the same quantized arithmetic (dequantize, float64
// convolution, requantize): given the same input codes, every output
// code agrees unless the float64 value lies within 1e-5 of a rounding
// boundary (then it may differ by one), and the logits agree within the
// rounding of three float32 operations, 1e-6·(|Σ| + |bias|).
func TestInt8EngineFloatSimulation(t *testing.T) {
	be := cpu.New()
	rng := rand.New(rand.NewPCG(9, 9))
	net := testNet(rng)
	data := testSamples(net, 64, false, 9)
	st, err := CollectActStats(net, data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := testInputs(data, trainShapesMust(t, net)[0].size())
	q, err := PTQ(net, st, PTQOptions{Method: "entropy"})
	if err != nil {
		t.Fatal(err)
	}
	int8FusePool = false // every GEMM requantizes in its epilogue
	defer func() { int8FusePool = true }()
	e, err := NewInt8Engine(be, q)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ins, outs, fouts, _ := runTraced(t, e, x, data.N)
	near := 0
	for si, s := range e.steps {
		if s.kind > int8Dense {
			continue
		}
		_, _, y64 := int8Ref(t, e, s, ins[si], data.N, q)
		for k, y := range y64 {
			if s.final {
				b := math.Abs(float64(s.ep.Bias[k%s.n]))
				if d := math.Abs(float64(fouts[si][k]) - y); d > 1e-6*(math.Abs(y)+2*b)+1e-30 {
					t.Fatalf("step %d logit %d = %g, float64 %g", si, k, fouts[si][k], y)
				}
				continue
			}
			r := y/float64(s.ep.OutScale) + float64(s.ep.OutZeroPoint)
			want := math.Max(-128, math.Min(127, math.RoundToEven(r)))
			got := float64(outs[si][k])
			if frac := math.Abs(r - math.Floor(r) - 0.5); frac < 1e-5 {
				near++
				if math.Abs(got-want) > 1 {
					t.Fatalf("step %d code %d = %v, float64 %v (near a boundary)", si, k, got, want)
				}
				continue
			}
			if got != want {
				t.Fatalf("step %d code %d = %v, float64 simulation %v (%v)", si, k, got, want, r)
			}
		}
	}
	t.Logf("%d values near a rounding boundary", near)
}

func trainShapesMust(t *testing.T, net *Net) []sampleShape {
	s, err := chainShapes(net)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInt8EngineErrors(t *testing.T) {
	be := cpu.New()
	rng := rand.New(rand.NewPCG(4, 4))
	net := testNet(rng)
	if _, err := NewInt8Engine(be, net); err == nil {
		t.Error("float net accepted")
	}
	st, _ := CollectActStats(net, testSamples(net, 8, false, 4), 0, 0)
	q, _ := PTQ(net, st, PTQOptions{Method: "max"})
	q.Quant.Act[3].Scale = 0
	if _, err := NewInt8Engine(be, q); err == nil {
		t.Error("zero activation scale accepted")
	}
	q, _ = PTQ(net, st, PTQOptions{Method: "max"})
	q.Quant.WeightScale[3][1] = float32(math.NaN())
	if _, err := NewInt8Engine(be, q); err == nil {
		t.Error("NaN weight scale accepted")
	}
	q.Quant.WeightScale[3][1] = -1
	if _, err := NewInt8Engine(be, q); err == nil {
		t.Error("negative weight scale accepted")
	}
	q, _ = PTQ(net, st, PTQOptions{Method: "max"})
	e, err := NewInt8Engine(be, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(make([]float32, 10), 1, make([]float32, 5)); err == nil {
		t.Error("short input accepted")
	}
	if _, err := PTQ(net, st, PTQOptions{Method: "nope"}); err == nil {
		t.Error("unknown calibrator accepted")
	}
	if _, err := PTQ(net, st, PTQOptions{Method: "max", WeightBits: 3}); err == nil {
		t.Error("3-bit weights accepted")
	}
}

// int8CopyingBackend adds GemmS8 to copyingBackend (forward_test.go):
// the cpu backend behind buffers the host cannot reach, as a GPU's.
type int8CopyingBackend struct{ *copyingBackend }

func (c int8CopyingBackend) GemmS8(m, n, k int, a, b, cc backend.Buffer, ep *backend.Epilogue) error {
	return c.Backend.GemmS8(m, n, k, a.(hiddenBuffer).b, b.(hiddenBuffer).b, cc.(hiddenBuffer).b, ep)
}

// TestInt8EngineCopyingBackend runs the engine where every operand must
// be uploaded and every result downloaded: the same logits as on the cpu
// backend, to the bit.
func TestInt8EngineCopyingBackend(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	for ni, net := range []*Net{testNet(rng), testNet2(rng)} {
		data := testSamples(net, 300, ni == 1, 13)
		st, err := CollectActStats(net, data, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		q, err := PTQ(net, st, PTQOptions{Method: "mse", WeightBits: 4})
		if err != nil {
			t.Fatal(err)
		}
		x := testInputs(data, trainShapesMust(t, net)[0].size())
		ref, err := NewInt8Engine(cpu.New(), q)
		if err != nil {
			t.Fatal(err)
		}
		be := int8CopyingBackend{&copyingBackend{Backend: cpu.New()}}
		e, err := NewInt8Engine(be, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, nb := range []int{1, 300} { // 300: two passes of int8MaxBatch
			want, got := make([]float32, nb*ref.OutLen()), make([]float32, nb*ref.OutLen())
			if err := ref.Forward(x[:nb*ref.in.size()], nb, want); err != nil {
				t.Fatal(err)
			}
			if err := e.Forward(x[:nb*ref.in.size()], nb, got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("net %d, batch %d: outputs differ from the cpu backend's", ni, nb)
			}
		}
		if be.uploads == 0 || be.downloads == 0 {
			t.Errorf("%d uploads, %d downloads", be.uploads, be.downloads)
		}
		e.Close()
		ref.Close()
	}
}

// TestActStatsMerge checks that statistics of two halves of the
// calibration set merge into those of the whole: the same counts, ranges
// and max-calibrated parameters.
func TestActStatsMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	net := testNet(rng)
	data := testSamples(net, 100, false, 14)
	all, err := CollectActStats(net, data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	half := func(lo int) *Samples {
		return &Samples{N: 50, Fill: func(dst []float32, idx []int) {
			m := make([]int, len(idx))
			for k, i := range idx {
				m[k] = lo + i
			}
			data.Fill(dst, m)
		}}
	}
	a, err := CollectActStats(net, half(0), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := CollectActStats(net, half(50), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.N != 100 {
		t.Errorf("merged N = %d", a.N)
	}
	for i, h := range all.Hist {
		if h == nil {
			if a.Hist[i] != nil {
				t.Errorf("layer %d has a histogram", i)
			}
			continue
		}
		if a.Hist[i].Total() != h.Total() || a.Hist[i].Max() != h.Max() || a.Min[i] != all.Min[i] || a.Max[i] != all.Max[i] {
			t.Errorf("layer %d: merged %d values, max %g, range [%g, %g]; whole %d, %g, [%g, %g]", i,
				a.Hist[i].Total(), a.Hist[i].Max(), a.Min[i], a.Max[i], h.Total(), h.Max(), all.Min[i], all.Max[i])
		}
	}
	qa, _ := PTQ(net, a, PTQOptions{Method: "max"})
	qw, _ := PTQ(net, all, PTQOptions{Method: "max"})
	if !slices.Equal(qa.Quant.Act, qw.Quant.Act) {
		t.Errorf("max calibration of merged statistics %v, of the whole %v", qa.Quant.Act, qw.Quant.Act)
	}
	other, _ := CollectActStats(testNet2(rng), testSamples(testNet2(rng), 10, true, 1), 0, 0)
	if err := a.Merge(other); err == nil {
		t.Error("statistics of another net merged")
	}
}

// TestInt8Quantize compares the engine's quantizer with quant's on ties,
// both sides of every clip, non-finite and random values.
func TestInt8Quantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	scales := []float32{1, 0.5, 3.7492673, 1e-3, 1e-30, 7e20}
	var xs []float32
	for k := -300; k <= 300; k++ {
		xs = append(xs, float32(k), float32(k)+0.5, float32(k)-0.5, float32(k)+0.49999997, math.Nextafter32(float32(k)+0.5, 1e9))
	}
	xs = append(xs, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 0x1p22, -0x1p22, 0x1p23+1)
	for range 100000 {
		xs = append(xs, float32(rng.NormFloat64()*200))
	}
	for _, s := range scales {
		for _, z := range []int32{0, -128, 5, 127} {
			for _, x := range xs {
				xv := x * s
				if got, want := int8Quantize(xv, s, z), int8(quant.QuantizeValue(xv, s, z, -128, 127)); got != want {
					t.Fatalf("int8Quantize(%g, %g, %d) = %d, quant %d", xv, s, z, got, want)
				}
			}
		}
	}
}
