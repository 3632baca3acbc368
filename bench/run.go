package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/inputerr"
)

// Suites are the kernel families Run knows, in the order it runs them.
var Suites = []string{"gemm", "quantize", "histogram", "transfer"}

// suiteOps are the memory-bound kernels of each suite but gemm.
var suiteOps = map[string][]string{
	"quantize":  {"quantize-int8", "quantize-int4-g128", "dequantize-int8"},
	"histogram": {"absmax", "histogram"},
	"transfer":  {"upload", "download"},
}

// Options select what Run measures.
type Options struct {
	Suites   []string // of Suites
	Sizes    []int    // GEMM sizes, M = N = K (the gemm suite)
	Elements []int    // input sizes of the memory-bound kernels (the other suites)
	DTypes   []string // GEMM element types, of GemmDTypes
	// Baseline adds gonum's Sgemm beside each GEMM size.
	Baseline bool
	// Vendor adds the device vendor's GEMMs (cuBLAS, cuBLASLt) where the
	// backend has them, and a device-to-device copy beside the
	// memory-bound kernels where it has one (see GemmOptions.Vendor and
	// MemoryOptions.Copy).
	Vendor bool
	Timing Timing
	// Energy, when set, measures each kernel's energy too.
	Energy *EnergyOptions
	// MeasureEnergy, when set and Energy is not, has Run measure the
	// energy of the backend it runs on: it opens the device's counter and
	// measures its idle power (OpenEnergy), or says in Report.EnergyNote
	// why there is none.
	MeasureEnergy *EnergySetup
	// Progress, when set, is called before each measurement with the
	// cases done and the cases of the whole run.
	Progress func(done, total int, what string)
}

// Cases is the number of measurements Run makes with o (each a kernel at a
// size) on a backend without vendor GEMMs or device copies.
func (o Options) Cases() int { return o.CasesOn(nil) }

// CasesOn is the number of measurements Run makes with o on b, the total
// its Progress counts to: with o.Vendor, b's vendor GEMMs and device
// copies count too.
func (o Options) CasesOn(b backend.Backend) int {
	n := 0
	for i, s := range o.Suites {
		n += o.suiteCases(s, b, o.copySuite(i))
	}
	return n
}

// copySuite says whether the i-th suite measures the device copy: the
// first memory-bound suite does, for every later one.
func (o Options) copySuite(i int) bool {
	if !o.Vendor || o.Suites[i] == "gemm" {
		return false
	}
	for _, s := range o.Suites[:i] {
		if s != "gemm" {
			return false
		}
	}
	return true
}

func (o Options) suiteCases(suite string, b backend.Backend, copy bool) int {
	if suite != "gemm" {
		_, copier := b.(backend.DeviceCopier)
		return memoryCases(o.Elements, len(suiteOps[suite]), copy && copier)
	}
	var kinds []backend.VendorGemmKind
	if vg, ok := b.(backend.VendorGemmer); ok && o.Vendor {
		kinds, _ = vg.VendorGemms()
	}
	return gemmCases(o.Sizes, o.DTypes, o.Baseline, kinds)
}

// EnergySetup is how Run measures energy when it opens the counter
// itself (Options.MeasureEnergy).
type EnergySetup struct {
	Window energy.Options
	Idle   time.Duration // how long to measure idle power first; 0: not
	Log    io.Writer     // told of the idle measurement; nil: not
}

// Check reports what Run would refuse in o, before it measures anything:
// no suite or an unknown one, a suite without sizes, a size that is not
// positive, an unknown GEMM dtype. Its errors match inputerr.ErrInput.
func (o Options) Check() error {
	if len(o.Suites) == 0 {
		return inputerr.Mark(fmt.Errorf("bench: no suite (want some of %v)", Suites))
	}
	for _, s := range o.Suites {
		sizes, what := o.Elements, "element count"
		if s == "gemm" {
			sizes, what = o.Sizes, "GEMM size"
		} else if _, ok := suiteOps[s]; !ok {
			return inputerr.Mark(fmt.Errorf("bench: unknown suite %q (want one of %v)", s, Suites))
		}
		if len(sizes) == 0 {
			return inputerr.Mark(fmt.Errorf("bench: %s: no %ss", s, what))
		}
		for _, n := range sizes {
			if n <= 0 {
				return inputerr.Mark(fmt.Errorf("bench: %s %d must be positive", what, n))
			}
		}
		if s == "gemm" {
			for _, dt := range o.DTypes {
				if !slices.Contains(GemmDTypes, dt) {
					return inputerr.Mark(fmt.Errorf("bench: unknown GEMM dtype %q (want one of %s)", dt, strings.Join(GemmDTypes, ", ")))
				}
			}
		}
	}
	return nil
}

// Run measures o.Suites on b, in one report. The options are checked
// (Check) before anything is measured. Cancelling ctx stops it before the
// next measurement, with ctx's error.
func Run(ctx context.Context, b backend.Backend, o Options) (*Report, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	var note string
	if m := o.MeasureEnergy; m != nil && o.Energy == nil {
		var done func()
		o.Energy, note, done = OpenEnergy(b.Name(), m.Window, m.Idle, m.Log)
		defer done()
	}
	total, base := o.CasesOn(b), 0
	var rep *Report
	for i, s := range o.Suites {
		var progress func(done, n int, what string)
		if o.Progress != nil {
			offset := base
			progress = func(done, _ int, what string) { o.Progress(offset+done, total, what) }
		}
		var r *Report
		var err error
		if s == "gemm" {
			r, err = Gemm(ctx, b, GemmOptions{Sizes: o.Sizes, DTypes: o.DTypes, Timing: o.Timing, Baseline: o.Baseline,
				Vendor: o.Vendor, Energy: o.Energy, Progress: progress})
		} else {
			r, err = Memory(ctx, b, MemoryOptions{Sizes: o.Elements, Ops: suiteOps[s], Copy: o.copySuite(i), Timing: o.Timing,
				Energy: o.Energy, Progress: progress})
		}
		base += o.suiteCases(s, b, o.copySuite(i))
		if err != nil {
			return nil, err
		}
		if rep == nil {
			rep = r
		} else {
			rep.Merge(r)
		}
	}
	rep.EnergyNote = note
	relateToCopy(rep.Results)
	return rep, nil
}
