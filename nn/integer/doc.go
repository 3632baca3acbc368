// Package integer runs a quantized nn.Net (Quant set, by nn/calib's PTQ
// or nn/qat's Train) in integer arithmetic on a backend: int8 codes
// between layers, backend.GemmS8 with a requantizing epilogue for every
// Conv2D and Dense.
package integer
