package lm

import (
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

// decoder gives a quantized weight's codes, in dst's memory where it
// fits (the caller's scratch, reused from weight to weight), and its
// parameters.
type decoder func(dst []byte) ([]byte, *quant.Params, error)

// quantizedWeights finds the quantized weights of ck: those of a
// compressed-tensors checkpoint (config.json's quantization_config; int-
// and pack-quantized, as `quantkit quantize` writes them) or of quantkit's
// raw safetensors format (plan.RawFormat metadata). It returns, for each
// weight name, a decoder of its codes and quant.Params; the map is
// empty for a float checkpoint. LoadHF dequantizes them (dequantize);
// LoadHFWith with Int8 keeps int8 per-channel ones as codes (asInt8).
func quantizedWeights(ck *checkpoint.Checkpoint) (map[string]decoder, error) {
	out := map[string]decoder{}
	if cfg := ck.Config(); cfg != nil {
		cc, ok, err := ctensors.ReadConfig(cfg)
		if err != nil {
			return nil, err
		}
		if ok {
			for _, w := range ctensors.QuantizedWeights(ck.Tensors()) {
				out[w] = func(dst []byte) ([]byte, *quant.Params, error) {
					return ctensors.DecodeWeightInto(w, cc.Scheme, ck, dst)
				}
			}
			return out, nil
		}
	}
	s, raw, ok, err := plan.ReadRawMetadata(ck.Metadata())
	if err != nil || !ok {
		return out, err
	}
	for w, rt := range raw {
		out[w] = func([]byte) ([]byte, *quant.Params, error) { return plan.DecodeRaw(ck, w, s, rt.Shape) }
	}
	return out, nil
}

// dequantize is quant.Dequantize of codes to a new float32 slice.
func dequantize(codes []byte, p *quant.Params) ([]float32, error) {
	x := make([]float32, p.Len())
	if err := quant.Dequantize(x, codes, p); err != nil {
		return nil, err
	}
	return x, nil
}
