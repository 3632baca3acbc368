package cpu

import "github.com/quantkit/quantkit/quant"

// QuantKernels are the whole-tensor loops a checkpoint quantization runs
// (model/plan's Kernels): AbsMax, Quantize, Dequantize, SQNRSums and
// FitQuantizeGroups of this package, SIMD where the processor has it and
// spread over Threads() cores, each exactly equal to its reference in
// package quant (the sums to rounding). The zero value is ready to use.
type QuantKernels struct {
	// Serial runs every call on its caller's goroutine alone, for a
	// caller that already keeps every core busy with calls of its own
	// (the blocks of a streamed quantization): the pool's helpers then
	// spin and wake for nothing.
	Serial bool
}

func (k QuantKernels) threads() int {
	if k.Serial {
		return 1
	}
	return Threads()
}

// AbsMax is the package's AbsMax.
func (k QuantKernels) AbsMax(x []float32) float32 { return absMaxOn(k.threads(), x) }

// Quantize is the package's Quantize.
func (k QuantKernels) Quantize(codes []byte, x []float32, p *quant.Params) error {
	return quantizeOn(k.threads(), codes, x, p)
}

// Dequantize is the package's Dequantize.
func (k QuantKernels) Dequantize(x []float32, codes []byte, p *quant.Params) error {
	return dequantizeOn(k.threads(), x, codes, p)
}

// SQNRSums is the package's SQNRSums.
func (QuantKernels) SQNRSums(x, y []float32) (sig, noise float64) { return SQNRSums(x, y) }

// FitQuantizeGroups is the package's FitQuantizeGroups.
func (k QuantKernels) FitQuantizeGroups(codes []byte, scales, x []float32, s quant.Scheme, cols int, round func([]float32) error) (sig, noise float64, err error) {
	return fitQuantizeGroupsOn(k.threads(), codes, scales, x, s, cols, round)
}
