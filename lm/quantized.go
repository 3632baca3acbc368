package lm

import (
	"encoding/binary"
	"fmt"

	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// quantizedWeights finds the quantized weights of ck: those of a
// compressed-tensors checkpoint (config.json's quantization_config; int-
// and pack-quantized, as `quantkit quantize` writes them) or of quantkit's
// raw safetensors format (plan.RawFormat metadata). It returns, for each
// weight name, a function giving its float32 values, dequantized with
// quant.Dequantize; the map is empty for a float checkpoint.
//
// The weights are dequantized at load: the model holds and multiplies
// float32 matrices, exactly the float model run on the dequantized
// weights. Keeping them quantized in memory, with int8 GEMMs, is the next
// step.
func quantizedWeights(ck *checkpoint.Checkpoint) (map[string]func() ([]float32, error), error) {
	out := map[string]func() ([]float32, error){}
	dequant := func(decode func() ([]byte, *quant.Params, error)) func() ([]float32, error) {
		return func() ([]float32, error) {
			codes, p, err := decode()
			if err != nil {
				return nil, err
			}
			x := make([]float32, p.Len())
			if err := quant.Dequantize(x, codes, p); err != nil {
				return nil, err
			}
			return x, nil
		}
	}
	if cfg := ck.Config(); cfg != nil {
		cc, ok, err := ctensors.ReadConfig(cfg)
		if err != nil {
			return nil, err
		}
		if ok {
			for _, w := range ctensors.QuantizedWeights(ck.Tensors()) {
				out[w] = dequant(func() ([]byte, *quant.Params, error) { return ctensors.DecodeWeight(w, cc.Scheme, ck) })
			}
			return out, nil
		}
	}
	s, raw, ok, err := plan.ReadRawMetadata(ck.Metadata())
	if err != nil || !ok {
		return out, err
	}
	for w, rt := range raw {
		out[w] = dequant(func() ([]byte, *quant.Params, error) { return rawDecode(ck, w, s, rt.Shape) })
	}
	return out, nil
}

// rawDecode reads weight w of quantkit's raw safetensors format: its
// packed codes, its float32 scales (w+plan.RawScale) and, for asymmetric
// schemes, its int32 zero points (w+plan.RawZeroPoint).
func rawDecode(ck *checkpoint.Checkpoint, w string, s quant.Scheme, shape []int) ([]byte, *quant.Params, error) {
	codes, err := ck.Bytes(w)
	if err != nil {
		return nil, nil, err
	}
	scales, err := ck.Float32(w + plan.RawScale)
	if err != nil {
		return nil, nil, err
	}
	p := &quant.Params{Scheme: s, Shape: shape, Scales: scales, ZeroPoints: make([]int32, len(scales))}
	if !s.Symmetric {
		zb, err := ck.Bytes(w + plan.RawZeroPoint)
		if err != nil {
			return nil, nil, err
		}
		if len(zb) != 4*len(scales) {
			return nil, nil, fmt.Errorf("%s: %d zero-point bytes for %d scales", w, len(zb), len(scales))
		}
		for i := range p.ZeroPoints {
			p.ZeroPoints[i] = int32(binary.LittleEndian.Uint32(zb[4*i:]))
		}
	}
	if err := p.Check(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", w, err)
	}
	if n := p.Len(); len(codes) != s.PackedLen(n) {
		return nil, nil, fmt.Errorf("%s: %d code bytes, want %d", w, len(codes), s.PackedLen(n))
	}
	return codes, p, nil
}
