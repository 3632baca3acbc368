package calib

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/tape"
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

// chunk is how many samples calibration runs forward before adding
// their tensors to the histograms in sample order: the histograms (whose
// bin width the first chunk fixes) do not depend on the number of cores.
const chunk = 256

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

// CollectActStats runs float inference of net over samples 0..n−1 of data
// (all of them when n ≤ 0 or n > data.N) and collects the |x| histogram
// (with bins bins on the first chunk; 0 means quant.DefaultBins) and the
// range of the tensor entering each Conv2D and Dense layer.
func CollectActStats(net *nn.Net, data *nn.Samples, n, bins int) (*ActStats, error) {
	if err := data.Check(false); err != nil {
		return nil, err
	}
	shapes, err := nn.Shapes(net)
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
		if nn.QuantizedInput(l) {
			st.Hist[i] = quant.NewHistogram(bins)
			st.Min[i], st.Max[i] = float32(math.Inf(1)), float32(math.Inf(-1))
			bufs[i] = make([]float32, chunk*shapes[i].Size())
		}
	}
	p := tape.ParamsOf(net)
	in := shapes[0].Size()
	x := make([]float32, chunk*in)
	idx := make([]int, chunk)
	tapes := make([]*tape.Tape, tape.Workers())
	for k := range tapes {
		tapes[k] = tape.New(shapes)
	}
	for c0 := 0; c0 < n; c0 += chunk {
		m := min(chunk, n-c0)
		for k := range m {
			idx[k] = c0 + k
		}
		data.Fill(x[:m*in], idx[:m])
		per := (m + tape.Shards - 1) / tape.Shards
		tape.Parallel(tape.Shards, func(w, s int) {
			t := tapes[w]
			for k := s * per; k < min((s+1)*per, m); k++ {
				t.Forward(net, shapes, p, x[k*in:(k+1)*in], nil)
				for i, b := range bufs {
					if b != nil {
						sz := shapes[i].Size()
						copy(b[k*sz:(k+1)*sz], t.Acts[i])
					}
				}
			}
		})
		for i, b := range bufs {
			if b == nil {
				continue
			}
			v := b[:m*shapes[i].Size()]
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
func PTQ(net *nn.Net, st *ActStats, opt PTQOptions) (*nn.Net, error) {
	if opt.WeightBits == 0 {
		opt.WeightBits = 8
	}
	if opt.WeightBits != 8 && opt.WeightBits != 4 {
		return nil, fmt.Errorf("nn: %d-bit weights not supported (8 or 4)", opt.WeightBits)
	}
	if _, err := nn.Shapes(net); err != nil {
		return nil, err
	}
	if st == nil || len(st.Hist) != len(net.Layers) {
		return nil, fmt.Errorf("nn: calibration statistics do not match the net's %d layers", len(net.Layers))
	}
	q := net.Clone()
	q.Quant = &nn.Quant{
		WeightBits:  opt.WeightBits,
		WeightScale: make([][]float32, len(net.Layers)),
		Act:         make([]nn.ActQuant, len(net.Layers)+1),
		Method:      opt.Method,
	}
	for i, l := range q.Layers {
		if !nn.QuantizedInput(l) {
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
		q.Quant.Act[i] = actQuant(amax, nonNeg)
		w, outC := nn.Weights(l)
		q.Quant.WeightScale[i] = nn.WeightScales(w, outC, opt.WeightBits)
	}
	return q, nil
}

// actQuant gives the parameters of a tensor clipped at amax: over
// [0, amax] with zero point −128 when it is non-negative, over
// [−amax, amax] with zero point 0 otherwise.
func actQuant(amax float32, nonNeg bool) nn.ActQuant {
	if nonNeg {
		s, z := nn.ActScheme().ScaleZeroPoint(0, amax)
		return nn.ActQuant{Scale: s, ZeroPoint: z}
	}
	s, z := quant.Int8PerTensor.ScaleZeroPoint(-amax, amax)
	return nn.ActQuant{Scale: s, ZeroPoint: z}
}
