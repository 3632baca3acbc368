package ctensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/quant"
)

// Format is the compressed-tensors format of the weights, the
// quantization_config "format" key.
type Format string

// The formats, one row each in formats.
const (
	IntQuantized  Format = "int-quantized"  // one code per I8
	PackQuantized Format = "pack-quantized" // 32/bits codes per I32 word
)

// formats is the table of supported formats.
var formats = []struct {
	format Format
	packed bool // codes packed into I32 words, with a W_shape tensor
}{
	{IntQuantized, false},
	{PackQuantized, true},
}

// packed reports whether f packs codes into int32 words, or an error for an
// unknown format.
func (f Format) packed() (bool, error) {
	for _, row := range formats {
		if row.format == f {
			return row.packed, nil
		}
	}
	names := make([]string, len(formats))
	for i, row := range formats {
		names[i] = string(row.format)
	}
	return false, fmt.Errorf("format %q not supported (supported: %s)", f, strings.Join(names, ", "))
}

// DefaultFormat is pack-quantized for 4-bit schemes and int-quantized for
// 8-bit ones. vLLM loads weight-only int8 only as pack-quantized: see the
// package documentation.
func DefaultFormat(s quant.Scheme) Format {
	if s.Bits == 4 {
		return PackQuantized
	}
	return IntQuantized
}

// Names of the tensors beside a weight W: W+suffix.
const (
	suffixPacked    = "_packed"
	suffixShape     = "_shape"
	suffixScale     = "_scale"
	suffixZeroPoint = "_zero_point"
	suffixGIdx      = "_g_idx" // activation reordering, which we do not support
)

// scaleDTypes is the table of dtypes a scale may be written in: the name
// the header uses, the bytes per element and the encoding of a float32
// value (rounded to nearest even). Reading accepts any float dtype that
// safetensors converts.
var scaleDTypes = []struct {
	name   string
	size   int
	encode func(dst []byte, v float32)
	decode func(src []byte) float32
	// smallest and largest positive finite values
	minPos, maxPos float32
}{
	{"F32", 4,
		func(dst []byte, v float32) { binary.LittleEndian.PutUint32(dst, math.Float32bits(v)) },
		func(src []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(src)) },
		math.SmallestNonzeroFloat32, math.MaxFloat32},
	{"F16", 2,
		func(dst []byte, v float32) { binary.LittleEndian.PutUint16(dst, half.Float32ToFloat16(v)) },
		func(src []byte) float32 { return half.Float16ToFloat32(binary.LittleEndian.Uint16(src)) },
		0x1p-24, 65504},
	{"BF16", 2,
		func(dst []byte, v float32) { binary.LittleEndian.PutUint16(dst, half.Float32ToBFloat16(v)) },
		func(src []byte) float32 { return half.BFloat16ToFloat32(binary.LittleEndian.Uint16(src)) },
		0x1p-133, math.Float32frombits(0x7f7f0000)},
}

func lookupScaleDType(name string) (int, error) {
	for i, d := range scaleDTypes {
		if d.name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("scale dtype %q not supported (F32, F16 or BF16)", name)
}

// roundScale is v rounded to the nearest value of scale dtype d.
func roundScale(d int, v float32) float32 {
	var b [4]byte
	scaleDTypes[d].encode(b[:], v)
	return scaleDTypes[d].decode(b[:])
}

// RoundScales rounds every scale of p in place to the nearest value the
// scale dtype holds, keeping it positive and finite (a scale below the
// smallest positive value becomes that value, one above the largest
// finite value becomes that value). Quantize with the rounded scales so
// that EncodeWeight stores exactly the scales the codes were made with.
func RoundScales(p *quant.Params, scaleDType string) error {
	d, err := lookupScaleDType(scaleDType)
	if err != nil {
		return fmt.Errorf("ctensors: %w", err)
	}
	row := scaleDTypes[d]
	for k, v := range p.Scales {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("ctensors: scale %d is %g, want finite and positive", k, v)
		}
		r := roundScale(d, v)
		switch {
		case r < row.minPos:
			r = row.minPos
		case r > row.maxPos:
			r = row.maxPos
		}
		p.Scales[k] = r
	}
	return nil
}
