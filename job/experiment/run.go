package experiment

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/float"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/quant"
)

// Options configure Run.
type Options struct {
	Common
	// QAT8 adds a row of QAT with 8-bit weights, from PTQ int8 with the
	// calibrator chosen for int4.
	QAT8 bool
	// Energy measures joules per image at batch 256 where the device has
	// an energy counter (energy.OpenDevice).
	Energy bool
	// Latency and Throughput say how long the median time of a batch of 1
	// and of 256 images is measured; zero: DefaultLatency,
	// DefaultThroughput.
	Latency, Throughput bench.Timing
}

// The default timings of Run.
var (
	DefaultLatency    = bench.Timing{MinTime: 250 * time.Millisecond, MinReps: 20, MaxReps: 100000}
	DefaultThroughput = bench.Timing{MinTime: 600 * time.Millisecond, MinReps: 5, MaxReps: 100000}
)

// Row is one line of Run's report.
type Row struct {
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

// Report is what Run returns.
type Report struct {
	Model        string  `json:"model"`
	Data         string  `json:"data"`
	Device       string  `json:"device"`
	DeviceInfo   string  `json:"device_info"`
	CalibImages  int     `json:"calib_images"`
	ValImages    int     `json:"val_images"`
	QATImages    int     `json:"qat_images"`
	Epochs       int     `json:"epochs"`
	LR           float64 `json:"lr"`
	Seed         uint64  `json:"seed"`
	TestImages   int     `json:"test_images"`
	EnergySource string  `json:"energy_source,omitempty"`
	EnergyNote   string  `json:"energy_note,omitempty"`
	Seconds      float64 `json:"seconds"`
	Rows         []Row   `json:"rows"`
}

// Run compares, on the test images: FP32; PTQ with int8 weights (per
// channel) and int8 activations (per tensor) for each calibrator of
// quant.CalibratorNames over the calibration images; PTQ with int4
// weights and the calibrator that does best on the held-out images; and
// QAT with int4 weights (and int8 with QAT8) from the FP32 weights and
// that calibration. Quantized rows run in integer arithmetic.
func Run(ctx context.Context, opt Options) (*Report, error) {
	start := time.Now()
	if opt.Latency == (bench.Timing{}) {
		opt.Latency = DefaultLatency
	}
	if opt.Throughput == (bench.Timing{}) {
		opt.Throughput = DefaultThroughput
	}
	c := &opt.Common
	if c.ValImages <= 0 {
		// Checked first: the int4 row cannot be made without.
		return nil, badInput(fmt.Errorf("ValImages %d: held-out images must be positive to choose the int4 calibrator", c.ValImages))
	}
	s, err := c.prepare(ctx)
	if err != nil {
		return nil, err
	}
	be := s.be
	rep := &Report{
		Model: s.name, Data: c.Data, Device: be.Name(), DeviceInfo: be.Describe(),
		CalibImages: len(s.split.cal), ValImages: len(s.split.val), QATImages: s.qatImages,
		Epochs: c.Epochs, LR: c.LR, Seed: c.Seed, TestImages: s.nTest,
	}

	var src energy.Source
	if opt.Energy {
		var closeSrc func()
		src, closeSrc, err = energy.OpenDevice(be.Name())
		if err != nil {
			rep.EnergyNote = "J/image n/a: " + strings.TrimPrefix(err.Error(), "energy: ")
		} else {
			defer closeSrc()
			rep.EnergySource = src.Name()
		}
	}
	batch := testBatch(s.net, s.test)
	add := func(row Row, q *nn.Net, e engine) error {
		defer e.Close()
		correct, pct, err := s.top1(ctx, e, s.testData)
		if err != nil {
			return fmt.Errorf("%s: %w", row.Name, err)
		}
		row.Correct, row.Total, row.Top1 = correct, s.nTest, pct
		if len(rep.Rows) > 0 {
			row.Delta = row.Top1 - rep.Rows[0].Top1
		}
		row.WeightBytes = nn.WeightBytes(q)
		c.logf("timing %s", row.Name)
		lat, ips, err := timeForward(ctx, e, batch, s.inLen, s.outLen, opt.Latency, opt.Throughput)
		if err != nil {
			return fmt.Errorf("%s: %w", row.Name, err)
		}
		row.LatencyMs, row.ImagesPerS = lat*1e3, ips
		if src != nil {
			j, err := energyPerImage(ctx, src, e, batch, s.outLen)
			if err != nil {
				// One failure ends the measurements: the counter is
				// unlikely to work for the next row.
				rep.EnergyNote = err.Error()
				src = nil
			} else {
				row.JPerImage = &j
			}
		}
		c.logf("%-22s top-1 %.2f %%", row.Name, row.Top1)
		rep.Rows = append(rep.Rows, row)
		return nil
	}
	int8Engine := func(q *nn.Net) (engine, error) { return integer.New(be, q) }

	c.logf("FP32 inference of %s on %s", s.name, be.Name())
	fp, err := float.New(be, s.net)
	if err != nil {
		return nil, err
	}
	if err := add(Row{Name: "FP32", Method: "fp32", WeightBits: 32, ActBits: 32}, s.net, fp); err != nil {
		return nil, err
	}

	// PTQ: one pass of calibration statistics serves every calibrator.
	if err := s.calibrate(); err != nil {
		return nil, err
	}
	for _, m := range quant.CalibratorNames() {
		q, _, err := s.ptq(ctx, 8, []string{m})
		if err != nil {
			return nil, err
		}
		e, err := int8Engine(q)
		if err != nil {
			return nil, err
		}
		if err := add(Row{Name: "PTQ int8 " + m, Method: "ptq", Calibrator: m, WeightBits: 8, ActBits: 8}, q, e); err != nil {
			return nil, err
		}
	}

	// INT4 weights: the calibrator that does best on held-out images.
	ptq4, val4, err := s.ptq(ctx, 4, quant.CalibratorNames())
	if err != nil {
		return nil, err
	}
	e, err := int8Engine(ptq4)
	if err != nil {
		return nil, err
	}
	method := ptq4.Quant.Method
	if err := add(Row{Name: "PTQ int4w " + method, Method: "ptq", Calibrator: method, WeightBits: 4, ActBits: 8, ValTop1: val4[method]}, ptq4, e); err != nil {
		return nil, err
	}

	// QAT from the FP32 weights and the chosen calibration.
	bitsList := []int{4}
	if opt.QAT8 {
		bitsList = append(bitsList, 8)
	}
	for _, bits := range bitsList {
		from := ptq4
		if bits == 8 {
			if from, _, err = s.ptq(ctx, 8, []string{method}); err != nil {
				return nil, err
			}
		}
		q, err := s.qat(ctx, from, bits)
		if err != nil {
			return nil, err
		}
		e, err := int8Engine(q)
		if err != nil {
			return nil, err
		}
		if err := add(Row{Name: fmt.Sprintf("QAT int%dw", bits), Method: "qat", Calibrator: method, WeightBits: bits, ActBits: 8}, q, e); err != nil {
			return nil, err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// testBatch is 256 test images (repeated when there are fewer), the
// input of the timing and energy measurements.
func testBatch(net *nn.Net, test *dataset.Set) []float32 {
	const b = 256
	idx := make([]int, b)
	for i := range idx {
		idx[i] = i % test.N
	}
	x := make([]float32, b*test.C*test.H*test.W)
	test.Input(x, idx, net.InputScale)
	return x
}

// timeForward measures the median time of f on one image (the first of
// x) and the images per second of a batch of all 256 in x (from the
// median batch time).
func timeForward(ctx context.Context, f forwarder, x []float32, inLen, outLen int, latency, throughput bench.Timing) (sec, imagesPerS float64, err error) {
	b := len(x) / inLen
	y := make([]float32, b*outLen)
	call := func(n int) func() error {
		return func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return f.Forward(x[:n*inLen], n, y[:n*outLen])
		}
	}
	if sec, _, err = latency.Measure(call(1)); err != nil {
		return 0, 0, err
	}
	tb, _, err := throughput.Measure(call(b))
	if err != nil {
		return 0, 0, err
	}
	return sec, float64(b) / tb, nil
}

// energyPerImage is the gross energy per image of f on the batch x
// (repeated) over a window of at least one second.
func energyPerImage(ctx context.Context, src energy.Source, f forwarder, x []float32, outLen int) (float64, error) {
	const b = 256
	y := make([]float32, b*outLen)
	w, err := energy.Measure(src, energy.Options{MinWindow: time.Second}, 0, func(n int) error {
		for range n {
			if err := ctx.Err(); err != nil {
				return err
			}
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
