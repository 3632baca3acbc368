package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/energy"
)

func skipWithoutMNIST(t *testing.T) {
	t.Helper()
	if _, err := dataset.Load("mnist", "test"); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
}

// TestDemoSmall runs the demo on a few images and checks the report's
// rows, the table, the JSON and the plot.
func TestDemoSmall(t *testing.T) {
	skipWithoutMNIST(t)
	dir := t.TempDir()
	js, png := filepath.Join(dir, "demo.json"), filepath.Join(dir, "demo.png")
	out, err := run(t, "demo", "--device", "cpu", "--test-images", "300", "--val-images", "300", "--calib", "64",
		"--qat-images", "128", "--energy=false", "--json", js, "--plot", png)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep DemoReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	want := []string{"FP32", "PTQ int8 max", "PTQ int8 percentile", "PTQ int8 entropy", "PTQ int8 mse", "PTQ int4w ", "QAT int4w"}
	if len(rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rep.Rows), len(want), out)
	}
	for i, r := range rep.Rows {
		if !strings.HasPrefix(r.Name, want[i]) {
			t.Errorf("row %d is %q, want %q", i, r.Name, want[i])
		}
		if r.Total != 300 || r.Top1 < 90 || r.ImagesPerS <= 0 || r.LatencyMs <= 0 || r.JPerImage != nil {
			t.Errorf("row %+v", r)
		}
		if !strings.Contains(out, r.Name) {
			t.Errorf("table lacks %q", r.Name)
		}
	}
	// Sizes: 5,994 float32 parameters; int8 and int4 codes with float
	// scales and biases.
	if rep.Rows[0].WeightBytes != 4*5994 || rep.Rows[1].WeightBytes >= rep.Rows[0].WeightBytes/3 || rep.Rows[5].WeightBytes >= rep.Rows[1].WeightBytes {
		t.Errorf("weight bytes %d, %d, %d", rep.Rows[0].WeightBytes, rep.Rows[1].WeightBytes, rep.Rows[5].WeightBytes)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
}

// fakeForward advances a fake clock by a fixed time per call.
type fakeForward struct {
	now *time.Time
	per time.Duration
}

func (f fakeForward) Forward([]float32, int, []float32) error { *f.now = f.now.Add(f.per); return nil }
func (f fakeForward) Close() error                            { return nil }

// TestDemoEnergy measures a forward pass of 2 ms at a constant 10 W on
// a fake counter: 0.02 J per batch of 256.
func TestDemoEnergy(t *testing.T) {
	net, _, err := demoLoadNet("")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	src := energy.NewFakeSource("fake").Constant(10)
	src.Start, src.Now = now, func() time.Time { return now }
	set := &dataset.Set{Name: "tiny", N: 1, C: 1, H: 28, W: 28, Classes: 10, Pixels: make([]uint8, 784), Labels: []uint8{3}}
	j, err := demoEnergy(src, fakeForward{&now, 2 * time.Millisecond}, net, set)
	if err != nil {
		t.Fatal(err)
	}
	if want := 10 * 0.002 / 256; math.Abs(j-want) > 1e-9*want {
		t.Errorf("%g J per image, want %g", j, want)
	}
}
