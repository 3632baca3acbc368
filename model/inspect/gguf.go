package inspect

import (
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"text/tabwriter"

	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/ggufmix"
)

// GGUFReport describes a GGUF file.
type GGUFReport struct {
	Format     string `json:"format"` // "gguf"
	Path       string `json:"path"`
	Version    uint32 `json:"version"`
	Alignment  int    `json:"alignment"`
	DataOffset int64  `json:"data_offset"`
	// FileType is general.file_type (llama.cpp's llama_ftype), nil when
	// the file has none; FileTypeName is its name in llama.cpp's enum
	// without the LLAMA_FTYPE_ prefix ("MOSTLY_Q4_K_M", "ALL_F32"), as
	// far as model/ggufmix knows it, else "file type N".
	FileType     *int64         `json:"file_type"`
	FileTypeName string         `json:"file_type_name,omitempty"`
	Metadata     []GGUFMetadata `json:"metadata"`
	Tensors      []GGUFTensor   `json:"tensors"`
	Types        []GGUFTotal    `json:"types"`
	Total        GGUFTotal      `json:"total"`
}

// GGUFMetadata is one metadata pair: an array is summarised by its length
// (Count) and its first ggufArrayHead elements (none for an array of
// arrays); a float JSON cannot hold is the string "NaN", "+Inf" or "-Inf".
type GGUFMetadata struct {
	Key   string `json:"key"`
	Type  string `json:"type"`            // "uint32", "string", "array of string"...
	Value any    `json:"value,omitempty"` // absent for an array of arrays
	Count *int   `json:"count,omitempty"` // arrays only
}

// GGUFTensor is one tensor of a GGUF file.
type GGUFTensor struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Shape  []int  `json:"shape"` // outermost first
	Dims   []int  `json:"dims"`  // ggml order: dims[0] is the row length
	Params int64  `json:"params"`
	Bytes  int64  `json:"bytes"`
	Offset int64  `json:"offset"` // in the data section
}

// GGUFTotal sums the tensors of one ggml type (or all, with Type empty).
type GGUFTotal struct {
	Type    string `json:"type,omitempty"`
	Tensors int    `json:"tensors"`
	Params  int64  `json:"params"`
	Bytes   int64  `json:"bytes"`
	// BitsPerWeight is 8·Bytes/Params (0 without parameters): for all
	// tensors, the figure llama.cpp prints as the model's BPW.
	BitsPerWeight float64 `json:"bits_per_weight"`
}

// setBPW sets t.BitsPerWeight from its bytes and parameters.
func (t *GGUFTotal) setBPW() {
	if t.Params > 0 {
		t.BitsPerWeight = 8 * float64(t.Bytes) / float64(t.Params)
	}
}

// FileTypeName is the name of general.file_type ft in llama.cpp's enum
// llama_ftype, without the LLAMA_FTYPE_ prefix: "ALL_F32" for 0,
// "MOSTLY_" and the llama-quantize type for the mixes model/ggufmix
// knows ("MOSTLY_Q4_K_M"), "file type N" for others.
func FileTypeName(ft int64) string {
	m := ggufmix.Mix(ft)
	switch {
	case ft < 0 || ft > math.MaxUint32 || !m.Valid():
		return fmt.Sprintf("file type %d", ft)
	case m == ggufmix.F32:
		return "ALL_F32"
	}
	return "MOSTLY_" + m.String()
}

// ggufArrayHead is how many elements of an array the report shows.
const ggufArrayHead = 8

// GGUF reads the report of the GGUF file at path.
func GGUF(path string) (GGUFReport, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return GGUFReport{}, err
	}
	defer f.Close()
	rep := GGUFReport{Format: "gguf", Path: path, Version: f.Version(), Alignment: f.Alignment(), DataOffset: f.DataOffset(),
		Metadata: []GGUFMetadata{}, Tensors: []GGUFTensor{}, Types: []GGUFTotal{}}
	for _, kv := range f.Metadata() {
		rep.Metadata = append(rep.Metadata, summarise(kv))
	}
	if ft, ok := f.Int("general.file_type"); ok {
		rep.FileType, rep.FileTypeName = &ft, FileTypeName(ft)
	}
	byType := map[string]*GGUFTotal{}
	for _, t := range f.Tensors() {
		gt := GGUFTensor{Name: t.Name, Type: t.Type.String(), Shape: t.Shape(), Dims: t.Dims, Params: t.Len(), Bytes: t.Size, Offset: t.Offset}
		rep.Tensors = append(rep.Tensors, gt)
		s := byType[gt.Type]
		if s == nil {
			s = &GGUFTotal{Type: gt.Type}
			byType[gt.Type] = s
		}
		for _, s := range []*GGUFTotal{s, &rep.Total} {
			s.Tensors++
			s.Params += gt.Params
			s.Bytes += gt.Bytes
		}
	}
	for _, k := range sortedKeys(byType) {
		byType[k].setBPW()
		rep.Types = append(rep.Types, *byType[k])
	}
	rep.Total.setBPW()
	return rep, nil
}

// summarise gives a metadata pair as the report shows it.
func summarise(kv gguf.KV) GGUFMetadata {
	m := GGUFMetadata{Key: kv.Key, Value: jsonScalar(kv.Value)}
	v := reflect.ValueOf(kv.Value)
	if v.Kind() != reflect.Slice {
		m.Type = v.Type().String()
		return m
	}
	n := v.Len()
	m.Count = &n
	if v.Type().Elem().Kind() == reflect.Interface {
		m.Type, m.Value = "array of array", nil
		return m
	}
	m.Type = "array of " + v.Type().Elem().String()
	head := make([]any, min(n, ggufArrayHead))
	for i := range head {
		head[i] = jsonScalar(v.Index(i).Interface())
	}
	m.Value = head
	return m
}

// jsonScalar returns v, or for a float JSON cannot hold its name.
func jsonScalar(v any) any {
	var f float64
	switch x := v.(type) {
	case float32:
		f = float64(x)
	case float64:
		f = x
	default:
		return v
	}
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return v
}

// formatValue shows a metadata value in a table cell: strings quoted and
// clipped, arrays as their length and first elements.
func formatValue(m GGUFMetadata) string {
	quote := func(v any) string {
		if s, ok := v.(string); ok {
			if r := []rune(s); len(r) > 60 {
				s = string(r[:60]) + "…"
			}
			return strconv.Quote(s)
		}
		return fmt.Sprint(v)
	}
	if m.Count == nil {
		return quote(m.Value)
	}
	text := fmt.Sprintf("%d elements", *m.Count)
	head, _ := m.Value.([]any)
	for i, v := range head {
		if i == 0 {
			text += ": "
		} else {
			text += ", "
		}
		text += quote(v)
	}
	if len(head) < *m.Count && len(head) > 0 {
		text += ", …"
	}
	return text
}

// WriteText writes a summary line and three tables: the metadata, the
// tensors, the totals by type.
func (r GGUFReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s: GGUF v%d, %d tensors, %s parameters, %s of tensor data (%.2f bits per weight), %d metadata keys\n",
		r.Path, r.Version, r.Total.Tensors, units.FormatCount(r.Total.Params), units.FormatBytes(r.Total.Bytes), r.Total.BitsPerWeight, len(r.Metadata))
	if r.FileType != nil {
		fmt.Fprintf(w, "file type: %s (general.file_type %d)\n", r.FileTypeName, *r.FileType)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "key\ttype\tvalue")
	for _, m := range r.Metadata {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Key, m.Type, formatValue(m))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\ttype\tshape\tparams\tbytes")
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Type, formatShape(t.Shape), units.FormatCount(t.Params), units.FormatBytes(t.Bytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "type\ttensors\tparams\tbytes\tbits/weight")
	for _, d := range r.Types {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.2f\n", d.Type, d.Tensors, units.FormatCount(d.Params), units.FormatBytes(d.Bytes), d.BitsPerWeight)
	}
	if len(r.Types) > 1 {
		fmt.Fprintf(tw, "all\t%d\t%s\t%s\t%.2f\n", r.Total.Tensors, units.FormatCount(r.Total.Params), units.FormatBytes(r.Total.Bytes), r.Total.BitsPerWeight)
	}
	return tw.Flush()
}
