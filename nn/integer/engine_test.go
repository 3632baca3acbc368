package integer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/internal/nntest"
	"github.com/quantkit/quantkit/quant"
)

// int8Ref is the naive integer reference of one engine step on NHWC
// codes: the window sums Σ(qa−za)·qw in int64 over the cells inside the
// image, then the epilogue exactly as backend.Epilogue states it, in
// float32. It also returns, for every output, the same value computed
// in float64 (for the simulation test).
func int8Ref(t *testing.T, e *Engine, st *step, in []int8, nb int, net *nn.Net) (codes []int8, f32 []float32, y64 []float64) {
	q := net.Quant
	outN := nb * st.out.Size()
	switch st.kind {
	case pool:
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
									best = max(best, int(in[n*st.in.Size()+(ih*st.in.W+iw)*st.in.C+c]))
								}
							}
						}
						codes[n*st.out.Size()+(oh*st.out.W+ow)*st.in.C+c] = int8(best)
					}
				}
			}
		}
		return codes, nil, nil
	case relu:
		codes = make([]int8, len(in))
		for k, v := range in {
			codes[k] = max(v, int8(st.zp))
		}
		return codes, nil, nil
	case flatten:
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
	case *nn.Conv2D:
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
									a := int64(in[n*st.in.Size()+(ih*st.in.W+iw)*st.in.C+c]) - int64(za)
									s += a * wq(l.W[((o*l.InC+c)*l.KH+u)*l.KW+v], o)
								}
							}
						}
						acc[((n*st.out.H+oh)*st.out.W+ow)*l.OutC+o] = s
					}
				}
			}
		}
	case *nn.Dense:
		bias = l.B
		P := st.in
		for n := range nb {
			for o := range l.Out {
				var s int64
				for c := range P.C {
					for h := range P.H {
						for x := range P.W {
							a := int64(in[n*P.Size()+(h*P.W+x)*P.C+c]) - int64(za)
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
func runTraced(t *testing.T, e *Engine, x []float32, nb int) (ins, outs [][]int8, fouts [][]float32, logits []float32) {
	ins = make([][]int8, len(e.steps))
	outs = make([][]int8, len(e.steps))
	fouts = make([][]float32, len(e.steps))
	defer func(b int) { hostBatch = b }(hostBatch)
	hostBatch = nb // one pass, which the trace sees whole
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
	q0 := make([]int8, nb*in.Size())
	for n := range nb {
		for c := range in.C {
			for p := range in.H * in.W {
				q0[n*in.Size()+p*in.C+c] = int8(quant.QuantizeValue(x[n*in.Size()+c*in.H*in.W+p], e.inAct.Scale, e.inAct.ZeroPoint, -128, 127))
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
	for ni, mk := range []func(*rand.Rand) *nn.Net{nntest.Net1, nntest.Net2, nntest.Net3, nntest.Net4} {
		rng := rand.New(rand.NewPCG(uint64(ni)+3, 3))
		net := mk(rng)
		data := nntest.Samples(net, 37, ni == 1, uint64(ni))
		st, err := calib.CollectActStats(net, data, 0, 256)
		if err != nil {
			t.Fatal(err)
		}
		x := nntest.Inputs(data, data.N*0+nntest.Shapes(t, net)[0].Size())
		for _, fuse := range []bool{true, false} {
			fusePool = fuse
			for _, bits := range []int{8, 4} {
				for _, m := range quant.CalibratorNames() {
					q, err := calib.PTQ(net, st, calib.PTQOptions{Method: m, WeightBits: bits})
					if err != nil {
						t.Fatal(err)
					}
					e, err := New(be, q)
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
						if s.final && s.kind <= dense {
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
						if err := e.Forward(x[n*e.in.Size():(n+1)*e.in.Size()], 1, one); err != nil {
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
		fusePool = true
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
	net := nntest.Net1(rng)
	data := nntest.Samples(net, 64, false, 9)
	st, err := calib.CollectActStats(net, data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := nntest.Inputs(data, nntest.Shapes(t, net)[0].Size())
	q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "entropy"})
	if err != nil {
		t.Fatal(err)
	}
	fusePool = false // every GEMM requantizes in its epilogue
	defer func() { fusePool = true }()
	e, err := New(be, q)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ins, outs, fouts, _ := runTraced(t, e, x, data.N)
	near := 0
	for si, s := range e.steps {
		if s.kind > dense {
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

func TestInt8EngineErrors(t *testing.T) {
	be := cpu.New()
	rng := rand.New(rand.NewPCG(4, 4))
	net := nntest.Net1(rng)
	if _, err := New(be, net); err == nil {
		t.Error("float net accepted")
	}
	st, _ := calib.CollectActStats(net, nntest.Samples(net, 8, false, 4), 0, 0)
	q, _ := calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	q.Quant.Act[3].Scale = 0
	if _, err := New(be, q); err == nil {
		t.Error("zero activation scale accepted")
	}
	q, _ = calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	q.Quant.WeightScale[3][1] = float32(math.NaN())
	if _, err := New(be, q); err == nil {
		t.Error("NaN weight scale accepted")
	}
	q.Quant.WeightScale[3][1] = -1
	if _, err := New(be, q); err == nil {
		t.Error("negative weight scale accepted")
	}
	q, _ = calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	e, err := New(be, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(make([]float32, 10), 1, make([]float32, 5)); err == nil {
		t.Error("short input accepted")
	}
}

// TestInt8EngineCopyingBackend runs the engine where every operand must
// be uploaded and every result downloaded: the same logits as on the cpu
// backend, to the bit.
func TestInt8EngineCopyingBackend(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	for ni, net := range []*nn.Net{nntest.Net1(rng), nntest.Net2(rng)} {
		data := nntest.Samples(net, 300, ni == 1, 13)
		st, err := calib.CollectActStats(net, data, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "mse", WeightBits: 4})
		if err != nil {
			t.Fatal(err)
		}
		x := nntest.Inputs(data, nntest.Shapes(t, net)[0].Size())
		ref, err := New(cpu.New(), q)
		if err != nil {
			t.Fatal(err)
		}
		be := &nntest.CopyingBackend{Backend: cpu.New()}
		e, err := New(be, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, nb := range []int{1, 300} { // 300: two passes of maxBatch
			want, got := make([]float32, nb*ref.OutLen()), make([]float32, nb*ref.OutLen())
			if err := ref.Forward(x[:nb*ref.in.Size()], nb, want); err != nil {
				t.Fatal(err)
			}
			if err := e.Forward(x[:nb*ref.in.Size()], nb, got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("net %d, batch %d: outputs differ from the cpu backend's", ni, nb)
			}
		}
		if be.Uploads == 0 || be.Downloads == 0 {
			t.Errorf("%d uploads, %d downloads", be.Uploads, be.Downloads)
		}
		e.Close()
		ref.Close()
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
				if got, want := quantize(xv, s, z), int8(quant.QuantizeValue(xv, s, z, -128, 127)); got != want {
					t.Fatalf("quantize(%g, %g, %d) = %d, quant %d", xv, s, z, got, want)
				}
			}
		}
	}
}

// TestInt8EngineExactGEMM is TestInt8EngineExact with convolutions as
// im2col and GemmS8 (the path of backends without cpu.ConvS8, and of
// processors without an int8 dot-product kernel).
func TestInt8EngineExactGEMM(t *testing.T) {
	useDirect = false
	defer func() { useDirect = true }()
	TestInt8EngineExact(t)
}

// Where cpu.ConvS8 has a kernel, the host CPU's convolutions use it.
func TestInt8EngineDirect(t *testing.T) {
	if !cpu.ConvS8Fast() {
		t.Skip("no int8 dot-product kernel on this processor")
	}
	net := nntest.Net1(rand.New(rand.NewPCG(3, 3)))
	st, err := calib.CollectActStats(net, nntest.Samples(net, 8, false, 1), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cpu.New(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	convs, direct := 0, 0
	for _, s := range e.steps {
		if s.kind == conv {
			convs++
			if s.direct != nil {
				direct++
			}
		}
	}
	if convs == 0 || direct != convs {
		t.Fatalf("%d of %d convolutions direct", direct, convs)
	}
}

// Passes spread over workers give the logits of passes one after the
// other, to the bit.
func TestInt8EngineSplit(t *testing.T) {
	defer cpu.SetThreads(cpu.SetThreads(3))
	for ni, mk := range []func(*rand.Rand) *nn.Net{nntest.Net1, nntest.Net2} {
		net := mk(rand.New(rand.NewPCG(uint64(ni)+7, 7)))
		data := nntest.Samples(net, 3*hostBatch+5, ni == 1, uint64(ni))
		st, err := calib.CollectActStats(net, data, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		q, err := calib.PTQ(net, st, calib.PTQOptions{Method: "max"})
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(cpu.New(), q)
		if err != nil {
			t.Fatal(err)
		}
		x := nntest.Inputs(data, e.InLen())
		run := func(split bool) []float32 {
			splitPasses = split
			defer func() { splitPasses = true }()
			out := make([]float32, data.N*e.OutLen())
			if err := e.Forward(x, data.N, out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		want, got := run(false), run(true)
		if len(e.workers) != 3 {
			t.Fatalf("%d workers, want 3", len(e.workers))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("net %d: logits of split passes differ", ni)
		}
		e.Close()
	}
}
