package nn

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/quant"
)

// Weights returns the weights of a Conv2D or Dense layer and its number
// of output channels (rows); nil and 0 for other layers.
func Weights(l Layer) ([]float32, int) {
	switch l := l.(type) {
	case *Conv2D:
		return l.W, l.OutC
	case *Dense:
		return l.W, l.Out
	}
	return nil, 0
}

// QuantizedInput reports whether a quantized net quantizes the input of
// layer l: it does for Conv2D and Dense layers.
func QuantizedInput(l Layer) bool {
	switch l.(type) {
	case *Conv2D, *Dense:
		return true
	}
	return false
}

// CheckQuant reports whether net.Quant (which must be set) fits net:
// 8 or 4 weight bits, one entry per layer, finite positive weight
// scales, activation scales finite and non-negative with int8 zero
// points.
func CheckQuant(net *Net) error {
	q := net.Quant
	if q.WeightBits != 8 && q.WeightBits != 4 {
		return fmt.Errorf("nn: %d-bit weights (want 8 or 4)", q.WeightBits)
	}
	if len(q.WeightScale) != len(net.Layers) || len(q.Act) != len(net.Layers)+1 {
		return fmt.Errorf("nn: quantization holds %d weight and %d activation entries for %d layers",
			len(q.WeightScale), len(q.Act), len(net.Layers))
	}
	for i, l := range net.Layers {
		_, outC := Weights(l)
		if s := q.WeightScale[i]; s != nil {
			if len(s) != outC {
				return fmt.Errorf("nn: layer %d: %d weight scales for %d output channels", i, len(s), outC)
			}
			for _, v := range s {
				if !(v > 0) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("nn: layer %d: weight scale %g", i, v)
				}
			}
		}
	}
	for i, a := range q.Act {
		if a.Scale != 0 && (!(a.Scale > 0) || math.IsInf(float64(a.Scale), 0) || a.ZeroPoint < -128 || a.ZeroPoint > 127) {
			return fmt.Errorf("nn: activation %d: scale %g, zero point %d", i, a.Scale, a.ZeroPoint)
		}
	}
	return nil
}

// WeightCodes quantizes w (rows of len(w)/len(scales)) row by row:
// clamp(round(w/scale), −qmax, qmax), qmax = 2^(bits−1)−1, ties to even.
func WeightCodes(w, scales []float32, bits int) []int8 {
	qmax := int32(1)<<(bits-1) - 1
	k := len(w) / len(scales)
	c := make([]int8, len(w))
	for i, v := range w {
		c[i] = int8(quant.QuantizeValue(v, scales[i/k], 0, -qmax, qmax))
	}
	return c
}

// FakeQuantWeights is codes·scale for the WeightCodes of w.
func FakeQuantWeights(w, scales []float32, bits int) []float32 {
	codes := WeightCodes(w, scales, bits)
	k := len(w) / len(scales)
	out := make([]float32, len(w))
	for i, c := range codes {
		out[i] = float32(c) * scales[i/k]
	}
	return out
}

// WeightScheme is the weight scheme of the given width: signed,
// symmetric, per output channel.
func WeightScheme(bits int) quant.Scheme {
	return quant.Scheme{Bits: bits, Signed: true, Symmetric: true, Granularity: quant.PerChannel}
}

// WeightScales is max|w[o,:]|/qmax per row o of w (outC rows), as
// quant's symmetric scheme computes it, ignoring non-finite values; 1
// for a row of zeros.
func WeightScales(w []float32, outC, bits int) []float32 {
	sch := WeightScheme(bits)
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

// ActScheme is the scheme of a quantized activation (ActQuant): int8
// codes, one scale and zero point per tensor.
func ActScheme() quant.Scheme {
	return quant.Scheme{Bits: 8, Signed: true, Granularity: quant.PerTensor}
}

// WeightBytes is the storage of net's parameters: 4 bytes a float
// weight and bias; for a quantized net, weights at Quant.WeightBits bits
// (rows packed to whole bytes), a float32 scale per output channel, and
// float32 biases.
func WeightBytes(net *Net) int {
	total := 0
	for i, l := range net.Layers {
		w, outC := Weights(l)
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
