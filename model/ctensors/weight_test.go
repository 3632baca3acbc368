package ctensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

func mustScheme(t *testing.T, text string) quant.Scheme {
	t.Helper()
	s, err := quant.ParseScheme(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// describe renders tensor descriptions as "name dtype shape" lines.
func describe(ts []safetensors.TensorInfo) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "%s %s %v\n", t.Name, t.DType, t.Shape)
	}
	return b.String()
}

func TestInfosNamesAndShapes(t *testing.T) {
	for _, c := range []struct {
		scheme string
		format Format
		dtype  string
		shape  []int
		want   string
	}{
		{"int8-sym-channel", IntQuantized, "F32", []int{6, 10}, `
W.weight I8 [6 10]
W.weight_scale F32 [6 1]`},
		{"int8-asym-channel", IntQuantized, "BF16", []int{6, 10}, `
W.weight I8 [6 10]
W.weight_scale BF16 [6 1]
W.weight_zero_point I8 [6 1]`},
		{"int8-sym-tensor", IntQuantized, "F16", []int{6, 10}, `
W.weight I8 [6 10]
W.weight_scale F16 [1]`},
		{"int8-asym-group4", IntQuantized, "F32", []int{6, 10}, `
W.weight I8 [6 10]
W.weight_scale F32 [6 3]
W.weight_zero_point I8 [6 3]`},
		{"int4-sym-group128", PackQuantized, "F32", []int{11, 256}, `
W.weight_packed I32 [11 32]
W.weight_shape I64 [2]
W.weight_scale F32 [11 2]`},
		{"int4-sym-channel", PackQuantized, "BF16", []int{3, 13}, `
W.weight_packed I32 [3 2]
W.weight_shape I64 [2]
W.weight_scale BF16 [3 1]`},
		{"int4-asym-group4", PackQuantized, "F32", []int{9, 13}, `
W.weight_packed I32 [9 2]
W.weight_shape I64 [2]
W.weight_scale F32 [9 4]
W.weight_zero_point I32 [2 4]`},
		{"int4-asym-channel", PackQuantized, "F32", []int{16, 8}, `
W.weight_packed I32 [16 1]
W.weight_shape I64 [2]
W.weight_scale F32 [16 1]
W.weight_zero_point I32 [2 1]`},
		{"int4-asym-tensor", PackQuantized, "F32", []int{4, 8}, `
W.weight_packed I32 [4 1]
W.weight_shape I64 [2]
W.weight_scale F32 [1]
W.weight_zero_point I8 [1]`},
		{"int8-sym-channel", PackQuantized, "F32", []int{5, 6}, `
W.weight_packed I32 [5 2]
W.weight_shape I64 [2]
W.weight_scale F32 [5 1]`},
		{"int8-asym-group2", PackQuantized, "F32", []int{5, 6}, `
W.weight_packed I32 [5 2]
W.weight_shape I64 [2]
W.weight_scale F32 [5 3]
W.weight_zero_point I32 [2 3]`},
		{"int4-sym-group8", IntQuantized, "F32", []int{2, 16}, `
W.weight I8 [2 16]
W.weight_scale F32 [2 2]`},
	} {
		name := fmt.Sprintf("%s/%s/%s", c.scheme, c.format, c.dtype)
		t.Run(name, func(t *testing.T) {
			s := mustScheme(t, c.scheme)
			infos, err := Infos("W.weight", c.shape, s, c.format, c.dtype)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := describe(infos), strings.TrimPrefix(c.want, "\n")+"\n"; got != want {
				t.Errorf("Infos:\n%swant\n%s", got, want)
			}
			// EncodeWeight gives the same tensors, with data of the right size.
			p, codes := quantized(t, s, c.shape, c.dtype, 1)
			ts, err := EncodeWeight("W.weight", codes, p, c.format, c.dtype)
			if err != nil {
				t.Fatal(err)
			}
			var got []safetensors.TensorInfo
			for _, tt := range ts {
				got = append(got, safetensors.TensorInfo{Name: tt.Name, DType: tt.DType, Shape: tt.Shape})
				size, _ := safetensors.DTypeSize(tt.DType)
				n := 1
				for _, d := range tt.Shape {
					n *= d
				}
				if len(tt.Data) != size*n {
					t.Errorf("%s: %d bytes, want %d", tt.Name, len(tt.Data), size*n)
				}
			}
			if describe(got) != describe(infos) {
				t.Errorf("EncodeWeight gave\n%sInfos\n%s", describe(got), describe(infos))
			}
		})
	}
}

// quantized fits and quantizes a random weight, with scales rounded to
// scaleDType, and a few adversarial values (zero rows, NaN, ±Inf, huge).
func quantized(t *testing.T, s quant.Scheme, shape []int, scaleDType string, seed uint64) (*quant.Params, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	n := shape[0] * shape[1]
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64()) * float32(1+i%7)
	}
	if shape[1] > 0 && shape[0] > 2 {
		for c := range shape[1] {
			x[shape[1]+c] = 0 // an all-zero row
		}
		x[2*shape[1]] = float32(math.NaN())
		x[n-1] = float32(math.Inf(1))
		x[n-2] = 3e38
	}
	p, err := quant.FitMinMax(s, x, shape)
	if err != nil {
		t.Fatal(err)
	}
	if err := RoundScales(p, scaleDType); err != nil {
		t.Fatal(err)
	}
	codes := make([]byte, s.PackedLen(n))
	if err := quant.Quantize(codes, x, p); err != nil {
		t.Fatal(err)
	}
	return p, codes
}

// A packed word checked against one computed by hand from the format:
// nibble k of the word is code k + 8.
func TestPackedWordByHand(t *testing.T) {
	s := mustScheme(t, "int4-asym-channel")
	// Row 0: eight codes and two more, which start a second, padded word.
	row := []int32{-8, -7, -1, 0, 1, 2, 6, 7, 3, -4}
	shape := []int{10, len(row)}
	p, err := quant.NewParams(s, shape)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 10 {
		p.ZeroPoints[r] = int32(r) - 8 // packed along the rows: nibble r
	}
	codes := make([]byte, s.PackedLen(shape[0]*shape[1]))
	for i, q := range row {
		quant.PutCode(codes, 4, i, q)
	}
	ts, err := EncodeWeight("W", codes, p, PackQuantized, "F32")
	if err != nil {
		t.Fatal(err)
	}
	packed := ts[0].Data
	// nibbles, high to low: 7+8=F, 6+8=E, 2+8=A, 9, 8, -1+8=7, 1, 0
	if w := binary.LittleEndian.Uint32(packed); w != 0xFEA98710 {
		t.Errorf("word 0 = %#08x, want 0xFEA98710", w)
	}
	if !bytes.Equal(packed[:4], []byte{0x10, 0x87, 0xA9, 0xFE}) {
		t.Errorf("word 0 bytes % x, want little-endian 10 87 a9 fe", packed[:4])
	}
	// 3+8 = 0xB in nibble 0, -4+8 = 4 in nibble 1, padding 0.
	if w := binary.LittleEndian.Uint32(packed[4:]); w != 0x0000004B {
		t.Errorf("word 1 = %#08x, want 0x0000004b", w)
	}
	// Row 1 is all zero codes: eight nibbles of 8, two then padding.
	if w := binary.LittleEndian.Uint32(packed[8:]); w != 0x88888888 {
		t.Errorf("row 1 word 0 = %#08x, want 0x88888888", w)
	}
	if w := binary.LittleEndian.Uint32(packed[12:]); w != 0x00000088 {
		t.Errorf("row 1 word 1 = %#08x, want 0x00000088", w)
	}
	if got := binary.LittleEndian.Uint64(ts[1].Data); got != 10 || binary.LittleEndian.Uint64(ts[1].Data[8:]) != 10 {
		t.Errorf("weight_shape % x, want [10 10]", ts[1].Data)
	}
	// Zero points r-8 for rows 0..9: nibble r, rows 0-7 in word 0, 8-9 in word 1.
	zp := ts[3]
	if zp.Name != "W_zero_point" || !slices.Equal(zp.Shape, []int{2, 1}) {
		t.Fatalf("zero point tensor %s %v", zp.Name, zp.Shape)
	}
	if w0, w1 := binary.LittleEndian.Uint32(zp.Data), binary.LittleEndian.Uint32(zp.Data[4:]); w0 != 0x76543210 || w1 != 0x98 {
		t.Errorf("zero point words %#08x %#08x, want 0x76543210 0x00000098", w0, w1)
	}
}

// compressed-tensors' own docstring example: 8 bits, [1, 2] -> 33409.
func TestPackedWord8Bit(t *testing.T) {
	s := mustScheme(t, "int8-sym-channel")
	p, _ := quant.NewParams(s, []int{1, 2})
	ts, err := EncodeWeight("W", []byte{1, 2}, p, PackQuantized, "F32")
	if err != nil {
		t.Fatal(err)
	}
	if w := int32(binary.LittleEndian.Uint32(ts[0].Data)); w != 33409 {
		t.Errorf("word %d, want 33409", w)
	}
}

// refDequantize dequantizes the encoded tensors straight from the format's
// definition, independently of DecodeWeight.
func refDequantize(t *testing.T, ts []safetensors.Tensor, s quant.Scheme, out, in int) []float32 {
	t.Helper()
	get := func(suffix string) *safetensors.Tensor {
		for i := range ts {
			if strings.HasSuffix(ts[i].Name, suffix) {
				return &ts[i]
			}
		}
		return nil
	}
	scaleT := get("_scale")
	scales := make([]float32, len(scaleT.Data)/map[string]int{"F32": 4, "F16": 2, "BF16": 2}[scaleT.DType])
	if err := safetensors.DecodeFloat32(scales, scaleT.Data, scaleT.DType); err != nil {
		t.Fatal(err)
	}
	bits := s.Bits
	f := 32 / bits
	field := func(data []byte, word, k int) int32 {
		w := binary.LittleEndian.Uint32(data[4*word:])
		return int32(w>>(bits*k)&(1<<bits-1)) - 1<<(bits-1)
	}
	code := func(r, c int) int32 {
		if pt := get("_packed"); pt != nil {
			return field(pt.Data, r*pt.Shape[1]+c/f, c%f)
		}
		return int32(int8(ts[0].Data[r*in+c]))
	}
	cols := 1
	if len(scaleT.Shape) == 2 {
		cols = scaleT.Shape[1]
	}
	param := func(r, c int) int {
		switch s.Granularity {
		case quant.PerChannel:
			return r
		case quant.PerGroup:
			return r*cols + c/s.GroupSize
		}
		return 0
	}
	zero := func(k int) int32 {
		zt := get("_zero_point")
		switch {
		case zt == nil:
			return 0
		case zt.DType == "I32":
			r, c := k/cols, k%cols
			return field(zt.Data, (r/f)*cols+c, r%f)
		}
		return int32(int8(zt.Data[k]))
	}
	x := make([]float32, out*in)
	for r := range out {
		for c := range in {
			k := param(r, c)
			x[r*in+c] = float32(code(r, c)-zero(k)) * scales[k]
		}
	}
	return x
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	shapes := [][]int{{1, 1}, {5, 13}, {9, 16}, {17, 31}, {3, 128}, {0, 8}, {4, 0}}
	schemes := []string{
		"int8-sym-channel", "int8-asym-channel", "int8-sym-tensor", "int8-asym-tensor",
		"int8-sym-group4", "int8-asym-group5",
		"int4-sym-channel", "int4-asym-channel", "int4-sym-tensor", "int4-asym-tensor",
		"int4-sym-group8", "int4-asym-group3", "int4-sym-group128",
	}
	dir := t.TempDir()
	for _, text := range schemes {
		s := mustScheme(t, text)
		for _, f := range []Format{IntQuantized, PackQuantized} {
			for _, dtype := range []string{"F32", "F16", "BF16"} {
				for i, shape := range shapes {
					name := fmt.Sprintf("%s/%s/%s/%v", text, f, dtype, shape)
					t.Run(name, func(t *testing.T) {
						p, codes := quantized(t, s, shape, dtype, uint64(i))
						codesBefore := slices.Clone(codes)
						scalesBefore := slices.Clone(p.Scales)
						ts, err := EncodeWeight("m.w", codes, p, f, dtype)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(codes, codesBefore) || !slices.Equal(p.Scales, scalesBefore) {
							t.Fatal("EncodeWeight modified its input")
						}
						check := func(t *testing.T, src Source) {
							gotCodes, gotP, err := DecodeWeight("m.w", s, src)
							if err != nil {
								t.Fatal(err)
							}
							if !bytes.Equal(gotCodes, codes) {
								t.Errorf("codes % x, want % x", gotCodes, codes)
							}
							if gotP.Scheme != p.Scheme || !slices.Equal(gotP.Shape, p.Shape) ||
								!slices.Equal(gotP.Scales, p.Scales) || !slices.Equal(gotP.ZeroPoints, p.ZeroPoints) {
								t.Errorf("params %+v, want %+v", gotP, p)
							}
						}
						check(t, List(ts))
						// Into a reused buffer full of other bytes: the same codes.
						dirty := bytes.Repeat([]byte{0xA5}, len(codes)+3)
						into, _, err := DecodeWeightInto("m.w", s, List(ts), dirty)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(into, codes) || len(codes) > 0 && &into[0] != &dirty[0] {
							t.Errorf("DecodeWeightInto: codes % x (in the buffer given: %v), want % x", into, len(codes) > 0 && &into[0] == &dirty[0], codes)
						}
						// Through a file, so that *safetensors.File is a Source.
						path := filepath.Join(dir, "w.safetensors")
						if err := safetensors.WriteFile(path, ts, nil); err != nil {
							t.Fatal(err)
						}
						file, err := safetensors.Open(path)
						if err != nil {
							t.Fatal(err)
						}
						defer file.Close()
						check(t, file)
						// The stored tensors mean what quant meant.
						want := make([]float32, p.Len())
						if err := quant.Dequantize(want, codes, p); err != nil {
							t.Fatal(err)
						}
						got := refDequantize(t, ts, s, shape[0], shape[1])
						for k := range want {
							if math.Float32bits(got[k]) != math.Float32bits(want[k]) {
								t.Fatalf("element %d dequantizes to %g from the checkpoint, %g in quant", k, got[k], want[k])
							}
						}
					})
				}
			}
		}
	}
}

// Checkpoints written elsewhere: zero points unpacked in pack-quantized
// (older compressed-tensors), W_shape as I32, a zero-point tensor of zeros
// for a symmetric scheme, scale shapes [] and [out], codes of -8.
func TestDecodeOtherWriters(t *testing.T) {
	i32 := func(vs ...int32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
		return b
	}
	f32 := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	src := List{
		{Name: "W_packed", DType: "I32", Shape: []int{2, 1}, Data: i32(0x00000080, 0x00000008)}, // row 0: -8, 0; row 1: 0, -8
		{Name: "W_shape", DType: "I32", Shape: []int{2}, Data: i32(2, 2)},
		{Name: "W_scale", DType: "F32", Shape: []int{2}, Data: f32(0.5, 0.25)},
		{Name: "W_zero_point", DType: "I8", Shape: []int{2, 1}, Data: []byte{0xff, 3}},
	}
	codes, p, err := DecodeWeight("W", mustScheme(t, "int4-asym-channel"), src)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{-8, 0, 0, -8}
	for i, w := range want {
		if q := quant.Code(codes, 4, true, i); q != w {
			t.Errorf("code %d = %d, want %d", i, q, w)
		}
	}
	if !slices.Equal(p.ZeroPoints, []int32{-1, 3}) || !slices.Equal(p.Scales, []float32{0.5, 0.25}) {
		t.Errorf("params %+v", p)
	}
	sym := List{
		{Name: "V", DType: "I8", Shape: []int{1, 2}, Data: []byte{0x80, 0x7f}},
		{Name: "V_scale", DType: "BF16", Shape: []int{}, Data: []byte{0x80, 0x3f}}, // 1.0
		{Name: "V_zero_point", DType: "I8", Shape: []int{1}, Data: []byte{0}},
	}
	codes, p, err = DecodeWeight("V", mustScheme(t, "int8-sym-tensor"), sym)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(codes, []byte{0x80, 0x7f}) || p.Scales[0] != 1 {
		t.Errorf("codes % x, params %+v", codes, p)
	}
}

func TestEncodeErrors(t *testing.T) {
	good := func(text string, shape []int) (*quant.Params, []byte) {
		s := mustScheme(t, text)
		p, _ := quant.NewParams(s, shape)
		return p, make([]byte, s.PackedLen(shape[0]*shape[1]))
	}
	for _, c := range []struct {
		name, scheme string
		shape        []int
		change       func(p *quant.Params, codes []byte) []byte
		format       Format
		dtype        string
		want         string
	}{
		{"unsigned", "uint8-asym-channel", []int{2, 2}, nil, IntQuantized, "F32", "unsigned"},
		{"channel axis 1", "int8-sym-channel1", []int{2, 2}, nil, IntQuantized, "F32", "per output row, axis 0"},
		{"3-D", "int8-sym-tensor", []int{2, 2}, func(p *quant.Params, c []byte) []byte { p.Shape = []int{1, 2, 2}; return c }, IntQuantized, "F32", "not that of a Linear weight"},
		{"short codes", "int4-sym-group2", []int{2, 4}, func(p *quant.Params, c []byte) []byte { return c[1:] }, PackQuantized, "F32", "3 code bytes for [2 4] under int4-sym-group2, want 4"},
		{"inexact scale", "int8-sym-channel", []int{2, 2}, func(p *quant.Params, c []byte) []byte { p.Scales[1] = 0.1; return c }, IntQuantized, "BF16", "scale 1 (0.1) is not exact in BF16"},
		{"bad scale dtype", "int8-sym-channel", []int{2, 2}, nil, IntQuantized, "F64", `scale dtype "F64" not supported`},
		{"bad format", "int8-sym-channel", []int{2, 2}, nil, "marlin-24", "F32", `format "marlin-24" not supported`},
		{"NaN scale", "int8-sym-channel", []int{2, 2}, func(p *quant.Params, c []byte) []byte { p.Scales[0] = float32(math.NaN()); return c }, IntQuantized, "F32", "scale 0 is NaN"},
		{"zero point in symmetric", "int8-sym-channel", []int{2, 2}, func(p *quant.Params, c []byte) []byte { p.ZeroPoints[0] = 1; return c }, IntQuantized, "F32", "non-zero in a symmetric scheme"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, codes := good(c.scheme, c.shape)
			if c.change != nil {
				codes = c.change(p, codes)
			}
			_, err := EncodeWeight("W", codes, p, c.format, c.dtype)
			if err == nil || !strings.HasPrefix(err.Error(), "ctensors: W: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Infos("W", []int{4}, mustScheme(t, "int8-sym-tensor"), IntQuantized, "F32"); err == nil {
		t.Error("Infos accepted a 1-D shape")
	}
}

func TestDecodeErrors(t *testing.T) {
	int4 := mustScheme(t, "int4-asym-group4")
	p, codes := quantized(t, int4, []int{4, 8}, "F32", 7)
	base, err := EncodeWeight("W", codes, p, PackQuantized, "F32")
	if err != nil {
		t.Fatal(err)
	}
	int8sym := mustScheme(t, "int8-sym-channel")
	p8, codes8 := quantized(t, int8sym, []int{4, 8}, "F32", 7)
	base8, err := EncodeWeight("W", codes8, p8, IntQuantized, "F32")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(ts List, name string, fn func(t *safetensors.Tensor)) List {
		out := make(List, 0, len(ts))
		for _, t := range ts {
			t.Shape = slices.Clone(t.Shape)
			t.Data = slices.Clone(t.Data)
			if t.Name == name {
				if fn == nil {
					continue
				}
				fn(&t)
			}
			out = append(out, t)
		}
		return out
	}
	for _, c := range []struct {
		name   string
		scheme quant.Scheme
		src    List
		want   string
	}{
		{"no weight", int4, List{}, `no tensor "W" or "W_packed"`},
		{"no shape", int4, edit(base, "W_shape", nil), `no tensor "W_shape"`},
		{"shape dtype", int4, edit(base, "W_shape", func(t *safetensors.Tensor) { t.DType = "F64" }), `tensor "W_shape" has dtype F64`},
		{"shape negative", int4, edit(base, "W_shape", func(t *safetensors.Tensor) { t.Data[7] = 0x80 }), "holds dimension -"},
		{"shape disagrees with packed", int4, edit(base, "W_shape", func(t *safetensors.Tensor) { t.Data[0] = 5 }), `tensor "W_packed" has shape [4 1], want [5 1]`},
		{"packed dtype", int4, edit(base, "W_packed", func(t *safetensors.Tensor) { t.DType = "U8" }), `tensor "W_packed" has dtype U8`},
		{"no scale", int4, edit(base, "W_scale", nil), `no tensor "W_scale"`},
		{"scale shape", int4, edit(base, "W_scale", func(t *safetensors.Tensor) { t.Shape = []int{2, 4} }), `tensor "W_scale" has shape [2 4], want [4 2]`},
		{"scale dtype", int4, edit(base, "W_scale", func(t *safetensors.Tensor) { t.DType = "I32" }), `tensor "W_scale" has dtype I32`},
		{"NaN scale", int4, edit(base, "W_scale", func(t *safetensors.Tensor) { copy(t.Data, []byte{0, 0, 0xc0, 0x7f}) }), "scale 0 is NaN"},
		{"zero scale", int4, edit(base, "W_scale", func(t *safetensors.Tensor) { copy(t.Data, []byte{0, 0, 0, 0}) }), "scale 0 is 0"},
		{"no zero point", int4, edit(base, "W_zero_point", nil), `no tensor "W_zero_point" for asymmetric scheme`},
		{"zero point shape", int4, edit(base, "W_zero_point", func(t *safetensors.Tensor) { t.Shape = []int{2, 2}; t.Data = make([]byte, 16) }), `tensor "W_zero_point" has shape [2 2], want [1 2]`},
		{"g_idx", int4, append(edit(base, "", nil), safetensors.Tensor{Name: "W_g_idx", DType: "I32", Shape: []int{8}, Data: make([]byte, 32)}), "activation reordering (W_g_idx) is not supported"},
		{"scheme mismatch", mustScheme(t, "int4-asym-group2"), base, `tensor "W_scale" has shape [4 2], want [4 4]`},
		{"unsigned scheme", mustScheme(t, "uint4-asym-group4"), base, "unsigned"},
		{"weight not I8", int8sym, edit(base8, "W", func(t *safetensors.Tensor) { t.DType = "U8" }), `tensor "W" is U8 [4 8], not a quantized I8 [out, in] weight`},
		{"int4 code out of range", mustScheme(t, "int4-sym-channel"), edit(base8, "W", func(t *safetensors.Tensor) { clear(t.Data); t.Data[3] = 9 }), `code 3 of "W" is 9, outside the 4-bit range`},
		{"symmetric zero point not zero", int8sym, append(edit(base8, "", nil), safetensors.Tensor{Name: "W_zero_point", DType: "I8", Shape: []int{4, 1}, Data: []byte{0, 1, 0, 0}}), "non-zero in a symmetric scheme"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := DecodeWeight("W", c.scheme, c.src)
			if err == nil || !strings.HasPrefix(err.Error(), "ctensors: W: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestRoundScales(t *testing.T) {
	s := mustScheme(t, "int8-sym-channel")
	p, _ := quant.NewParams(s, []int{5, 1})
	p.Scales = []float32{0.1, 1e-30, 1e6, math.MaxFloat32, 3}
	f16 := slices.Clone(p.Scales)
	q := &quant.Params{Scheme: s, Shape: p.Shape, Scales: f16, ZeroPoints: p.ZeroPoints}
	if err := RoundScales(q, "F16"); err != nil {
		t.Fatal(err)
	}
	if want := []float32{0.099975586, 0x1p-24, 65504, 65504, 3}; !slices.Equal(q.Scales, want) {
		t.Errorf("F16: %v, want %v", q.Scales, want)
	}
	if err := RoundScales(p, "BF16"); err != nil {
		t.Fatal(err)
	}
	if p.Scales[0] != 0.10009765625 || p.Scales[2] != 999424 || p.Scales[3] != math.Float32frombits(0x7f7f0000) || p.Scales[4] != 3 {
		t.Errorf("BF16: %v, want [0.10009765625 ~1e-30 999424 %g 3]", p.Scales, math.Float32frombits(0x7f7f0000))
	}
	for _, v := range p.Scales {
		if roundScale(2, v) != v {
			t.Errorf("BF16 result %g is not a BF16 value", v)
		}
	}
	p.Scales[0] = -1
	if err := RoundScales(p, "F32"); err == nil {
		t.Error("negative scale accepted")
	}
	if err := RoundScales(p, "I8"); err == nil {
		t.Error("I8 scale dtype accepted")
	}
}

func TestQuantizedWeights(t *testing.T) {
	infos := []safetensors.TensorInfo{
		{Name: "b.weight_packed", DType: "I32"},
		{Name: "b.weight_scale", DType: "F32"},
		{Name: "a.weight", DType: "I8"},
		{Name: "a.weight_scale", DType: "BF16"},
		{Name: "c.weight", DType: "BF16"}, // a float weight with a stray scale
		{Name: "c.weight_scale", DType: "BF16"},
		{Name: "d.weight", DType: "I8"}, // no scale
		{Name: "_scale", DType: "F32"},
		{Name: "norm.weight", DType: "F32"},
	}
	if got := QuantizedWeights(infos); !slices.Equal(got, []string{"a.weight", "b.weight"}) {
		t.Errorf("QuantizedWeights = %q", got)
	}
	if !IsQuantized(infos) || IsQuantized(infos[4:]) {
		t.Error("IsQuantized wrong")
	}
}

func TestDefaultFormat(t *testing.T) {
	if DefaultFormat(quant.Int4PerGroup128) != PackQuantized || DefaultFormat(quant.Int8PerChannel) != IntQuantized {
		t.Error("DefaultFormat")
	}
}

// packAligned must give exactly packRows' words where rows fill whole words
// (with and without bytes after the last whole 8).
func TestPackAlignedMatchesPackRows(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 3))
	for _, c := range []struct{ bits, cols int }{{4, 64}, {8, 64}, {4, 72}, {8, 76}} {
		bits := c.bits
		s := quant.Scheme{Bits: bits, Signed: true, Symmetric: true}
		rows, cols := 7, c.cols
		codes := make([]byte, s.PackedLen(rows*cols))
		for i := range rows * cols {
			quant.PutCode(codes, bits, i, int32(rnd.IntN(int(2*s.QMax()+2)))-s.QMax()-1)
		}
		want := make([]byte, len(codes))
		packRows(want, func(i int) int32 { return quant.Code(codes, bits, true, i) }, rows, cols, bits)
		got := make([]byte, len(codes))
		packAligned(got, codes, bits)
		if !bytes.Equal(got, want) {
			t.Errorf("%d bits, %d columns: packAligned differs from packRows", bits, cols)
		}
	}
}

// The pieces EncodeParamsRows gives for the blocks of a weight,
// concatenated, are EncodeParams's tensors; the parameters no block of
// rows owns are refused.
func TestEncodeParamsRows(t *testing.T) {
	shape := []int{10, 40}
	x := make([]float32, 400)
	for i := range x {
		x[i] = float32(i%17) - 8.5 + float32(i/40)
	}
	for _, c := range []struct {
		scheme string
		f      Format
		dtype  string
	}{
		{"int8-sym-channel", IntQuantized, "BF16"}, {"int8-asym-group16", IntQuantized, "F32"},
		{"int4-sym-group16", PackQuantized, "F16"}, {"int8-sym-channel", PackQuantized, "F32"},
	} {
		s, err := quant.ParseScheme(c.scheme)
		if err != nil {
			t.Fatal(err)
		}
		p, err := quant.FitMinMax(s, x, shape)
		if err != nil {
			t.Fatal(err)
		}
		if err := RoundScales(p, c.dtype); err != nil {
			t.Fatal(err)
		}
		want, err := EncodeParams("w", p, c.f, c.dtype)
		if err != nil {
			t.Fatal(err)
		}
		got := make([][]byte, len(want))
		for first := 0; first < shape[0]; first += 3 {
			rows := min(3, shape[0]-first)
			bp, err := quant.FitMinMax(s, x[first*40:(first+rows)*40], []int{rows, 40})
			if err != nil {
				t.Fatal(err)
			}
			if err := RoundScales(bp, c.dtype); err != nil {
				t.Fatal(err)
			}
			pieces, err := EncodeParamsRows("w", shape, first, bp, c.f, c.dtype)
			if err != nil || len(pieces) != len(want) {
				t.Fatalf("%s %s: %d pieces, %v", c.scheme, c.f, len(pieces), err)
			}
			for i := range pieces {
				got[i] = append(got[i], pieces[i]...)
			}
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i].Data) {
				t.Errorf("%s %s: %s from the blocks differs", c.scheme, c.f, want[i].Name)
			}
		}
	}
	for _, name := range []string{"int8-sym-tensor", "int4-asym-group16"} {
		s, _ := quant.ParseScheme(name)
		p, _ := quant.FitMinMax(s, x[:80], []int{2, 40})
		if _, err := EncodeParamsRows("w", shape, 0, p, PackQuantized, "F32"); err == nil || !strings.Contains(err.Error(), "no block of rows owns") {
			t.Errorf("%s pack-quantized: %v", name, err)
		}
	}
}
