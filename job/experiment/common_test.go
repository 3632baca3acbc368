package experiment

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/nn"
)

// The training images are split the same way for Run and QAT: held-out
// and fit images never overlap and together are all of them, at most
// half are held out (none when none are asked for), the calibration
// images are the first of the fit ones, tiny sets still leave an image
// to calibrate and train on, and the split depends on the seed only.
func TestSplitTrain(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 5, 10, 101} {
		for _, val := range []int{-1, 0, 1, 3, n, 2*n + 1} {
			for _, calib := range []int{-5, 0, 1, 4, 1000} {
				s := splitTrain(n, val, calib, 7)
				wantVal := max(val, 0)
				wantVal = min(wantVal, n/2)
				if len(s.val) != wantVal || len(s.fit) != n-wantVal {
					t.Errorf("n %d val %d: %d held out, %d fit", n, val, len(s.val), len(s.fit))
				}
				all := append(slices.Clone(s.fit), s.val...)
				slices.Sort(all)
				for i, k := range all {
					if k != i {
						t.Fatalf("n %d val %d: fit ∪ val is not 0..n−1 once each: %v", n, val, all)
					}
				}
				wantCal := 0
				if n > 0 {
					wantCal = min(max(calib, 1), n-wantVal)
				}
				if len(s.cal) != wantCal || !slices.Equal(s.cal, s.fit[:wantCal]) {
					t.Errorf("n %d val %d calib %d: calibration %v of fit %v", n, val, calib, s.cal, s.fit)
				}
				if again := splitTrain(n, val, calib, 7); !slices.Equal(again.val, s.val) || !slices.Equal(again.fit, s.fit) {
					t.Errorf("n %d: not reproducible", n)
				}
				// How many calibrate changes nothing else.
				if other := splitTrain(n, val, calib+3, 7); !slices.Equal(other.val, s.val) || !slices.Equal(other.fit, s.fit) {
					t.Errorf("n %d: the calibration count moved the held-out images", n)
				}
			}
		}
	}
	if a, b := splitTrain(101, 20, 5, 1), splitTrain(101, 20, 5, 2); slices.Equal(a.val, b.val) {
		t.Error("seeds 1 and 2 hold out the same images")
	}
}

// fixedForward returns stored outputs, outLen per sample, for the
// samples whose first input value is their index.
type fixedForward struct {
	out    [][]float32
	outLen int
}

func (f fixedForward) Forward(x []float32, batch int, out []float32) error {
	inLen := len(x) / batch
	for i := range batch {
		copy(out[i*f.outLen:(i+1)*f.outLen], f.out[int(x[i*inLen])])
	}
	return nil
}

func indexSamples(labels []uint8, inLen int) *nn.Samples {
	return &nn.Samples{N: len(labels), Labels: labels, Fill: func(dst []float32, idx []int) {
		for i, k := range idx {
			dst[i*inLen] = float32(k)
		}
	}}
}

// An output that is NaN never counts as correct, whatever nn.Argmax
// makes of a row of NaNs; NaNs elsewhere in a row do not hide a correct
// answer; ties go to the first.
func TestAccuracyNaN(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		y     []float32
		label uint8
		want  bool
	}{
		{[]float32{nan, -1, -2}, 0, false},
		{[]float32{3, nan, 1}, 0, true},
		{[]float32{1, 2, nan}, 1, true},
		{[]float32{1, 2, 3}, 2, true},
		{[]float32{5, 5, 1}, 0, true},
		{[]float32{5, 5, 1}, 1, false},
		{[]float32{float32(math.Inf(1)), 2, 3}, 0, true},
	}
	for label := range 3 {
		cases = append(cases, struct {
			y     []float32
			label uint8
			want  bool
		}{[]float32{nan, nan, nan}, uint8(label), false})
	}
	for _, c := range cases {
		f := fixedForward{out: [][]float32{c.y}, outLen: 3}
		n, err := accuracy(context.Background(), f, indexSamples([]uint8{c.label}, 2), 2, 3, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := n == 1; got != c.want || got != refIsCorrect(c.y, int(c.label)) {
			t.Errorf("%v label %d: counted correct %v, want %v", c.y, c.label, got, c.want)
		}
	}
}

// accuracy against a naive count on random outputs with NaNs, infinities
// and ties, in batches that do and do not divide the samples; progress
// ends at the total.
func TestAccuracyRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n, k = 203, 5
	out := make([][]float32, n)
	labels := make([]uint8, n)
	want := 0
	for i := range out {
		out[i] = make([]float32, k)
		for j := range out[i] {
			switch rng.IntN(10) {
			case 0:
				out[i][j] = float32(math.NaN())
			case 1:
				out[i][j] = float32(math.Inf(1 - 2*rng.IntN(2)))
			default:
				out[i][j] = float32(rng.IntN(4)) // ties
			}
		}
		labels[i] = uint8(rng.IntN(k))
		if refIsCorrect(out[i], int(labels[i])) {
			want++
		}
	}
	for _, batch := range []int{1, 7, 256} {
		last := 0
		got, err := accuracy(context.Background(), fixedForward{out, k}, indexSamples(labels, 3), 3, k, batch, func(done, total int) {
			if done <= last || total != n {
				t.Errorf("batch %d: progress %d/%d after %d", batch, done, total, last)
			}
			last = done
		})
		if err != nil || got != want || last != n {
			t.Errorf("batch %d: %d correct (%v), want %d; progress ended at %d", batch, got, err, want, last)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := accuracy(ctx, fixedForward{out, k}, indexSamples(labels, 3), 3, k, 7, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// fakeForward advances a fake clock by a fixed time per call.
type fakeForward struct {
	now *time.Time
	per time.Duration
}

func (f fakeForward) Forward([]float32, int, []float32) error { *f.now = f.now.Add(f.per); return nil }

// A forward pass of 2 ms at a constant 10 W on a fake counter: 0.02 J per
// batch of 256.
func TestEnergyPerImage(t *testing.T) {
	net, _, err := loadFloat("", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	src := energy.NewFakeSource("fake").Constant(10)
	src.Start, src.Now = now, func() time.Time { return now }
	set := &dataset.Set{Name: "tiny", N: 1, C: 1, H: 28, W: 28, Classes: 10, Pixels: make([]uint8, 784), Labels: []uint8{3}}
	j, err := energyPerImage(context.Background(), src, fakeForward{&now, 2 * time.Millisecond}, testBatch(net, set), 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := 10 * 0.002 / 256; math.Abs(j-want) > 1e-9*want {
		t.Errorf("%g J per image, want %g", j, want)
	}
}

// checkFits refuses images of another size and labels beyond the
// outputs, as bad input.
func TestCheckFits(t *testing.T) {
	net, _, err := loadFloat("", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    dataset.Set
		want string
	}{
		{dataset.Set{Name: "ok", C: 1, H: 28, W: 28, Classes: 10}, ""},
		{dataset.Set{Name: "small", C: 1, H: 5, W: 4, Classes: 10}, "m takes inputs of shape [1 28 28], but small holds images of 1×5×4"},
		{dataset.Set{Name: "rgb", C: 3, H: 28, W: 28, Classes: 10}, "but rgb holds images of 3×28×28"},
		{dataset.Set{Name: "many", C: 1, H: 28, W: 28, Classes: 12}, "m gives outputs of shape [10], but many has labels up to 11"},
	} {
		err := checkFits(net, &c.s, "m")
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.s.Name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a bad-input error containing %q", c.s.Name, err, c.want)
		}
	}
}
