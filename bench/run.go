package bench

import (
	"context"
	"fmt"

	"github.com/quantkit/quantkit/backend"
)

// Suites are the kernel families Run knows, in the order it runs them.
var Suites = []string{"gemm", "quantize", "histogram"}

// suiteOps are the memory-bound kernels of each suite but gemm.
var suiteOps = map[string][]string{
	"quantize":  {"quantize-int8", "quantize-int4-g128", "dequantize-int8"},
	"histogram": {"absmax", "histogram"},
}

// Options select what Run measures.
type Options struct {
	Suites   []string // of Suites
	Sizes    []int    // GEMM sizes, M = N = K (the gemm suite)
	Elements []int    // input sizes of the memory-bound kernels (the other suites)
	DTypes   []string // GEMM element types, of GemmDTypes
	// Baseline adds gonum's Sgemm beside each GEMM size.
	Baseline bool
	Timing   Timing
	// Energy, when set, measures each kernel's energy too.
	Energy *EnergyOptions
	// Progress, when set, is called before each measurement with the
	// cases done and the cases of the whole run.
	Progress func(done, total int, what string)
}

// Cases is the number of measurements Run makes with o (each a kernel at a
// size), the total its Progress counts to.
func (o Options) Cases() int {
	n := 0
	for _, s := range o.Suites {
		n += o.suiteCases(s)
	}
	return n
}

func (o Options) suiteCases(suite string) int {
	if suite != "gemm" {
		return len(o.Elements) * len(suiteOps[suite])
	}
	n := len(o.Sizes) * len(o.DTypes)
	if o.Baseline {
		n += len(o.Sizes)
	}
	return n
}

// Run measures o.Suites on b, in one report. Cancelling ctx stops it
// before the next measurement, with ctx's error.
func Run(ctx context.Context, b backend.Backend, o Options) (*Report, error) {
	if len(o.Suites) == 0 {
		return nil, fmt.Errorf("bench: no suite (want some of %v)", Suites)
	}
	for _, s := range o.Suites {
		if _, ok := suiteOps[s]; !ok && s != "gemm" {
			return nil, fmt.Errorf("bench: unknown suite %q (want one of %v)", s, Suites)
		}
	}
	total, base := o.Cases(), 0
	var rep *Report
	for _, s := range o.Suites {
		var progress func(done, n int, what string)
		if o.Progress != nil {
			offset := base
			progress = func(done, _ int, what string) { o.Progress(offset+done, total, what) }
		}
		var r *Report
		var err error
		if s == "gemm" {
			r, err = Gemm(ctx, b, GemmOptions{Sizes: o.Sizes, DTypes: o.DTypes, Timing: o.Timing, Baseline: o.Baseline,
				Energy: o.Energy, Progress: progress})
		} else {
			r, err = Memory(ctx, b, MemoryOptions{Sizes: o.Elements, Ops: suiteOps[s], Timing: o.Timing,
				Energy: o.Energy, Progress: progress})
		}
		base += o.suiteCases(s)
		if err != nil {
			return nil, err
		}
		if rep == nil {
			rep = r
		} else {
			rep.Merge(r)
		}
	}
	return rep, nil
}
