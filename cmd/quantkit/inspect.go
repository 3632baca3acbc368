package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/plan"
)

var inspectJSONFlag = &cli.BoolFlag{Name: "json", Usage: "print the JSON report described below instead of tables"}

var inspectCommand = &cli.Command{
	Name:      "inspect",
	Usage:     "list a checkpoint's tensors and estimate its size quantized to int8 and int4",
	ArgsUsage: "PATH",
	Description: "PATH is a .safetensors file, a model.safetensors.index.json, or a directory holding\n" +
		"either (see model/checkpoint for what is checked). Only the headers are read. Prints every\n" +
		"tensor (name, dtype, shape, parameters, bytes, whether it would be quantized), the\n" +
		"totals by dtype, and the estimated size of the checkpoint quantized:\n" +
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
		"--json prints one object: {path, files: [FILE], tensors: [{name, file, dtype,\n" +
		"shape: [INT], params, bytes, quantize: BOOL, keep_reason: STRING (absent when\n" +
		"quantized)}], dtypes: [{dtype, tensors, params, bytes}], total: {tensors, params,\n" +
		"bytes}, estimates: [{format: original | int8-per-channel | int4-group128,\n" +
		"quantized_tensors, quantized_params, code_bytes, scale_bytes, kept_bytes, bytes,\n" +
		"ratio (bytes / original bytes)}]}. Sizes are tensor data in bytes, without file\n" +
		"headers.",
	Flags:  []cli.Flag{inspectJSONFlag},
	Action: runInspect,
}

// InspectReport is what `quantkit inspect --json` prints.
type InspectReport struct {
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
		return errors.New("inspect: give one PATH: a .safetensors file or a checkpoint directory")
	}
	rep, err := inspect(c.Args().First())
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if c.Bool(inspectJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeInspect(c.App.Writer, rep)
	return nil
}

// inspect builds the report of the checkpoint at path.
func inspect(path string) (InspectReport, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return InspectReport{}, err
	}
	defer ck.Close()
	rep := InspectReport{Path: path, Tensors: []InspectTensor{}}
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

func writeInspect(w io.Writer, r InspectReport) {
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
