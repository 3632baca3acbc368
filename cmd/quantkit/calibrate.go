package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/progress"
	"github.com/quantkit/quantkit/job/calibrate"
	"github.com/quantkit/quantkit/quant"
)

var (
	calibMethodFlag     = &cli.StringFlag{Name: "method", Value: "entropy", Usage: "calibrator: max, percentile, entropy, mse, or all (the four side by side)"}
	calibPercentileFlag = &cli.Float64Flag{Name: "percentile", Value: 99.99, Usage: "percentile of |x| for --method percentile (and all), in (0, 100]"}
	calibBitsFlag       = &cli.IntFlag{Name: "bits", Value: 8, Usage: "bits of the signed symmetric scheme the scale is for: 8 or 4"}
	calibBinsFlag       = &cli.IntFlag{Name: "bins", Value: quant.DefaultBins, Usage: "histogram bins of each tensor's first batch, which fills half to all of them " +
		fmt.Sprintf("(later batches add bins of the same width; at most %d)", quant.MaxBins)}
	calibTensorFlag     = &cli.StringFlag{Name: "tensor", Usage: "calibrate only the tensor of this name in .safetensors and .hist.json files (.npy files are read whatever their name)"}
	calibTRTCacheFlag   = &cli.StringFlag{Name: "trt-cache", Usage: "also write a TensorRT calibration cache to `FILE` (the entropy scales with --method all); tensor names may not be empty, hold ':' or control characters, or start or end with white space"}
	calibTRTVersionFlag = &cli.StringFlag{Name: "trt-version", Value: "8601", Usage: "TensorRT version in the first line of --trt-cache, TRT-<version>-EntropyCalibration2 (digits)"}
	calibSaveHistFlag   = &cli.StringFlag{Name: "save-histograms", Usage: "write the merged |x| histograms to `FILE`, which must end in .hist.json, for merging with other machines' later"}
)

var calibrateCommand = &cli.Command{
	Name:      "calibrate",
	Usage:     "compute activation ranges and scales from samples",
	ArgsUsage: "FILE...",
	Description: "Reads activation samples from .npy files (float16/32/64, int8-64, uint8-64 or bool,\n" +
		"as model/npy reads them; any shape, C order; the tensor is named after the file) and\n" +
		".safetensors files (every F64/F32/F16/BF16 tensor, or the one --tensor names), builds\n" +
		"a histogram of |x| per tensor, and prints the amax and the scale (amax/qmax of the\n" +
		"signed symmetric --bits scheme) that the chosen calibrator picks. Tensors of the same\n" +
		"name in several files are batches of one activation: their histograms merge exactly.\n" +
		"Files ending in .hist.json, written by --save-histograms, merge in the same way, so\n" +
		"calibration can be spread over machines. NaN and ±Inf are left out of the histograms\n" +
		"and counted (a non-finite column), and float64 values beyond float32's range, which\n" +
		"become ±Inf, are reported on stderr. The results are printed before the side outputs\n" +
		"(--json-out, --save-histograms, --trt-cache) are written, whose paths are checked\n" +
		"before any work.\n\n" +
		"Calibrators: max (largest |x|), percentile (of |x|), entropy (TensorRT's\n" +
		"KL-divergence threshold search), mse (least expected squared error).",
	Flags: []cli.Flag{calibMethodFlag, calibPercentileFlag, calibBitsFlag, calibBinsFlag, calibTensorFlag,
		deviceFlag, jsonFlag, jsonOutFlag, calibTRTCacheFlag, calibTRTVersionFlag, calibSaveHistFlag},
	Action: runCalibrate,
}

func runCalibrate(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("calibrate: no input files (give .npy, .safetensors or .hist.json files)")
	}
	opt, err := calibFlags(c)
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	opt.Paths = c.Args().Slice()
	for _, p := range opt.Paths {
		// --json took a FILE in the past; it is a switch now.
		if strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, calibrate.HistogramSuffix) {
			return badInput(fmt.Errorf("calibrate: %s is not an input (.npy, .safetensors or .hist.json); "+
				"to write the JSON report to a file, use --json-out %s", p, p))
		}
	}
	opt.Warn = func(msg string) { fmt.Fprintf(c.App.ErrWriter, "quantkit: calibrate: warning: %s\n", msg) }
	var bars *progress.Steps
	if !c.Bool(jsonFlag.Name) {
		// A bar for each threshold search that runs a second (most take
		// milliseconds); its units are the search's own.
		bars = progress.NewSteps(progress.Options{Unit: progress.Percent, Delay: time.Second})
		opt.Progress = bars.Update
	}
	var rep *calibrate.Report
	err = onDevice(c, func(b backend.Backend) error {
		opt.Backend = b
		var err error
		rep, err = calibrate.Run(c.Context, opt)
		if errors.Is(err, inputerr.ErrInput) {
			return badInput(err) // not the device's fault: no retry on the CPU
		}
		return err
	})
	bars.Finish()
	if oe, ok := errors.AsType[*calibrate.OptionError](err); ok {
		return badInput(fmt.Errorf("calibrate: --%s: %w", oe.Option, oe.Err))
	}
	if _, ok := errors.AsType[*calibrate.NameError](err); ok {
		return fmt.Errorf("calibrate: --%s: %w", calibTRTCacheFlag.Name, err)
	}
	if err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}

	// The results first, so that a side output that fails loses nothing.
	// The JSON report is the array of results: {tensor, method, amax,
	// scale, bits, values, non_finite, files}.
	if err := printReport(c, rep.Results, rep.WriteTable); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	if err := writeSideOutputs(jsonOut(c, rep.Results),
		sideOutput{flag: calibSaveHistFlag.Name, path: c.String(calibSaveHistFlag.Name), write: rep.WriteHistograms},
		sideOutput{flag: calibTRTCacheFlag.Name, path: c.String(calibTRTCacheFlag.Name), write: func(w io.Writer) error {
			return rep.WriteTRTCache(w, c.String(calibTRTVersionFlag.Name))
		}},
	); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	return nil
}

// calibFlags reads the flags into the options of the run and checks what
// only the command line can get wrong (the output paths, values the
// package would take for "the default"), so that a mistake costs no work;
// calibrate.Run checks the rest before it reads any file.
func calibFlags(c *cli.Context) (calibrate.Options, error) {
	opt := calibrate.Options{
		Methods:    []string{c.String(calibMethodFlag.Name)},
		Bits:       c.Int(calibBitsFlag.Name),
		Percentile: c.Float64(calibPercentileFlag.Name),
		Bins:       c.Int(calibBinsFlag.Name),
		Tensor:     c.String(calibTensorFlag.Name),
		TRTNames:   c.IsSet(calibTRTCacheFlag.Name),
	}
	if opt.Methods[0] == "all" {
		opt.Methods = quant.CalibratorNames()
	}
	// The flags' defaults are 99.99 and 2048, so 0 here was asked for;
	// the package would take it for "the default".
	if p := opt.Percentile; !(p > 0 && p <= 100) {
		return opt, badInput(fmt.Errorf("--percentile %g outside (0, 100]", p))
	}
	if opt.Bins < 1 {
		return opt, badInput(fmt.Errorf("--bins %d must be positive", opt.Bins))
	}
	if err := checkJSONOut(c); err != nil {
		return opt, err
	}
	named := map[string]string{} // cleaned path → flag
	for _, f := range []*cli.StringFlag{jsonOutFlag, calibSaveHistFlag, calibTRTCacheFlag} {
		if !c.IsSet(f.Name) {
			continue
		}
		path := c.String(f.Name)
		if err := checkOutputFile(f.Name, path, false); err != nil {
			return opt, err
		}
		if other, ok := named[filepath.Clean(path)]; ok {
			return opt, badInput(fmt.Errorf("--%s and --%s name the same file, %s", other, f.Name, path))
		}
		named[filepath.Clean(path)] = f.Name
	}
	if c.IsSet(calibSaveHistFlag.Name) {
		if err := calibrate.CheckHistogramPath(c.String(calibSaveHistFlag.Name)); err != nil {
			return opt, fmt.Errorf("--%s %w", calibSaveHistFlag.Name, err)
		}
	}
	if c.IsSet(calibTRTCacheFlag.Name) {
		if err := calibrate.CheckTRTVersion(c.String(calibTRTVersionFlag.Name)); err != nil {
			return opt, fmt.Errorf("--%s: %w", calibTRTVersionFlag.Name, err)
		}
	}
	return opt, nil
}
