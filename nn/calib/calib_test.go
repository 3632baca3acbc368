package calib

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/nntest"
	"github.com/quantkit/quantkit/quant"
)

func TestPTQDoesNotModifyNet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	net := nntest.Net1(rng)
	ref := net.Clone()
	st, err := CollectActStats(net, nntest.Samples(net, 40, false, 1), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range quant.CalibratorNames() {
		if _, err := PTQ(net, st, PTQOptions{Method: m, WeightBits: 4}); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range net.Layers {
		w, _ := nn.Weights(l)
		rw, _ := nn.Weights(ref.Layers[i])
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
	net := nntest.Net2(rng)
	st, err := CollectActStats(net, nntest.Samples(net, 64, true, 2), 0, 0)
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
	d := net.Layers[3].(*nn.Dense)
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
	if got, want := nn.WeightBytes(q), 3*9+3*8+4*108+4*8+3*4+3*8; got != want {
		t.Errorf("WeightBytes = %d, want %d", got, want)
	}
	q4, _ := PTQ(net, st, PTQOptions{Method: "max", WeightBits: 4})
	if got, want := nn.WeightBytes(q4), 3*5+3*8+4*54+4*8+3*2+3*8; got != want {
		t.Errorf("int4 WeightBytes = %d, want %d", got, want)
	}
}

// TestActStatsMerge checks that statistics of two halves of the
// calibration set merge into those of the whole: the same counts, ranges
// and max-calibrated parameters.
func TestActStatsMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	net := nntest.Net1(rng)
	data := nntest.Samples(net, 100, false, 14)
	all, err := CollectActStats(net, data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	half := func(lo int) *nn.Samples {
		return &nn.Samples{N: 50, Fill: func(dst []float32, idx []int) {
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
	other, _ := CollectActStats(nntest.Net2(rng), nntest.Samples(nntest.Net2(rng), 10, true, 1), 0, 0)
	if err := a.Merge(other); err == nil {
		t.Error("statistics of another net merged")
	}
}

func TestPTQErrors(t *testing.T) {
	net := nntest.Net1(rand.New(rand.NewPCG(4, 4)))
	st, err := CollectActStats(net, nntest.Samples(net, 8, false, 4), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PTQ(net, st, PTQOptions{Method: "nope"}); err == nil {
		t.Error("unknown calibrator accepted")
	}
	if _, err := PTQ(net, st, PTQOptions{Method: "max", WeightBits: 3}); err == nil {
		t.Error("3-bit weights accepted")
	}
}
