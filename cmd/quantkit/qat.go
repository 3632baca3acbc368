package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/onnxnet"
	"github.com/quantkit/quantkit/nn/qat"
	"github.com/quantkit/quantkit/quant"
)

var (
	qatModelFlag  = &cli.StringFlag{Name: "model", Category: "Model and data", Usage: "ONNX `FILE` of a CNN/MLP image classifier (default: the built-in MNIST CNN)"}
	qatDataFlag   = &cli.StringFlag{Name: "data", Category: "Model and data", Value: "mnist", Usage: "labelled images: mnist, fashion-mnist, or a directory of idx files"}
	qatBitsFlag   = &cli.IntFlag{Name: "bits", Category: "Quantization", Value: 4, Usage: "weight bits: 4 or 8 (activations are int8)"}
	qatEpochsFlag = &cli.IntFlag{Name: "epochs", Category: "Quantization", Value: 1, Usage: "passes over the training images"}
	qatImagesFlag = &cli.IntFlag{Name: "images", Category: "Quantization", Usage: "training images per epoch, a seeded random subset (0: all but the held-out ones)"}
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
		"`quantkit eval` run.\n\n" +
		"-o is checked (directory, .onnx or .safetensors) before any work; the accuracies are\n" +
		"printed before the file is written. A --model with NaN or infinite weights is\n" +
		"refused, naming the tensors, unless --allow-nonfinite.",
	Flags: []cli.Flag{qatModelFlag, demoNonFiniteFlag, qatDataFlag, qatBitsFlag, qatEpochsFlag, qatImagesFlag, qatMethodFlag, demoCalibFlag,
		demoValFlag, demoLRFlag, demoSeedFlag, deviceFlag, qatOutFlag},
	Action: runQAT,
}

func runQAT(c *cli.Context) error {
	out := c.String(qatOutFlag.Name)
	if out == "" {
		return badInput(errors.New("qat: no output file (-o FILE.onnx or FILE.safetensors)"))
	}
	// Checked before the work whose result it holds.
	if err := checkOutputFile(qatOutFlag.Name, out, false, ".onnx", ".safetensors"); err != nil {
		return err
	}
	bits := c.Int(qatBitsFlag.Name)
	if bits != 4 && bits != 8 {
		return fmt.Errorf("qat: --bits %d: want 4 or 8", bits)
	}
	method := c.String(qatMethodFlag.Name)
	if method != "best" && !containsString(quant.CalibratorNames(), method) {
		return fmt.Errorf("qat: --method %q: want best or one of %s", method, strings.Join(quant.CalibratorNames(), ", "))
	}
	var q *nn.Net
	var result string
	err := onDevice(c, func(be backend.Backend) error {
		logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
		net, name, err := demoLoadNet(c.String(qatModelFlag.Name), c.Bool(demoNonFiniteFlag.Name), c.App.ErrWriter)
		if err != nil {
			return err
		}
		inLen, outLen, err := nn.IOLen(net)
		if err != nil {
			return err
		}
		dataName := c.String(qatDataFlag.Name)
		train, err := dataset.Load(dataName, "train")
		if err != nil {
			return err
		}
		test, err := dataset.Load(dataName, "test")
		if err != nil {
			return err
		}
		if train.C*train.H*train.W != inLen || train.Classes > outLen {
			return fmt.Errorf("qat: %s (%dx%dx%d images, %d classes) does not fit %s (input %v, %d outputs)",
				dataName, train.C, train.H, train.W, train.Classes, name, net.Input, outLen)
		}
		seed := c.Uint64(demoSeedFlag.Name)
		perm := rand.New(rand.NewPCG(seed, 0xca1)).Perm(train.N)
		nVal := min(max(c.Int(demoValFlag.Name), 1), train.N/2)
		fit, val := perm[:train.N-nVal], perm[train.N-nVal:]
		nCal := min(max(c.Int(demoCalibFlag.Name), 1), len(fit))
		testIdx := make([]int, test.N)
		for i := range testIdx {
			testIdx[i] = i
		}
		testData := demoSamples(test, testIdx, net.InputScale)
		accuracy := func(f demoForward, data *nn.Samples) (float64, error) {
			n, err := demoAccuracy(f, data, inLen, outLen)
			f.Close()
			return 100 * float64(n) / float64(data.N), err
		}

		fp, err := float.New(be, net)
		if err != nil {
			return err
		}
		fpAcc, err := accuracy(fp, testData)
		if err != nil {
			return err
		}
		logf("%s: FP32 top-1 %.2f %% on %d %s test images", name, fpAcc, test.N, dataName)
		logf("calibrating on %d training images", nCal)
		stats, err := calib.CollectActStats(net, demoSamples(train, fit[:nCal], net.InputScale), 0, 0)
		if err != nil {
			return err
		}
		methods := []string{method}
		if method == "best" {
			methods = quant.CalibratorNames()
		}
		var ptq *nn.Net
		bestAcc := -1.0
		valData := demoSamples(train, val, net.InputScale)
		for _, m := range methods {
			q, err := calib.PTQ(net, stats, calib.PTQOptions{Method: m, WeightBits: bits})
			if err != nil {
				return err
			}
			acc := 0.0
			if len(methods) > 1 {
				e, err := integer.New(be, q)
				if err != nil {
					return err
				}
				if acc, err = accuracy(e, valData); err != nil {
					return err
				}
				logf("PTQ int%d weights, %-10s held-out top-1 %.2f %%", bits, m, acc)
			}
			if acc > bestAcc {
				ptq, bestAcc = q, acc
			}
		}
		e, err := integer.New(be, ptq)
		if err != nil {
			return err
		}
		ptqAcc, err := accuracy(e, testData)
		if err != nil {
			return err
		}
		logf("PTQ int%d weights (%s): top-1 %.2f %%", bits, ptq.Quant.Method, ptqAcc)

		opt := qat.Options{WeightBits: bits, Epochs: c.Int(qatEpochsFlag.Name), Images: c.Int(qatImagesFlag.Name),
			LR: c.Float64(demoLRFlag.Name), Seed: seed}
		bar, clear := progressLine(true)
		if bar != nil {
			opt.Progress = func(step, steps int, loss float64) { bar(step, steps, fmt.Sprintf("loss %.4f", loss)) }
		}
		t0 := time.Now()
		q, err = qat.Train(ptq, demoSamples(train, fit, net.InputScale), opt)
		clear()
		if err != nil {
			return err
		}
		e, err = integer.New(be, q)
		if err != nil {
			return err
		}
		qatAcc, err := accuracy(e, testData)
		if err != nil {
			return err
		}
		logf("QAT int%d weights: top-1 %.2f %% (%+.2f points against FP32, %+.2f against PTQ), trained in %.1f s",
			bits, qatAcc, qatAcc-fpAcc, qatAcc-ptqAcc, time.Since(t0).Seconds())
		result = fmt.Sprintf("int%d weights, int8 activations: QAT top-1 %.2f %% (FP32 %.2f %%, PTQ %.2f %%)\n",
			bits, qatAcc, fpAcc, ptqAcc)
		return nil
	})
	if err != nil {
		return err
	}
	return qatFinish(c.App.Writer, out, q, result)
}

// qatFinish prints the result line to w, then writes q to path: a write
// that fails loses the accuracies to nothing, and its error is returned.
func qatFinish(w io.Writer, path string, q *nn.Net, result string) error {
	io.WriteString(w, result)
	if err := qatSave(path, q); err != nil {
		return fmt.Errorf("qat: writing %s: %w", path, err)
	}
	fmt.Fprintf(w, "wrote %s\n", path)
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// qatSave writes q to path: a QDQ ONNX graph, or safetensors of its codes
// and scales.
func qatSave(path string, q *nn.Net) error {
	if strings.EqualFold(filepath.Ext(path), ".safetensors") {
		return onnxnet.SaveSafetensors(q, path)
	}
	m, err := onnxnet.ExportQDQ(q)
	if err != nil {
		return err
	}
	return onnx.Write(path, m)
}
