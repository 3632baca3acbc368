package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/plan"
)

var inspectJSONFlag = &cli.BoolFlag{Name: "json", Usage: "print the JSON report described below instead of tables"}

var inspectCommand = &cli.Command{
	Name:      "inspect",
	Usage:     "list the tensors of a checkpoint, GGUF or .npy file, and estimate a checkpoint's size quantized",
	ArgsUsage: "PATH",
	Description: "PATH is a .safetensors file, a model.safetensors.index.json, or a directory holding\n" +
		"either (see model/checkpoint for what is checked), a GGUF file or a NumPy .npy file. A\n" +
		"file's format is told by its first bytes, not its name (see model/format); the error for\n" +
		"another format (ONNX, PyTorch...) names it. Only headers are read. Named pipes and\n" +
		"devices are refused.\n" +
		"\n" +
		"For safetensors, prints every tensor (name, dtype, shape, parameters, bytes, whether it\n" +
		"would be quantized), the totals by dtype, and the estimated size of the checkpoint\n" +
		"quantized:\n" +
		"\n" +
		"  int8-per-channel  1 byte per parameter + a float32 scale per row (output channel)\n" +
		"  int4-group128     ½ byte per parameter + a float32 scale per 128 consecutive\n" +
		"                    inputs of a row (a shorter last group counts as a group)\n" +
		"\n" +
		"both symmetric (no zero points). Which tensors are quantized follows llm-compressor's\n" +
		"default recipe (quantize Linear layers, ignore lm_head): a tensor is quantized if it\n" +
		"is a 2-D floating-point tensor whose name ends in .weight, unless it is an embedding\n" +
		"(a name part containing \"embed\", or wte, wpe) or the output head (lm_head); all\n" +
		"others (embeddings, lm_head, norms, biases, integer tensors) keep their dtype.\n" +
		"\n" +
		"For GGUF, prints the metadata (key, type, value; arrays as their length and first\n" +
		"elements), every tensor (name, ggml type, shape outermost first, parameters, bytes) and\n" +
		"the totals by type. For .npy, prints the dtype, shape, elements and bytes.\n" +
		"\n" +
		"--json prints one object. For safetensors: {format: \"safetensors\", path, files: [FILE],\n" +
		"tensors: [{name, file, dtype, shape: [INT], params, bytes, quantize: BOOL, keep_reason:\n" +
		"STRING (absent when quantized)}], dtypes: [{dtype, tensors, params, bytes}], total:\n" +
		"{tensors, params, bytes}, estimates: [{format: original | int8-per-channel |\n" +
		"int4-group128, quantized_tensors, quantized_params, code_bytes, scale_bytes,\n" +
		"kept_bytes, bytes, ratio (bytes / original bytes)}]}. For GGUF: {format: \"gguf\", path,\n" +
		"version, alignment, data_offset, metadata: [{key, type (\"uint32\", \"string\", \"array of\n" +
		"string\"...), value, count (arrays only)}], tensors: [{name, type, shape: [INT] (outermost\n" +
		"first), dims: [INT] (ggml order, innermost first), params, bytes, offset}], types:\n" +
		"[{type, tensors, params, bytes}], total: {tensors, params, bytes}}, where an array's\n" +
		"value is its first 8 elements (absent for an array of arrays) and a float JSON cannot\n" +
		"hold is a string (\"NaN\", \"+Inf\", \"-Inf\"). For .npy: {format: \"npy\", path, version,\n" +
		"dtype (as the file gives it: \"<f4\"), type (numpy's name: \"float32\"), shape: [INT],\n" +
		"elements, bytes, data_offset}. Sizes are tensor data in bytes, without file headers.",
	Flags:  []cli.Flag{inspectJSONFlag},
	Action: runInspect,
}

// InspectReport is what `quantkit inspect --json` prints.
type InspectReport struct {
	Format    string          `json:"format"` // "safetensors"
	Path      string          `json:"path"`
	Files     []string        `json:"files"`
	Tensors   []InspectTensor `json:"tensors"`
	DTypes    []DTypeTotal    `json:"dtypes"`
	Total     DTypeTotal      `json:"total"`
	Estimates []SizeEstimate  `json:"estimates"`
}

// InspectTensor is one tensor of a checkpoint.
type InspectTensor struct {
	Name       string `json:"name"`
	File       string `json:"file"`
	DType      string `json:"dtype"`
	Shape      []int  `json:"shape"`
	Params     int64  `json:"params"`
	Bytes      int64  `json:"bytes"`
	Quantize   bool   `json:"quantize"`
	KeepReason string `json:"keep_reason,omitempty"`
}

// DTypeTotal sums the tensors of one dtype (or all, with DType empty).
type DTypeTotal struct {
	DType   string `json:"dtype,omitempty"`
	Tensors int    `json:"tensors"`
	Params  int64  `json:"params"`
	Bytes   int64  `json:"bytes"`
}

// SizeEstimate is the checkpoint's size in one storage format.
type SizeEstimate struct {
	Format           string  `json:"format"`
	QuantizedTensors int     `json:"quantized_tensors"`
	QuantizedParams  int64   `json:"quantized_params"`
	CodeBytes        int64   `json:"code_bytes"`  // quantized values
	ScaleBytes       int64   `json:"scale_bytes"` // their scales
	KeptBytes        int64   `json:"kept_bytes"`  // tensors kept in their dtype
	Bytes            int64   `json:"bytes"`
	Ratio            float64 `json:"ratio"`
}

// sizeFormat is one row of the table of formats inspect estimates: the
// bytes of codes and of scales for a quantized [rows, cols] matrix. Add a
// format by adding a row.
type sizeFormat struct {
	name   string
	codes  func(rows, cols int64) int64
	scales func(rows, cols int64) int64
}

var sizeFormats = []sizeFormat{
	{"int8-per-channel",
		func(rows, cols int64) int64 { return rows * cols },
		func(rows, cols int64) int64 { return 4 * rows }},
	{"int4-group128",
		func(rows, cols int64) int64 { return (rows*cols + 1) / 2 }, // two codes a byte, as quant packs them
		func(rows, cols int64) int64 { return 4 * rows * ((cols + 127) / 128) }},
}

// keepReason says why a tensor stays in its dtype under the default rule
// (see the command's description), or "" if it is quantized: the rule of
// package plan, which quantize follows too.
func keepReason(name, dtype string, shape []int) string { return plan.KeepReason(name, dtype, shape) }

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("inspect: give one PATH: a .safetensors, GGUF or .npy file, or a checkpoint directory")
	}
	rep, err := inspectPath(c.Args().First())
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if c.Bool(inspectJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // "<f4", not "\u003cf4"
		return enc.Encode(rep)
	}
	rep.writeText(c.App.Writer)
	return nil
}

// inspectReport is the report of one kind of file.
type inspectReport interface {
	writeText(w io.Writer)
}

// inspectPath reads path by its format: what a file holds is told by its
// first bytes (a damaged file by its extension), whatever its name.
func inspectPath(path string) (inspectReport, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return inspect(path)
	}
	d, err := format.Detect(path)
	if err != nil {
		return nil, err
	}
	switch {
	case d.Format == format.Safetensors, d.Format == format.JSON && strings.HasSuffix(path, ".json"):
		return inspect(path) // a checkpoint, or its index
	case d.Format == format.GGUF:
		return inspectGGUF(path)
	case d.Format == format.NPY:
		return inspectNPY(path)
	case d.Format != nil:
		return nil, fmt.Errorf("%s is %s; inspect reads safetensors, GGUF and .npy", path, d.Format.Noun)
	case d.Size == 0:
		return nil, fmt.Errorf("%s is empty", path)
	}
	return nil, fmt.Errorf("%s is not a safetensors, GGUF or .npy file (it starts with %q)", path, d.Head)
}

// inspect builds the report of the checkpoint at path.
func inspect(path string) (InspectReport, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return InspectReport{}, err
	}
	defer ck.Close()
	rep := InspectReport{Format: "safetensors", Path: path, Tensors: []InspectTensor{}}
	for _, f := range ck.Files() {
		rep.Files = append(rep.Files, filepath.Join(ck.Dir(), f))
	}
	byDType := map[string]*DTypeTotal{}
	for _, t := range ck.Tensors() {
		shard, _ := ck.ShardOf(t.Name)
		it := InspectTensor{Name: t.Name, File: filepath.Join(ck.Dir(), shard), DType: t.DType, Shape: t.Shape, Params: t.Len(), Bytes: t.End - t.Begin}
		if it.Shape == nil {
			it.Shape = []int{}
		}
		it.KeepReason = keepReason(t.Name, t.DType, t.Shape)
		it.Quantize = it.KeepReason == ""
		rep.Tensors = append(rep.Tensors, it)
		d := byDType[t.DType]
		if d == nil {
			d = &DTypeTotal{DType: t.DType}
			byDType[t.DType] = d
		}
		for _, s := range []*DTypeTotal{d, &rep.Total} {
			s.Tensors++
			s.Params += it.Params
			s.Bytes += it.Bytes
		}
	}
	for _, k := range sortedKeys(byDType) {
		rep.DTypes = append(rep.DTypes, *byDType[k])
	}
	orig := SizeEstimate{Format: "original", KeptBytes: rep.Total.Bytes, Bytes: rep.Total.Bytes, Ratio: 1}
	rep.Estimates = append(rep.Estimates, orig)
	for _, f := range sizeFormats {
		e := SizeEstimate{Format: f.name}
		for _, t := range rep.Tensors {
			if !t.Quantize {
				e.KeptBytes += t.Bytes
				continue
			}
			rows, cols := int64(t.Shape[0]), int64(t.Shape[1])
			e.QuantizedTensors++
			e.QuantizedParams += t.Params
			e.CodeBytes += f.codes(rows, cols)
			e.ScaleBytes += f.scales(rows, cols)
		}
		e.Bytes = e.CodeBytes + e.ScaleBytes + e.KeptBytes
		if orig.Bytes > 0 {
			e.Ratio = float64(e.Bytes) / float64(orig.Bytes)
		}
		rep.Estimates = append(rep.Estimates, e)
	}
	return rep, nil
}

func formatShape(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (r InspectReport) writeText(w io.Writer) {
	files := "1 file"
	if len(r.Files) != 1 {
		files = fmt.Sprintf("%d files", len(r.Files))
	}
	fmt.Fprintf(w, "%s: %d tensors in %s, %s parameters, %s of tensor data\n\n",
		r.Path, r.Total.Tensors, files, formatCount(r.Total.Params), formatBytes(r.Total.Bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\tdtype\tshape\tparams\tbytes\tquantized")
	for _, t := range r.Tensors {
		q := "yes"
		if !t.Quantize {
			q = "no: " + t.KeepReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.DType, formatShape(t.Shape), formatCount(t.Params), formatBytes(t.Bytes), q)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "dtype\ttensors\tparams\tbytes")
	for _, d := range r.DTypes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.DType, d.Tensors, formatCount(d.Params), formatBytes(d.Bytes))
	}
	if len(r.DTypes) > 1 {
		fmt.Fprintf(tw, "all\t%d\t%s\t%s\n", r.Total.Tensors, formatCount(r.Total.Params), formatBytes(r.Total.Bytes))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "estimate\tquantized\tcodes\tscales\tkept\ttotal\tratio")
	for _, e := range r.Estimates {
		if e.Format == "original" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%s\t%.3f\n", e.Format, formatBytes(e.KeptBytes), formatBytes(e.Bytes), e.Ratio)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d tensors, %s params\t%s\t%s\t%s\t%s\t%.3f\n", e.Format, e.QuantizedTensors, formatCount(e.QuantizedParams),
			formatBytes(e.CodeBytes), formatBytes(e.ScaleBytes), formatBytes(e.KeptBytes), formatBytes(e.Bytes), e.Ratio)
	}
	tw.Flush()
}

// GGUFReport is what `quantkit inspect --json` prints for a GGUF file.
type GGUFReport struct {
	Format     string         `json:"format"` // "gguf"
	Path       string         `json:"path"`
	Version    uint32         `json:"version"`
	Alignment  int            `json:"alignment"`
	DataOffset int64          `json:"data_offset"`
	Metadata   []GGUFMetadata `json:"metadata"`
	Tensors    []GGUFTensor   `json:"tensors"`
	Types      []GGUFTotal    `json:"types"`
	Total      GGUFTotal      `json:"total"`
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
}

// ggufArrayHead is how many elements of an array the report shows.
const ggufArrayHead = 8

func inspectGGUF(path string) (GGUFReport, error) {
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
		rep.Types = append(rep.Types, *byType[k])
	}
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

func (r GGUFReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "%s: GGUF v%d, %d tensors, %s parameters, %s of tensor data, %d metadata keys\n\n",
		r.Path, r.Version, r.Total.Tensors, formatCount(r.Total.Params), formatBytes(r.Total.Bytes), len(r.Metadata))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "key\ttype\tvalue")
	for _, m := range r.Metadata {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Key, m.Type, formatValue(m))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\ttype\tshape\tparams\tbytes")
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Type, formatShape(t.Shape), formatCount(t.Params), formatBytes(t.Bytes))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "type\ttensors\tparams\tbytes")
	for _, d := range r.Types {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.Type, d.Tensors, formatCount(d.Params), formatBytes(d.Bytes))
	}
	if len(r.Types) > 1 {
		fmt.Fprintf(tw, "all\t%d\t%s\t%s\n", r.Total.Tensors, formatCount(r.Total.Params), formatBytes(r.Total.Bytes))
	}
	tw.Flush()
}

// NPYReport is what `quantkit inspect --json` prints for a .npy file.
type NPYReport struct {
	Format     string `json:"format"` // "npy"
	Path       string `json:"path"`
	Version    int    `json:"version"`
	DType      string `json:"dtype"` // as the file gives it: "<f4"
	Type       string `json:"type"`  // numpy's name: "float32"
	Shape      []int  `json:"shape"`
	Elements   int64  `json:"elements"`
	Bytes      int64  `json:"bytes"`
	DataOffset int64  `json:"data_offset"`
}

func inspectNPY(path string) (NPYReport, error) {
	h, err := npy.ReadHeader(path)
	if err != nil {
		return NPYReport{}, err
	}
	return NPYReport{Format: "npy", Path: path, Version: h.Version, DType: h.DType, Type: h.Type, Shape: h.Shape,
		Elements: int64(h.Len()), Bytes: h.DataLen, DataOffset: h.DataOffset}, nil
}

func (r NPYReport) writeText(w io.Writer) {
	shape := formatShape(r.Shape) // as numpy writes it: (2, 3), (3,), ()
	shape = "(" + shape[1:len(shape)-1] + ")"
	if len(r.Shape) == 1 {
		shape = shape[:len(shape)-1] + ",)"
	}
	fmt.Fprintf(w, "%s: NumPy .npy v%d.0, %s (%s), shape %s, %d elements, %s of data\n",
		r.Path, r.Version, r.DType, r.Type, shape, r.Elements, formatBytes(r.Bytes))
}
