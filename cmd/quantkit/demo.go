package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/internal/progress"
	"github.com/quantkit/quantkit/job/experiment"
	"github.com/quantkit/quantkit/nn/onnxnet"
)

var (
	demoModelFlag     = &cli.StringFlag{Name: "model", Category: "Model and data", Usage: "ONNX `FILE` of a CNN/MLP image classifier (default: the built-in MNIST CNN of the ONNX model zoo)"}
	demoDataFlag      = &cli.StringFlag{Name: "data", Category: "Model and data", Value: "mnist", Usage: "labelled images: mnist, fashion-mnist, or a directory of idx files"}
	demoCalibFlag     = &cli.IntFlag{Name: "calib", Category: "Quantization", Value: 512, Usage: "calibration images, a seeded random subset of the training images not held out"}
	demoEpochsFlag    = &cli.IntFlag{Name: "epochs", Category: "Quantization", Value: 1, Usage: "QAT epochs over --qat-images"}
	demoQATImagesFlag = &cli.IntFlag{Name: "qat-images", Category: "Quantization", Value: 12000, Usage: "QAT training images, a seeded random subset of the training images not held out (0: all of them)"}
	demoLRFlag        = &cli.Float64Flag{Name: "lr", Category: "Quantization", Value: 1e-4, Usage: "QAT learning rate (Adam)"}
	demoSeedFlag      = &cli.Uint64Flag{Name: "seed", Category: "Quantization", Value: 1, Usage: "seed of every random choice (held-out, calibration and QAT images, QAT order)"}
	demoQAT8Flag      = &cli.BoolFlag{Name: "qat8", Category: "Quantization", Usage: "also fine-tune with 8-bit weights (QAT int8)"}
	// demoTestFlag, demoValFlag and demoNonFiniteFlag serve qat too.
	demoTestFlag = &cli.IntFlag{Name: "test-images", Category: "Model and data", Usage: "evaluate on the first `N` test images", DefaultText: "all"}
	demoValFlag  = &cli.IntFlag{Name: "val-images", Category: "Model and data", Value: 5000, Usage: "training images held out " +
		"from calibration and QAT to choose the calibrator on (at most half of them)"}
	demoEnergyFlag    = &cli.BoolFlag{Name: "energy", Category: "Output", Value: true, Usage: "measure joules per image at batch 256 where the device has an energy counter (RAPL, NVML)"}
	demoPlotFlag      = &cli.StringFlag{Name: "plot", Category: "Output", Usage: "also draw accuracy against size and throughput to `FILE`.png or .svg"}
	demoNonFiniteFlag = &cli.BoolFlag{Name: "allow-nonfinite", Category: "Model and data", Usage: "load a --model whose weights hold NaN or ±Inf " +
		"as they are (they are not replaced, unlike quantize --allow-nonfinite; a warning names the tensors) instead of refusing it"}
)

var demoCommand = &cli.Command{
	Name:  "demo",
	Usage: "PTQ and QAT end to end on a real model: FP32 against INT8 and INT4, accuracy, size, speed, energy",
	Description: "Loads the model (the built-in MNIST CNN unless --model) and the data set, then\n" +
		"compares on the test set: FP32; post-training static quantization with int8\n" +
		"weights (per channel) and int8 activations (per tensor) for each calibrator\n" +
		"(max, percentile, entropy, mse) over --calib training images; PTQ with int4\n" +
		"weights, with the calibrator that does best on --val-images held-out training\n" +
		"images; and quantization-aware training with int4 weights (fake quantization,\n" +
		"straight-through estimator) started from the FP32 weights and that calibration.\n" +
		"Quantized rows run in integer arithmetic (int8 im2col and the backend's int8\n" +
		"GEMM with int32 accumulation and requantization between layers).\n\n" +
		"Columns: top-1 accuracy, its difference from FP32 in points, weight bytes\n" +
		"(packed codes, per-channel scales, float biases), median latency of one image\n" +
		"(batch 1), images per second at batch 256, and joules per image at batch 256\n" +
		"(gross, from the device's energy counter; n/a where there is none).\n" +
		"Progress goes to stderr, the table (or with --json the JSON report) to stdout.\n" +
		"Every choice is seeded (--seed).\n\n" +
		"A --model with NaN or infinite weights is refused, naming the tensors, unless\n" +
		"--allow-nonfinite. --json-out and --plot are checked before any work and written\n" +
		"after the report is printed; one that cannot be written makes the exit status non-zero.",
	Flags: []cli.Flag{demoModelFlag, demoNonFiniteFlag, demoDataFlag, demoTestFlag, demoValFlag, demoCalibFlag, demoEpochsFlag, demoQATImagesFlag,
		demoLRFlag, demoSeedFlag, demoQAT8Flag, deviceFlag, demoEnergyFlag, jsonFlag, jsonOutFlag, demoPlotFlag},
	Action: runDemo,
}

// demoTimings, when set (by tests), replaces the demo's timings.
var demoTimings *[2]bench.Timing

func runDemo(c *cli.Context) error {
	// The side outputs are checked before the minutes of work whose
	// results they hold.
	plotPath := c.String(demoPlotFlag.Name)
	if err := checkJSONOut(c); err != nil {
		return err
	}
	if c.IsSet(demoPlotFlag.Name) {
		if err := checkOutputFile(demoPlotFlag.Name, plotPath, false, ".png", ".svg"); err != nil {
			return err
		}
	}
	opt := experiment.Options{Common: expCommon(c, demoModelFlag, demoDataFlag), QAT8: c.Bool(demoQAT8Flag.Name),
		Energy: c.Bool(demoEnergyFlag.Name)}
	opt.QATImages, opt.Epochs = c.Int(demoQATImagesFlag.Name), c.Int(demoEpochsFlag.Name)
	if demoTimings != nil {
		opt.Latency, opt.Throughput = demoTimings[0], demoTimings[1]
	}
	steps := progress.NewSteps(progress.Options{}) // QAT's, a bar each
	opt.Progress = steps.Update
	var rep *experiment.Report
	err := onDevice(c, func(be backend.Backend) error {
		opt.Backend = be
		var err error
		rep, err = experiment.Run(c.Context, opt)
		return expJobErr(err)
	})
	steps.Finish()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := printReport(c, rep, rep.WriteTable); err != nil {
		return err
	}
	if err := writeSideOutputs(jsonOut(c, rep), sideOutput{flag: demoPlotFlag.Name, path: plotPath, save: rep.Plot}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// The helpers below serve demo, qat and eval, whose jobs are in package
// experiment.

// expCommon reads the options demo and qat share.
func expCommon(c *cli.Context, model, data *cli.StringFlag) experiment.Common {
	return experiment.Common{
		Model: c.String(model.Name), AllowNonFinite: c.Bool(demoNonFiniteFlag.Name), Data: c.String(data.Name),
		TestImages: c.Int(demoTestFlag.Name), ValImages: c.Int(demoValFlag.Name), CalibImages: c.Int(demoCalibFlag.Name),
		LR: c.Float64(demoLRFlag.Name), Seed: c.Uint64(demoSeedFlag.Name),
		Log: c.App.ErrWriter, Warn: expWarn(c.App.ErrWriter),
	}
}

// expWarn prints warnings as quantkit does, to w.
func expWarn(w io.Writer) func(string) {
	return func(msg string) { fmt.Fprintf(w, "quantkit: warning: %s\n", msg) }
}

// expJobErr says how to load a model with non-finite weights.
func expJobErr(err error) error {
	if errors.Is(err, onnxnet.ErrNonFinite) {
		err = fmt.Errorf("%w (--allow-nonfinite loads the model anyway)", err)
	}
	return err
}
