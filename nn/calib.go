package nn

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/quant"
)

// Post-training static quantization (W8A8 or W4A8).
//
// Weights: signed, symmetric, per output channel, scale = max|W[o,:]| /
// qmax with qmax 127 (int8) or 7 (int4), codes clamp(round(w/scale)) in
// [−qmax, qmax]; a channel of zeros gets scale 1.
//
// Activations: one (scale, zero point) per tensor entering a Conv2D or
// Dense layer, from a calibrator's threshold amax over the histogram of
// |x| on the calibration samples. A tensor that was never negative (the
// raw 0..255 pixels, everything after a ReLU) is quantized asymmetrically
// over [0, amax] with zero point −128, so that all 256 codes cover its
// range (scale = amax/255; the raw pixels with amax 255 get scale 1 and
// are exact); the calibrator is then asked for an unsigned threshold. A
// tensor with negative values is symmetric, scale = amax/127, zero point
// 0. Between layers the integer engine requantizes directly to the
// parameters of the next Conv2D/Dense input, which ReLU, MaxPool and
// Flatten commute with.

// calibChunk is how many samples calibration runs forward before adding
// their tensors to the histograms in sample order: the histograms (whose
// bin width the first chunk fixes) do not depend on the number of cores.
const calibChunk = 256

// ActStats are the statistics of the tensors entering each Conv2D and
// Dense layer of a net over calibration samples: Hist[i], Min[i] and
// Max[i] for Layers[i] (nil and 0 for other layers). Histograms of the
// same net merge (see Merge), so calibration can be split over machines.
type ActStats struct {
	Hist     []*quant.Histogram
	Min, Max []float32
	N        int // samples
}

// Merge adds the statistics of o, collected on the same net, to s. The
// histograms merge exactly (see quant.Histogram.Merge).
func (s *ActStats) Merge(o *ActStats) error {
	if len(o.Hist) != len(s.Hist) {
		return fmt.Errorf("nn: merge statistics of %d and %d layers", len(s.Hist), len(o.Hist))
	}
	for i, h := range o.Hist {
		if (h == nil) != (s.Hist[i] == nil) {
			return fmt.Errorf("nn: merge statistics: layer %d is calibrated in one and not the other", i)
		}
	}
	for i, h := range o.Hist {
		if h == nil {
			continue
		}
		if err := s.Hist[i].Merge(h); err != nil {
			return fmt.Errorf("nn: merge statistics of layer %d: %w", i, err)
		}
		s.Min[i], s.Max[i] = min(s.Min[i], o.Min[i]), max(s.Max[i], o.Max[i])
	}
	s.N += o.N
	return nil
}

// calibQuantized reports whether layer l has a quantized input.
func calibQuantized(l Layer) bool {
	switch l.(type) {
	case *Conv2D, *Dense:
		return true
	}
	return false
}

// CollectActStats runs float inference of net over samples 0..n−1 of data
// (all of them when n ≤ 0 or n > data.N) and collects the |x| histogram
// (with bins bins on the first chunk; 0 means quant.DefaultBins) and the
// range of the tensor entering each Conv2D and Dense layer.
func CollectActStats(net *Net, data *Samples, n, bins int) (*ActStats, error) {
	if err := data.check(false); err != nil {
		return nil, err
	}
	shapes, err := chainShapes(net)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > data.N {
		n = data.N
	}
	L := len(net.Layers)
	st := &ActStats{Hist: make([]*quant.Histogram, L), Min: make([]float32, L), Max: make([]float32, L), N: n}
	bufs := make([][]float32, L)
	for i, l := range net.Layers {
		if calibQuantized(l) {
			st.Hist[i] = quant.NewHistogram(bins)
			st.Min[i], st.Max[i] = float32(math.Inf(1)), float32(math.Inf(-1))
			bufs[i] = make([]float32, calibChunk*shapes[i].size())
		}
	}
	p := trainParamsOf(net)
	in := shapes[0].size()
	x := make([]float32, calibChunk*in)
	idx := make([]int, calibChunk)
	tapes := make([]*trainTape, trainWorkers())
	for k := range tapes {
		tapes[k] = newTrainTape(shapes)
	}
	for c0 := 0; c0 < n; c0 += calibChunk {
		m := min(calibChunk, n-c0)
		for k := range m {
			idx[k] = c0 + k
		}
		data.Fill(x[:m*in], idx[:m])
		per := (m + trainShards - 1) / trainShards
		trainParallel(trainShards, func(w, s int) {
			t := tapes[w]
			for k := s * per; k < min((s+1)*per, m); k++ {
				t.forward(net, shapes, p, x[k*in:(k+1)*in], nil)
				for i, b := range bufs {
					if b != nil {
						sz := shapes[i].size()
						copy(b[k*sz:(k+1)*sz], t.acts[i])
					}
				}
			}
		})
		for i, b := range bufs {
			if b == nil {
				continue
			}
			v := b[:m*shapes[i].size()]
			st.Hist[i].Add(v)
			for _, f := range v {
				if f-f == 0 {
					st.Min[i], st.Max[i] = min(st.Min[i], f), max(st.Max[i], f)
				}
			}
		}
	}
	return st, nil
}

// PTQOptions choose a post-training quantization.
type PTQOptions struct {
	Method     string  // calibrator: max, percentile, entropy or mse
	WeightBits int     // 8 (default) or 4
	Percentile float64 // for "percentile", default 99.99
}

// PTQ returns a copy of net (weights copied, never modified) with Quant
// set from the statistics st: per-channel weight scales and the
// activation parameters opt.Method's calibrator chooses (see the comment
// at the top of this file).
func PTQ(net *Net, st *ActStats, opt PTQOptions) (*Net, error) {
	if opt.WeightBits == 0 {
		opt.WeightBits = 8
	}
	if opt.WeightBits != 8 && opt.WeightBits != 4 {
		return nil, fmt.Errorf("nn: %d-bit weights not supported (8 or 4)", opt.WeightBits)
	}
	if _, err := chainShapes(net); err != nil {
		return nil, err
	}
	if st == nil || len(st.Hist) != len(net.Layers) {
		return nil, fmt.Errorf("nn: calibration statistics do not match the net's %d layers", len(net.Layers))
	}
	q := calibClone(net)
	q.Quant = &Quant{
		WeightBits:  opt.WeightBits,
		WeightScale: make([][]float32, len(net.Layers)),
		Act:         make([]ActQuant, len(net.Layers)+1),
		Method:      opt.Method,
	}
	for i, l := range q.Layers {
		if !calibQuantized(l) {
			continue
		}
		if st.Hist[i] == nil {
			return nil, fmt.Errorf("nn: layer %d has no calibration statistics", i)
		}
		nonNeg := st.Min[i] >= 0
		cal, err := quant.NewCalibrator(opt.Method, quant.CalibOptions{Bits: 8, Unsigned: nonNeg, Percentile: opt.Percentile})
		if err != nil {
			return nil, fmt.Errorf("nn: %w", err)
		}
		amax, err := cal.Amax(st.Hist[i])
		if err != nil {
			return nil, fmt.Errorf("nn: layer %d: %w", i, err)
		}
		q.Quant.Act[i] = calibActQuant(amax, nonNeg)
		w, outC := weightsOf(l)
		q.Quant.WeightScale[i] = calibWeightScales(w, outC, opt.WeightBits)
	}
	return q, nil
}

// calibActScheme is the asymmetric int8 scheme of non-negative tensors.
var calibActScheme = quant.Scheme{Bits: 8, Signed: true, Granularity: quant.PerTensor}

// calibActQuant gives the parameters of a tensor clipped at amax: over
// [0, amax] with zero point −128 when it is non-negative, over
// [−amax, amax] with zero point 0 otherwise.
func calibActQuant(amax float32, nonNeg bool) ActQuant {
	if nonNeg {
		s, z := calibActScheme.ScaleZeroPoint(0, amax)
		return ActQuant{Scale: s, ZeroPoint: z}
	}
	s, z := quant.Int8PerTensor.ScaleZeroPoint(-amax, amax)
	return ActQuant{Scale: s, ZeroPoint: z}
}

// calibWeightScheme is the weight scheme of the given width: signed,
// symmetric, per output channel.
func calibWeightScheme(bits int) quant.Scheme {
	return quant.Scheme{Bits: bits, Signed: true, Symmetric: true, Granularity: quant.PerChannel}
}

// calibWeightScales is max|w[o,:]|/qmax per row o of w (outC rows), as
// quant's symmetric scheme computes it; 1 for a row of zeros.
func calibWeightScales(w []float32, outC, bits int) []float32 {
	sch := calibWeightScheme(bits)
	k := len(w) / outC
	s := make([]float32, outC)
	for o := range outC {
		var m float32
		for _, v := range w[o*k : (o+1)*k] {
			if v-v == 0 {
				m = max(m, float32(math.Abs(float64(v))))
			}
		}
		s[o], _ = sch.ScaleZeroPoint(-m, m)
	}
	return s
}

// calibClone copies net, its layers and their weights; Quant is copied
// too when set.
func calibClone(net *Net) *Net {
	c := *net
	c.Input = append([]int(nil), net.Input...)
	c.Layers = make([]Layer, len(net.Layers))
	for i, l := range net.Layers {
		switch l := l.(type) {
		case *Conv2D:
			v := *l
			v.W, v.B = append([]float32(nil), l.W...), append([]float32(nil), l.B...)
			c.Layers[i] = &v
		case *Dense:
			v := *l
			v.W, v.B = append([]float32(nil), l.W...), append([]float32(nil), l.B...)
			c.Layers[i] = &v
		case *MaxPool:
			v := *l
			c.Layers[i] = &v
		case *ReLU:
			c.Layers[i] = &ReLU{}
		case *Flatten:
			c.Layers[i] = &Flatten{}
		case *Softmax:
			c.Layers[i] = &Softmax{}
		default:
			c.Layers[i] = l
		}
	}
	if q := net.Quant; q != nil {
		cq := *q
		cq.WeightScale = make([][]float32, len(q.WeightScale))
		for i, s := range q.WeightScale {
			cq.WeightScale[i] = append([]float32(nil), s...)
		}
		cq.Act = append([]ActQuant(nil), q.Act...)
		c.Quant = &cq
	}
	return &c
}

// WeightBytes is the storage of net's parameters: 4 bytes a float
// weight and bias; for a quantized net, weights at Quant.WeightBits bits
// (rows packed to whole bytes), a float32 scale per output channel, and
// float32 biases.
func WeightBytes(net *Net) int {
	total := 0
	for i, l := range net.Layers {
		w, outC := weightsOf(l)
		if w == nil {
			continue
		}
		total += 4 * outC // biases
		if net.Quant == nil || i >= len(net.Quant.WeightScale) || net.Quant.WeightScale[i] == nil {
			total += 4 * len(w)
			continue
		}
		k := len(w) / outC
		total += outC*((k*net.Quant.WeightBits+7)/8) + 4*outC
	}
	return total
}

// IOLen is the number of values of one sample of net's input and of its
// output, or an error when the layers do not chain.
func IOLen(net *Net) (in, out int, err error) {
	s, err := chainShapes(net)
	if err != nil {
		return 0, 0, err
	}
	return s[0].size(), s[len(s)-1].size(), nil
}
