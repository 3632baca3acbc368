package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/dataset"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/onnx"
	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/calib"
	"github.com/quantkit/quantkit/nn/integer"
	"github.com/quantkit/quantkit/nn/mnistcnn"
	"github.com/quantkit/quantkit/nn/onnxnet"
	"github.com/quantkit/quantkit/nn/qat"
)

// badInput marks errors about the caller's input (inputerr.ErrInput): a
// model or data set that cannot be read or does not fit, options out of
// range. Running again on another device would not change them.
func badInput(err error) error { return inputerr.Mark(err) }

// Common are the options Run and QAT share: the model, the data, how the
// training images are used, QAT's hyperparameters, and where progress
// goes.
type Common struct {
	// Backend computes every forward pass; the caller opens and closes it.
	Backend backend.Backend
	// Model is the ONNX file of a float classifier (a quantized QDQ
	// model's dequantized weights stand for the float model, with a
	// warning); empty: the built-in MNIST CNN of package mnistcnn.
	Model string
	// AllowNonFinite loads a Model whose weights hold NaN or ±Inf as they
	// are (Warn names the tensors) instead of refusing it.
	AllowNonFinite bool
	// Data is the labelled image set, as dataset.Load names it: "mnist",
	// "fashion-mnist" or a directory of idx files.
	Data string

	// TestImages is how many of the test images, from the first, are
	// evaluated on; ≤ 0: all.
	TestImages int
	// ValImages training images (at most half of them) are held out from
	// calibration and QAT to choose a calibrator on; ≤ 0: none, which
	// leaves nothing to choose with.
	ValImages int
	// CalibImages of the other training images calibrate the activation
	// ranges; at least 1.
	CalibImages int
	// QATImages is how many of the other training images QAT draws per
	// epoch (a seeded subset); ≤ 0 or more than there are: all.
	QATImages int
	Epochs    int     // QAT passes over QATImages; ≤ 0: 1
	LR        float64 // QAT learning rate (Adam); ≤ 0: 1e-4
	// Seed seeds every random choice: the split of the training images
	// and QAT's order.
	Seed uint64

	// Log receives progress lines; nil: none.
	Log io.Writer
	// Warn receives warnings, one sentence each; nil: none.
	Warn func(msg string)
	// Progress, when set, follows long steps (QAT): done of total, and
	// what ("loss 0.1234"). A step ends with done == total.
	Progress func(done, total int, what string)
}

func (c *Common) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

func (c *Common) warnf(format string, args ...any) {
	if c.Warn != nil {
		c.Warn(fmt.Sprintf(format, args...))
	}
}

// trainSplit is how the training images are used (indices into the
// training set): val is held out to choose a calibrator on, fit is all
// the rest, cal the first images of fit.
type trainSplit struct{ fit, val, cal []int }

// splitTrain splits n training images: a permutation seeded by seed whose
// last min(max(val, 0), n/2) images are held out, the rest fit, and the
// first min(max(calib, 1), len(fit)) of fit calibrate. val and fit never
// overlap, and fit is never empty when n > 0: at most half the images are
// held out. A held-out set of 0 is allowed (only choosing a calibrator
// needs one); holding out one image when 0 are asked for, as qat once did,
// would choose on a sample of one and take an image from training.
func splitTrain(n, val, calib int, seed uint64) trainSplit {
	perm := rand.New(rand.NewPCG(seed, 0xca1)).Perm(n)
	nVal := min(max(val, 0), n/2)
	fit := perm[:n-nVal]
	return trainSplit{fit: fit, val: perm[n-nVal:], cal: fit[:min(max(calib, 1), len(fit))]}
}

// setup is what Run and QAT share: the float model, the data, the split
// and the calibration statistics.
type setup struct {
	c             *Common
	be            backend.Backend
	net           *nn.Net
	name          string
	inLen, outLen int
	train, test   *dataset.Set
	split         trainSplit
	testData      *nn.Samples // the first nTest test images
	valData       *nn.Samples
	fitData       *nn.Samples
	nTest         int
	qatImages     int
	stats         *calib.ActStats
}

// prepare loads the model (before the data, so that a bad model is
// refused without reading any) and the data, checks that they fit, and
// splits the training images.
func (c *Common) prepare(ctx context.Context) (*setup, error) {
	if c.Backend == nil {
		return nil, errors.New("no backend")
	}
	if c.Epochs <= 0 {
		c.Epochs = 1
	}
	if !(c.LR > 0) {
		c.LR = 1e-4
	}
	net, name, err := loadFloat(c.Model, c.AllowNonFinite, c.warnf)
	if err != nil {
		return nil, err
	}
	inLen, outLen, err := nn.IOLen(net)
	if err != nil {
		return nil, badInput(fmt.Errorf("%s: %w", name, err))
	}
	c.logf("loading %s", c.Data)
	train, err := loadSet(c.Data, "train", 0)
	if err != nil {
		return nil, err
	}
	test, err := loadSet(c.Data, "test", 0)
	if err != nil {
		return nil, err
	}
	for _, s := range []*dataset.Set{train, test} {
		if err := checkFits(net, s, name); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &setup{c: c, be: c.Backend, net: net, name: name, inLen: inLen, outLen: outLen, train: train, test: test}
	s.split = splitTrain(train.N, c.ValImages, c.CalibImages, c.Seed)
	s.nTest = test.N
	if c.TestImages > 0 && c.TestImages < test.N {
		s.nTest = c.TestImages
	}
	s.qatImages = len(s.split.fit)
	if c.QATImages > 0 && c.QATImages < s.qatImages {
		s.qatImages = c.QATImages
	}
	s.testData = samples(test, firstN(s.nTest), net.InputScale)
	s.valData = samples(train, s.split.val, net.InputScale)
	s.fitData = samples(train, s.split.fit, net.InputScale)
	return s, nil
}

// calibrate collects the activation statistics of the calibration
// images, which serve every calibrator.
func (s *setup) calibrate() error {
	s.c.logf("calibrating on %d training images", len(s.split.cal))
	st, err := calib.CollectActStats(s.net, samples(s.train, s.split.cal, s.net.InputScale), 0, 0)
	if err != nil {
		return fmt.Errorf("calibrating: %w", err)
	}
	s.stats = st
	return nil
}

// top1 is the top-1 accuracy in percent of f on data.
func (s *setup) top1(ctx context.Context, f forwarder, data *nn.Samples) (correct int, pct float64, err error) {
	correct, err = accuracy(ctx, f, data, s.inLen, s.outLen, 256, nil)
	if data.N > 0 {
		pct = 100 * float64(correct) / float64(data.N)
	}
	return correct, pct, err
}

// engineTop1 runs q in integer arithmetic on data and closes the engine.
func (s *setup) engineTop1(ctx context.Context, q *nn.Net, data *nn.Samples) (int, float64, error) {
	e, err := integer.New(s.be, q)
	if err != nil {
		return 0, 0, err
	}
	defer e.Close()
	return s.top1(ctx, e, data)
}

// ptq quantizes the float model with bits-bit weights and the activation
// ranges of each of methods, and returns the one whose integer engine
// does best on the held-out images (the first of equals), with every
// method's accuracy there in percent. One method is returned as it is,
// not evaluated (val nil); several need held-out images.
func (s *setup) ptq(ctx context.Context, bits int, methods []string) (q *nn.Net, val map[string]float64, err error) {
	if len(methods) > 1 && len(s.split.val) == 0 {
		return nil, nil, badInput(fmt.Errorf("no held-out images to choose the int%d calibrator on "+
			"(%d asked for, of %d training images: at most half are held out)", bits, max(s.c.ValImages, 0), s.train.N))
	}
	best := -1
	for _, m := range methods {
		p, err := calib.PTQ(s.net, s.stats, calib.PTQOptions{Method: m, WeightBits: bits})
		if err != nil {
			return nil, nil, err
		}
		if len(methods) == 1 {
			return p, nil, nil
		}
		n, pct, err := s.engineTop1(ctx, p, s.valData)
		if err != nil {
			return nil, nil, err
		}
		s.c.logf("PTQ int%d weights, %-10s held-out top-1 %.2f %%", bits, m, pct)
		if val == nil {
			val = map[string]float64{}
		}
		val[m] = pct
		if n > best {
			q, best = p, n
		}
	}
	return q, val, nil
}

// qat fine-tunes from (a PTQ of the float model, whose activation ranges
// it keeps) with bits-bit weights on the training images that are not
// held out.
func (s *setup) qat(ctx context.Context, from *nn.Net, bits int) (*nn.Net, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("QAT int%dw", bits)
	s.c.logf("%s: %d epoch(s) over %d training images", name, s.c.Epochs, s.qatImages)
	opt := qat.Options{WeightBits: bits, Epochs: s.c.Epochs, Images: s.qatImages, LR: s.c.LR, Seed: s.c.Seed}
	if p := s.c.Progress; p != nil {
		opt.Progress = func(step, steps int, loss float64) { p(step, steps, fmt.Sprintf("loss %.4f", loss)) }
	}
	t0 := time.Now()
	q, err := qat.Train(from, s.fitData, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.c.logf("%s trained in %.1f s", name, time.Since(t0).Seconds())
	return q, nil
}

// loadSet loads split of the data set called name, its first limit
// images (all when limit ≤ 0). (dataset refuses a set of no images.)
func loadSet(name, split string, limit int) (*dataset.Set, error) {
	s, err := dataset.LoadLimit(name, split, limit)
	if err != nil {
		return nil, badInput(err)
	}
	return s, nil
}

// loadFloat loads the float classifier at path, or the built-in MNIST
// CNN when path is empty, and says which. A quantized (QDQ) model's
// dequantized weights stand for the float model, with a warning.
func loadFloat(path string, allowNonFinite bool, warnf func(string, ...any)) (*nn.Net, string, error) {
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
	net, err := loadFile(path, allowNonFinite, warnf)
	if err != nil {
		return nil, "", err
	}
	if net.Quant != nil {
		warnf("%s is quantized (%d-bit weights); its dequantized weights serve as the float model", path, net.Quant.WeightBits)
		net.Quant = nil
	}
	return net, filepath.Base(path), nil
}

// loadFile reads and lowers the ONNX model at path. NaN or infinite
// weights are an error naming the tensors (it wraps onnxnet.ErrNonFinite)
// unless allowNonFinite, which loads the model and warns, naming them.
func loadFile(path string, allowNonFinite bool, warnf func(string, ...any)) (*nn.Net, error) {
	net, bad, err := onnxnet.LoadWith(path, onnxnet.Options{AllowNonFinite: allowNonFinite})
	if err != nil {
		return nil, badInput(err)
	}
	if len(bad) > 0 {
		what := make([]string, len(bad))
		for i, b := range bad {
			what[i] = b.String()
		}
		warnf("%s has non-finite weights, loaded as they are: %s", path, strings.Join(what, "; "))
	}
	return net, nil
}

// checkFits reports whether the images of s fit the input of net (read
// from the file called name) and its outputs s's labels.
func checkFits(net *nn.Net, s *dataset.Set, name string) error {
	img := []int{s.C, s.H, s.W}
	if !slices.Equal(net.Input, img) && !slices.Equal(net.Input, []int{s.C * s.H * s.W}) {
		return badInput(fmt.Errorf("%s takes inputs of shape %v, but %s holds images of %d×%d×%d (%s)",
			name, net.Input, s.Name, s.C, s.H, s.W, s.ImageFile))
	}
	out, err := nn.OutputShape(net)
	if err != nil {
		return badInput(fmt.Errorf("%s: %w", name, err))
	}
	if len(out) != 1 || out[0] < s.Classes {
		return badInput(fmt.Errorf("%s gives outputs of shape %v, but %s has labels up to %d (%s)",
			name, out, s.Name, s.Classes-1, s.LabelFile))
	}
	return nil
}

// samples is the data set s seen through the list idx of its images,
// pixels times scale.
func samples(s *dataset.Set, idx []int, scale float32) *nn.Samples {
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

// firstN is 0, 1, …, n−1.
func firstN(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// forwarder runs batches of samples: *float.Engine, *integer.Engine.
type forwarder interface {
	Forward(x []float32, batch int, out []float32) error
}

// engine is a forwarder holding device memory until closed.
type engine interface {
	forwarder
	Close() error
}

// accuracy is the number of samples of data whose largest output
// (nn.Argmax: the first of equals, never a NaN unless all are) is their
// label and not NaN: an output of NaNs is never correct. It runs batches
// of batch, calls progress (when not nil) after each, and stops when ctx
// is done.
func accuracy(ctx context.Context, f forwarder, data *nn.Samples, inLen, outLen, batch int, progress func(done, total int)) (int, error) {
	x := make([]float32, batch*inLen)
	out := make([]float32, batch*outLen)
	idx := make([]int, 0, batch)
	correct := 0
	for b0 := 0; b0 < data.N; b0 += batch {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		nb := min(batch, data.N-b0)
		idx = idx[:0]
		for i := range nb {
			idx = append(idx, b0+i)
		}
		data.Fill(x[:nb*inLen], idx)
		if err := f.Forward(x[:nb*inLen], nb, out[:nb*outLen]); err != nil {
			return 0, err
		}
		for i := range nb {
			y := out[i*outLen : (i+1)*outLen]
			if nn.Argmax(y) == int(data.Labels[b0+i]) {
				correct++
			}
		}
		if progress != nil {
			progress(b0+nb, data.N)
		}
	}
	return correct, nil
}
