// Package clip fits quantization parameters by a clipping search: for each
// channel or group, the range [r·lo, r·hi] of its min-max range [lo, hi]
// whose round-to-nearest codes give the smallest squared error Σ (x − x̂)²,
// over the ratios r = 1, 1 − 1/Steps·(1−MinRatio), …, MinRatio. It is
// data-free (the weight alone decides), the better default than min-max
// for int4: clipping a few large weights buys a finer step for all the
// others. Ratio 1 is min-max itself and a ratio replaces it only when it
// is strictly better, so a channel's error is never above min-max's.
package clip

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/quant"
)

// Options tune FitMSE and FitOutput.
type Options struct {
	// Steps is the number of ratios below 1 tried; 0 means 50.
	Steps int
	// MinRatio is the smallest ratio; 0 means 0.5.
	MinRatio float64
	// RoundScale, when not nil, rounds each candidate scale as the output
	// stores it (ctensors.RoundScales to BF16, say) before its error is
	// measured, so that the choice is made on the scales written.
	RoundScale func(float32) float32
	// Gemm, for FitOutput, computes C[m×n] = A[m×k]·B[n×k]ᵀ in float32
	// (row-major, both operands k-contiguous), as cpu.GemmF32 does; nil
	// runs a plain Go loop. FitOutput calls it from a goroutine a core at
	// once, so a GEMM on the caller's goroutine alone fits best
	// (cpu.GemmF32Serial).
	Gemm func(m, n, k int, a, b, c []float32)
}

// FitMSE is quant.FitMinMax with each parameter pair's range shrunk by the
// ratio (see the package documentation) that minimises the squared error
// of its values' round trip. Non-finite values are ignored in the ranges
// and the errors.
func FitMSE(s quant.Scheme, x []float32, shape []int, opt Options) (*quant.Params, error) {
	if s.Granularity == quant.PerChannel && !oneRunPerChannel(s, shape) {
		return nil, fmt.Errorf("clip: per-channel along axis %d of %v: a channel's values are not one run", s.Axis, shape)
	}
	p, err := quant.FitMinMax(s, x, shape)
	if err != nil {
		return nil, err
	}
	steps := opt.Steps
	if steps <= 0 {
		steps = 50
	}
	lowest := opt.MinRatio
	if lowest == 0 {
		lowest = 0.5
	}
	if !(lowest > 0 && lowest <= 1) {
		return nil, fmt.Errorf("clip: minimum ratio %g outside (0, 1]", lowest)
	}
	round := opt.RoundScale
	if round == nil {
		round = func(v float32) float32 { return v }
	}
	qmin, qmax := s.QMin(), s.QMax()
	var ferr error
	p.Runs(func(start, end, k int) {
		if ferr != nil {
			return
		}
		vals := x[start:end]
		lo, hi := float32(0), float32(0)
		for _, v := range vals {
			if v < lo && v >= -math.MaxFloat32 {
				lo = v
			} else if v > hi && v <= math.MaxFloat32 {
				hi = v
			}
		}
		best := math.Inf(1)
		var bs float32
		var bz int32
		for i := 0; i <= steps; i++ {
			r := 1 - float64(i)/float64(steps)*(1-lowest)
			sc, zp := s.ScaleZeroPoint(float32(r*float64(lo)), float32(r*float64(hi)))
			sc = round(sc)
			if !(sc > 0) || math.IsInf(float64(sc), 0) {
				ferr = fmt.Errorf("clip: scale %g for ratio %g", sc, r)
				return
			}
			var e float64
			for _, v := range vals {
				if v != v || math.IsInf(float64(v), 0) {
					continue
				}
				d := float64(v) - float64(quant.DequantizeValue(quant.QuantizeValue(v, sc, zp, qmin, qmax), sc, zp))
				e += d * d
				if e >= best {
					break
				}
			}
			if e < best {
				best, bs, bz = e, sc, zp
			}
		}
		p.Scales[k], p.ZeroPoints[k] = bs, bz
	})
	if ferr != nil {
		return nil, ferr
	}
	return p, nil
}

// oneRunPerChannel reports whether each channel's values are one
// contiguous run: no dimension before the channel axis is larger than 1.
func oneRunPerChannel(s quant.Scheme, shape []int) bool {
	if s.Axis >= len(shape) {
		return false
	}
	outer := 1
	for _, d := range shape[:s.Axis] {
		outer *= d
	}
	return outer == 1
}
