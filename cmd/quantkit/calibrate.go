package main

import (
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

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

var (
	calibMethodFlag     = &cli.StringFlag{Name: "method", Value: "entropy", Usage: "calibrator: max, percentile, entropy, mse, or all (the four side by side)"}
	calibPercentileFlag = &cli.Float64Flag{Name: "percentile", Value: 99.99, Usage: "percentile of |x| for --method percentile"}
	calibBitsFlag       = &cli.IntFlag{Name: "bits", Value: 8, Usage: "bits of the signed symmetric scheme the scale is for: 8 or 4"}
	calibBinsFlag       = &cli.IntFlag{Name: "bins", Value: quant.DefaultBins, Usage: "histogram bins for the first batch of each tensor (later batches add bins of the same width)"}
	calibTensorFlag     = &cli.StringFlag{Name: "tensor", Usage: "in safetensors files, calibrate only the tensor of this name"}
	calibJSONFlag       = &cli.BoolFlag{Name: "json", Usage: "print a JSON array of {tensor, method, amax, scale, ...}"}
	calibTRTCacheFlag   = &cli.StringFlag{Name: "trt-cache", Usage: "also write a TensorRT calibration cache to `FILE` (the entropy scales with --method all)"}
	calibTRTVersionFlag = &cli.StringFlag{Name: "trt-version", Value: "8601", Usage: "TensorRT version in the cache's first line, TRT-<version>-EntropyCalibration2"}
	calibSaveHistFlag   = &cli.StringFlag{Name: "save-histograms", Usage: "write the merged |x| histograms to `FILE` (JSON) for merging with other machines' later"}
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
		"spread over machines.\n\n" +
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
}

func runCalibrate(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("calibrate: no input files (give .npy, .safetensors or .hist.json files)")
	}
	methods := []string{c.String(calibMethodFlag.Name)}
	if methods[0] == "all" {
		methods = quant.CalibratorNames()
	}
	bits := c.Int(calibBitsFlag.Name)
	opt := quant.CalibOptions{Bits: bits, Percentile: c.Float64(calibPercentileFlag.Name)}
	calibs := make([]quant.Calibrator, len(methods))
	for i, m := range methods {
		cal, err := quant.NewCalibrator(m, opt)
		if err != nil {
			return fmt.Errorf("calibrate: --method: %w", err)
		}
		calibs[i] = cal
	}
	scheme := quant.Scheme{Bits: bits, Signed: true, Symmetric: true}
	if err := scheme.Validate(); err != nil {
		return fmt.Errorf("calibrate: --bits: %w", err)
	}
	bins := c.Int(calibBinsFlag.Name)
	if bins < 1 {
		return fmt.Errorf("calibrate: --bins %d must be positive", bins)
	}
	var acts map[string]*activation
	err := onDevice(c, func(b backend.Backend) error {
		acts = map[string]*activation{}
		get := func(name string) *activation {
			a := acts[name]
			if a == nil {
				a = &activation{name: name, hist: quant.NewHistogram(bins)}
				acts[name] = a
			}
			return a
		}
		for _, path := range c.Args().Slice() {
			if err := readSamples(b, path, c.String(calibTensorFlag.Name), get); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}

	names := make([]string, 0, len(acts))
	for n := range acts {
		names = append(names, n)
	}
	sort.Strings(names)
	var results []CalibResult
	for _, n := range names {
		a := acts[n]
		if a.hist.Total() == 0 {
			return fmt.Errorf("calibrate: %s: tensor %q has no finite values", strings.Join(a.files, ", "), n)
		}
		for _, cal := range calibs {
			amax, err := cal.Amax(a.hist)
			if err != nil {
				return fmt.Errorf("calibrate: %s: tensor %q: %s: %w", strings.Join(a.files, ", "), n, cal.Name(), err)
			}
			scale, _ := scheme.ScaleZeroPoint(-amax, amax)
			results = append(results, CalibResult{Tensor: n, Method: cal.Name(), Amax: amax, Scale: scale, Bits: bits,
				Values: a.hist.Total(), NonFinite: a.hist.NonFinite(), Files: a.files})
		}
	}

	if path := c.String(calibSaveHistFlag.Name); path != "" {
		if err := saveHistograms(path, names, acts); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
	}
	if path := c.String(calibTRTCacheFlag.Name); path != "" {
		method := methods[0]
		if len(methods) > 1 {
			method = "entropy"
		}
		if err := writeTRTCache(path, c.String(calibTRTVersionFlag.Name), method, results); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
	}
	if c.Bool(calibJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	writeCalibTable(c.App.Writer, methods, results)
	return nil
}

// readSamples feeds the tensors of one file into their histograms, on b.
// Errors about the file are marked errBadInput; errors of the device are
// not, so that --device auto can finish the job on the CPU.
func readSamples(b backend.Backend, path, only string, get func(string) *activation) error {
	switch {
	case strings.HasSuffix(path, ".hist.json"):
		hs, err := loadHistograms(path)
		if err != nil {
			return badInput(err)
		}
		for _, name := range sortedKeys(hs) {
			if only != "" && name != only {
				continue
			}
			a := get(name)
			a.files = append(a.files, path)
			if err := a.hist.Merge(hs[name]); err != nil {
				return badInput(fmt.Errorf("%s: tensor %q: %w", path, name, err))
			}
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
		name := strings.TrimSuffix(filepath.Base(path), ".npy")
		a := get(name)
		a.files = append(a.files, path)
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
			a := get(t.Name)
			a.files = append(a.files, path)
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

func writeCalibTable(w io.Writer, methods []string, results []CalibResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(methods) == 1 {
		fmt.Fprintln(tw, "tensor\tvalues\tmethod\tamax\tscale")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.6g\t%.6g\n", r.Tensor, r.Values, r.Method, r.Amax, r.Scale)
		}
		tw.Flush()
		return
	}
	fmt.Fprintf(tw, "tensor\tvalues")
	for _, m := range methods {
		fmt.Fprintf(tw, "\t%s amax (scale)", m)
	}
	fmt.Fprintln(tw)
	for i := 0; i < len(results); i += len(methods) {
		fmt.Fprintf(tw, "%s\t%d", results[i].Tensor, results[i].Values)
		for _, r := range results[i : i+len(methods)] {
			fmt.Fprintf(tw, "\t%.6g (%.4g)", r.Amax, r.Scale)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// writeTRTCache writes a TensorRT calibration cache: a header line, then
// "name: hex" with the big-endian hex of the float32 scale's bits.
func writeTRTCache(path, version, method string, results []CalibResult) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "TRT-%s-EntropyCalibration2\n", version)
	for _, r := range results {
		if r.Method == method {
			fmt.Fprintf(&sb, "%s: %08x\n", r.Tensor, math.Float32bits(r.Scale))
		}
	}
	return atomicfile.WriteFile(path, []byte(sb.String()), 0o644)
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
	return atomicfile.WriteFile(path, append(data, '\n'), 0o644)
}

func loadHistograms(path string) (map[string]*quant.Histogram, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var hs map[string]*quant.Histogram
	if err := json.Unmarshal(data, &hs); err != nil {
		return nil, fmt.Errorf("%s: not a histogram file: %w", path, err)
	}
	return hs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
