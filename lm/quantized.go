package lm

import (
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
		out[w] = dequant(func() ([]byte, *quant.Params, error) { return plan.DecodeRaw(ck, w, s, rt.Shape) })
	}
	return out, nil
}
