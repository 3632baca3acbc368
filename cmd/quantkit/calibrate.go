package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

var (
	calibMethodFlag     = &cli.StringFlag{Name: "method", Value: "entropy", Usage: "calibrator: max, percentile, entropy, mse, or all (the four side by side)"}
	calibPercentileFlag = &cli.Float64Flag{Name: "percentile", Value: 99.99, Usage: "percentile of |x| for --method percentile, in (0, 100]"}
	calibBitsFlag       = &cli.IntFlag{Name: "bits", Value: 8, Usage: "bits of the signed symmetric scheme the scale is for: 8 or 4"}
	calibBinsFlag       = &cli.IntFlag{Name: "bins", Value: quant.DefaultBins, Usage: "histogram bins for the first batch of each tensor (later batches add bins of the same width)"}
	calibTensorFlag     = &cli.StringFlag{Name: "tensor", Usage: "calibrate only the tensor of this name (in safetensors and .hist.json files)"}
	calibJSONFlag       = &cli.BoolFlag{Name: "json", Usage: "print a JSON array of {tensor, method, amax, scale, ...}"}
	calibTRTCacheFlag   = &cli.StringFlag{Name: "trt-cache", Usage: "also write a TensorRT calibration cache to `FILE` (the entropy scales with --method all); tensor names may not hold ':' or control characters"}
	calibTRTVersionFlag = &cli.StringFlag{Name: "trt-version", Value: "8601", Usage: "TensorRT version in the cache's first line, TRT-<version>-EntropyCalibration2 (digits)"}
	calibSaveHistFlag   = &cli.StringFlag{Name: "save-histograms", Usage: "write the merged |x| histograms to `FILE`, which must end in .hist.json, for merging with other machines' later"}
)

var calibrateCommand = &cli.Command{
	Name:      "calibrate",
	Usage:     "compute activation ranges and scales from samples",
	ArgsUsage: "FILE...",
	Description: "Reads activation samples from .npy files (float16/32/64, any shape, C order; the\n" +
		"tensor is named after the file) and .safetensors files (every float tensor, or\n" +
		"the one --tensor names), builds a histogram of |x| per tensor, and prints the\n" +
		"amax and the scale (amax/qmax of the signed symmetric --bits scheme) that the\n" +
		"chosen calibrator picks. Tensors of the same name in several files are batches\n" +
		"of one activation: their histograms merge exactly. Files ending in .hist.json,\n" +
		"written by --save-histograms, merge in the same way, so calibration can be\n" +
		"spread over machines. NaN and ±Inf are left out of the histograms and counted\n" +
		"(a non-finite column), and float64 values beyond float32's range, which\n" +
		"become ±Inf, are reported on stderr.\n\n" +
		"Calibrators: max (largest |x|), percentile (of |x|), entropy (TensorRT's\n" +
		"KL-divergence threshold search), mse (least expected squared error).",
	Flags: []cli.Flag{calibMethodFlag, calibPercentileFlag, calibBitsFlag, calibBinsFlag, calibTensorFlag,
		deviceFlag, calibJSONFlag, calibTRTCacheFlag, calibTRTVersionFlag, calibSaveHistFlag},
	Action: runCalibrate,
}

// CalibResult is one row of `quantkit calibrate --json`.
type CalibResult struct {
	Tensor    string   `json:"tensor"`
	Method    string   `json:"method"`
	Amax      float32  `json:"amax"`
	Scale     float32  `json:"scale"`
	Bits      int      `json:"bits"`
	Values    int64    `json:"values"`
	NonFinite int64    `json:"non_finite,omitempty"`
	Files     []string `json:"files"`
}

// activation gathers the batches of one tensor.
type activation struct {
	name  string
	files []string
	hist  *quant.Histogram
	// overflow counts the finite float64 samples that became ±Inf in
	// float32 (and so count as non-finite).
	overflow int64
}

// calibJob is what the flags ask for, all checked before any work.
type calibJob struct {
	methods    []string
	calibs     []quant.Calibrator
	scheme     quant.Scheme
	bits, bins int
	only       string // --tensor
	trtCache   string // "" for none
	trtVersion string
	saveHist   string // "" for none
}

// writeCalibFile writes the side outputs; tests replace it to make one
// fail.
var writeCalibFile = atomicfile.WriteFile

func runCalibrate(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("calibrate: no input files (give .npy, .safetensors or .hist.json files)")
	}
	// A search reports to the bar of the tensor and method at hand.
	var progress func(done, total int)
	job, err := calibFlags(c, func(done, total int) {
		if progress != nil {
			progress(done, total)
		}
	})
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	paths := c.Args().Slice()
	if job.trtCache != "" {
		if err := checkTRTNames(paths, job.only); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
	}

	var acts map[string]*activation
	err = onDevice(c, func(b backend.Backend) error {
		acts = map[string]*activation{}
		get := func(path, name string) (*activation, error) {
			if job.trtCache != "" {
				if err := trtNameError(name); err != nil {
					return nil, badInput(fmt.Errorf("%s: %w", path, err))
				}
			}
			a := acts[name]
			if a == nil {
				a = &activation{name: name, hist: quant.NewHistogram(job.bins)}
				acts[name] = a
			}
			a.files = append(a.files, path)
			return a, nil
		}
		for _, path := range paths {
			if err := readSamples(b, path, job.only, get); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	if len(acts) == 0 {
		return badInput(errors.New("calibrate: no tensors in the input files"))
	}

	names := sortedKeys(acts)
	for _, n := range names {
		if a := acts[n]; a.overflow > 0 {
			fmt.Fprintf(c.App.ErrWriter, "quantkit: calibrate: warning: tensor %q (%s): %d finite float64 values are beyond float32's range and became ±Inf; they are left out as non-finite\n",
				n, strings.Join(a.files, ", "), a.overflow)
		}
	}
	showProgress := !c.Bool(calibJSONFlag.Name)
	var results []CalibResult
	for _, n := range names {
		a := acts[n]
		if a.hist.Total() == 0 {
			return fmt.Errorf("calibrate: %s: tensor %q has no finite values", strings.Join(a.files, ", "), n)
		}
		for _, cal := range job.calibs {
			var clearBar func()
			progress, clearBar = searchProgress(showProgress, fmt.Sprintf("%s threshold of %s", cal.Name(), n))
			amax, err := cal.Amax(a.hist)
			clearBar()
			progress = nil
			if err != nil {
				return fmt.Errorf("calibrate: %s: tensor %q: %s: %w", strings.Join(a.files, ", "), n, cal.Name(), err)
			}
			scale, _ := job.scheme.ScaleZeroPoint(-amax, amax)
			results = append(results, CalibResult{Tensor: n, Method: cal.Name(), Amax: amax, Scale: scale, Bits: job.bits,
				Values: a.hist.Total(), NonFinite: a.hist.NonFinite(), Files: a.files})
		}
	}

	// The results first, so that a side output that fails loses nothing.
	if c.Bool(calibJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
	} else {
		writeCalibTable(c.App.Writer, job.methods, results)
	}
	var errs []error
	if job.saveHist != "" {
		if err := saveHistograms(job.saveHist, names, acts); err != nil {
			errs = append(errs, fmt.Errorf("calibrate: --save-histograms: %w", err))
		}
	}
	if job.trtCache != "" {
		method := job.methods[0]
		if len(job.methods) > 1 {
			method = "entropy"
		}
		if err := writeTRTCache(job.trtCache, job.trtVersion, method, results); err != nil {
			errs = append(errs, fmt.Errorf("calibrate: --trt-cache: %w", err))
		}
	}
	return errors.Join(errs...)
}

// calibFlags reads and checks the flags, the output paths included, so
// that a mistake in any costs no work. progress is passed to the
// calibrators.
func calibFlags(c *cli.Context, progress func(done, total int)) (*calibJob, error) {
	job := &calibJob{
		methods:    []string{c.String(calibMethodFlag.Name)},
		bits:       c.Int(calibBitsFlag.Name),
		bins:       c.Int(calibBinsFlag.Name),
		only:       c.String(calibTensorFlag.Name),
		trtCache:   c.String(calibTRTCacheFlag.Name),
		trtVersion: c.String(calibTRTVersionFlag.Name),
		saveHist:   c.String(calibSaveHistFlag.Name),
	}
	if job.methods[0] == "all" {
		job.methods = quant.CalibratorNames()
	}
	// The flag's default is 99.99, so 0 here was asked for; quant would
	// take it for "the default".
	p := c.Float64(calibPercentileFlag.Name)
	if !(p > 0 && p <= 100) {
		return nil, fmt.Errorf("--percentile %g outside (0, 100]", p)
	}
	opt := quant.CalibOptions{Bits: job.bits, Percentile: p, Progress: progress}
	for _, m := range job.methods {
		cal, err := quant.NewCalibrator(m, opt)
		if err != nil {
			return nil, fmt.Errorf("--method: %w", err)
		}
		job.calibs = append(job.calibs, cal)
	}
	job.scheme = quant.Scheme{Bits: job.bits, Signed: true, Symmetric: true}
	if err := job.scheme.Validate(); err != nil {
		return nil, fmt.Errorf("--bits: %w", err)
	}
	if job.bins < 1 {
		return nil, fmt.Errorf("--bins %d must be positive", job.bins)
	}
	if c.IsSet(calibTRTCacheFlag.Name) {
		if err := checkOutputFile(calibTRTCacheFlag.Name, job.trtCache, false); err != nil {
			return nil, err
		}
		if v := job.trtVersion; v == "" || strings.Trim(v, "0123456789") != "" {
			return nil, badInput(fmt.Errorf("--trt-version %q: want digits, as TensorRT writes them (8601 for 8.6.1)", v))
		}
		if job.only != "" {
			if err := trtNameError(job.only); err != nil {
				return nil, badInput(fmt.Errorf("--tensor: %w", err))
			}
		}
	}
	if c.IsSet(calibSaveHistFlag.Name) {
		if err := checkOutputFile(calibSaveHistFlag.Name, job.saveHist, false); err != nil {
			return nil, err
		}
		// calibrate takes a file for histograms by this suffix only.
		if !strings.HasSuffix(job.saveHist, ".hist.json") {
			return nil, badInput(fmt.Errorf("--save-histograms %s: want a file ending in .hist.json, the name calibrate reads histograms from", job.saveHist))
		}
	}
	if job.trtCache != "" && job.saveHist != "" && filepath.Clean(job.trtCache) == filepath.Clean(job.saveHist) {
		return nil, badInput(fmt.Errorf("--trt-cache and --save-histograms name the same file, %s", job.trtCache))
	}
	return job, nil
}

// trtNameError says why a TensorRT calibration cache cannot hold a tensor
// name, or returns nil. The cache is a text file of "name: hex" lines, and
// its readers split a line at its first ':' (onnxruntime), or at ": ",
// after trimming white space (Python scripts): a name with a newline would
// add lines, one with ':' would be cut short, and one with white space at
// either end would lose it.
func trtNameError(name string) error {
	why := ""
	switch {
	case name == "":
		why = "is empty"
	case !utf8.ValidString(name):
		why = "is not valid UTF-8"
	case strings.ContainsRune(name, ':'):
		why = "holds ':', where cache readers split the line"
	case strings.ContainsFunc(name, unicode.IsControl):
		why = "holds a control character (a newline would start a line of its own)"
	case strings.TrimSpace(name) != name:
		why = "starts or ends with white space, which cache readers trim"
	default:
		return nil
	}
	return fmt.Errorf("tensor %q: the name %s, so --trt-cache, a file of \"name: scale\" lines, cannot hold it", name, why)
}

// checkTRTNames checks, before any file is read, the names of the tensors
// that the .npy and .safetensors files among paths hold: a file's name, or
// a safetensors header. Files that cannot be opened are left to the read,
// which reports them; .hist.json files are checked as they are read.
func checkTRTNames(paths []string, only string) error {
	for _, path := range paths {
		switch {
		case strings.HasSuffix(path, ".hist.json"):
		case strings.HasSuffix(path, ".npy"):
			if err := trtNameError(npyTensorName(path)); err != nil {
				return badInput(fmt.Errorf("%s: %w", path, err))
			}
		case strings.HasSuffix(path, ".safetensors"):
			f, err := safetensors.Open(path)
			if err != nil {
				continue
			}
			for _, t := range f.Tensors() {
				if (only == "" || t.Name == only) && isFloatDType(t.DType) {
					if err := trtNameError(t.Name); err != nil {
						f.Close()
						return badInput(fmt.Errorf("%s: %w", path, err))
					}
				}
			}
			f.Close()
		}
	}
	return nil
}

// searchProgress returns the progress callback of one threshold search,
// which draws a bar on stderr when enabled and stderr is a terminal, once
// the search has run a second (most take milliseconds) and then at most
// ten times a second; and a function that clears the bar.
func searchProgress(enabled bool, what string) (func(done, total int), func()) {
	bar, clearBar := progressLine(enabled)
	if bar == nil {
		return nil, clearBar
	}
	start := time.Now()
	var last time.Time
	drawn := false
	return func(done, total int) {
			now := time.Now()
			if now.Sub(start) < time.Second || now.Sub(last) < 100*time.Millisecond {
				return
			}
			last, drawn = now, true
			bar(int(int64(done)*100/int64(max(total, 1))), 100, what) // in percent: the units are the search's own
		}, func() {
			if drawn {
				clearBar()
			}
		}
}

func npyTensorName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".npy") }

// readSamples feeds the tensors of one file into their histograms, on b;
// get returns the activation of a tensor, or an error when its name is
// unusable. Errors about the file are marked errBadInput; errors of the
// device are not, so that --device auto can finish the job on the CPU.
func readSamples(b backend.Backend, path, only string, get func(path, name string) (*activation, error)) error {
	switch {
	case strings.HasSuffix(path, ".hist.json"):
		names, hs, err := loadHistograms(path)
		if err != nil {
			return badInput(err)
		}
		found := false
		for _, name := range names {
			if only != "" && name != only {
				continue
			}
			found = true
			a, err := get(path, name)
			if err != nil {
				return err
			}
			if err := a.hist.Merge(hs[name]); err != nil {
				return badInput(fmt.Errorf("%s: tensor %q: %w", path, name, err))
			}
		}
		if !found {
			return badInput(fmt.Errorf("%s: no tensor named %q", path, only))
		}
		return nil
	case strings.HasSuffix(path, ".npy"):
		arr, err := npy.ReadFile(path)
		if err != nil {
			return badInput(err)
		}
		x, err := arr.Float32()
		if err != nil {
			return badInput(fmt.Errorf("%s: %w", path, err))
		}
		a, err := get(path, npyTensorName(path))
		if err != nil {
			return err
		}
		if order, ok := npyFloat64Order(arr.DType); ok {
			a.overflow += float64Overflows(arr.Data, order, x)
		}
		if err := addSamples(b, a.hist, x); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	case strings.HasSuffix(path, ".safetensors"):
		f, err := safetensors.Open(path)
		if err != nil {
			return badInput(err)
		}
		defer f.Close()
		found := false
		for _, t := range f.Tensors() {
			if only != "" && t.Name != only {
				continue
			}
			if !isFloatDType(t.DType) {
				if only != "" {
					return badInput(fmt.Errorf("%s: tensor %q is %s, not a float tensor", path, t.Name, t.DType))
				}
				continue
			}
			found = true
			x, err := f.Float32(t.Name)
			if err != nil {
				return badInput(err)
			}
			a, err := get(path, t.Name)
			if err != nil {
				return err
			}
			if t.DType == "F64" {
				raw, err := f.Bytes(t.Name)
				if err != nil {
					return badInput(err)
				}
				a.overflow += float64Overflows(raw, binary.LittleEndian, x)
			}
			if err := addSamples(b, a.hist, x); err != nil {
				return fmt.Errorf("%s: tensor %q: %w", path, t.Name, err)
			}
		}
		if !found {
			if only != "" {
				return badInput(fmt.Errorf("%s: no tensor named %q", path, only))
			}
			return badInput(fmt.Errorf("%s: no float tensors", path))
		}
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return badInput(err)
	}
	return badInput(fmt.Errorf("%s: unknown format (want .npy, .safetensors or .hist.json)", path))
}

// npyFloat64Order returns the byte order of a float64 .npy dtype such as
// "<f8", and false for other dtypes.
func npyFloat64Order(dtype string) (binary.ByteOrder, bool) {
	switch dtype {
	case "<f8":
		return binary.LittleEndian, true
	case ">f8":
		return binary.BigEndian, true
	case "=f8", "f8":
		return binary.NativeEndian, true
	}
	return nil, false
}

// float64Overflows counts the finite float64 values of raw (in order)
// that are ±Inf in x, their conversion to float32:
//
//	for i := range x { if x[i] is ±Inf && raw[i] is finite { n++ } }
func float64Overflows(raw []byte, order binary.ByteOrder, x []float32) int64 {
	var n int64
	for i, v := range x {
		if math.IsInf(float64(v), 0) && 8*i+8 <= len(raw) {
			if d := math.Float64frombits(order.Uint64(raw[8*i:])); !math.IsInf(d, 0) && !math.IsNaN(d) {
				n++
			}
		}
	}
	return n
}

func isFloatDType(dt string) bool {
	switch dt {
	case "F64", "F32", "F16", "BF16":
		return true
	}
	return false
}

// addSamples bins x on the backend: its abs-max first, so the histogram
// can grow, then its counts straight into the histogram's bins. Samples
// larger than the device's free memory go in chunks, each one batch.
func addSamples(b backend.Backend, h *quant.Histogram, x []float32) error {
	chunk := backend.ChunkLen(b, len(x), 4)
	for len(x) > 0 {
		n := min(chunk, len(x))
		if err := addChunk(b, h, x[:n]); err != nil {
			return err
		}
		x = x[n:]
	}
	return nil
}

func addChunk(b backend.Backend, h *quant.Histogram, x []float32) error {
	buf, err := b.Alloc(backend.F32, len(x))
	if err != nil {
		return err
	}
	defer b.Free(buf)
	if err := b.Upload(buf, x); err != nil {
		return err
	}
	amax, err := b.AbsMax(buf)
	if err != nil {
		return err
	}
	return h.AddWith(amax, func(width float32, counts []int64) (int64, error) {
		return b.HistogramAbs(buf, width, counts)
	})
}

// writeCalibTable prints the results, one row per tensor; a non-finite
// column, the NaN and ±Inf values left out, shows when there were any.
func writeCalibTable(w io.Writer, methods []string, results []CalibResult) {
	nonFinite := false
	for _, r := range results {
		nonFinite = nonFinite || r.NonFinite > 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "tensor\tvalues"
	if nonFinite {
		head += "\tnon-finite"
	}
	row := func(r CalibResult) {
		fmt.Fprintf(tw, "%s\t%d", r.Tensor, r.Values)
		if nonFinite {
			fmt.Fprintf(tw, "\t%d", r.NonFinite)
		}
	}
	if len(methods) == 1 {
		fmt.Fprintln(tw, head+"\tmethod\tamax\tscale")
		for _, r := range results {
			row(r)
			fmt.Fprintf(tw, "\t%s\t%.6g\t%.6g\n", r.Method, r.Amax, r.Scale)
		}
		tw.Flush()
		return
	}
	fmt.Fprint(tw, head)
	for _, m := range methods {
		fmt.Fprintf(tw, "\t%s amax (scale)", m)
	}
	fmt.Fprintln(tw)
	for i := 0; i < len(results); i += len(methods) {
		row(results[i])
		for _, r := range results[i : i+len(methods)] {
			fmt.Fprintf(tw, "\t%.6g (%.4g)", r.Amax, r.Scale)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// writeTRTCache writes a TensorRT calibration cache: a header line, then
// "name: hex" with the big-endian hex of the float32 scale's bits. Names
// were checked as the tensors were read; they are checked again here, as
// nothing else stands between a name and a corrupt cache.
func writeTRTCache(path, version, method string, results []CalibResult) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "TRT-%s-EntropyCalibration2\n", version)
	for _, r := range results {
		if r.Method == method {
			if err := trtNameError(r.Tensor); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Fprintf(&sb, "%s: %08x\n", r.Tensor, math.Float32bits(r.Scale))
		}
	}
	return writeCalibFile(path, []byte(sb.String()), 0o666)
}

func saveHistograms(path string, names []string, acts map[string]*activation) error {
	hs := make(map[string]*quant.Histogram, len(names))
	for _, n := range names {
		hs[n] = acts[n].hist
	}
	data, err := json.MarshalIndent(hs, "", " ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeCalibFile(path, append(data, '\n'), 0o666)
}

// loadHistograms reads a .hist.json file (quant.ReadHistograms); errors
// name the file.
func loadHistograms(path string) ([]string, map[string]*quant.Histogram, error) {
	f, _, err := format.Open(path) // a named pipe is refused, not waited on
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	names, hs, err := quant.ReadHistograms(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return names, hs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
