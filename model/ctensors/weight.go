package ctensors

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// layout is where the pieces of one quantized weight go.
type layout struct {
	name       string
	s          quant.Scheme
	packed     bool
	out, in    int
	scaleShape []int // [out, 1], [out, groups] or [1]
	scaleDType int   // index into scaleDTypes
}

func newLayout(name string, shape []int, s quant.Scheme, f Format, scaleDType string) (*layout, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !s.Signed {
		return nil, fmt.Errorf("scheme %v is unsigned; compressed-tensors stores signed codes only", s)
	}
	packed, err := f.packed()
	if err != nil {
		return nil, err
	}
	d, err := lookupScaleDType(scaleDType)
	if err != nil {
		return nil, err
	}
	if len(shape) != 2 || shape[0] < 0 || shape[1] < 0 {
		return nil, fmt.Errorf("shape %v is not that of a Linear weight [out, in]", shape)
	}
	l := &layout{name: name, s: s, packed: packed, out: shape[0], in: shape[1], scaleDType: d}
	switch s.Granularity {
	case quant.PerTensor:
		l.scaleShape = []int{1}
	case quant.PerChannel:
		if s.Axis != 0 {
			return nil, fmt.Errorf("scheme %v: the channel strategy is per output row, axis 0", s)
		}
		l.scaleShape = []int{l.out, 1}
	case quant.PerGroup:
		l.scaleShape = []int{l.out, ceilDiv(l.in, s.GroupSize)}
	}
	return l, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// perWord is the number of codes in an int32 word.
func (l *layout) perWord() int { return 32 / l.s.Bits }

// zeroPointPacked reports whether the zero point is packed along axis 0.
func (l *layout) zeroPointPacked() bool {
	return l.packed && !l.s.Symmetric && l.s.Granularity != quant.PerTensor
}

func (l *layout) infos() []safetensors.TensorInfo {
	var ts []safetensors.TensorInfo
	if l.packed {
		ts = append(ts,
			safetensors.TensorInfo{Name: l.name + suffixPacked, DType: "I32", Shape: []int{l.out, ceilDiv(l.in, l.perWord())}},
			safetensors.TensorInfo{Name: l.name + suffixShape, DType: "I64", Shape: []int{2}})
	} else {
		ts = append(ts, safetensors.TensorInfo{Name: l.name, DType: "I8", Shape: []int{l.out, l.in}})
	}
	ts = append(ts, safetensors.TensorInfo{Name: l.name + suffixScale, DType: scaleDTypes[l.scaleDType].name, Shape: slices.Clone(l.scaleShape)})
	switch {
	case l.s.Symmetric:
	case l.zeroPointPacked():
		ts = append(ts, safetensors.TensorInfo{Name: l.name + suffixZeroPoint, DType: "I32", Shape: []int{ceilDiv(l.out, l.perWord()), l.scaleShape[1]}})
	default:
		ts = append(ts, safetensors.TensorInfo{Name: l.name + suffixZeroPoint, DType: "I8", Shape: slices.Clone(l.scaleShape)})
	}
	return ts
}

// Infos describes the tensors EncodeWeight writes for the weight name of
// the given shape [out, in] under scheme s, in the same order, without
// their data (Begin and End are zero): what a streaming writer needs to lay
// out its files before any weight is quantized. scaleDType is F32, F16 or
// BF16.
func Infos(name string, shape []int, s quant.Scheme, f Format, scaleDType string) ([]safetensors.TensorInfo, error) {
	l, err := newLayout(name, shape, s, f, scaleDType)
	if err != nil {
		return nil, fmt.Errorf("ctensors: %s: %w", name, err)
	}
	return l.infos(), nil
}

// EncodeWeight turns quant's output for the weight name, codes as quant
// stores them and their parameters p (p.Shape is [out, in]), into the
// compressed-tensors tensors described by Infos, in that order. The codes
// and parameters are not modified.
func EncodeWeight(name string, codes []byte, p *quant.Params, f Format, scaleDType string) ([]safetensors.Tensor, error) {
	ts, err := encodeWeight(name, codes, p, f, scaleDType)
	if err != nil {
		return nil, fmt.Errorf("ctensors: %s: %w", name, err)
	}
	return ts, nil
}

func encodeWeight(name string, codes []byte, p *quant.Params, f Format, scaleDType string) ([]safetensors.Tensor, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	l, err := newLayout(name, p.Shape, p.Scheme, f, scaleDType)
	if err != nil {
		return nil, err
	}
	if want := p.Scheme.PackedLen(l.out * l.in); len(codes) != want {
		return nil, fmt.Errorf("%d code bytes for %v under %v, want %d", len(codes), p.Shape, p.Scheme, want)
	}
	first := l.infos()[0]
	w := safetensors.Tensor{Name: first.Name, DType: first.DType, Shape: first.Shape, Data: make([]byte, l.codesBytes(l.out))}
	if err := l.encodeCodes(w.Data, codes, l.out); err != nil {
		return nil, err
	}
	rest, err := l.encodeParams(p)
	if err != nil {
		return nil, err
	}
	return append([]safetensors.Tensor{w}, rest...), nil
}

// CodesBytes is the size of the first tensor EncodeWeight writes (W, or
// W_packed) for rows rows of a weight [out, in] under s in format f.
func CodesBytes(shape []int, rows int, s quant.Scheme, f Format) (int64, error) {
	l, err := newLayout("", shape, s, f, "F32")
	if err != nil {
		return 0, fmt.Errorf("ctensors: %w", err)
	}
	return int64(l.codesBytes(rows)), nil
}

// EncodeCodes writes into dst the rows [r, r+rows) of the first tensor
// EncodeWeight writes for the weight name of the given shape [out, in]
// (W, or W_packed): codes holds those rows' codes as quant stores them
// (PackedLen(rows·in) bytes, starting at the block's first code) and dst
// CodesBytes(shape, rows) bytes. The rows of W and W_packed are encoded
// each on its own, so the blocks of a weight, encoded in order, are
// EncodeWeight's first tensor byte for byte: a weight can be quantized
// and written a block of rows at a time. EncodeParams gives the tensors
// that follow.
func EncodeCodes(dst, codes []byte, name string, shape []int, rows int, s quant.Scheme, f Format) error {
	l, err := newLayout(name, shape, s, f, "F32")
	if err == nil {
		err = l.encodeCodes(dst, codes, rows)
	}
	if err != nil {
		return fmt.Errorf("ctensors: %s: %w", name, err)
	}
	return nil
}

// EncodeParams returns the tensors EncodeWeight writes after the codes
// (W_shape when packed, W_scale, W_zero_point when asymmetric), in order,
// from the parameters of the whole weight.
func EncodeParams(name string, p *quant.Params, f Format, scaleDType string) ([]safetensors.Tensor, error) {
	ts, err := func() ([]safetensors.Tensor, error) {
		if err := p.Check(); err != nil {
			return nil, err
		}
		l, err := newLayout(name, p.Shape, p.Scheme, f, scaleDType)
		if err != nil {
			return nil, err
		}
		return l.encodeParams(p)
	}()
	if err != nil {
		return nil, fmt.Errorf("ctensors: %s: %w", name, err)
	}
	return ts, nil
}

// EncodeParamsRows is EncodeParams for the rows [first, first+rows) of
// the weight name of the given shape [out, in], from their parameters p
// (p.Shape is [rows, in]; per-channel or per-group): the pieces of the
// tensors after the codes that those rows own, in order, so that the
// pieces of a weight's blocks, concatenated, are EncodeParams's tensors
// byte for byte. W_shape is whole in the piece of the block at row 0 and
// empty in the others. A per-tensor scale, and zero points packed across
// rows (pack-quantized, asymmetric), belong to no block of rows: they are
// refused.
func EncodeParamsRows(name string, shape []int, first int, p *quant.Params, f Format, scaleDType string) ([][]byte, error) {
	out, err := func() ([][]byte, error) {
		if err := p.Check(); err != nil {
			return nil, err
		}
		l, err := newLayout(name, shape, p.Scheme, f, scaleDType)
		if err != nil {
			return nil, err
		}
		if p.Scheme.Granularity == quant.PerTensor || l.zeroPointPacked() {
			return nil, fmt.Errorf("scheme %v in %s has parameters that no block of rows owns", p.Scheme, f)
		}
		if len(p.Shape) != 2 || p.Shape[1] != l.in || first < 0 || first+p.Shape[0] > l.out {
			return nil, fmt.Errorf("rows %d..%d of %v from parameters of shape %v", first, first+p.Shape[0], shape, p.Shape)
		}
		lb, err := newLayout(name, p.Shape, p.Scheme, f, scaleDType)
		if err != nil {
			return nil, err
		}
		ts, err := lb.encodeParams(p)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(ts))
		for i, t := range ts {
			out[i] = t.Data
		}
		if l.packed { // W_shape: the weight's, once
			out[0] = nil
			if first == 0 {
				out[0] = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(l.out)), uint64(l.in))
			}
		}
		return out, nil
	}()
	if err != nil {
		return nil, fmt.Errorf("ctensors: %s: %w", name, err)
	}
	return out, nil
}

// codesBytes is the size of rows rows of the first tensor.
func (l *layout) codesBytes(rows int) int {
	if l.packed {
		return 4 * rows * ceilDiv(l.in, l.perWord())
	}
	return rows * l.in
}

// encodeCodes writes rows rows of the first tensor from their codes.
func (l *layout) encodeCodes(dst, codes []byte, rows int) error {
	s := l.s
	n := rows * l.in
	if want := s.PackedLen(n); len(codes) != want {
		return fmt.Errorf("%d code bytes for %d rows of %d under %v, want %d", len(codes), rows, l.in, s, want)
	}
	if len(dst) != l.codesBytes(rows) {
		return fmt.Errorf("%d bytes for %d rows of the encoded codes, want %d", len(dst), rows, l.codesBytes(rows))
	}
	code := func(i int) int32 { return quant.Code(codes, s.Bits, true, i) }
	switch {
	case l.packed && packedWordsAligned(l.in, s.Bits):
		packAligned(dst, codes, s.Bits)
	case l.packed:
		packRows(dst, code, rows, l.in, s.Bits)
	case s.Bits == 8:
		copy(dst, codes) // a signed 8-bit code is its own two's-complement byte
	default:
		for i := range n {
			dst[i] = byte(code(i))
		}
	}
	return nil
}

// encodeParams returns the tensors after the codes, for parameters p of
// the whole weight (checked).
func (l *layout) encodeParams(p *quant.Params) ([]safetensors.Tensor, error) {
	s := p.Scheme
	infos := l.infos()[1:]
	ts := make([]safetensors.Tensor, len(infos))
	for i, ti := range infos {
		size, _ := safetensors.DTypeSize(ti.DType)
		ts[i] = safetensors.Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: make([]byte, size*int(ti.Len()))}
	}
	if l.packed {
		binary.LittleEndian.PutUint64(ts[0].Data, uint64(l.out))
		binary.LittleEndian.PutUint64(ts[0].Data[8:], uint64(l.in))
	}
	scales := ts[len(ts)-1]
	if !s.Symmetric {
		scales = ts[len(ts)-2]
	}
	d := scaleDTypes[l.scaleDType]
	for k, v := range p.Scales {
		if roundScale(l.scaleDType, v) != v {
			return nil, fmt.Errorf("scale %d (%g) is not exact in %s; round the scales with RoundScales before quantizing", k, v, d.name)
		}
		d.encode(scales.Data[k*d.size:], v)
	}
	if !s.Symmetric {
		zp := ts[len(ts)-1].Data
		if l.zeroPointPacked() {
			// Transposed packing: the rows of the packed matrix run along
			// the output axis, one column per group.
			cols := l.scaleShape[1]
			packCols(zp, func(i int) int32 { return p.ZeroPoints[i] }, l.out, cols, s.Bits)
		} else {
			for k, z := range p.ZeroPoints {
				zp[k] = byte(z)
			}
		}
	}
	return ts, nil
}

// packedWordsAligned reports whether rows of cols codes fill whole int32
// words, so that quant's packed codes map onto the words byte for byte.
func packedWordsAligned(cols, bits int) bool { return cols%(32/bits) == 0 }

// packAligned is packRows over quant's packed signed codes when every row
// fills whole words: a word is four bytes of codes, in order, with each
// code offset by 2^(bits-1), which for a two's-complement field is
// flipping its top bit (quant stores 4-bit codes low nibble first, as a
// word holds them).
// Eight bytes go at a time, as one 64-bit word.
func packAligned(dst, codes []byte, bits int) {
	flip := byte(0x80)
	if bits == 4 {
		flip = 0x88
	}
	dst = dst[:len(codes)]
	flip64 := uint64(flip) * 0x0101010101010101
	i := 0
	for ; i+8 <= len(codes); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(codes[i:])^flip64)
	}
	for ; i < len(codes); i++ {
		dst[i] = codes[i] ^ flip
	}
}

// packRows packs the rows×cols matrix of codes at(r*cols+c) into rows of
// ceil(cols/f) little-endian int32 words, f = 32/bits, code k of a word at
// bits [k·bits, (k+1)·bits), offset by 2^(bits-1); padding fields are 0.
func packRows(dst []byte, at func(i int) int32, rows, cols, bits int) {
	f := 32 / bits
	off, mask := int32(1)<<(bits-1), uint32(1)<<bits-1
	words := ceilDiv(cols, f)
	for r := range rows {
		for w := range words {
			var word uint32
			for k := range min(f, cols-w*f) {
				word |= uint32(at(r*cols+w*f+k)+off) & mask << (k * bits)
			}
			binary.LittleEndian.PutUint32(dst[4*(r*words+w):], word)
		}
	}
}

// packCols packs the rows×cols matrix at(r*cols+c) along its rows: word
// (w, c) holds rows w·f … w·f+f-1 of column c, giving a ceil(rows/f)×cols
// matrix of int32 words.
func packCols(dst []byte, at func(i int) int32, rows, cols, bits int) {
	f := 32 / bits
	off, mask := int32(1)<<(bits-1), uint32(1)<<bits-1
	for w := range ceilDiv(rows, f) {
		for c := range cols {
			var word uint32
			for k := range min(f, rows-w*f) {
				word |= uint32(at((w*f+k)*cols+c)+off) & mask << (k * bits)
			}
			binary.LittleEndian.PutUint32(dst[4*(w*cols+c):], word)
		}
	}
}

// unpack reads field k of int32 word w of src as a signed code.
func unpack(src []byte, w, k, bits int) int32 {
	word := binary.LittleEndian.Uint32(src[4*w:])
	mask := uint32(1)<<bits - 1
	return int32(word>>(k*bits)&mask) - int32(1)<<(bits-1)
}

// Source is what DecodeWeight reads tensors from; *safetensors.File, a
// checkpoint.Checkpoint and List all provide it.
type Source interface {
	Tensor(name string) (safetensors.TensorInfo, bool)
	Bytes(name string) ([]byte, error)
}

// List is a Source over tensors held in memory, such as EncodeWeight's
// result.
type List []safetensors.Tensor

// Tensor describes the named tensor; its Begin is 0 and its End its size.
func (ts List) Tensor(name string) (safetensors.TensorInfo, bool) {
	for _, t := range ts {
		if t.Name == name {
			return safetensors.TensorInfo{Name: t.Name, DType: t.DType, Shape: slices.Clone(t.Shape), End: int64(len(t.Data))}, true
		}
	}
	return safetensors.TensorInfo{}, false
}

// Bytes returns the named tensor's data.
func (ts List) Bytes(name string) ([]byte, error) {
	for _, t := range ts {
		if t.Name == name {
			return t.Data, nil
		}
	}
	return nil, fmt.Errorf("no tensor %q", name)
}

// DecodeWeight reads the quantized weight name from src under scheme s
// (which ReadConfig gives for a checkpoint) and returns its codes in quant's
// storage and its parameters: the inverse of EncodeWeight. The format is
// told by the tensors: W_packed for pack-quantized, an I8 W for
// int-quantized. It accepts a W_shape of I64 or I32, a scale of any float
// dtype, a zero point unpacked (I8) or, for pack-quantized channel and
// group schemes, packed along axis 0 (I32), and a zero point of zeros for a
// symmetric scheme. The parameters are checked with quant.Params.Check, so
// that NaN, infinite or non-positive scales are rejected.
func DecodeWeight(name string, s quant.Scheme, src Source) ([]byte, *quant.Params, error) {
	return DecodeWeightInto(name, s, src, nil)
}

// DecodeWeightInto is DecodeWeight writing the codes into dst's memory
// when its capacity holds them (a new slice otherwise), so that a loader
// decoding weight after weight reuses one buffer.
func DecodeWeightInto(name string, s quant.Scheme, src Source, dst []byte) ([]byte, *quant.Params, error) {
	codes, p, err := decodeWeight(name, s, src, dst)
	if err != nil {
		return nil, nil, fmt.Errorf("ctensors: %s: %w", name, err)
	}
	return codes, p, nil
}

// tensor fetches a tensor that must have the given dtype (any float dtype
// for "float") and, unless shape is nil, the given shape.
func tensor(src Source, name string, dtypes []string, shape []int) (safetensors.TensorInfo, []byte, error) {
	ti, ok := src.Tensor(name)
	if !ok {
		return ti, nil, fmt.Errorf("no tensor %q", name)
	}
	if !slices.Contains(dtypes, ti.DType) {
		return ti, nil, fmt.Errorf("tensor %q has dtype %s, want %v", name, ti.DType, dtypes)
	}
	if shape != nil && !slices.Equal(ti.Shape, shape) {
		return ti, nil, fmt.Errorf("tensor %q has shape %v, want %v", name, ti.Shape, shape)
	}
	b, err := src.Bytes(name)
	if err != nil {
		return ti, nil, err
	}
	size, _ := safetensors.DTypeSize(ti.DType)
	if int64(len(b)) != int64(size)*ti.Len() {
		return ti, nil, fmt.Errorf("tensor %q: %d bytes for %s %v", name, len(b), ti.DType, ti.Shape)
	}
	return ti, b, nil
}

var floatDTypes = []string{"F32", "F16", "BF16", "F64"}

func decodeWeight(name string, s quant.Scheme, src Source, dst []byte) ([]byte, *quant.Params, error) {
	if _, ok := src.Tensor(name + suffixGIdx); ok {
		return nil, nil, fmt.Errorf("activation reordering (%s) is not supported", name+suffixGIdx)
	}
	_, packed := src.Tensor(name + suffixPacked)
	var shape []int
	if packed {
		_, b, err := tensor(src, name+suffixShape, []string{"I64", "I32"}, []int{2})
		if err != nil {
			return nil, nil, err
		}
		for i := range 2 {
			var d int64
			if len(b) == 16 {
				d = int64(binary.LittleEndian.Uint64(b[8*i:]))
			} else {
				d = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
			}
			if d < 0 || d > 1<<40 {
				return nil, nil, fmt.Errorf("%s holds dimension %d", name+suffixShape, d)
			}
			shape = append(shape, int(d))
		}
	} else {
		ti, ok := src.Tensor(name)
		if !ok {
			return nil, nil, fmt.Errorf("no tensor %q or %q", name, name+suffixPacked)
		}
		if ti.DType != "I8" || len(ti.Shape) != 2 {
			return nil, nil, fmt.Errorf("tensor %q is %s %v, not a quantized I8 [out, in] weight", name, ti.DType, ti.Shape)
		}
		shape = ti.Shape
	}
	f := IntQuantized
	if packed {
		f = PackQuantized
	}
	l, err := newLayout(name, shape, s, f, "F32")
	if err != nil {
		return nil, nil, err
	}
	// Check the codes against the data before allocating anything that
	// W_shape sizes: the data bounds it.
	infos := l.infos()
	_, b, err := tensor(src, infos[0].Name, []string{infos[0].DType}, infos[0].Shape)
	if err != nil {
		return nil, nil, err
	}
	p, err := quant.NewParams(s, shape)
	if err != nil {
		return nil, nil, err
	}
	n := l.out * l.in
	codes := dst[:0]
	if cap(codes) < s.PackedLen(n) {
		codes = make([]byte, s.PackedLen(n))
	}
	codes = codes[:s.PackedLen(n)]
	if s.Bits == 4 && n%2 == 1 {
		codes[len(codes)-1] = 0 // PutCode leaves the last byte's other half
	}
	if packed {
		words := infos[0].Shape[1]
		f := l.perWord()
		for i := range n {
			r, c := i/l.in, i%l.in
			quant.PutCode(codes, s.Bits, i, unpack(b, r*words+c/f, c%f, s.Bits))
		}
	} else {
		lo, hi := -(int32(1) << (s.Bits - 1)), int32(1)<<(s.Bits-1)-1
		for i := range n {
			q := int32(int8(b[i]))
			if q < lo || q > hi {
				return nil, nil, fmt.Errorf("code %d of %q is %d, outside the %d-bit range", i, name, q, s.Bits)
			}
			quant.PutCode(codes, s.Bits, i, q)
		}
	}
	if err := decodeScales(p.Scales, src, name+suffixScale, l); err != nil {
		return nil, nil, err
	}
	if err := decodeZeroPoints(p.ZeroPoints, src, name+suffixZeroPoint, l); err != nil {
		return nil, nil, err
	}
	if err := p.Check(); err != nil {
		return nil, nil, err
	}
	return codes, p, nil
}

// scaleShapeOK accepts the shape we write and the equivalent ones other
// writers use: a per-tensor scale of any shape with one element, a
// per-channel scale of shape [out].
func scaleShapeOK(got []int, l *layout) bool {
	if slices.Equal(got, l.scaleShape) {
		return true
	}
	switch l.s.Granularity {
	case quant.PerTensor:
		n := 1
		for _, d := range got {
			n *= d
		}
		return n == 1
	case quant.PerChannel:
		return slices.Equal(got, []int{l.out})
	}
	return false
}

func decodeScales(dst []float32, src Source, name string, l *layout) error {
	ti, b, err := tensor(src, name, floatDTypes, nil)
	if err != nil {
		return err
	}
	if !scaleShapeOK(ti.Shape, l) {
		return fmt.Errorf("tensor %q has shape %v, want %v", name, ti.Shape, l.scaleShape)
	}
	return safetensors.DecodeFloat32(dst, b, ti.DType)
}

func decodeZeroPoints(dst []int32, src Source, name string, l *layout) error {
	ti, ok := src.Tensor(name)
	if !ok {
		if l.s.Symmetric {
			return nil // zero points stay 0
		}
		return fmt.Errorf("no tensor %q for asymmetric scheme %v", name, l.s)
	}
	if ti.DType == "I32" && l.packed && l.s.Granularity != quant.PerTensor {
		cols := l.scaleShape[1]
		_, b, err := tensor(src, name, []string{"I32"}, []int{ceilDiv(l.out, l.perWord()), cols})
		if err != nil {
			return err
		}
		f := l.perWord()
		for r := range l.out {
			for c := range cols {
				dst[r*cols+c] = unpack(b, (r/f)*cols+c, r%f, l.s.Bits)
			}
		}
		return nil
	}
	ti, b, err := tensor(src, name, []string{"I8"}, nil)
	if err != nil {
		return err
	}
	if !scaleShapeOK(ti.Shape, l) {
		return fmt.Errorf("tensor %q has shape %v, want %v", name, ti.Shape, l.scaleShape)
	}
	for k := range dst {
		dst[k] = int32(int8(b[k]))
	}
	return nil
}

// QuantizedWeights returns, sorted, the names W of the quantized weights
// among tensors: those with a W_scale beside either a W_packed or an I8 W.
func QuantizedWeights(tensors []safetensors.TensorInfo) []string {
	byName := make(map[string]safetensors.TensorInfo, len(tensors))
	for _, t := range tensors {
		byName[t.Name] = t
	}
	var names []string
	for _, t := range tensors {
		w, ok := strings.CutSuffix(t.Name, suffixScale)
		if !ok || w == "" {
			continue
		}
		if _, ok := byName[w+suffixPacked]; ok {
			names = append(names, w)
		} else if ti, ok := byName[w]; ok && ti.DType == "I8" {
			names = append(names, w)
		}
	}
	slices.Sort(names)
	return names
}

// IsQuantized reports whether tensors hold any quantized weight.
func IsQuantized(tensors []safetensors.TensorInfo) bool {
	return len(QuantizedWeights(tensors)) > 0
}
