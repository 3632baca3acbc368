package quant

import "fmt"

// FakeQuant quantizes and dequantizes x into y for quantization-aware
// training, with p's per-tensor, per-channel or per-group parameters:
//
//	for i, v := range x {
//		k := p.Index(i); s, z := p.Scales[k], p.ZeroPoints[k]
//		y[i] = DequantizeValue(QuantizeValue(v, s, z, qmin, qmax), s, z)
//		inRange[i] = (qmin−z)·s <= v && v <= (qmax−z)·s
//	}
//
// so y is exactly what Quantize then Dequantize give. inRange, which may be
// nil, records for FakeQuantBackward where the straight-through estimator
// passes the gradient: inside the clip range, bounds included (as
// pytorch-quantization does), computed in float32 as DequantizeValue(qmin)
// and DequantizeValue(qmax). A NaN gives y = 0 (the zero point's value)
// and ±Inf the clip bounds, all three outside the range. y may be x.
func FakeQuant(y []float32, inRange []bool, x []float32, p *Params) error {
	if err := p.Check(); err != nil {
		return err
	}
	if n := p.Len(); len(x) != n {
		return fmt.Errorf("quant: fake quant: %d values for shape %v (%d elements)", len(x), p.Shape, n)
	}
	if len(y) != len(x) {
		return fmt.Errorf("quant: fake quant: output has %d values, input %d", len(y), len(x))
	}
	if inRange != nil && len(inRange) != len(x) {
		return fmt.Errorf("quant: fake quant: range mask has %d entries for %d values", len(inRange), len(x))
	}
	qmin, qmax := p.Scheme.QMin(), p.Scheme.QMax()
	p.Runs(func(start, end, k int) {
		s, z := p.Scales[k], p.ZeroPoints[k]
		lo, hi := DequantizeValue(qmin, s, z), DequantizeValue(qmax, s, z)
		for i := start; i < end; i++ {
			v := x[i]
			if inRange != nil {
				inRange[i] = lo <= v && v <= hi
			}
			y[i] = DequantizeValue(QuantizeValue(v, s, z, qmin, qmax), s, z)
		}
	})
	return nil
}

// FakeQuantBackward is the straight-through estimator of FakeQuant: the
// gradient with respect to its input, given the gradient gradOut with
// respect to its output and the mask FakeQuant recorded,
//
//	for i, g := range gradOut {
//		if inRange[i] { gradIn[i] = g } else { gradIn[i] = 0 }
//	}
//
// gradIn may be gradOut.
func FakeQuantBackward(gradIn, gradOut []float32, inRange []bool) error {
	if len(gradIn) != len(gradOut) || len(inRange) != len(gradOut) {
		return fmt.Errorf("quant: fake quant backward: %d input gradients, %d output gradients and %d mask entries, want equal",
			len(gradIn), len(gradOut), len(inRange))
	}
	for i, g := range gradOut {
		if inRange[i] {
			gradIn[i] = g
		} else {
			gradIn[i] = 0
		}
	}
	return nil
}
