package bench

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/energy"
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

func TestRunRefuses(t *testing.T) {
	for _, suites := range [][]string{nil, {"gemm", "transpose"}} {
		if _, err := Run(context.Background(), cpu.New(), Options{Suites: suites, Timing: quick}); err == nil {
			t.Errorf("suites %q: no error", suites)
		}
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
