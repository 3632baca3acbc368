package inspect

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/plan"
)

// CheckpointReport describes a safetensors checkpoint.
type CheckpointReport struct {
	Format    string         `json:"format"` // "safetensors"
	Path      string         `json:"path"`
	Files     []string       `json:"files"`
	Tensors   []Tensor       `json:"tensors"`
	DTypes    []DTypeTotal   `json:"dtypes"` // by dtype name
	Total     DTypeTotal     `json:"total"`
	Estimates []SizeEstimate `json:"estimates"` // "original", then SizeFormats' order
}

// Tensor is one tensor of a checkpoint.
type Tensor struct {
	Name       string `json:"name"`
	File       string `json:"file"`
	DType      string `json:"dtype"`
	Shape      []int  `json:"shape"`
	Params     int64  `json:"params"`
	Bytes      int64  `json:"bytes"`
	Quantize   bool   `json:"quantize"`
	KeepReason string `json:"keep_reason,omitempty"` // why not, by plan.KeepReason
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
	Ratio            float64 `json:"ratio"` // Bytes / the original's
}

// SizeFormat is one row of the table of storage formats Checkpoint
// estimates: the bytes of codes and of scales of a quantized [rows, cols]
// matrix.
type SizeFormat struct {
	Name   string
	Codes  func(rows, cols int64) int64
	Scales func(rows, cols int64) int64
}

// SizeFormats are the formats Checkpoint estimates, both symmetric (no zero
// points). Add a format by adding a row.
var SizeFormats = []SizeFormat{
	// 1 byte per parameter, a float32 scale per row (output channel).
	{"int8-per-channel",
		func(rows, cols int64) int64 { return rows * cols },
		func(rows, cols int64) int64 { return 4 * rows }},
	// ½ byte per parameter (two codes a byte, as quant packs them), a
	// float32 scale per 128 consecutive inputs of a row (a shorter last
	// group counts as a group).
	{"int4-group128",
		func(rows, cols int64) int64 { return (rows*cols + 1) / 2 },
		func(rows, cols int64) int64 { return 4 * rows * ((cols + 127) / 128) }},
}

// Checkpoint reads the report of the checkpoint at path: a .safetensors
// file, a model.safetensors.index.json, or a directory holding either
// (checkpoint.Open). A tensor is quantized by the rule quantize follows
// (plan.KeepReason).
func Checkpoint(path string) (CheckpointReport, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return CheckpointReport{}, err
	}
	defer ck.Close()
	rep := CheckpointReport{Format: "safetensors", Path: path, Tensors: []Tensor{}}
	for _, f := range ck.Files() {
		rep.Files = append(rep.Files, filepath.Join(ck.Dir(), f))
	}
	byDType := map[string]*DTypeTotal{}
	for _, t := range ck.Tensors() {
		shard, _ := ck.ShardOf(t.Name)
		it := Tensor{Name: t.Name, File: filepath.Join(ck.Dir(), shard), DType: t.DType, Shape: t.Shape, Params: t.Len(), Bytes: t.End - t.Begin}
		if it.Shape == nil {
			it.Shape = []int{}
		}
		it.KeepReason = plan.KeepReason(t.Name, t.DType, t.Shape)
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
	for _, f := range SizeFormats {
		e := SizeEstimate{Format: f.Name}
		for _, t := range rep.Tensors {
			if !t.Quantize {
				e.KeptBytes += t.Bytes
				continue
			}
			rows, cols := int64(t.Shape[0]), int64(t.Shape[1])
			e.QuantizedTensors++
			e.QuantizedParams += t.Params
			e.CodeBytes += f.Codes(rows, cols)
			e.ScaleBytes += f.Scales(rows, cols)
		}
		e.Bytes = e.CodeBytes + e.ScaleBytes + e.KeptBytes
		if orig.Bytes > 0 {
			e.Ratio = float64(e.Bytes) / float64(orig.Bytes)
		}
		rep.Estimates = append(rep.Estimates, e)
	}
	return rep, nil
}

// WriteText writes a summary line and three tables: the tensors, the
// totals by dtype, the size estimates.
func (r CheckpointReport) WriteText(w io.Writer) error {
	files := "1 file"
	if len(r.Files) != 1 {
		files = fmt.Sprintf("%d files", len(r.Files))
	}
	fmt.Fprintf(w, "%s: %d tensors in %s, %s parameters, %s of tensor data\n\n",
		r.Path, r.Total.Tensors, files, units.FormatCount(r.Total.Params), units.FormatBytes(r.Total.Bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\tdtype\tshape\tparams\tbytes\tquantized")
	for _, t := range r.Tensors {
		q := "yes"
		if !t.Quantize {
			q = "no: " + t.KeepReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.DType, formatShape(t.Shape), units.FormatCount(t.Params), units.FormatBytes(t.Bytes), q)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "dtype\ttensors\tparams\tbytes")
	for _, d := range r.DTypes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.DType, d.Tensors, units.FormatCount(d.Params), units.FormatBytes(d.Bytes))
	}
	if len(r.DTypes) > 1 {
		fmt.Fprintf(tw, "all\t%d\t%s\t%s\n", r.Total.Tensors, units.FormatCount(r.Total.Params), units.FormatBytes(r.Total.Bytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "estimate\tquantized\tcodes\tscales\tkept\ttotal\tratio")
	for _, e := range r.Estimates {
		if e.Format == "original" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%s\t%.3f\n", e.Format, units.FormatBytes(e.KeptBytes), units.FormatBytes(e.Bytes), e.Ratio)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d tensors, %s params\t%s\t%s\t%s\t%s\t%.3f\n", e.Format, e.QuantizedTensors, units.FormatCount(e.QuantizedParams),
			units.FormatBytes(e.CodeBytes), units.FormatBytes(e.ScaleBytes), units.FormatBytes(e.KeptBytes), units.FormatBytes(e.Bytes), e.Ratio)
	}
	return tw.Flush()
}
