package experiment

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

// quick timings keep the tests short; the numbers are not checked.
var quick = bench.Timing{MinTime: time.Millisecond, MinReps: 1, MaxReps: 3}

// Run on a few MNIST images: the rows in order, their counts against an
// independent count of the FP32 model, the deltas, the sizes, the split
// the report states, the table and the plot.
func TestRunMNIST(t *testing.T) {
	test := needMNIST(t)
	rep, err := Run(context.Background(), Options{Common: Common{Backend: cpuBackend(), Data: "mnist",
		TestImages: 300, ValImages: 300, CalibImages: 64, QATImages: 128, Seed: 1},
		Latency: quick, Throughput: quick})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"FP32", "PTQ int8 max", "PTQ int8 percentile", "PTQ int8 entropy", "PTQ int8 mse", "PTQ int4w ", "QAT int4w"}
	if len(rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rep.Rows), len(want), rep.Rows)
	}
	for i, r := range rep.Rows {
		if !strings.HasPrefix(r.Name, want[i]) {
			t.Errorf("row %d is %q, want %q", i, r.Name, want[i])
		}
		if r.Total != 300 || r.Top1 != 100*float64(r.Correct)/300 || r.Top1 < 90 || r.ImagesPerS <= 0 || r.LatencyMs <= 0 || r.JPerImage != nil {
			t.Errorf("row %+v", r)
		}
		if d := r.Top1 - rep.Rows[0].Top1; math.Abs(r.Delta-d) > 1e-9 {
			t.Errorf("%s: delta %g, want %g", r.Name, r.Delta, d)
		}
	}
	net, _, err := loadFloat("", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := refCorrect(t, net, test, 300, false); rep.Rows[0].Correct != n {
		t.Errorf("FP32: %d correct, an independent count %d", rep.Rows[0].Correct, n)
	}
	if r := rep.Rows[5]; r.ValTop1 <= 0 || r.Calibrator == "" || !strings.HasSuffix(r.Name, r.Calibrator) || rep.Rows[6].Calibrator != r.Calibrator {
		t.Errorf("int4 rows %+v, %+v", r, rep.Rows[6])
	}
	// Sizes: 5,994 float32 parameters; int8 and int4 codes with float
	// scales and biases.
	if rep.Rows[0].WeightBytes != 4*5994 || rep.Rows[1].WeightBytes >= rep.Rows[0].WeightBytes/3 || rep.Rows[5].WeightBytes >= rep.Rows[1].WeightBytes {
		t.Errorf("weight bytes %d, %d, %d", rep.Rows[0].WeightBytes, rep.Rows[1].WeightBytes, rep.Rows[5].WeightBytes)
	}
	if rep.CalibImages != 64 || rep.ValImages != 300 || rep.QATImages != 128 || rep.TestImages != 300 || rep.Epochs != 1 || rep.LR != 1e-4 {
		t.Errorf("report %+v", rep)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rows {
		if !strings.Contains(table.String(), r.Name) {
			t.Errorf("table lacks %q:\n%s", r.Name, table.String())
		}
	}
	png := filepath.Join(t.TempDir(), "demo.png")
	if err := rep.Plot(png); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
}

// Tiny training sets: one image cannot be split into a held-out and a
// fit part, which Run needs to choose the int4 calibrator (an input
// error, not a crash); three can. Held-out images are asked for
// generously and capped at half.
func TestRunTinySets(t *testing.T) {
	opt := func(data string) Options {
		return Options{Common: Common{Backend: cpuBackend(), Data: data, ValImages: 5000, CalibImages: 512, QATImages: 12000},
			Latency: quick, Throughput: quick}
	}
	_, err := Run(context.Background(), opt(tinyData(t, 1, 4)))
	if !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), "no held-out images") {
		t.Errorf("one training image: %v", err)
	}
	rep, err := Run(context.Background(), opt(tinyData(t, 3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 7 || rep.ValImages != 1 || rep.CalibImages != 2 || rep.QATImages != 2 || rep.TestImages != 4 {
		t.Errorf("report %+v", rep)
	}
	o := opt(tinyData(t, 3, 4))
	o.ValImages = 0
	if _, err := Run(context.Background(), o); !errors.Is(err, inputerr.ErrInput) {
		t.Errorf("no held-out images asked for: %v", err)
	}
}

// A cancelled context stops Run.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, Options{Common: Common{Backend: cpuBackend(), Data: tinyData(t, 8, 8), ValImages: 2}, Latency: quick, Throughput: quick})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v, want context.Canceled", err)
	}
}

// QAT on a few MNIST images: the result's test accuracy is what an
// independent count of the returned model gives in integer arithmetic,
// and the saved model reads back with the same quantization and the same
// accuracy.
func TestQATMNIST(t *testing.T) {
	test := needMNIST(t)
	rep, err := QAT(context.Background(), QATOptions{Common: Common{Backend: cpuBackend(), Data: "mnist",
		TestImages: 500, ValImages: 5000, CalibImages: 64, QATImages: 256, Seed: 1}, Bits: 4, Method: "max"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Net == nil || rep.Net.Quant == nil || rep.Net.Quant.WeightBits != 4 || rep.Method != "max" || rep.ValTop1 != nil {
		t.Fatalf("report %+v", rep)
	}
	if rep.TestImages != 500 || rep.QATImages != 256 || rep.CalibImages != 64 || rep.ValImages != 5000 || rep.FP32Top1 < 95 || rep.PTQTop1 < 80 {
		t.Errorf("report %+v", rep)
	}
	n := refCorrect(t, rep.Net, test, 500, true)
	if want := 100 * float64(n) / 500; rep.QATTop1 != want {
		t.Errorf("QAT top-1 %g, an independent count %g", rep.QATTop1, want)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "q4.onnx")
	if err := SaveModel(path, rep.Net); err != nil {
		t.Fatal(err)
	}
	back, err := onnxnet.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Quant == nil || back.Quant.WeightBits != 4 {
		t.Fatalf("read back %+v", back.Quant)
	}
	if m := refCorrect(t, back, test, 500, true); m != n {
		t.Errorf("the saved model scores %d, the returned one %d", m, n)
	}
	st := filepath.Join(dir, "q4.safetensors")
	if err := SaveModel(st, rep.Net); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(st); err != nil || fi.Size() == 0 {
		t.Errorf("safetensors: %v", err)
	}
}

// QAT's choice of calibrator: "best" evaluates every calibrator on the
// held-out images and keeps the best; with none held out it is an input
// error, while a named calibrator needs none. One training image is
// enough for a named one.
func TestQATChoiceAndTinySets(t *testing.T) {
	data := tinyData(t, 12, 6)
	opt := QATOptions{Common: Common{Backend: cpuBackend(), Data: data, ValImages: 4, CalibImages: 4}, Bits: 8, Method: "best"}
	rep, err := QAT(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ValTop1) != 4 || rep.ValImages != 4 || rep.QATImages != 8 {
		t.Fatalf("report %+v", rep)
	}
	for m, v := range rep.ValTop1 {
		if v > rep.ValTop1[rep.Method] {
			t.Errorf("chose %s (%g %%) over %s (%g %%)", rep.Method, rep.ValTop1[rep.Method], m, v)
		}
	}
	opt.ValImages = 0
	if _, err := QAT(context.Background(), opt); !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), "no held-out images") {
		t.Errorf("best without held-out images: %v", err)
	}
	opt.Method = "max"
	if rep, err := QAT(context.Background(), opt); err != nil || rep.ValImages != 0 || rep.QATImages != 12 {
		t.Errorf("max without held-out images: %v, %+v", err, rep)
	}
	opt.Data = tinyData(t, 1, 2)
	opt.ValImages = 5000
	if rep, err := QAT(context.Background(), opt); err != nil || rep.ValImages != 0 || rep.QATImages != 1 || rep.CalibImages != 1 {
		t.Errorf("one training image: %v, %+v", err, rep)
	}
	for _, bad := range []QATOptions{{Bits: 3, Method: "max"}, {Bits: 4, Method: "median"}} {
		bad.Common = opt.Common
		if _, err := QAT(context.Background(), bad); !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// The held-out and fit samples are the training images the split names
// and the evaluation samples the first test images: the two splits hold
// different images here (tinyData), so a mix-up shows.
func TestSamplesComeFromTheirSplit(t *testing.T) {
	dir := tinyData(t, 10, 4)
	c := Common{Backend: cpuBackend(), Data: dir, ValImages: 4, CalibImages: 2, TestImages: 3}
	s, err := c.prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	train, err := dataset.Load(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	test, err := dataset.Load(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data *nn.Samples
		set  *dataset.Set
		idx  []int
	}{
		{"held-out", s.valData, train, s.split.val},
		{"fit", s.fitData, train, s.split.fit},
		{"test", s.testData, test, []int{0, 1, 2}},
	} {
		if c.data.N != len(c.idx) {
			t.Fatalf("%s: %d samples, want %d", c.name, c.data.N, len(c.idx))
		}
		got := make([]float32, len(c.idx)*784)
		want := make([]float32, len(c.idx)*784)
		c.data.Fill(got, firstN(len(c.idx)))
		c.set.Input(want, c.idx, 1)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: value %d is %g, want %g", c.name, i, got[i], want[i])
			}
		}
		for k, i := range c.idx {
			if c.data.Labels[k] != c.set.Labels[i] {
				t.Errorf("%s sample %d: label %d, want %d", c.name, k, c.data.Labels[k], c.set.Labels[i])
			}
		}
	}
}
