package main

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

var (
	dequantOutFlag   = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the float checkpoint to directory `OUT`"}
	dequantDTypeFlag = &cli.StringFlag{Name: "dtype", Value: "auto", Usage: "dtype of the dequantized weights: auto (each weight's dtype before quantization: as quantkit's raw format records it, else config.json's torch_dtype, else f32), f32, f16 or bf16"}
	dequantForceFlag = &cli.BoolFlag{Name: "force", Usage: "replace OUT if it exists"}
)

var dequantizeCommand = &cli.Command{
	Name:      "dequantize",
	Usage:     "turn a quantized checkpoint back into float weights",
	ArgsUsage: "IN -o OUT",
	Description: "IN is a compressed-tensors checkpoint (config.json with a compressed-tensors\n" +
		"quantization_config, as quantize or llm-compressor write it) or one in quantkit's raw\n" +
		"safetensors format (quantize --format safetensors). Every quantized weight W (with its\n" +
		"W_scale, W_zero_point, W_packed, W_shape, or W.scale, W.zero_point) becomes one float\n" +
		"tensor W in --dtype, at the place of its first tensor; other tensors are copied byte for\n" +
		"byte. By default (--dtype auto) a weight gets back the dtype it had before quantization:\n" +
		"what quantkit's raw format records, else config.json's torch_dtype (BF16 in, BF16 out),\n" +
		"else F32. Every quantized weight is dequantized or the run fails naming it: integer\n" +
		"weights without their scales, or scales without their weights, are an error, never\n" +
		"copied as they are. config.json is written without quantization_config; side files are\n" +
		"copied. OUT is written atomically, as quantize writes it.",
	Flags:  []cli.Flag{dequantOutFlag, dequantDTypeFlag, dequantForceFlag, quantSizeFlag, quantWorkFlag},
	Action: runDequantize,
}

// dequantItem is one output tensor of dequantize: a quantized weight
// (decode set) or a copied tensor.
type dequantItem struct {
	info   safetensors.TensorInfo
	decode func() ([]byte, *quant.Params, error)
}

func runDequantize(c *cli.Context) error {
	if err := dequantize(c); err != nil {
		return fmt.Errorf("dequantize: %w", err)
	}
	return nil
}

func dequantize(c *cli.Context) error {
	args, err := interspersed(c)
	if err != nil {
		return badInput(err)
	}
	if len(args) != 1 || c.String(dequantOutFlag.Name) == "" {
		return badInput(errors.New("give one input checkpoint and the output: dequantize IN -o OUT"))
	}
	in := args[0]
	dtype := strings.ToUpper(c.String(dequantDTypeFlag.Name))
	if dtype == "AUTO" {
		dtype = ""
	} else if !slices.Contains(floatOutDTypes, dtype) {
		return badInput(fmt.Errorf("--dtype %s: not auto, f32, f16 or bf16", c.String(dequantDTypeFlag.Name)))
	}
	shardSize, err := parseSize(c.String(quantSizeFlag.Name))
	if err != nil || shardSize <= 0 {
		return badInput(fmt.Errorf("--shard-size: must be a positive size: %q", c.String(quantSizeFlag.Name)))
	}
	out := c.String(dequantOutFlag.Name)
	ck, err := checkpoint.Open(in)
	if err != nil {
		return badInput(err)
	}
	defer ck.Close()
	items, err := dequantPlan(ck, dtype)
	if err != nil {
		return badInput(err)
	}
	infos := make([]safetensors.TensorInfo, len(items))
	var need int64
	for i, it := range items {
		infos[i] = it.info
		size, _ := safetensors.DTypeSize(it.info.DType)
		need += it.info.Len() * int64(size)
	}
	claim, err := claimOutput(c.App.ErrWriter, out, c.Bool(dequantForceFlag.Name), need, checkpointInputs(in, ck)...)
	if err != nil {
		return err
	}
	dir, err := atomicfile.TempDir(claim)
	if err != nil {
		return err
	}
	defer dir.Abort() // nothing once committed
	tmp := dir.Path
	meta := maps.Clone(ck.Metadata())
	for _, k := range []string{plan.MetaFormat, plan.MetaScheme, plan.MetaTensors} {
		delete(meta, k)
	}
	w, err := checkpoint.Create(tmp, infos, shardSize, meta)
	if err != nil {
		return err
	}
	workers := c.Int(quantWorkFlag.Name)
	if workers <= 0 {
		workers = cpu.Threads()
	}
	err = plan.Ordered(c.Context, len(items), workers, func(i int) ([]byte, error) {
		it := items[i]
		if it.decode == nil {
			return ck.Bytes(it.info.Name)
		}
		codes, p, err := it.decode()
		if err != nil {
			return nil, badInput(fmt.Errorf("tensor %q: %w", it.info.Name, err))
		}
		x := make([]float32, p.Len())
		if err := cpu.Dequantize(x, codes, p); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", it.info.Name, err)
		}
		return encodeFloats(x, it.info.DType), nil
	}, func(i int, b []byte) error {
		defer afterWrite(out)
		return w.WriteTensor(items[i].info.Name, b)
	})
	if err == nil {
		err = ck.Changed()
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		w.Abort()
		return noSpace(out, need, ck.Explain(err))
	}
	if cfg := ck.Config(); cfg != nil {
		cfg, err := ctensors.UpdateConfig(cfg, nil)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(tmp, checkpoint.ConfigFileName), cfg, 0o666); err != nil {
			return err
		}
	}
	if err := ck.CopySideFiles(tmp, checkpoint.ConfigFileName); err != nil {
		return err
	}
	if err := dir.Commit(); err != nil {
		return err
	}
	dtypes := map[string]int{}
	for _, it := range items {
		if it.decode != nil {
			dtypes[it.info.DType]++
		}
	}
	var what []string
	for _, dt := range slices.Sorted(maps.Keys(dtypes)) {
		what = append(what, fmt.Sprintf("%d %s", dtypes[dt], dt))
	}
	fmt.Fprintf(c.App.Writer, "%s → %s: %d tensors, dequantized %s\n", in, out, len(items), strings.Join(what, ", "))
	return nil
}

// floatOutDTypes are the dtypes dequantize writes.
var floatOutDTypes = []string{"F32", "F16", "BF16"}

// torchDType is the safetensors dtype of config.json's torch_dtype (or
// dtype, as newer transformers write it) when it is one dequantize writes.
func torchDType(cfg json.RawMessage) (string, bool) {
	var c struct {
		TorchDType string `json:"torch_dtype"`
		DType      string `json:"dtype"`
	}
	if cfg == nil || json.Unmarshal(cfg, &c) != nil {
		return "", false
	}
	dt, ok := map[string]string{"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[strings.TrimPrefix(cmp.Or(c.TorchDType, c.DType), "torch.")]
	return dt, ok
}

// dequantPlan lists the output tensors of dequantizing ck, in order. dtype
// is that of every dequantized weight, or "" for each weight's own (see
// the --dtype flag).
func dequantPlan(ck *checkpoint.Checkpoint, dtype string) ([]dequantItem, error) {
	fallback := "F32"
	if dt, ok := torchDType(ck.Config()); ok {
		fallback = dt
	}
	dtypeOf := func(orig string) string {
		switch {
		case dtype != "":
			return dtype
		case slices.Contains(floatOutDTypes, orig):
			return orig
		}
		return fallback
	}
	origDType := map[string]string{} // quantized weight → its dtype before quantization, where recorded
	tensors := ck.Tensors()
	owner := map[string]string{} // tensor name → quantized weight it belongs to
	shapes := map[string][]int{}
	var decode func(w string) func() ([]byte, *quant.Params, error)
	if cfg := ck.Config(); cfg != nil {
		if cc, ok, err := ctensors.ReadConfig(cfg); err != nil {
			return nil, err
		} else if ok {
			for _, w := range ctensors.QuantizedWeights(tensors) {
				for _, suffix := range []string{"", "_packed", "_shape", "_scale", "_zero_point", "_g_idx"} {
					owner[w+suffix] = w
				}
				shape, err := ctShape(ck, w)
				if err != nil {
					return nil, err
				}
				shapes[w] = shape
			}
			decode = func(w string) func() ([]byte, *quant.Params, error) {
				return func() ([]byte, *quant.Params, error) { return ctensors.DecodeWeight(w, cc.Scheme, ck) }
			}
		}
	}
	if decode == nil {
		s, raw, ok, err := plan.ReadRawMetadata(ck.Metadata())
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%s: not quantized (no compressed-tensors quantization_config, no %s metadata)", ck.Dir(), plan.MetaFormat)
		}
		for w, rt := range raw {
			for _, suffix := range []string{"", plan.RawScale, plan.RawZeroPoint} {
				owner[w+suffix] = w
			}
			shapes[w] = rt.Shape
			origDType[w] = rt.DType
		}
		decode = func(w string) func() ([]byte, *quant.Params, error) {
			return func() ([]byte, *quant.Params, error) { return rawDecode(ck, w, s, shapes[w]) }
		}
	}
	var items []dequantItem
	done := map[string]bool{}
	for _, t := range tensors {
		w, ok := owner[t.Name]
		if !ok {
			if why, left := leftQuantized(t); left {
				return nil, fmt.Errorf("%s: tensor %q %s, but nothing dequantizes it (its weight or scales are missing); "+
					"the checkpoint is incomplete", ck.Dir(), t.Name, why)
			}
			items = append(items, dequantItem{info: safetensors.TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape}})
			continue
		}
		if done[w] {
			continue
		}
		done[w] = true
		items = append(items, dequantItem{info: safetensors.TensorInfo{Name: w, DType: dtypeOf(origDType[w]), Shape: shapes[w]}, decode: decode(w)})
	}
	return items, nil
}

// leftQuantized reports whether t, which no quantized weight of the
// checkpoint claims, is part of one all the same: integer codes of a
// weight, or the scales, zero points, packed codes or shape of one.
func leftQuantized(t safetensors.TensorInfo) (why string, ok bool) {
	for _, suffix := range []string{"_packed", "_scale", "_zero_point", "_shape", "_g_idx", plan.RawScale, plan.RawZeroPoint, ".qweight", ".qzeros", ".scales"} {
		if strings.HasSuffix(t.Name, suffix) {
			return "is named as part of a quantized weight", true
		}
	}
	if strings.HasSuffix(t.Name, ".weight") && slices.Contains([]string{"I8", "U8", "I16", "I32", "U32", "I64"}, t.DType) {
		return "holds " + t.DType + " codes", true
	}
	return "", false
}

// ctShape is the shape of compressed-tensors weight w: W's, or W_shape's
// values.
func ctShape(ck *checkpoint.Checkpoint, w string) ([]int, error) {
	if t, ok := ck.Tensor(w); ok {
		return t.Shape, nil
	}
	x, err := ck.Float32(w + "_shape") // I64 or I32; small integers convert exactly
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(x))
	for i, v := range x {
		shape[i] = int(v)
	}
	return shape, nil
}

// rawDecode reads weight w of quantkit's raw safetensors format.
func rawDecode(ck *checkpoint.Checkpoint, w string, s quant.Scheme, shape []int) ([]byte, *quant.Params, error) {
	codes, err := ck.Bytes(w)
	if err != nil {
		return nil, nil, err
	}
	scales, err := ck.Float32(w + plan.RawScale)
	if err != nil {
		return nil, nil, err
	}
	p := &quant.Params{Scheme: s, Shape: shape, Scales: scales, ZeroPoints: make([]int32, len(scales))}
	if !s.Symmetric {
		zb, err := ck.Bytes(w + plan.RawZeroPoint)
		if err != nil {
			return nil, nil, err
		}
		if len(zb) != 4*len(scales) {
			return nil, nil, fmt.Errorf("%d zero-point bytes for %d scales", len(zb), len(scales))
		}
		for i := range p.ZeroPoints {
			p.ZeroPoints[i] = int32(binary.LittleEndian.Uint32(zb[4*i:]))
		}
	}
	if err := p.Check(); err != nil {
		return nil, nil, err
	}
	if n := p.Len(); len(codes) != s.PackedLen(n) {
		return nil, nil, fmt.Errorf("%d code bytes, want %d", len(codes), s.PackedLen(n))
	}
	return codes, p, nil
}

// encodeFloats encodes x as little-endian dtype (F32, F16 or BF16).
func encodeFloats(x []float32, dtype string) []byte {
	switch dtype {
	case "F16":
		b := make([]byte, 2*len(x))
		half.EncodeFloat16(b, x, binary.LittleEndian)
		return b
	case "BF16":
		b := make([]byte, 2*len(x))
		half.EncodeBFloat16(b, x, binary.LittleEndian)
		return b
	}
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
