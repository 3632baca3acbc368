package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// Format is an output format, as --format spells it.
type Format string

// The output formats, one row each in formats.
const (
	CompressedTensors Format = "compressed-tensors"
	// CompressedTensorsPacked is compressed-tensors with every scheme
	// pack-quantized, int8 included: the form vLLM loads for weight-only
	// int8 (it reads int-quantized int8 only as W8A8).
	CompressedTensorsPacked Format = "compressed-tensors-packed"
	Safetensors             Format = "safetensors"
	GGUFQ8_0                Format = "gguf-q8_0"
	GGUFQ4_0                Format = "gguf-q4_0"
)

// Action is what happens to one tensor.
type Action string

// The actions.
const (
	Quantize Action = "quantize"
	Keep     Action = "keep"
)

// RawFormat is the "quantkit.format" metadata value of the safetensors
// format; see the package documentation.
const RawFormat = "quantkit-raw"

// Metadata keys of the safetensors format.
const (
	MetaFormat  = "quantkit.format"
	MetaScheme  = "quantkit.scheme"
	MetaTensors = "quantkit.tensors"
)

// Raw-format suffixes beside a quantized weight W.
const (
	RawScale     = ".scale"
	RawZeroPoint = ".zero_point"
)

// KeepReason says why a tensor stays in its dtype under the default rule,
// or "" if it is quantized: a tensor is quantized if it is a 2-D
// floating-point tensor whose name ends in .weight, unless it is an
// embedding (a name part containing "embed", or wte, wpe) or the output
// head (lm_head), as llm-compressor's default recipe does.
func KeepReason(name, dtype string, shape []int) string {
	if r := shapeReason(dtype, shape); r != "" {
		return r
	}
	if !strings.HasSuffix(name, ".weight") {
		return "not a .weight"
	}
	for _, part := range strings.Split(name, ".") {
		switch {
		case strings.Contains(part, "embed") || part == "wte" || part == "wpe":
			return "embedding"
		case part == "lm_head":
			return "lm_head"
		}
	}
	return ""
}

// shapeReason is why a tensor cannot be quantized at all, or "".
func shapeReason(dtype string, shape []int) string {
	switch {
	case !IsFloatDType(dtype):
		return "not floating-point"
	case len(shape) != 2:
		return fmt.Sprintf("%d-D", len(shape))
	}
	return ""
}

// IsFloatDType reports whether a safetensors dtype is floating-point.
func IsFloatDType(dt string) bool {
	switch dt {
	case "F64", "F32", "F16", "BF16":
		return true
	}
	return false
}

// Options say what to build a plan for.
type Options struct {
	Format Format
	// Scheme is the quantization scheme of the compressed-tensors and
	// safetensors formats; the GGUF formats fix their own.
	Scheme quant.Scheme
	// Include, if set, replaces the default rule: exactly the 2-D
	// floating-point tensors it matches are quantized. Exclude, if set,
	// keeps every tensor it matches.
	Include, Exclude *regexp.Regexp
}

// Output is one tensor an item writes. DType is a safetensors dtype, or a
// GGUF type name for the GGUF formats.
type Output struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Bytes int64  `json:"bytes"`
}

// Item is what happens to one input tensor.
type Item struct {
	Name       string   `json:"name"`
	DType      string   `json:"dtype"`
	Shape      []int    `json:"shape"`
	Action     Action   `json:"action"`
	Reason     string   `json:"reason,omitempty"` // why it is kept
	Scheme     string   `json:"scheme,omitempty"` // quant scheme or GGUF type, when quantized
	ScaleDType string   `json:"scale_dtype,omitempty"`
	Outputs    []Output `json:"outputs"`
	BytesIn    int64    `json:"bytes_in"`
	BytesOut   int64    `json:"bytes_out"`
}

// Plan is what batch quantization does to a checkpoint.
type Plan struct {
	Format    Format
	Scheme    quant.Scheme // meaningless for the GGUF formats
	Items     []Item
	BytesIn   int64
	BytesOut  int64
	Quantized int // items quantized
}

// format is one row of the table of output formats.
type format struct {
	name Format
	gguf gguf.Type // block type, for the GGUF formats
	// isGGUF is true for a single GGUF file output.
	isGGUF bool
	// keep is why a tensor the rule quantizes cannot be in this format, or "".
	keep func(shape []int) string
	// outputs describes what a quantized weight becomes.
	outputs func(it *Item, s quant.Scheme) ([]Output, error)
	// ct is the compressed-tensors format of a scheme, nil for the formats
	// that are not compressed-tensors.
	ct func(s quant.Scheme) ctensors.Format
}

var formats = []format{
	{name: CompressedTensors, outputs: ctOutputs(ctensors.DefaultFormat), ct: ctensors.DefaultFormat},
	{name: CompressedTensorsPacked, outputs: ctOutputs(packQuantized), ct: packQuantized},
	{name: Safetensors, outputs: rawOutputs},
	{name: GGUFQ8_0, gguf: gguf.TypeQ8_0, isGGUF: true, keep: ggufKeep(gguf.TypeQ8_0), outputs: ggufOutputs(gguf.TypeQ8_0)},
	{name: GGUFQ4_0, gguf: gguf.TypeQ4_0, isGGUF: true, keep: ggufKeep(gguf.TypeQ4_0), outputs: ggufOutputs(gguf.TypeQ4_0)},
}

func lookupFormat(f Format) (*format, error) {
	for i := range formats {
		if formats[i].name == f {
			return &formats[i], nil
		}
	}
	return nil, fmt.Errorf("plan: format %q not supported (supported: %s)", f, strings.Join(FormatNames(), ", "))
}

// FormatNames lists the output formats.
func FormatNames() []string {
	var names []string
	for _, f := range formats {
		names = append(names, string(f.name))
	}
	return names
}

// IsGGUF reports whether f writes one GGUF file rather than a checkpoint
// directory.
func IsGGUF(f Format) bool {
	row, err := lookupFormat(f)
	return err == nil && row.isGGUF
}

// ctScaleDType is the scale dtype of compressed-tensors for a weight of
// dtype dt: its own when it is a 16-bit float, as llm-compressor writes.
func ctScaleDType(dt string) string {
	if dt == "F16" || dt == "BF16" {
		return dt
	}
	return "F32"
}

func infosToOutputs(infos []safetensors.TensorInfo) []Output {
	out := make([]Output, len(infos))
	for i, t := range infos {
		size, _ := safetensors.DTypeSize(t.DType)
		out[i] = Output{Name: t.Name, DType: t.DType, Shape: slices.Clone(t.Shape), Bytes: int64(size) * t.Len()}
	}
	return out
}

func packQuantized(quant.Scheme) ctensors.Format { return ctensors.PackQuantized }

// CTFormat is the compressed-tensors format that f writes for scheme s;
// ok is false when f is not a compressed-tensors format.
func CTFormat(f Format, s quant.Scheme) (ct ctensors.Format, ok bool) {
	row, err := lookupFormat(f)
	if err != nil || row.ct == nil {
		return "", false
	}
	return row.ct(s), true
}

func ctOutputs(ct func(quant.Scheme) ctensors.Format) func(it *Item, s quant.Scheme) ([]Output, error) {
	return func(it *Item, s quant.Scheme) ([]Output, error) {
		it.ScaleDType = ctScaleDType(it.DType)
		infos, err := ctensors.Infos(it.Name, it.Shape, s, ct(s), it.ScaleDType)
		if err != nil {
			return nil, err
		}
		return infosToOutputs(infos), nil
	}
}

func rawOutputs(it *Item, s quant.Scheme) ([]Output, error) {
	n, err := quant.NumElements(it.Shape)
	if err != nil {
		return nil, err
	}
	np, err := quant.NumParams(s, it.Shape)
	if err != nil {
		return nil, err
	}
	it.ScaleDType = "F32"
	codes := Output{Name: it.Name, DType: "U8", Shape: []int{s.PackedLen(n)}, Bytes: int64(s.PackedLen(n))}
	if s.Bits == 8 && s.Signed {
		codes = Output{Name: it.Name, DType: "I8", Shape: slices.Clone(it.Shape), Bytes: int64(n)}
	}
	out := []Output{codes, {Name: it.Name + RawScale, DType: "F32", Shape: []int{np}, Bytes: 4 * int64(np)}}
	if !s.Symmetric {
		out = append(out, Output{Name: it.Name + RawZeroPoint, DType: "I32", Shape: []int{np}, Bytes: 4 * int64(np)})
	}
	return out, nil
}

func ggufKeep(t gguf.Type) func(shape []int) string {
	return func(shape []int) string {
		if shape[1]%t.BlockSize() != 0 {
			return fmt.Sprintf("rows of %d not a multiple of %s's block of %d", shape[1], t, t.BlockSize())
		}
		return ""
	}
}

func ggufOutputs(t gguf.Type) func(it *Item, s quant.Scheme) ([]Output, error) {
	return func(it *Item, s quant.Scheme) ([]Output, error) {
		rs, err := t.RowSize(int64(it.Shape[1]))
		if err != nil {
			return nil, err
		}
		return []Output{{Name: it.Name, DType: t.String(), Shape: slices.Clone(it.Shape), Bytes: rs * int64(it.Shape[0])}}, nil
	}
}

// keptGGUFType is the GGUF type a kept tensor of safetensors dtype dt is
// written in: the same type when GGUF has it, else F32.
func keptGGUFType(dt string) gguf.Type {
	if t, ok := gguf.ParseType(dt); ok && t.CanDecode() {
		return t
	}
	return gguf.TypeF32
}

// Build plans the batch quantization of tensors (in the order given).
func Build(tensors []safetensors.TensorInfo, opt Options) (*Plan, error) {
	row, err := lookupFormat(opt.Format)
	if err != nil {
		return nil, err
	}
	s := opt.Scheme
	if !row.isGGUF {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("plan: scheme %s: %w", s, err)
		}
	}
	p := &Plan{Format: opt.Format, Scheme: s}
	for _, t := range tensors {
		it := Item{Name: t.Name, DType: t.DType, Shape: slices.Clone(t.Shape), BytesIn: t.End - t.Begin}
		if it.Shape == nil {
			it.Shape = []int{}
		}
		reason := KeepReason(t.Name, t.DType, t.Shape)
		if opt.Include != nil {
			reason = shapeReason(t.DType, t.Shape)
			if reason == "" && !opt.Include.MatchString(t.Name) {
				reason = "not matched by --include"
			}
		}
		if reason == "" && opt.Exclude != nil && opt.Exclude.MatchString(t.Name) {
			reason = "matched by --exclude"
		}
		if reason == "" && row.keep != nil {
			reason = row.keep(t.Shape)
		}
		if reason == "" {
			outs, err := row.outputs(&it, s)
			if err != nil {
				return nil, fmt.Errorf("plan: tensor %q: %w", t.Name, err)
			}
			it.Action, it.Outputs = Quantize, outs
			it.Scheme = s.String()
			if row.isGGUF {
				it.Scheme = row.gguf.String()
			}
			p.Quantized++
		} else {
			it.Action, it.Reason = Keep, reason
			o := Output{Name: t.Name, DType: t.DType, Shape: slices.Clone(it.Shape), Bytes: it.BytesIn}
			if row.isGGUF {
				gt := keptGGUFType(t.DType)
				o.DType = gt.String()
				if gt == gguf.TypeF32 && t.DType != "F32" {
					o.Bytes = 4 * t.Len()
				}
			}
			it.Outputs = []Output{o}
		}
		for _, o := range it.Outputs {
			it.BytesOut += o.Bytes
		}
		p.BytesIn += it.BytesIn
		p.BytesOut += it.BytesOut
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// Hash identifies the plan: the format, the scheme and every item with its
// outputs. Parts of one --shard run carry it so that merge joins only parts
// of the same plan.
func (p *Plan) Hash() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	enc.Encode(struct {
		Format Format
		Scheme string
		Items  []Item
	}{p.Format, p.Scheme.String(), p.Items})
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Ignore lists the Linear-like modules left unquantized, for the
// compressed-tensors "ignore" list: every kept 2-D floating-point .weight
// except embeddings (which are not Linear layers), by module name (the
// tensor name without ".weight").
func (p *Plan) Ignore() []string {
	var out []string
	for _, it := range p.Items {
		if it.Action == Keep && it.Reason != "embedding" && shapeReason(it.DType, it.Shape) == "" && strings.HasSuffix(it.Name, ".weight") {
			out = append(out, strings.TrimSuffix(it.Name, ".weight"))
		}
	}
	return out
}

// Part returns the indices of the items of part i of n: item k belongs to
// part k mod n, so parts are deterministic and interleave large and small
// tensors alike.
func (p *Plan) Part(i, n int) []int {
	var out []int
	for k := range p.Items {
		if k%n == i {
			out = append(out, k)
		}
	}
	return out
}

// All returns the indices of every item.
func (p *Plan) All() []int { return p.Part(0, 1) }

// SafetensorsInfos describes the output tensors of the given items, in
// order, for checkpoint.Create.
func (p *Plan) SafetensorsInfos(items []int) []safetensors.TensorInfo {
	var out []safetensors.TensorInfo
	for _, k := range items {
		for _, o := range p.Items[k].Outputs {
			out = append(out, safetensors.TensorInfo{Name: o.Name, DType: o.DType, Shape: slices.Clone(o.Shape)})
		}
	}
	return out
}

// GGUFInfos describes the output tensors of the given items, in order, for
// gguf.Create (dims in ggml order; a scalar becomes [1]).
func (p *Plan) GGUFInfos(items []int) []gguf.TensorInfo {
	var out []gguf.TensorInfo
	for _, k := range items {
		for _, o := range p.Items[k].Outputs {
			t, _ := gguf.ParseType(o.DType)
			dims := slices.Clone(o.Shape)
			slices.Reverse(dims)
			if len(dims) == 0 {
				dims = []int{1}
			}
			out = append(out, gguf.TensorInfo{Name: o.Name, Type: t, Dims: dims})
		}
	}
	return out
}

// RawMetadata is the safetensors __metadata__ of the safetensors format
// (see the package documentation), or nil for other formats.
func (p *Plan) RawMetadata() map[string]string {
	if p.Format != Safetensors {
		return nil
	}
	type entry struct {
		Shape []int  `json:"shape"`
		DType string `json:"dtype"`
	}
	ts := map[string]entry{}
	for _, it := range p.Items {
		if it.Action == Quantize {
			ts[it.Name] = entry{it.Shape, it.DType}
		}
	}
	b, _ := json.Marshal(ts)
	return map[string]string{MetaFormat: RawFormat, MetaScheme: p.Scheme.String(), MetaTensors: string(b)}
}

// RawTensor is one quantized weight of the safetensors format, as
// RawMetadata records it.
type RawTensor struct {
	Shape []int  `json:"shape"`
	DType string `json:"dtype"`
}

// ReadRawMetadata reads RawMetadata back: the scheme and the quantized
// weights. ok is false when meta is not of the safetensors format.
func ReadRawMetadata(meta map[string]string) (s quant.Scheme, ts map[string]RawTensor, ok bool, err error) {
	if meta[MetaFormat] != RawFormat {
		return s, nil, false, nil
	}
	s, err = quant.ParseScheme(meta[MetaScheme])
	if err != nil {
		return s, nil, true, fmt.Errorf("plan: %s: %w", MetaScheme, err)
	}
	if err := json.Unmarshal([]byte(meta[MetaTensors]), &ts); err != nil {
		return s, nil, true, fmt.Errorf("plan: %s: %w", MetaTensors, err)
	}
	return s, ts, true, nil
}
