package cpu

import "github.com/quantkit/quantkit/quant"

// QuantKernels are the whole-tensor loops a checkpoint quantization runs
// (model/plan's Kernels): AbsMax, Quantize and Dequantize of this package,
// SIMD where the processor has it and spread over Threads() cores, each
// exactly equal to its reference in package quant. The zero value is
// ready to use.
type QuantKernels struct{}

// AbsMax is the package's AbsMax.
func (QuantKernels) AbsMax(x []float32) float32 { return AbsMax(x) }

// Quantize is the package's Quantize.
func (QuantKernels) Quantize(codes []byte, x []float32, p *quant.Params) error {
	return Quantize(codes, x, p)
}

// Dequantize is the package's Dequantize.
func (QuantKernels) Dequantize(x []float32, codes []byte, p *quant.Params) error {
	return Dequantize(x, codes, p)
}

// SQNRSums is the package's SQNRSums.
func (QuantKernels) SQNRSums(x, y []float32) (sig, noise float64) { return SQNRSums(x, y) }
