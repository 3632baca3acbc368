package experiment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
)

// EvalOptions configure Eval.
type EvalOptions struct {
	// Backend computes the forward passes; the caller opens and closes it.
	Backend backend.Backend
	// Model is the ONNX file, float or quantized (QDQ).
	Model string
	// AllowNonFinite evaluates a Model whose weights hold NaN or ±Inf as
	// they are (Warn names the tensors) instead of refusing it.
	AllowNonFinite bool
	// Data and Split name the images, as dataset.Load does: Data "mnist",
	// "fashion-mnist" or a directory of idx files, Split "test" or
	// "train".
	Data, Split string
	// Engine is "float" (float32; fake quantization for a quantized
	// model) or "int8" (a quantized model in integer arithmetic).
	Engine string
	// Batch images per forward pass; ≤ 0: 256.
	Batch int
	// Limit evaluates the first Limit images only, the only ones read;
	// ≤ 0: all.
	Limit int
	// InputScale multiplies pixels 0..255 before the model; 0: the
	// model's own (its metadata, else 1).
	InputScale float32

	// Warn receives warnings, one sentence each; nil: none.
	Warn func(msg string)
	// Progress, when set, is called after every batch with the images
	// done and their total.
	Progress func(done, total int)
}

// EvalReport is what Eval returns.
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
	Accuracy        float64    `json:"accuracy"` // 0..1
	Seconds         float64    `json:"seconds"`
	ImagesPerSecond float64    `json:"images_per_second"`
}

// EvalQuant describes a quantized model.
type EvalQuant struct {
	WeightBits  int    `json:"weight_bits"`
	Method      string `json:"method,omitempty"`
	Activations int    `json:"quantized_activations"`
}

// Eval runs the model over the images and reports its top-1 accuracy
// (an output of NaNs is never correct) and throughput (images per second
// over the whole pass, input conversion included). The model is read
// before the data, so that a bad model is refused without reading any.
func Eval(ctx context.Context, opt EvalOptions) (*EvalReport, error) {
	if opt.Backend == nil {
		return nil, errors.New("no backend")
	}
	if opt.Engine == "" {
		opt.Engine = "float"
	}
	if opt.Split == "" {
		opt.Split = "test"
	}
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	if opt.Engine != "float" && opt.Engine != "int8" {
		return nil, badInput(fmt.Errorf("engine %q: want float or int8", opt.Engine))
	}
	if !(opt.InputScale >= 0) || opt.InputScale > 1e30 {
		return nil, badInput(fmt.Errorf("input scale %g: want a positive number", opt.InputScale))
	}
	warnf := func(format string, args ...any) {
		if opt.Warn != nil {
			opt.Warn(fmt.Sprintf(format, args...))
		}
	}
	net, err := loadFile(opt.Model, opt.AllowNonFinite, warnf)
	if err != nil {
		return nil, err
	}
	set, err := loadSet(opt.Data, opt.Split, opt.Limit)
	if err != nil {
		return nil, err
	}
	if err := checkFits(net, set, opt.Model); err != nil {
		return nil, err
	}
	if opt.Engine == "int8" && net.Quant == nil {
		return nil, badInput(fmt.Errorf("the int8 engine needs a quantized model: %s is a float model (no QuantizeLinear/DequantizeLinear)", opt.Model))
	}
	inLen, outLen, err := nn.IOLen(net)
	if err != nil {
		return nil, badInput(fmt.Errorf("%s: %w", opt.Model, err))
	}
	scale := net.InputScale
	if opt.InputScale != 0 {
		scale = opt.InputScale
	}
	rep := &EvalReport{Model: opt.Model, Params: nn.Params(net), Input: net.Input, InputScale: scale, Engine: opt.Engine,
		Data: set.Name, Split: opt.Split, ImageFile: set.ImageFile, LabelFile: set.LabelFile, Device: opt.Backend.Name()}
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
	var e engine
	if opt.Engine == "int8" {
		e, err = integer.New(opt.Backend, net)
	} else {
		e, err = float.New(opt.Backend, net)
	}
	if err != nil {
		return nil, err
	}
	defer e.Close()
	start := time.Now()
	correct, err := accuracy(ctx, e, samples(set, firstN(set.N), scale), inLen, outLen, opt.Batch, opt.Progress)
	if err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Correct, rep.Total = correct, set.N
	rep.Accuracy = float64(rep.Correct) / float64(rep.Total)
	if rep.Seconds > 0 {
		rep.ImagesPerSecond = float64(rep.Total) / rep.Seconds
	}
	return rep, nil
}
