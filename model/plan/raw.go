package plan

import (
	"encoding/binary"
	"fmt"

	"github.com/quantkit/quantkit/quant"
)

// RawSource is what DecodeRaw reads a weight from: a checkpoint or a
// safetensors file.
type RawSource interface {
	Bytes(name string) ([]byte, error)
	Float32(name string) ([]float32, error)
}

// DecodeRaw reads weight w of quantkit's raw safetensors format (Raw): its
// packed codes, its float32 scales (w+RawScale) and, for asymmetric
// schemes, its int32 zero points (w+RawZeroPoint), as parameters of scheme
// s over the weight's original shape; the parameters are checked
// (quant.Params.Check). Dequantize and the language-model loader share it.
func DecodeRaw(ck RawSource, w string, s quant.Scheme, shape []int) ([]byte, *quant.Params, error) {
	codes, err := ck.Bytes(w)
	if err != nil {
		return nil, nil, err
	}
	scales, err := ck.Float32(w + RawScale)
	if err != nil {
		return nil, nil, err
	}
	p := &quant.Params{Scheme: s, Shape: shape, Scales: scales, ZeroPoints: make([]int32, len(scales))}
	if !s.Symmetric {
		zb, err := ck.Bytes(w + RawZeroPoint)
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
