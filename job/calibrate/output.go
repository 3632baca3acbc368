package calibrate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// WriteTable prints the results, one row per tensor: with one method,
// its amax and scale in columns of their own; with several, "amax
// (scale)" per method. A non-finite column, the NaN and ±Inf values left
// out, shows when there were any.
func (r *Report) WriteTable(w io.Writer) error {
	nonFinite := false
	for _, res := range r.Results {
		nonFinite = nonFinite || res.NonFinite > 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "tensor\tvalues"
	if nonFinite {
		head += "\tnon-finite"
	}
	row := func(res Result) {
		fmt.Fprintf(tw, "%s\t%d", res.Tensor, res.Values)
		if nonFinite {
			fmt.Fprintf(tw, "\t%d", res.NonFinite)
		}
	}
	if len(r.Methods) == 1 {
		fmt.Fprintln(tw, head+"\tmethod\tamax\tscale")
		for _, res := range r.Results {
			row(res)
			fmt.Fprintf(tw, "\t%s\t%.6g\t%.6g\n", res.Method, res.Amax, res.Scale)
		}
		return tw.Flush()
	}
	fmt.Fprint(tw, head)
	for _, m := range r.Methods {
		fmt.Fprintf(tw, "\t%s amax (scale)", m)
	}
	fmt.Fprintln(tw)
	for i := 0; i+len(r.Methods) <= len(r.Results); i += len(r.Methods) {
		row(r.Results[i])
		for _, res := range r.Results[i : i+len(r.Methods)] {
			fmt.Fprintf(tw, "\t%.6g (%.4g)", res.Amax, res.Scale)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// WriteHistograms writes the merged |x| histograms of the tensors as one
// JSON object, name to histogram (quant.Histogram's JSON form), which Run
// reads back from a file whose name ends in HistogramSuffix.
func (r *Report) WriteHistograms(w io.Writer) error {
	hs := make(map[string]*quant.Histogram, len(r.Tensors))
	for _, t := range r.Tensors {
		hs[t.Name] = t.Histogram
	}
	data, err := json.MarshalIndent(hs, "", " ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// TRTMethod is the method whose scales WriteTRTCache writes: the report's
// one method, or "entropy", TensorRT's own, when it has several.
func (r *Report) TRTMethod() string {
	if len(r.Methods) == 1 {
		return r.Methods[0]
	}
	return "entropy"
}

// WriteTRTCache writes a TensorRT calibration cache of the scales of
// TRTMethod: the line "TRT-<version>-EntropyCalibration2", then "name: hex"
// per tensor, hex being the big-endian hex digits of the float32 scale's
// bits. The version is TensorRT's in digits (8601 for 8.6.1). Tensor names
// are checked here too (TRTNameError), as nothing else stands between a
// name and a corrupt cache; nothing is written when one is refused.
func (r *Report) WriteTRTCache(w io.Writer, version string) error {
	if err := CheckTRTVersion(version); err != nil {
		return err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "TRT-%s-EntropyCalibration2\n", version)
	method := r.TRTMethod()
	for _, res := range r.Results {
		if res.Method == method {
			if err := TRTNameError(res.Tensor); err != nil {
				return err
			}
			fmt.Fprintf(&sb, "%s: %08x\n", res.Tensor, math.Float32bits(res.Scale))
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// CheckHistogramPath says why Run would not read path back as saved
// histograms (its name must end in HistogramSuffix), or returns nil: a
// caller checks it before writing WriteHistograms there.
func CheckHistogramPath(path string) error {
	if !strings.HasSuffix(path, HistogramSuffix) {
		return badInput(fmt.Errorf("%s: want a file ending in %s, the name calibrate reads histograms from", path, HistogramSuffix))
	}
	return nil
}

// CheckTRTVersion says why version cannot be the version in a TensorRT
// calibration cache's first line, or returns nil: it must be digits, as
// TensorRT writes it.
func CheckTRTVersion(version string) error {
	if version == "" || strings.Trim(version, "0123456789") != "" {
		return badInput(fmt.Errorf("TensorRT version %q: want digits, as TensorRT writes them (8601 for 8.6.1)", version))
	}
	return nil
}

// TRTNameError says why a TensorRT calibration cache cannot hold a tensor
// name, as a *NameError, or returns nil. The cache is a text file of
// "name: hex" lines, and its readers split a line at its first ':'
// (onnxruntime), or at ": ", after trimming white space (Python scripts): a
// name with a newline would add lines, one with ':' would be cut short, and
// one with white space at either end would lose it.
func TRTNameError(name string) error {
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
	return &NameError{Name: name, Why: why}
}

// NameError is a tensor name that a TensorRT calibration cache cannot
// hold. It matches inputerr.ErrInput.
type NameError struct {
	Name string
	Why  string // "holds ':', where cache readers split the line"
}

func (e *NameError) Error() string {
	return fmt.Sprintf("tensor %q: the name %s, so a TensorRT calibration cache, a file of \"name: scale\" lines, cannot hold it", e.Name, e.Why)
}

func (e *NameError) Is(target error) bool { return target == inputerr.ErrInput }

// checkTRTNames checks, before any file is read, the names of the tensors
// that the .npy and .safetensors files among paths hold: a file's name, or
// a safetensors header. Files that cannot be opened are left to the read,
// which reports them; .hist.json files are checked as they are read.
func checkTRTNames(paths []string, only string) error {
	for _, path := range paths {
		switch {
		case strings.HasSuffix(path, HistogramSuffix):
		case strings.HasSuffix(path, ".npy"):
			if err := TRTNameError(npyTensorName(path)); err != nil {
				return badInput(fmt.Errorf("%s: %w", path, err))
			}
		case strings.HasSuffix(path, ".safetensors"):
			f, err := safetensors.Open(path)
			if err != nil {
				continue
			}
			for _, t := range f.Tensors() {
				if (only == "" || t.Name == only) && plan.IsFloatDType(t.DType) {
					if err := TRTNameError(t.Name); err != nil {
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
