package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/jsonout"
	"github.com/quantkit/quantkit/internal/progress"
	"github.com/quantkit/quantkit/job/experiment"
	"github.com/quantkit/quantkit/quant"
)

var (
	qatModelFlag  = &cli.StringFlag{Name: "model", Category: "Model and data", Usage: "ONNX `FILE` of a CNN/MLP image classifier (default: the built-in MNIST CNN)"}
	qatDataFlag   = &cli.StringFlag{Name: "data", Category: "Model and data", Value: "mnist", Usage: "labelled images: mnist, fashion-mnist, or a directory of idx files"}
	qatBitsFlag   = &cli.IntFlag{Name: "bits", Category: "Quantization", Value: 4, Usage: "weight bits: 4 or 8 (activations are int8)"}
	qatEpochsFlag = &cli.IntFlag{Name: "epochs", Category: "Quantization", Value: 1, Usage: "passes over the training images"}
	qatImagesFlag = &cli.IntFlag{Name: "images", Category: "Quantization", Usage: "training images per epoch, a seeded random subset of those not held out", DefaultText: "all"}
	qatMethodFlag = &cli.StringFlag{Name: "method", Category: "Quantization", Value: "best", Usage: "calibrator of the activation ranges: max, percentile, entropy, mse, or best (the one whose PTQ does best on the held-out images)"}
	qatOutFlag    = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Category: "Output", Usage: "write the quantized model to `FILE`: .onnx (QDQ) or .safetensors"}
)

var qatCommand = &cli.Command{
	Name:  "qat",
	Usage: "quantization-aware training of an ONNX image classifier, exported as a quantized model",
	Description: "Calibrates the model's activations on --calib training images (as `quantkit demo`\n" +
		"does), then fine-tunes its float weights with fake quantization of the weights\n" +
		"(--bits, per output channel, scales from the current weights) and of the\n" +
		"activations (int8, the calibrated ranges, frozen), gradients passing the rounding\n" +
		"by the straight-through estimator, Adam, seeded. It prints the test accuracy of\n" +
		"FP32, of PTQ at the same bits and of the result (both in integer arithmetic), and\n" +
		"writes the result: an .onnx file holds a QDQ graph (QuantizeLinear and\n" +
		"DequantizeLinear around float operators, opset 13) that ONNX runtimes and\n" +
		"`quantkit eval` run. --val-images training images are held out from calibration\n" +
		"and training (--method best chooses the calibrator on them; it needs at least one).\n\n" +
		"-o and --json-out are checked (directory, extension) before any work; the report\n" +
		"(the result line, or with --json the JSON report) is printed whether or not the\n" +
		"model can be written. A --model with NaN or infinite weights is refused, naming\n" +
		"the tensors, unless --allow-nonfinite.",
	Flags: []cli.Flag{qatModelFlag, demoNonFiniteFlag, qatDataFlag, demoTestFlag, qatBitsFlag, qatEpochsFlag, qatImagesFlag, qatMethodFlag, demoCalibFlag,
		demoValFlag, demoLRFlag, demoSeedFlag, deviceFlag, qatOutFlag, jsonFlag, jsonOutFlag},
	Action: runQAT,
}

func runQAT(c *cli.Context) error {
	out := c.String(qatOutFlag.Name)
	if out == "" {
		return badInput(errors.New("qat: no output file (-o FILE.onnx or FILE.safetensors)"))
	}
	// Checked before the work whose result they hold.
	if err := checkOutputFile(qatOutFlag.Name, out, false, ".onnx", ".safetensors"); err != nil {
		return err
	}
	if err := checkJSONOut(c); err != nil {
		return err
	}
	bits := c.Int(qatBitsFlag.Name)
	if bits != 4 && bits != 8 {
		return badInput(fmt.Errorf("qat: --bits %d: want 4 or 8", bits))
	}
	method := c.String(qatMethodFlag.Name)
	if method != "best" && !slices.Contains(quant.CalibratorNames(), method) {
		return badInput(fmt.Errorf("qat: --method %q: want best or one of %s", method, strings.Join(quant.CalibratorNames(), ", ")))
	}
	opt := experiment.QATOptions{Common: expCommon(c, qatModelFlag, qatDataFlag), Bits: bits, Method: method}
	opt.QATImages, opt.Epochs = c.Int(qatImagesFlag.Name), c.Int(qatEpochsFlag.Name)
	steps := progress.NewSteps(progress.Options{}) // QAT's, a bar each
	opt.Progress = steps.Update
	var rep *experiment.QATReport
	err := onDevice(c, func(be backend.Backend) error {
		opt.Backend = be
		var err error
		rep, err = experiment.QAT(c.Context, opt)
		return expJobErr(err)
	})
	steps.Finish()
	if err != nil {
		return fmt.Errorf("qat: %w", err)
	}
	return qatOutputs(c.App.Writer, c.App.ErrWriter, rep, c.Bool(jsonFlag.Name), out, c.String(jsonOutFlag.Name))
}

// qatOutputs writes the model to path, then prints the report to w (the
// result line, or JSON when asJSON) whether or not the model could be
// written, says where it went (to w, or to log with JSON), and writes the
// report to jsonPath when not empty. Errors are returned together at the
// end.
func qatOutputs(w, log io.Writer, rep *experiment.QATReport, asJSON bool, path, jsonPath string) error {
	var errs []error
	if err := experiment.SaveModel(path, rep.Net); err != nil {
		errs = append(errs, fmt.Errorf("qat: writing %s: %w", path, err))
	} else {
		rep.Output = path
	}
	print := rep.WriteTable
	if asJSON {
		print = func(w io.Writer) error { return jsonout.Write(w, rep) }
	}
	if err := print(w); err != nil {
		return err
	}
	if rep.Output != "" {
		if asJSON {
			w = log
		}
		fmt.Fprintf(w, "wrote %s\n", path)
	}
	if err := writeSideOutputs(sideOutput{flag: jsonOutFlag.Name, path: jsonPath,
		write: func(w io.Writer) error { return jsonout.Write(w, rep) }}); err != nil {
		errs = append(errs, fmt.Errorf("qat: %w", err))
	}
	return errors.Join(errs...)
}
