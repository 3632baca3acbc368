package plan

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

type rawMap struct {
	bytes map[string][]byte
	f32   map[string][]float32
}

func (m rawMap) Bytes(name string) ([]byte, error) {
	if b, ok := m.bytes[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("no tensor %q", name)
}

func (m rawMap) Float32(name string) ([]float32, error) {
	if x, ok := m.f32[name]; ok {
		return x, nil
	}
	return nil, fmt.Errorf("no tensor %q", name)
}

// DecodeRaw gives back what quant.Quantize wrote, and refuses codes, scales
// or zero points of the wrong length, naming the weight.
func TestDecodeRaw(t *testing.T) {
	s := quant.Scheme{Bits: 8, Signed: true, Symmetric: false, Granularity: quant.PerChannel}
	shape := []int{3, 4}
	x := []float32{1, -2, 3, 4, 0.5, 0.25, -1, 2, 9, -9, 3, 0}
	p, err := quant.FitMinMax(s, x, shape)
	if err != nil {
		t.Fatal(err)
	}
	codes := make([]byte, s.PackedLen(len(x)))
	if err := quant.Quantize(codes, x, p); err != nil {
		t.Fatal(err)
	}
	zp := make([]byte, 4*len(p.ZeroPoints))
	for i, z := range p.ZeroPoints {
		binary.LittleEndian.PutUint32(zp[4*i:], uint32(z))
	}
	src := rawMap{bytes: map[string][]byte{"w": codes, "w" + RawZeroPoint: zp}, f32: map[string][]float32{"w" + RawScale: p.Scales}}
	gotCodes, got, err := DecodeRaw(src, "w", s, shape)
	if err != nil {
		t.Fatal(err)
	}
	if string(gotCodes) != string(codes) || fmt.Sprint(got.Scales, got.ZeroPoints) != fmt.Sprint(p.Scales, p.ZeroPoints) {
		t.Errorf("decoded %v %v %v, want %v %v %v", gotCodes, got.Scales, got.ZeroPoints, codes, p.Scales, p.ZeroPoints)
	}
	for name, bad := range map[string]rawMap{
		"short codes":       {bytes: map[string][]byte{"w": codes[1:], "w" + RawZeroPoint: zp}, f32: src.f32},
		"short zero points": {bytes: map[string][]byte{"w": codes, "w" + RawZeroPoint: zp[4:]}, f32: src.f32},
		"no scales":         {bytes: src.bytes, f32: map[string][]float32{}},
	} {
		if _, _, err := DecodeRaw(bad, "w", s, shape); err == nil || !strings.Contains(err.Error(), "w") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
