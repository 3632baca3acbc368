package qat

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/tape"
	"github.com/quantkit/quantkit/quant"
)

// Quantization-aware training.
//
// QAT fine-tunes the float weights of a calibrated net while its forward
// pass computes what the integer engine will: the weights of every
// Conv2D and Dense are fake-quantized per output channel with scales
// recomputed at every step from the current weights (max |w| / qmax, so
// no weight is ever clipped and the straight-through estimator passes
// every weight gradient), and the tensor entering every Conv2D and Dense
// is fake-quantized with the activation parameters of the calibration,
// which stay frozen (the integer engine uses exactly them; the STE passes
// gradients inside their clipping range only). The loss is the softmax
// cross-entropy of the logits (the input of a trailing Softmax), the
// optimizer Adam. Mini-batches are split into a fixed number of shards
// summed in a fixed order, and the samples are drawn from a generator
// seeded by the caller, so a run is reproducible on any number of cores.

// Options configure Train.
type Options struct {
	WeightBits int     // 4 or 8; 0 keeps the calibrated net's
	Epochs     int     // passes over the training images; default 1
	Images     int     // training images, a seeded random subset of data; 0 or more than data.N: all
	BatchSize  int     // default 64
	LR         float64 // Adam step size; default 1e-4
	Seed       uint64
	// Progress, when set, is called after every step with the number of
	// steps done, their total and the mean loss of the step's batch.
	Progress func(step, steps int, loss float64)
}

// Train returns a copy of the calibrated net q (from PTQ: its activation
// parameters are used and kept) whose weights were fine-tuned on data
// with fake quantization, with Quant set (Method "qat") for the integer
// engine. q is not modified.
func Train(q *nn.Net, data *nn.Samples, opt Options) (*nn.Net, error) {
	if q == nil || q.Quant == nil {
		return nil, errors.New("nn: QAT needs a calibrated net (PTQ gives its activation ranges)")
	}
	if err := data.Check(true); err != nil {
		return nil, err
	}
	shapes, err := nn.Shapes(q)
	if err != nil {
		return nil, err
	}
	if opt.WeightBits == 0 {
		opt.WeightBits = q.Quant.WeightBits
	}
	if opt.WeightBits != 8 && opt.WeightBits != 4 {
		return nil, fmt.Errorf("nn: %d-bit weights not supported (8 or 4)", opt.WeightBits)
	}
	if opt.Epochs <= 0 {
		opt.Epochs = 1
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 64
	}
	if opt.LR == 0 {
		opt.LR = 1e-4
	}
	if !(opt.LR > 0) || math.IsInf(opt.LR, 0) {
		return nil, fmt.Errorf("nn: learning rate %g", opt.LR)
	}
	top := tape.LogitsLayer(q)
	classes := shapes[top].Size()
	for i, l := range data.Labels[:data.N] {
		if int(l) >= classes {
			return nil, fmt.Errorf("nn: sample %d has label %d, the net has %d outputs", i, l, classes)
		}
	}
	net := q.Clone()
	act, err := actParams(net, shapes)
	if err != nil {
		return nil, err
	}
	p := tape.ParamsOf(net) // float weights, trained
	fq := tape.Params{W: make([][]float32, len(net.Layers)), B: p.B}
	wparams := make([]*quant.Params, len(net.Layers))
	for i, w := range p.W {
		if w == nil {
			continue
		}
		_, outC := nn.Weights(net.Layers[i])
		fq.W[i] = make([]float32, len(w))
		if wparams[i], err = quant.NewParams(nn.WeightScheme(opt.WeightBits), []int{outC, len(w) / outC}); err != nil {
			return nil, err
		}
	}
	actFQ := func(layer int, x []float32, mask []bool) {
		quant.FakeQuant(x, mask, x, act[layer]) // checked in actParams
	}

	rng := rand.New(rand.NewPCG(opt.Seed, 0x9a7))
	order := rng.Perm(data.N)
	if opt.Images > 0 && opt.Images < data.N {
		order = order[:opt.Images]
	}
	steps := (len(order) + opt.BatchSize - 1) / opt.BatchSize
	total := steps * opt.Epochs

	// Per shard: a tape and gradient sums.
	type shardState struct {
		gw, gb [][]float32
		loss   float64
	}
	shards := make([]shardState, tape.Shards)
	for s := range shards {
		shards[s].gw = make([][]float32, len(p.W))
		shards[s].gb = make([][]float32, len(p.W))
		for i, w := range p.W {
			if w != nil {
				shards[s].gw[i] = make([]float32, len(w))
				shards[s].gb[i] = make([]float32, len(p.B[i]))
			}
		}
	}
	tapes := make([]*tape.Tape, tape.Workers())
	for k := range tapes {
		tapes[k] = tape.New(shapes)
	}
	optim := newAdam(p)
	in := shapes[0].Size()
	x := make([]float32, opt.BatchSize*in)
	done := 0
	for range opt.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for b0 := 0; b0 < len(order); b0 += opt.BatchSize {
			idx := order[b0:min(b0+opt.BatchSize, len(order))]
			nb := len(idx)
			data.Fill(x[:nb*in], idx)
			for i, w := range p.W {
				if w == nil {
					continue
				}
				_, outC := nn.Weights(net.Layers[i])
				copy(wparams[i].Scales, nn.WeightScales(w, outC, opt.WeightBits))
				if err := quant.FakeQuant(fq.W[i], nil, w, wparams[i]); err != nil {
					return nil, fmt.Errorf("nn: layer %d weights: %w", i, err)
				}
			}
			per := (nb + tape.Shards - 1) / tape.Shards
			scale := 1 / float32(nb)
			tape.Parallel(tape.Shards, func(wk, s int) {
				t, sh := tapes[wk], &shards[s]
				sh.loss = 0
				for i := range sh.gw {
					clear(sh.gw[i])
					clear(sh.gb[i])
				}
				for k := s * per; k < min((s+1)*per, nb); k++ {
					t.Forward(net, shapes, fq, x[k*in:(k+1)*in], actFQ)
					sh.loss += tape.CrossEntropy(t.Grad[top], t.Acts[top], int(data.Labels[idx[k]]), scale)
					t.Backward(net, shapes, fq, top, sh.gw, sh.gb)
				}
			})
			loss := 0.0
			for s := 1; s < tape.Shards; s++ {
				for i := range shards[0].gw {
					for k, v := range shards[s].gw[i] {
						shards[0].gw[i][k] += v
					}
					for k, v := range shards[s].gb[i] {
						shards[0].gb[i][k] += v
					}
				}
			}
			for s := range shards {
				loss += shards[s].loss
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("nn: QAT diverged at step %d (loss %g); lower the learning rate", done, loss)
			}
			optim.step(p, shards[0].gw, shards[0].gb, opt.LR)
			done++
			if opt.Progress != nil {
				opt.Progress(done, total, loss/float64(nb))
			}
		}
	}
	for i, w := range p.W {
		if w != nil {
			_, outC := nn.Weights(net.Layers[i])
			net.Quant.WeightScale[i] = nn.WeightScales(w, outC, opt.WeightBits)
		}
	}
	net.Quant.WeightBits = opt.WeightBits
	net.Quant.Method = "qat"
	return net, nil
}

// actParams are the fake-quant parameters of the tensor entering each
// Conv2D and Dense layer: per tensor, int8 codes in [−128, 127], from
// net.Quant.Act.
func actParams(net *nn.Net, shapes []nn.Shape) ([]*quant.Params, error) {
	ps := make([]*quant.Params, len(net.Layers))
	for i, l := range net.Layers {
		if !nn.QuantizedInput(l) {
			continue
		}
		if i >= len(net.Quant.Act) {
			return nil, fmt.Errorf("nn: layer %d has no activation parameters", i)
		}
		a := net.Quant.Act[i]
		p, err := quant.NewParams(nn.ActScheme(), []int{shapes[i].Size()})
		if err != nil {
			return nil, err
		}
		p.Scales[0], p.ZeroPoints[0] = a.Scale, a.ZeroPoint
		if err := p.Check(); err != nil {
			return nil, fmt.Errorf("nn: layer %d input: %w", i, err)
		}
		ps[i] = p
	}
	return ps, nil
}

// adam is Adam (β1 0.9, β2 0.999, ε 1e-8) over the weights and biases.
type adam struct {
	t          int
	mw, vw     [][]float64
	mb, vb     [][]float64
	b1, b2, ep float64
}

func newAdam(p tape.Params) *adam {
	a := &adam{b1: 0.9, b2: 0.999, ep: 1e-8}
	for i, w := range p.W {
		var mw, vw, mb, vb []float64
		if w != nil {
			mw, vw = make([]float64, len(w)), make([]float64, len(w))
			mb, vb = make([]float64, len(p.B[i])), make([]float64, len(p.B[i]))
		}
		a.mw, a.vw = append(a.mw, mw), append(a.vw, vw)
		a.mb, a.vb = append(a.mb, mb), append(a.vb, vb)
	}
	return a
}

func (a *adam) step(p tape.Params, gw, gb [][]float32, lr float64) {
	a.t++
	c1 := 1 - math.Pow(a.b1, float64(a.t))
	c2 := 1 - math.Pow(a.b2, float64(a.t))
	upd := func(x []float32, g []float32, m, v []float64) {
		for k, gv := range g {
			gd := float64(gv)
			m[k] = a.b1*m[k] + (1-a.b1)*gd
			v[k] = a.b2*v[k] + (1-a.b2)*gd*gd
			x[k] -= float32(lr * (m[k] / c1) / (math.Sqrt(v[k]/c2) + a.ep))
		}
	}
	for i, w := range p.W {
		if w == nil {
			continue
		}
		upd(w, gw[i], a.mw[i], a.vw[i])
		upd(p.B[i], gb[i], a.mb[i], a.vb[i])
	}
}
