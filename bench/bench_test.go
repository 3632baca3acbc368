package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/energy"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, c := range cases {
		if got := Median(append([]float64(nil), c.in...)); got != c.want {
			t.Errorf("Median(%v) = %g, want %g", c.in, got, c.want)
		}
	}
}

func TestMeasure(t *testing.T) {
	calls := 0
	tm := Timing{MinTime: 20 * time.Millisecond, MinReps: 3, MaxReps: 50}
	med, reps, err := tm.Measure(func() error {
		calls++
		time.Sleep(2 * time.Millisecond)
		return nil
	})
	if err != nil || calls != reps+1 || reps < 3 || reps > 50 {
		t.Fatalf("reps %d, calls %d (one warm-up), err %v", reps, calls, err)
	}
	if med < 0.002 || med > 0.05 {
		t.Errorf("median %g s for a 2 ms call", med)
	}
	boom := errors.New("boom")
	if _, _, err := tm.Measure(func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("error not returned: %v", err)
	}
}

// MinTime is honoured however fast the kernel: the calls go on past Keep,
// and the median comes from a uniform sample of all of them.
func TestMeasureHonoursMinTime(t *testing.T) {
	tm := Timing{MinTime: 30 * time.Millisecond, MinReps: 3, Keep: 1000}
	calls := 0
	start := time.Now()
	// Call i takes (i mod 1001) µs by its own clock: the median over
	// whole cycles is 500 µs; a sample of the first 1000 calls only would
	// give 500.5 µs, of the last ones anything.
	med, reps, err := tm.MeasureTimed(func() (float64, error) {
		calls++
		return float64(calls%1001) * 1e-6, nil
	})
	if err != nil || time.Since(start) < tm.MinTime || reps != calls-1 {
		t.Fatalf("stopped after %v, %d reps of %d calls, %v: want at least %v", time.Since(start), reps, calls, err, tm.MinTime)
	}
	if reps < 10*tm.Keep {
		t.Skipf("only %d calls in %v: too slow a machine to check the sampling", reps, tm.MinTime)
	}
	if math.Abs(med-500e-6) > 40e-6 { // the sample median's spread is about 1001/(2√1000) = 16 µs
		t.Errorf("median %g s over %d calls, want 500 µs ± 40", med, reps)
	}
	tm = Timing{MinTime: time.Hour, MinReps: 3, MaxReps: 10}
	if _, reps, _ := tm.MeasureTimed(func() (float64, error) { return 1, nil }); reps != 10 {
		t.Errorf("MaxReps 10: %d reps", reps)
	}
}

func TestGemmReport(t *testing.T) {
	var steps []string
	rep, err := Gemm(context.Background(), cpu.New(), GemmOptions{Sizes: []int{16, 33}, DTypes: GemmDTypes, Baseline: true,
		Timing:   Timing{MinTime: time.Millisecond, MinReps: 2, MaxReps: 5},
		Progress: func(done, total int, what string) { steps = append(steps, what) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 6 || len(steps) != 6 {
		t.Fatalf("%d results, %d progress steps; want 6 each", len(rep.Results), len(steps))
	}
	for _, r := range rep.Results {
		if r.Seconds <= 0 || r.Reps < 2 {
			t.Errorf("%+v", r)
		}
		flops := 2 * float64(r.M) * float64(r.N) * float64(r.K)
		if d := r.OpsPerSecond*r.Seconds/flops - 1; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s %s %d: rate %g inconsistent with time %g", r.Impl, r.DType, r.M, r.OpsPerSecond, r.Seconds)
		}
		switch {
		case r.Impl == "gonum" && (r.VsBaseline != 0 || r.SpeedupOverFP32 != 0):
			t.Errorf("baseline row has ratios: %+v", r)
		case r.Impl == "quantkit" && r.VsBaseline <= 0:
			t.Errorf("no ratio to the baseline: %+v", r)
		case r.DType == "int8" && r.SpeedupOverFP32 <= 0:
			t.Errorf("no INT8/FP32 ratio: %+v", r)
		}
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "33×33×33") {
		t.Errorf("table: %v\n%s", err, table.String())
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != 6 || back.Results[1] != rep.Results[1] {
		t.Errorf("JSON round trip: %v", err)
	}
	if _, err := Gemm(context.Background(), cpu.New(), GemmOptions{Sizes: []int{8}, DTypes: []string{"fp16"}}); err == nil {
		t.Error("unknown dtype accepted")
	}
}

func TestMemoryReport(t *testing.T) {
	rep, err := Memory(context.Background(), cpu.New(), MemoryOptions{Sizes: []int{1000, 4097}, Ops: MemoryOpNames(),
		Timing: Timing{MinTime: time.Millisecond, MinReps: 2, MaxReps: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2*len(MemoryOps) {
		t.Fatalf("%d results", len(rep.Results))
	}
	for i, r := range rep.Results {
		op := MemoryOps[i%len(MemoryOps)]
		if r.Op != op.Name || r.Seconds <= 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
		if d := r.BytesPerSecond*r.Seconds/(op.BytesPerElem*float64(r.Elements)) - 1; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: %g B/s inconsistent with %g s for %d elements", r.Op, r.BytesPerSecond, r.Seconds, r.Elements)
		}
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	if !strings.Contains(table.String(), "GB/s") || !strings.Contains(table.String(), "quantize-int4-g128") {
		t.Errorf("table:\n%s", table.String())
	}
	if _, err := Memory(context.Background(), cpu.New(), MemoryOptions{Sizes: []int{8}, Ops: []string{"transpose"}}); err == nil {
		t.Error("unknown op accepted")
	}
}

func TestEnergyColumnsCSVAndPlot(t *testing.T) {
	src := energy.NewFakeSource("fake gpu").Constant(100)
	eo := &EnergyOptions{Source: src, IdleW: 40, Window: energy.Options{MinWindow: 30 * time.Millisecond, Interval: 5 * time.Millisecond, KeepSamples: true}}
	timing := Timing{MinTime: time.Millisecond, MinReps: 2, MaxReps: 5}
	rep, err := Gemm(context.Background(), cpu.New(), GemmOptions{Sizes: []int{24, 40}, DTypes: GemmDTypes, Timing: timing, Energy: eo})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := Memory(context.Background(), cpu.New(), MemoryOptions{Sizes: []int{5000}, Ops: []string{"histogram"}, Timing: timing, Energy: eo})
	if err != nil {
		t.Fatal(err)
	}
	rep.Merge(mem)
	var fp32 *EnergyResult
	for _, r := range rep.Results {
		e := r.Energy
		if e == nil {
			t.Fatalf("%s %s: no energy", r.Op, r.DType)
		}
		// A constant 100 W source: the window's energy is 100 W times its
		// length, 40 W of it idle.
		if d := e.AvgPowerW/100 - 1; d > 0.02 || d < -0.02 {
			t.Errorf("%s: average power %g W, want 100", r.DType, e.AvgPowerW)
		}
		perCall := 100 * e.WindowSeconds / float64(e.Calls)
		if d := e.JoulesPerCall/perCall - 1; d > 1e-3 || d < -1e-3 { // the counter and the window clock are read apart
			t.Errorf("%s: %g J/call, want %g", r.DType, e.JoulesPerCall, perCall)
		}
		if d := e.NetJoulesPerCall/(perCall*0.6) - 1; d > 0.02 || d < -0.02 {
			t.Errorf("%s: net %g J/call, want 60%% of %g", r.DType, e.NetJoulesPerCall, perCall)
		}
		if r.Op == "gemm" {
			ops := 2 * float64(r.M*r.N*r.K)
			if d := e.OpsPerJoule*e.JoulesPerCall/ops - 1; d > 1e-9 || d < -1e-9 {
				t.Errorf("%s: %g ops/J inconsistent", r.DType, e.OpsPerJoule)
			}
			switch r.DType {
			case "fp32":
				fp32 = e
			case "int8":
				if want := e.JoulesPerCall / fp32.JoulesPerCall; e.EnergyRatioVsFP32 != want {
					t.Errorf("INT8/FP32 energy %g, want %g", e.EnergyRatioVsFP32, want)
				}
			}
		}
	}
	var table, csvOut bytes.Buffer
	rep.WriteTable(&table)
	if !strings.Contains(table.String(), "GOP/J") || !strings.Contains(table.String(), "fake gpu") {
		t.Errorf("table lacks energy:\n%s", table.String())
	}
	if err := rep.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(rows) != 1+len(rep.Results) || !slices.Equal(rows[0], CSVHeader) {
		t.Fatalf("CSV: %v, %d rows, header %v", err, len(rows), rows[0])
	}
	for _, row := range rows[1:] {
		if len(row) != len(CSVHeader) || row[slices.Index(CSVHeader, "energy_source")] != "fake gpu" {
			t.Errorf("CSV row %v", row)
		}
	}
	dir := t.TempDir()
	for _, name := range []string{"r.png", "r.svg"} {
		path := filepath.Join(dir, name)
		if err := rep.Plot(path); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := rep.Plot(filepath.Join(dir, "r.pdf")); err == nil {
		t.Error("a .pdf plot was accepted")
	}
}
