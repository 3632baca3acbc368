package calibrate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/quant"
)

// Options say what to calibrate and how. Zero values take the defaults
// given.
type Options struct {
	// Paths are the inputs, read in order: .npy files (any shape, C
	// order; the tensor is named after the file), .safetensors files
	// (every float tensor) and .hist.json files (Report.WriteHistograms).
	Paths []string
	// Methods are the calibrators, by quant.CalibratorNames name, in the
	// order of the results; none: "entropy".
	Methods []string
	// Bits of the signed symmetric scheme the scale is for: 8 (default)
	// or 4.
	Bits int
	// Percentile of |x| for "percentile", in (0, 100]; 0: 99.99.
	Percentile float64
	// Bins of a tensor's histogram on its first batch (later batches add
	// bins of the same width); 0: quant.DefaultBins.
	Bins int
	// Tensor, when not empty, is the only tensor calibrated: the others
	// of safetensors and .hist.json files are skipped, and a file of those
	// kinds without it is an error.
	Tensor string
	// TRTNames refuses tensor names that a TensorRT calibration cache
	// cannot hold (see TRTNameError): before any file is read where the
	// names are known in advance (Tensor, .npy file names, safetensors
	// headers), otherwise as each .hist.json file is read.
	TRTNames bool

	// Backend bins the samples; it is required. Samples larger than half
	// its free memory go in chunks.
	Backend backend.Backend
	// Progress, when not nil, is called by the O(bins²) threshold searches
	// (entropy, mse) with the work done of the total and the search's
	// name ("entropy threshold of conv1.out"), from the goroutine that
	// called Run: first with done = 0, last with done = total, a search at
	// a time. Other methods do not call it.
	Progress func(done, total int, what string)
	// Warn, when not nil, receives the warnings of the run, one sentence
	// each (a tensor whose float64 samples overflowed float32).
	Warn func(msg string)
}

// Report is the outcome of Run.
type Report struct {
	Methods []string `json:"methods"` // the calibrators, in the order of each tensor's results
	Bits    int      `json:"bits"`
	Tensors []Tensor `json:"tensors"` // sorted by name
	// Results holds one row per tensor and method: the tensors in the
	// order of Tensors, each with its methods in the order of Methods.
	Results []Result `json:"results"`
}

// Tensor is one activation: its merged batches.
type Tensor struct {
	Name  string   `json:"name"`
	Files []string `json:"files"` // one entry per batch read
	// Values counts the finite samples, NonFinite the NaN and ±Inf left
	// out, Float64Overflow those of NonFinite that were finite float64
	// samples beyond float32's range.
	Values          int64            `json:"values"`
	NonFinite       int64            `json:"non_finite"`
	Float64Overflow int64            `json:"float64_overflow,omitempty"`
	Histogram       *quant.Histogram `json:"-"`
}

// Result is one tensor's threshold by one method: a row of `quantkit
// calibrate --json`.
type Result struct {
	Tensor    string   `json:"tensor"`
	Method    string   `json:"method"`
	Amax      float32  `json:"amax"`
	Scale     float32  `json:"scale"` // amax/qmax of the scheme; 1 when amax is 0
	Bits      int      `json:"bits"`
	Values    int64    `json:"values"`
	NonFinite int64    `json:"non_finite,omitempty"`
	Files     []string `json:"files"`
}

// badInput marks an error as being about Run's input or options
// (inputerr.ErrInput), which running again on another device would not
// change.
func badInput(err error) error { return inputerr.Mark(err) }

// OptionError is an error in the field of Options named Option, in lower
// case ("method", "bits", "percentile", "bins"), so that a
// command line can name its flag instead. It matches inputerr.ErrInput.
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string        { return e.Option + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error        { return e.Err }
func (e *OptionError) Is(target error) bool { return target == inputerr.ErrInput }

// Run reads the samples of opt.Paths into one histogram per tensor and
// calibrates each with every method. The options are checked before any
// file is read. It stops, returning ctx's error, when ctx is cancelled
// between files, chunks of samples and threshold searches.
func Run(ctx context.Context, opt Options) (*Report, error) {
	if opt.Backend == nil {
		return nil, errors.New("calibrate: no backend")
	}
	// A search reports to the progress of the tensor and method at hand.
	var search string
	var progress func(done, total int)
	if opt.Progress != nil {
		progress = func(done, total int) { opt.Progress(done, total, search) }
	}
	bits := cmp.Or(opt.Bits, 8)
	scheme := quant.Scheme{Bits: bits, Signed: true, Symmetric: true}
	if bits != 8 && bits != 4 { // what the calibrators take
		return nil, &OptionError{"bits", fmt.Errorf("%d not supported (8 or 4)", bits)}
	}
	if err := scheme.Validate(); err != nil {
		return nil, &OptionError{"bits", err}
	}
	if p := opt.Percentile; p != 0 && !(p > 0 && p <= 100) {
		return nil, &OptionError{"percentile", fmt.Errorf("%g outside (0, 100]", p)}
	}
	methods := opt.Methods
	if len(methods) == 0 {
		methods = []string{"entropy"}
	}
	calibs := make([]quant.Calibrator, len(methods))
	for i, m := range methods {
		cal, err := quant.NewCalibrator(m, quant.CalibOptions{Bits: bits, Percentile: opt.Percentile, Progress: progress})
		if err != nil {
			return nil, &OptionError{"method", err}
		}
		calibs[i] = cal
	}
	if opt.Bins < 0 {
		return nil, &OptionError{"bins", fmt.Errorf("%d is negative", opt.Bins)}
	}
	if opt.TRTNames {
		if opt.Tensor != "" {
			if err := TRTNameError(opt.Tensor); err != nil {
				return nil, err
			}
		}
		if err := checkTRTNames(opt.Paths, opt.Tensor); err != nil {
			return nil, err
		}
	}

	r := &reader{opt: opt, acts: map[string]*Tensor{}}
	for _, path := range opt.Paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := r.read(ctx, path); err != nil {
			return nil, err
		}
	}
	if len(r.acts) == 0 {
		return nil, badInput(errors.New("no tensors in the input files"))
	}

	rep := &Report{Methods: slices.Clone(methods), Bits: bits}
	names := make([]string, 0, len(r.acts))
	for n := range r.acts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := r.acts[n]
		a.Values, a.NonFinite = a.Histogram.Total(), a.Histogram.NonFinite()
		rep.Tensors = append(rep.Tensors, *a)
		if a.Float64Overflow > 0 && opt.Warn != nil {
			opt.Warn(fmt.Sprintf("tensor %q (%s): %d finite float64 values are beyond float32's range and became ±Inf; they are left out as non-finite",
				n, strings.Join(a.Files, ", "), a.Float64Overflow))
		}
	}
	for _, a := range rep.Tensors {
		if a.Values == 0 {
			return nil, badInput(fmt.Errorf("%s: tensor %q has no finite values", strings.Join(a.Files, ", "), a.Name))
		}
		for _, cal := range calibs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			search = cal.Name() + " threshold of " + a.Name
			amax, err := cal.Amax(a.Histogram)
			if err != nil {
				return nil, fmt.Errorf("%s: tensor %q: %s: %w", strings.Join(a.Files, ", "), a.Name, cal.Name(), err)
			}
			scale, _ := scheme.ScaleZeroPoint(-amax, amax)
			rep.Results = append(rep.Results, Result{Tensor: a.Name, Method: cal.Name(), Amax: amax, Scale: scale, Bits: bits,
				Values: a.Values, NonFinite: a.NonFinite, Files: a.Files})
		}
	}
	return rep, nil
}
