package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/inputerr"
)

var quick = Timing{MinTime: time.Millisecond, MinReps: 2, MaxReps: 5}

// Run measures the suites in order, one result per case, and its progress
// counts every case of the whole run once, against one total.
func TestRunSuites(t *testing.T) {
	o := Options{Suites: []string{"gemm", "quantize", "histogram"}, Sizes: []int{8, 17}, Elements: []int{300},
		DTypes: GemmDTypes, Baseline: true, Timing: quick}
	// gemm: 2 sizes × (2 dtypes + gonum); quantize: 3 kernels; histogram: 2.
	if n := o.Cases(); n != 6+3+2 {
		t.Fatalf("Cases %d, want 11", n)
	}
	var done []int
	o.Progress = func(d, total int, what string) {
		if total != 11 || what == "" {
			t.Errorf("progress(%d, %d, %q)", d, total, what)
		}
		done = append(done, d)
	}
	rep, err := Run(context.Background(), cpu.New(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(done, want) {
		t.Errorf("progress went %v, want %v", done, want)
	}
	var ops []string
	for _, r := range rep.Results {
		if len(ops) == 0 || ops[len(ops)-1] != r.Op {
			ops = append(ops, r.Op)
		}
	}
	want := []string{"gemm", "quantize-int8", "quantize-int4-g128", "dequantize-int8", "absmax", "histogram"}
	if len(rep.Results) != 11 || !slices.Equal(ops, want) {
		t.Errorf("%d results, ops %v; want 11, %v", len(rep.Results), ops, want)
	}
	// The machine line names what the CPU kernels dispatched to.
	if !slices.Equal(rep.Machine.CPUFeatures, cpu.KernelFeatures()) {
		t.Errorf("machine's CPU features %v, the kernels use %v", rep.Machine.CPUFeatures, cpu.KernelFeatures())
	}
	var table bytes.Buffer
	rep.Machine.CPUFeatures = []string{"avx512", "avx2-fma"}
	rep.WriteTable(&table)
	if line, _, _ := strings.Cut(table.String(), "\n"); !strings.HasSuffix(line, ", CPU kernels: avx512 avx2-fma") {
		t.Errorf("first line %q", line)
	}
}

// Run refuses bad options before it measures anything, as Check does, as
// bad input.
func TestRunRefuses(t *testing.T) {
	good := Options{Suites: []string{"gemm", "histogram"}, Sizes: []int{8}, Elements: []int{100},
		DTypes: []string{"fp32"}, Timing: quick}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no suite", func(o *Options) { o.Suites = nil }, "no suite"},
		{"unknown suite", func(o *Options) { o.Suites = []string{"gemm", "transpose"} }, `unknown suite "transpose"`},
		{"no sizes", func(o *Options) { o.Sizes = nil }, "gemm: no GEMM sizes"},
		{"no elements", func(o *Options) { o.Elements = nil }, "histogram: no element counts"},
		{"size 0 after a good one", func(o *Options) { o.Sizes = []int{8, 0} }, "GEMM size 0 must be positive"},
		{"negative elements", func(o *Options) { o.Elements = []int{-1} }, "element count -1 must be positive"},
		{"dtype", func(o *Options) { o.DTypes = []string{"fp32", "fp8"} }, `unknown GEMM dtype "fp8"`},
	} {
		o := good
		tc.edit(&o)
		o.Progress = func(int, int, string) { t.Errorf("%s: measured", tc.name) }
		err := o.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s: Check: %v, want bad input saying %q", tc.name, err, tc.want)
		}
		if _, rerr := Run(context.Background(), cpu.New(), o); rerr == nil || rerr.Error() != fmt.Sprint(err) {
			t.Errorf("%s: Run: %v, want Check's error", tc.name, rerr)
		}
	}
	// Sizes of a suite not run are not looked at.
	o := good
	o.Suites, o.Sizes, o.DTypes = []string{"histogram"}, nil, []string{""}
	if err := o.Check(); err != nil {
		t.Errorf("histogram without GEMM options: %v", err)
	}
}

// With MeasureEnergy, Run opens the counter of the device it runs on:
// every result has its energy, or the report says why none has.
func TestRunMeasureEnergy(t *testing.T) {
	o := Options{Suites: []string{"histogram"}, Elements: []int{1000}, Timing: quick,
		MeasureEnergy: &EnergySetup{Window: energy.Options{MinWindow: 20 * time.Millisecond, Interval: 5 * time.Millisecond}}}
	rep, err := Run(context.Background(), cpu.New(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if (r.Energy == nil) == (rep.EnergyNote == "") {
			t.Errorf("%s: energy %+v, note %q: want one of them", r.Op, r.Energy, rep.EnergyNote)
		}
	}
	if rep, err := Run(context.Background(), cpu.New(), Options{Suites: o.Suites, Elements: o.Elements, Timing: quick}); err != nil ||
		rep.EnergyNote != "" || rep.Results[0].Energy != nil {
		t.Errorf("without MeasureEnergy: %v, note %q", err, rep.EnergyNote)
	}
}

// Cancelling stops the run before the next case.
func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	o := Options{Suites: []string{"gemm", "histogram"}, Sizes: []int{8, 9, 10}, Elements: []int{100},
		DTypes: []string{"fp32"}, Timing: quick, Progress: func(done, _ int, _ string) {
			calls++
			if done == 1 {
				cancel()
			}
		}}
	_, err := Run(ctx, cpu.New(), o)
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Errorf("error %v after %d cases, want context.Canceled after 2", err, calls)
	}
	calls = 0
	o.Suites = []string{"histogram"}
	o.Progress = func(int, int, string) { calls++; cancel() }
	if _, err := Run(ctx, cpu.New(), o); !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("memory kernels: error %v after %d cases, want context.Canceled before any", err, calls)
	}
}

// NewEnergy measures the idle power first, and says so; a source without
// power or counter leaves a note instead.
func TestNewEnergy(t *testing.T) {
	src := energy.NewFakeSource("fake").Constant(100)
	var log bytes.Buffer
	window := energy.Options{MinWindow: 50 * time.Millisecond, Interval: 5 * time.Millisecond}
	eo, note := NewEnergy(src, window, 50*time.Millisecond, &log)
	if note != "" || eo.Source != src || eo.Window != window || math.Abs(eo.IdleW-100) > 2 {
		t.Errorf("idle %g W, note %q; want 100 W", eo.IdleW, note)
	}
	if !strings.Contains(log.String(), "measuring the idle power of fake for 50ms") {
		t.Errorf("log %q", log.String())
	}
	if eo, note := NewEnergy(src, window, 0, nil); note != "" || eo.IdleW != 0 {
		t.Errorf("idle 0: measured %g W (%q)", eo.IdleW, note)
	}
	dead := energy.NewFakeSource("dead") // neither counter nor power
	if eo, note := NewEnergy(dead, window, time.Second, nil); eo == nil || eo.IdleW != 0 ||
		!strings.Contains(note, "idle power of dead not measured") {
		t.Errorf("dead source: %+v, note %q", eo, note)
	}
	if eo, note, done := OpenEnergy("tpu:0", window, 0, nil); eo != nil || note == "" || done == nil {
		t.Errorf("tpu:0: %+v, note %q", eo, note)
	}
}
