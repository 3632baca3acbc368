package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/mnistcnn"
	"github.com/quantkit/quantkit/nn/onnxnet"
	"github.com/quantkit/quantkit/nn/qat"
	"github.com/quantkit/quantkit/quant"
)

var (
	demoModelFlag     = &cli.StringFlag{Name: "model", Category: "Model and data", Usage: "ONNX `FILE` of a CNN/MLP image classifier (default: the built-in MNIST CNN of the ONNX model zoo)"}
	demoDataFlag      = &cli.StringFlag{Name: "data", Category: "Model and data", Value: "mnist", Usage: "labelled images: mnist, fashion-mnist, or a directory of idx files"}
	demoCalibFlag     = &cli.IntFlag{Name: "calib", Category: "Quantization", Value: 512, Usage: "calibration images, a seeded random subset of the training set"}
	demoEpochsFlag    = &cli.IntFlag{Name: "epochs", Category: "Quantization", Value: 1, Usage: "QAT epochs over --qat-images"}
	demoQATImagesFlag = &cli.IntFlag{Name: "qat-images", Category: "Quantization", Value: 12000, Usage: "QAT training images, a seeded random subset of the training set (0: all)"}
	demoLRFlag        = &cli.Float64Flag{Name: "lr", Category: "Quantization", Value: 1e-4, Usage: "QAT learning rate (Adam)"}
	demoSeedFlag      = &cli.Uint64Flag{Name: "seed", Category: "Quantization", Value: 1, Usage: "seed of every random choice (calibration and QAT images, QAT order)"}
	demoQAT8Flag      = &cli.BoolFlag{Name: "qat8", Category: "Quantization", Usage: "also fine-tune with 8-bit weights (QAT int8)"}
	demoTestFlag      = &cli.IntFlag{Name: "test-images", Category: "Model and data", Usage: "evaluate on the first N test images (0: all)"}
	demoValFlag       = &cli.IntFlag{Name: "val-images", Category: "Model and data", Value: 5000, Usage: "training images held out (from calibration and QAT) to choose the INT4 calibrator on"}
	demoEnergyFlag    = &cli.BoolFlag{Name: "energy", Category: "Output", Value: true, Usage: "measure joules per image at batch 256 where the device has an energy counter (RAPL, NVML)"}
	demoJSONFlag      = &cli.StringFlag{Name: "json", Category: "Output", Usage: "also write the report as JSON to `FILE`"}
	demoPlotFlag      = &cli.StringFlag{Name: "plot", Category: "Output", Usage: "also draw accuracy against size and throughput to `FILE`.png or .svg"}
	// demoNonFiniteFlag serves qat too.
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
		"Progress goes to stderr, the table to stdout. Every choice is seeded (--seed).\n\n" +
		"A --model with NaN or infinite weights is refused, naming the tensors, unless\n" +
		"--allow-nonfinite. --json and --plot are checked before any work and written after\n" +
		"the table is printed; one that cannot be written makes the exit status non-zero.",
	Flags: []cli.Flag{demoModelFlag, demoNonFiniteFlag, demoDataFlag, demoTestFlag, demoValFlag, demoCalibFlag, demoEpochsFlag, demoQATImagesFlag,
		demoLRFlag, demoSeedFlag, demoQAT8Flag, deviceFlag, demoEnergyFlag, demoJSONFlag, demoPlotFlag},
	Action: runDemo,
}

// DemoRow is one line of the demo's report.
type DemoRow struct {
	Name        string  `json:"name"`
	Method      string  `json:"method"` // fp32, ptq or qat
	Calibrator  string  `json:"calibrator,omitempty"`
	WeightBits  int     `json:"weight_bits"`
	ActBits     int     `json:"act_bits"`
	Correct     int     `json:"correct"`
	Total       int     `json:"total"`
	Top1        float64 `json:"top1_pct"`
	Delta       float64 `json:"delta_pts"` // Top1 − FP32's Top1
	WeightBytes int     `json:"weight_bytes"`
	LatencyMs   float64 `json:"latency_batch1_ms"`
	ImagesPerS  float64 `json:"images_per_s_batch256"`
	// JPerImage is the gross energy per image at batch 256; absent when
	// not measured.
	JPerImage *float64 `json:"j_per_image,omitempty"`
	// ValTop1 is the accuracy on the held-out training images, for the
	// rows it chose between.
	ValTop1 float64 `json:"val_top1_pct,omitempty"`
}

// DemoReport is what `quantkit demo --json` writes.
type DemoReport struct {
	Model        string    `json:"model"`
	Data         string    `json:"data"`
	Device       string    `json:"device"`
	DeviceInfo   string    `json:"device_info"`
	CalibImages  int       `json:"calib_images"`
	QATImages    int       `json:"qat_images"`
	Epochs       int       `json:"epochs"`
	LR           float64   `json:"lr"`
	Seed         uint64    `json:"seed"`
	TestImages   int       `json:"test_images"`
	EnergySource string    `json:"energy_source,omitempty"`
	EnergyNote   string    `json:"energy_note,omitempty"`
	Seconds      float64   `json:"seconds"`
	Rows         []DemoRow `json:"rows"`
}

func runDemo(c *cli.Context) error {
	// The side outputs are checked before the minutes of work whose
	// results they hold.
	jsonPath, plotPath := c.String(demoJSONFlag.Name), c.String(demoPlotFlag.Name)
	if c.IsSet(demoJSONFlag.Name) {
		if err := checkOutputFile(demoJSONFlag.Name, jsonPath, false); err != nil {
			return err
		}
	}
	if c.IsSet(demoPlotFlag.Name) {
		if err := checkOutputFile(demoPlotFlag.Name, plotPath, false, ".png", ".svg"); err != nil {
			return err
		}
	}
	var rep *DemoReport
	err := onDevice(c, func(be backend.Backend) error {
		var err error
		rep, err = demoRun(c, be)
		return err
	})
	if err != nil {
		return err
	}
	return demoOutputs(c.App.Writer, rep, jsonPath, plotPath)
}

// demoOutputs prints the table to w, then writes the side outputs that
// are named (not empty): the report as JSON to jsonPath, the plot to
// plotPath. One that fails loses neither the table nor the other: their
// errors are returned together at the end.
func demoOutputs(w io.Writer, rep *DemoReport, jsonPath, plotPath string) error {
	demoTable(w, rep)
	var errs []error
	if jsonPath != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = atomicfile.WriteFile(jsonPath, append(data, '\n'), 0o666)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("demo: --json %s: %w", jsonPath, err))
		}
	}
	if plotPath != "" {
		if err := demoPlot(rep, plotPath); err != nil {
			errs = append(errs, fmt.Errorf("demo: --plot %s: %w", plotPath, err))
		}
	}
	return errors.Join(errs...)
}

// demoSet is a data set seen through a list of its indices.
func demoSamples(s *dataset.Set, idx []int, scale float32) *nn.Samples {
	labels := make([]uint8, len(idx))
	for k, i := range idx {
		labels[k] = s.Labels[i]
	}
	var tmp []int
	return &nn.Samples{N: len(idx), Labels: labels, Fill: func(dst []float32, which []int) {
		tmp = tmp[:0]
		for _, k := range which {
			tmp = append(tmp, idx[k])
		}
		s.Input(dst, tmp, scale)
	}}
}

func demoRun(c *cli.Context, be backend.Backend) (*DemoReport, error) {
	start := time.Now()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	modelPath := c.String(demoModelFlag.Name)
	net, modelName, err := demoLoadNet(modelPath, c.Bool(demoNonFiniteFlag.Name), c.App.ErrWriter)
	if err != nil {
		return nil, err
	}
	dataName := c.String(demoDataFlag.Name)
	logf("loading %s", dataName)
	train, err := dataset.Load(dataName, "train")
	if err != nil {
		return nil, err
	}
	test, err := dataset.Load(dataName, "test")
	if err != nil {
		return nil, err
	}
	inLen, outLen, err := nn.IOLen(net)
	if err != nil {
		return nil, err
	}
	if train.C*train.H*train.W != inLen || test.C*test.H*test.W != inLen {
		return nil, fmt.Errorf("demo: %s images are %dx%dx%d, the model takes %v", dataName, train.C, train.H, train.W, net.Input)
	}
	if train.Classes > outLen {
		return nil, fmt.Errorf("demo: %s has %d classes, the model %d outputs", dataName, train.Classes, outLen)
	}
	seed := c.Uint64(demoSeedFlag.Name)
	rep := &DemoReport{
		Model: modelName, Data: dataName, Device: be.Name(), DeviceInfo: be.Describe(),
		Epochs: c.Int(demoEpochsFlag.Name), LR: c.Float64(demoLRFlag.Name), Seed: seed,
	}

	// Training images: a seeded permutation; the last --val-images are
	// held out, calibration takes the first --calib of the rest and QAT
	// draws from the rest.
	perm := rand.New(rand.NewPCG(seed, 0xca1)).Perm(train.N)
	nVal := min(max(c.Int(demoValFlag.Name), 0), train.N/2)
	fit, val := perm[:train.N-nVal], perm[train.N-nVal:]
	nCal := min(max(c.Int(demoCalibFlag.Name), 1), len(fit))
	rep.CalibImages = nCal
	rep.QATImages = c.Int(demoQATImagesFlag.Name)
	if rep.QATImages <= 0 || rep.QATImages > len(fit) {
		rep.QATImages = len(fit)
	}
	nTest := test.N
	if n := c.Int(demoTestFlag.Name); n > 0 && n < nTest {
		nTest = n
	}
	rep.TestImages = nTest
	testIdx := make([]int, nTest)
	for i := range testIdx {
		testIdx[i] = i
	}
	testData := demoSamples(test, testIdx, net.InputScale)
	valData := demoSamples(train, val, net.InputScale)

	var src energy.Source
	if c.Bool(demoEnergyFlag.Name) {
		src, rep.EnergySource, rep.EnergyNote = demoEnergySource(be)
	}
	measure := func(row *DemoRow, run demoForward) error {
		logf("timing %s", row.Name)
		lat, ips, err := demoTime(run, net, test)
		if err != nil {
			return err
		}
		row.LatencyMs, row.ImagesPerS = lat*1e3, ips
		if src != nil {
			j, err := demoEnergy(src, run, net, test)
			if err != nil {
				rep.EnergyNote = err.Error()
				src = nil
			} else {
				row.JPerImage = &j
			}
		}
		return nil
	}
	add := func(row DemoRow, q *nn.Net, run demoForward) error {
		correct, err := demoAccuracy(run, testData, inLen, outLen)
		if err != nil {
			return fmt.Errorf("%s: %w", row.Name, err)
		}
		row.Correct, row.Total = correct, nTest
		row.Top1 = 100 * float64(correct) / float64(nTest)
		if len(rep.Rows) > 0 {
			row.Delta = row.Top1 - rep.Rows[0].Top1
		}
		row.WeightBytes = nn.WeightBytes(q)
		if err := measure(&row, run); err != nil {
			return fmt.Errorf("%s: %w", row.Name, err)
		}
		logf("%-22s top-1 %.2f %%", row.Name, row.Top1)
		rep.Rows = append(rep.Rows, row)
		return nil
	}

	// FP32.
	logf("FP32 inference of %s on %s", modelName, be.Name())
	fp, err := float.New(be, net)
	if err != nil {
		return nil, err
	}
	err = add(DemoRow{Name: "FP32", Method: "fp32", WeightBits: 32, ActBits: 32}, net, fp)
	fp.Close()
	if err != nil {
		return nil, err
	}

	// PTQ: one pass of calibration statistics serves every calibrator.
	logf("calibrating on %d training images", nCal)
	stats, err := calib.CollectActStats(net, demoSamples(train, fit[:nCal], net.InputScale), 0, 0)
	if err != nil {
		return nil, err
	}
	engine := func(q *nn.Net) (*integer.Engine, error) { return integer.New(be, q) }
	for _, m := range quant.CalibratorNames() {
		q, err := calib.PTQ(net, stats, calib.PTQOptions{Method: m, WeightBits: 8})
		if err != nil {
			return nil, err
		}
		e, err := engine(q)
		if err != nil {
			return nil, err
		}
		err = add(DemoRow{Name: "PTQ int8 " + m, Method: "ptq", Calibrator: m, WeightBits: 8, ActBits: 8}, q, e)
		e.Close()
		if err != nil {
			return nil, err
		}
	}

	// INT4 weights: the calibrator that does best on held-out images.
	best, bestAcc := (*nn.Net)(nil), -1
	if nVal == 0 {
		return nil, errors.New("demo: --val-images must be positive to choose the INT4 calibrator")
	}
	for _, m := range quant.CalibratorNames() {
		q, err := calib.PTQ(net, stats, calib.PTQOptions{Method: m, WeightBits: 4})
		if err != nil {
			return nil, err
		}
		e, err := engine(q)
		if err != nil {
			return nil, err
		}
		acc, err := demoAccuracy(e, valData, inLen, outLen)
		e.Close()
		if err != nil {
			return nil, err
		}
		logf("PTQ int4 %-11s held-out top-1 %.2f %%", m, 100*float64(acc)/float64(nVal))
		if acc > bestAcc {
			best, bestAcc = q, acc
		}
	}
	ptq4 := best
	e, err := engine(ptq4)
	if err != nil {
		return nil, err
	}
	err = add(DemoRow{Name: "PTQ int4w " + ptq4.Quant.Method, Method: "ptq", Calibrator: ptq4.Quant.Method, WeightBits: 4, ActBits: 8,
		ValTop1: 100 * float64(bestAcc) / float64(nVal)}, ptq4, e)
	e.Close()
	if err != nil {
		return nil, err
	}

	// QAT from the FP32 weights and the chosen calibration.
	bitsList := []int{4}
	if c.Bool(demoQAT8Flag.Name) {
		bitsList = append(bitsList, 8)
	}
	fitData := demoSamples(train, fit, net.InputScale)
	for _, bits := range bitsList {
		from := ptq4
		if bits == 8 {
			if from, err = calib.PTQ(net, stats, calib.PTQOptions{Method: ptq4.Quant.Method, WeightBits: 8}); err != nil {
				return nil, err
			}
		}
		name := fmt.Sprintf("QAT int%dw", bits)
		logf("%s: %d epoch(s) over %d training images", name, rep.Epochs, rep.QATImages)
		bar, clear := progressLine(true)
		t0 := time.Now()
		q, err := qat.Train(from, fitData, qat.Options{
			WeightBits: bits, Epochs: rep.Epochs, Images: rep.QATImages, LR: rep.LR, Seed: seed,
			Progress: func(step, steps int, loss float64) {
				if bar != nil {
					bar(step, steps, fmt.Sprintf("loss %.4f", loss))
				}
			},
		})
		clear()
		if err != nil {
			return nil, err
		}
		logf("%s trained in %.1f s", name, time.Since(t0).Seconds())
		e, err := engine(q)
		if err != nil {
			return nil, err
		}
		err = add(DemoRow{Name: name, Method: "qat", Calibrator: from.Quant.Method, WeightBits: bits, ActBits: 8}, q, e)
		e.Close()
		if err != nil {
			return nil, err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// demoForward is an inference engine: FP32 or integer.
type demoForward interface {
	Forward(x []float32, batch int, out []float32) error
	Close() error
}

// demoAccuracy is the number of samples of data whose largest output is
// their label, in batches of 256.
func demoAccuracy(f demoForward, data *nn.Samples, inLen, outLen int) (int, error) {
	const b = 256
	x := make([]float32, b*inLen)
	out := make([]float32, b*outLen)
	idx := make([]int, 0, b)
	correct := 0
	for b0 := 0; b0 < data.N; b0 += b {
		nb := min(b, data.N-b0)
		idx = idx[:0]
		for i := range nb {
			idx = append(idx, b0+i)
		}
		data.Fill(x[:nb*inLen], idx)
		if err := f.Forward(x[:nb*inLen], nb, out[:nb*outLen]); err != nil {
			return 0, err
		}
		for i := range nb {
			if demoArgmax(out[i*outLen:(i+1)*outLen]) == int(data.Labels[b0+i]) {
				correct++
			}
		}
	}
	return correct, nil
}

func demoArgmax(v []float32) int {
	best := 0
	for k, x := range v {
		if x > v[best] {
			best = k
		}
	}
	return best
}

// demoTime measures the median latency of one image (batch 1) and the
// images per second of batch 256 (from the median batch time).
func demoTime(f demoForward, net *nn.Net, test *dataset.Set) (latency, imagesPerS float64, err error) {
	in, out, err := nn.IOLen(net)
	if err != nil {
		return 0, 0, err
	}
	const b = 256
	x := make([]float32, b*in)
	idx := make([]int, b)
	for i := range idx {
		idx[i] = i % test.N
	}
	test.Input(x, idx, net.InputScale)
	y := make([]float32, b*out)
	median := func(batch int, minTime time.Duration, minCalls int) (float64, error) {
		if err := f.Forward(x[:batch*in], batch, y[:batch*out]); err != nil { // warm-up
			return 0, err
		}
		var ts []float64
		t0 := time.Now()
		for len(ts) < minCalls || time.Since(t0) < minTime {
			s := time.Now()
			if err := f.Forward(x[:batch*in], batch, y[:batch*out]); err != nil {
				return 0, err
			}
			ts = append(ts, time.Since(s).Seconds())
			if len(ts) >= 100000 {
				break
			}
		}
		slices.Sort(ts)
		return ts[len(ts)/2], nil
	}
	if latency, err = median(1, 250*time.Millisecond, 20); err != nil {
		return 0, 0, err
	}
	tb, err := median(b, 600*time.Millisecond, 5)
	if err != nil {
		return 0, 0, err
	}
	return latency, b / tb, nil
}

// demoEnergySource opens the energy counter of be's device: RAPL for the
// CPU, NVML for a GPU. It returns nil and why when there is none.
func demoEnergySource(be backend.Backend) (src energy.Source, name, note string) {
	// The source stays open for the life of the process.
	s, _, err := energy.OpenDevice(be.Name())
	if err != nil {
		return nil, "", "J/image n/a: " + strings.TrimPrefix(err.Error(), "energy: ")
	}
	return s, s.Name(), ""
}

// demoEnergy is the gross energy per image of batches of 256 over a
// window of at least one second.
func demoEnergy(src energy.Source, f demoForward, net *nn.Net, test *dataset.Set) (float64, error) {
	in, out, err := nn.IOLen(net)
	if err != nil {
		return 0, err
	}
	const b = 256
	x := make([]float32, b*in)
	idx := make([]int, b)
	for i := range idx {
		idx[i] = i % test.N
	}
	test.Input(x, idx, net.InputScale)
	y := make([]float32, b*out)
	w, err := energy.Measure(src, energy.Options{MinWindow: time.Second}, 0, func(n int) error {
		for range n {
			if err := f.Forward(x, b, y); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return w.PerCall() / b, nil
}

func demoTable(w io.Writer, rep *DemoReport) {
	fmt.Fprintf(w, "%s on %s (%d test images), %s: %s\n", rep.Model, rep.Data, rep.TestImages, rep.Device, rep.DeviceInfo)
	fmt.Fprintf(w, "PTQ: %d calibration images; QAT: %d epoch(s) over %d images, lr %g, seed %d\n\n",
		rep.CalibImages, rep.Epochs, rep.QATImages, rep.LR, rep.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\ttop-1 %\tΔ pts\tweight bytes\tms/image b=1\timages/s b=256\tJ/image\t")
	for _, r := range rep.Rows {
		j := "n/a"
		if r.JPerImage != nil {
			j = fmt.Sprintf("%.3g", *r.JPerImage)
		}
		delta := "—"
		if r.Method != "fp32" {
			delta = fmt.Sprintf("%+.2f", r.Delta)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%d\t%.3f\t%.0f\t%s\t\n", r.Name, r.Top1, delta, r.WeightBytes, r.LatencyMs, r.ImagesPerS, j)
	}
	tw.Flush()
	if rep.EnergyNote != "" {
		fmt.Fprintln(w, "\n"+rep.EnergyNote)
	}
	fmt.Fprintf(w, "\n%.1f s in all\n", rep.Seconds)
}

// demoPlot draws top-1 accuracy against weight bytes, and images/s at
// batch 256, one bar per row.
func demoPlot(rep *DemoReport, path string) error {
	if err := bench.CheckPlotPath(path); err != nil {
		return err
	}
	acc := plot.New()
	acc.Title.Text = "Top-1 accuracy against model size"
	acc.X.Label.Text = "weight bytes"
	acc.Y.Label.Text = "top-1 %"
	// Rows at the same point (calibrators that agree) share one label.
	var pts plotter.XYs
	var names [][]string
	var labels []string
	for _, r := range rep.Rows {
		labels = append(labels, r.Name)
		p := plotter.XY{X: float64(r.WeightBytes), Y: r.Top1}
		k := slices.Index(pts, p)
		if k < 0 {
			pts, names = append(pts, p), append(names, nil)
			k = len(pts) - 1
		}
		names[k] = append(names[k], r.Name)
	}
	var text []string
	for _, n := range names {
		text = append(text, demoJoinNames(n))
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: text})
	if err != nil {
		return err
	}
	lb.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(-3)}
	acc.Add(sc, lb)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo, hi = min(lo, p.Y), max(hi, p.Y)
	}
	acc.Y.Min, acc.Y.Max = lo-0.5, hi+0.3
	acc.X.Max = acc.X.Max * 1.35

	thr := plot.New()
	thr.Title.Text = "Throughput at batch 256"
	thr.Y.Label.Text = "images/s"
	vals := make(plotter.Values, len(rep.Rows))
	for i, r := range rep.Rows {
		vals[i] = r.ImagesPerS
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(14))
	if err != nil {
		return err
	}
	thr.Add(bars)
	thr.NominalX(labels...)
	thr.X.Tick.Label.Rotation = math.Pi / 4
	thr.X.Tick.Label.XAlign = draw.XRight

	return bench.Figure(path, 10*vg.Inch, 4*vg.Inch, 1, 2, func(cell func(row, col int) draw.Canvas) error {
		acc.Draw(cell(0, 0))
		thr.Draw(cell(0, 1))
		return nil
	})
}

// demoLoadNet loads the ONNX model at path (see loadModel), or the
// built-in MNIST CNN when path is empty, and says which.
func demoLoadNet(path string, allowNonFinite bool, warn io.Writer) (*nn.Net, string, error) {
	if path == "" {
		m, err := onnx.Decode(mnistcnn.ONNX)
		if err != nil {
			return nil, "", fmt.Errorf("built-in MNIST CNN: %w", err)
		}
		net, err := onnxnet.Lower(m)
		if err != nil {
			return nil, "", fmt.Errorf("built-in MNIST CNN: %w", err)
		}
		return net, "MNIST CNN (ONNX model zoo)", nil
	}
	net, err := loadModel(path, allowNonFinite, warn)
	if err != nil {
		return nil, "", badInput(err)
	}
	if net.Quant != nil {
		// A QDQ model: its dequantized weights stand for the float model.
		warnf("%s is quantized (%d-bit weights); its dequantized weights serve as the float model", path, net.Quant.WeightBits)
		net.Quant = nil
	}
	return net, filepath.Base(path), nil
}

// loadModel reads and lowers the ONNX model at path (the --model of demo,
// qat and eval). NaN or infinite weights are an error naming the tensors
// unless allowNonFinite (--allow-nonfinite), which loads the model and
// writes a warning line naming them to warn.
func loadModel(path string, allowNonFinite bool, warn io.Writer) (*nn.Net, error) {
	net, bad, err := onnxnet.LoadWith(path, onnxnet.Options{AllowNonFinite: allowNonFinite})
	if errors.Is(err, onnxnet.ErrNonFinite) {
		return nil, fmt.Errorf("%w (--allow-nonfinite loads the model anyway)", err)
	}
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		what := make([]string, len(bad))
		for i, b := range bad {
			what[i] = b.String()
		}
		fmt.Fprintf(warn, "quantkit: warning: --allow-nonfinite: %s has non-finite weights: %s\n", path, strings.Join(what, "; "))
	}
	return net, nil
}

// demoJoinNames joins row names that share a point: "PTQ int8 max",
// "PTQ int8 mse" become "PTQ int8 max, mse".
func demoJoinNames(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	prefix := names[0][:strings.LastIndexByte(names[0], ' ')+1]
	out := names[0]
	for _, n := range names[1:] {
		if prefix != "" && strings.HasPrefix(n, prefix) {
			n = n[len(prefix):]
		}
		out += ", " + n
	}
	return out
}
