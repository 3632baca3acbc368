// Package quant is the reference for everything quantkit computes: the
// quantization schemes, their parameters, quantize and dequantize, the
// mergeable |x| histogram with its calibrators, fake-quant for
// quantization-aware training, and error metrics.
//
// It is pure Go with no dependencies of ours; every backend (cpu, gpu) is
// tested against it.
//
// # Conventions
//
// Quantize is q = clamp(roundHalfEven(x/scale) + zeroPoint, qmin, qmax) and
// dequantize is x' = (q - zeroPoint) * scale, both in float32, with the
// division (not a multiplication by 1/scale) so that every backend can
// reproduce the same codes bit for bit. NaN quantizes to the zero point
// (x' = 0), +Inf to qmax and -Inf to qmin.
//
// Signed symmetric schemes use the restricted range [-qmax, qmax]
// ([-127, 127] for int8, [-7, 7] for int4), as TensorRT does, so that zero
// is exact and the range is sign-symmetric; asymmetric signed schemes use
// the full range [-2^(b-1), 2^(b-1)-1]; unsigned schemes use [0, 2^b-1].
//
// # Storage of codes
//
// Codes are stored in a []byte, one code per byte for 8-bit schemes (an
// int8 code as its two's-complement byte) and two codes per byte for 4-bit
// schemes: element 2i in the low nibble and element 2i+1 in the high nibble
// of byte i ("low nibble first"), a signed nibble in two's complement. An
// odd count leaves the last high nibble zero. PackedLen gives the size.
//
// # Granularity
//
// Per-tensor uses one (scale, zero point). Per-channel uses one per index of
// Scheme.Axis (axis 0 of a weight matrix [out, in] is the output channel).
// Per-group splits the last axis, the reduction axis of a row-major weight
// matrix, into groups of Scheme.GroupSize consecutive elements, one
// parameter pair per group, numbered row-major: parameter index
// row*ceil(cols/GroupSize) + col/GroupSize. A last, shorter group is allowed.
package quant
