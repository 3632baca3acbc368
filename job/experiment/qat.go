package experiment

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/onnxnet"
	"github.com/quantkit/quantkit/quant"
)

// QATOptions configure QAT.
type QATOptions struct {
	Common
	// Bits is the weight bits: 4 or 8 (activations are int8).
	Bits int
	// Method is the calibrator of the activation ranges (one of
	// quant.CalibratorNames), or "best" (or empty): the one whose PTQ does
	// best on the held-out images.
	Method string
}

// QATReport is what QAT returns.
type QATReport struct {
	Model       string  `json:"model"`
	Data        string  `json:"data"`
	Device      string  `json:"device"`
	Bits        int     `json:"weight_bits"`
	Method      string  `json:"calibrator"` // the one used
	CalibImages int     `json:"calib_images"`
	ValImages   int     `json:"val_images"`
	QATImages   int     `json:"qat_images"`
	Epochs      int     `json:"epochs"`
	LR          float64 `json:"lr"`
	Seed        uint64  `json:"seed"`
	TestImages  int     `json:"test_images"`
	// Test top-1 accuracies in percent; PTQ and QAT in integer arithmetic.
	FP32Top1 float64 `json:"fp32_top1_pct"`
	PTQTop1  float64 `json:"ptq_top1_pct"`
	QATTop1  float64 `json:"qat_top1_pct"`
	// ValTop1 is the held-out accuracy of each calibrator's PTQ when
	// Method "best" chose between them.
	ValTop1      map[string]float64 `json:"val_top1_pct,omitempty"`
	TrainSeconds float64            `json:"train_seconds"`
	// Output is where the caller wrote Net, when it says so.
	Output string `json:"output,omitempty"`

	// Net is the trained, quantized model (Quant.Method "qat").
	Net *nn.Net `json:"-"`
}

// QAT calibrates the model's activations on the calibration images, then
// fine-tunes its float weights with fake quantization of the weights
// (Bits, per output channel, scales from the current weights) and of the
// activations (int8, the calibrated ranges, frozen), gradients passing
// the rounding by the straight-through estimator, Adam, seeded. The
// report holds the test accuracies of FP32, of PTQ at the same bits and
// of the result, and the result itself.
func QAT(ctx context.Context, opt QATOptions) (*QATReport, error) {
	if opt.Bits != 4 && opt.Bits != 8 {
		return nil, badInput(fmt.Errorf("%d-bit weights: want 4 or 8", opt.Bits))
	}
	methods := quant.CalibratorNames()
	if opt.Method != "" && opt.Method != "best" {
		if !slices.Contains(methods, opt.Method) {
			return nil, badInput(fmt.Errorf("calibrator %q: want best or one of %s", opt.Method, strings.Join(methods, ", ")))
		}
		methods = []string{opt.Method}
	}
	c := &opt.Common
	s, err := c.prepare(ctx)
	if err != nil {
		return nil, err
	}
	rep := &QATReport{
		Model: s.name, Data: c.Data, Device: s.be.Name(), Bits: opt.Bits,
		CalibImages: len(s.split.cal), ValImages: len(s.split.val), QATImages: s.qatImages,
		Epochs: c.Epochs, LR: c.LR, Seed: c.Seed, TestImages: s.nTest,
	}
	fp, err := float.New(s.be, s.net)
	if err != nil {
		return nil, err
	}
	_, rep.FP32Top1, err = s.top1(ctx, fp, s.testData)
	fp.Close()
	if err != nil {
		return nil, err
	}
	c.logf("%s: FP32 top-1 %.2f %% on %d %s test images", s.name, rep.FP32Top1, s.nTest, c.Data)
	if err := s.calibrate(); err != nil {
		return nil, err
	}
	ptq, val, err := s.ptq(ctx, opt.Bits, methods)
	if err != nil {
		return nil, err
	}
	rep.ValTop1 = val
	rep.Method = ptq.Quant.Method
	if _, rep.PTQTop1, err = s.engineTop1(ctx, ptq, s.testData); err != nil {
		return nil, err
	}
	c.logf("PTQ int%d weights (%s): top-1 %.2f %%", opt.Bits, rep.Method, rep.PTQTop1)

	t0 := time.Now()
	if rep.Net, err = s.qat(ctx, ptq, opt.Bits); err != nil {
		return nil, err
	}
	rep.TrainSeconds = time.Since(t0).Seconds()
	if _, rep.QATTop1, err = s.engineTop1(ctx, rep.Net, s.testData); err != nil {
		return nil, err
	}
	c.logf("QAT int%d weights: top-1 %.2f %% (%+.2f points against FP32, %+.2f against PTQ)",
		opt.Bits, rep.QATTop1, rep.QATTop1-rep.FP32Top1, rep.QATTop1-rep.PTQTop1)
	return rep, nil
}

// SaveModel writes the quantized model q to path: a QDQ ONNX graph
// (QuantizeLinear and DequantizeLinear around float operators, opset 13),
// or, for a .safetensors path, safetensors of its codes and scales.
func SaveModel(path string, q *nn.Net) error {
	if strings.EqualFold(filepath.Ext(path), ".safetensors") {
		return onnxnet.SaveSafetensors(q, path)
	}
	m, err := onnxnet.ExportQDQ(q)
	if err != nil {
		return err
	}
	return onnx.Write(path, m)
}
