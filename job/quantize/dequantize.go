package quantize

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// DequantizeOptions say what Dequantize reads and writes.
type DequantizeOptions struct {
	// Input is a compressed-tensors checkpoint or one in quantkit's raw
	// safetensors format (plan.Safetensors).
	Input string
	// Output is the float checkpoint directory to write.
	Output string
	// DType is that of every dequantized weight (F32, F16 or BF16), or ""
	// for each weight's own: what the raw format records, else config.json's
	// torch_dtype, else F32.
	DType string
	// ShardSize is the most tensor data an output file holds; 0 means
	// DefaultShardSize.
	ShardSize int64
	// Workers is the number of tensors decoded at once; 0 means one per
	// core.
	Workers int
	// Force replaces what is at Output (never the input).
	Force bool
	// Progress, if not nil, is called after each tensor is written.
	Progress func(Progress)
	// Log receives notes for the user; nil discards them.
	Log io.Writer
}

// DequantizeReport says what Dequantize wrote.
type DequantizeReport struct {
	Input   string `json:"input"`
	Output  string `json:"output"`
	Device  string `json:"device"`
	Tensors int    `json:"tensors"` // in the output
	// Dequantized counts the weights dequantized, by the dtype written.
	Dequantized map[string]int `json:"dequantized"`
	Copied      int            `json:"copied"`    // tensors copied byte for byte
	BytesOut    int64          `json:"bytes_out"` // tensor data written
	Seconds     float64        `json:"seconds"`
}

// FloatDTypes are the dtypes Dequantize writes.
var FloatDTypes = []string{"F32", "F16", "BF16"}

// dequantItem is one output tensor of dequantize: a quantized weight
// (decode set) or a copied tensor.
type dequantItem struct {
	info   safetensors.TensorInfo
	decode func() ([]byte, *quant.Params, error)
}

// Dequantize writes the float checkpoint of a quantized one: every
// quantized weight (with its scales, zero points, packed codes, shape)
// becomes one float tensor at the place of its first tensor; other
// tensors are copied byte for byte; config.json loses its
// quantization_config; side files are copied. Every quantized weight is
// dequantized or the run fails naming it. The output is written
// atomically, as Run writes it.
func Dequantize(ctx context.Context, opt DequantizeOptions) (*DequantizeReport, error) {
	if opt.DType != "" && !slices.Contains(FloatDTypes, opt.DType) {
		return nil, inputerr.Mark(fmt.Errorf("dtype %s: not F32, F16 or BF16", opt.DType))
	}
	if opt.ShardSize < 0 || opt.Workers < 0 {
		return nil, inputerr.Mark(fmt.Errorf("shard size %d, %d workers: negative", opt.ShardSize, opt.Workers))
	}
	start := time.Now()
	ck, err := checkpoint.Open(opt.Input)
	if err != nil {
		return nil, inputerr.Mark(err)
	}
	defer ck.Close()
	items, err := dequantPlan(ck, opt.DType)
	if err != nil {
		return nil, inputerr.Mark(err)
	}
	rep := &DequantizeReport{Input: opt.Input, Output: opt.Output, Device: Device, Tensors: len(items), Dequantized: map[string]int{}}
	infos := make([]safetensors.TensorInfo, len(items))
	for i, it := range items {
		infos[i] = it.info
		size, _ := safetensors.DTypeSize(it.info.DType)
		rep.BytesOut += it.info.Len() * int64(size)
		if it.decode != nil {
			rep.Dequantized[it.info.DType]++
		} else {
			rep.Copied++
		}
	}
	out, need := opt.Output, rep.BytesOut
	claim, err := output.Claim(opt.Log, out, opt.Force, need, output.CheckpointInputs(opt.Input, ck)...)
	if err != nil {
		return nil, err
	}
	dir, err := atomicfile.TempDir(claim)
	if err != nil {
		return nil, err
	}
	defer dir.Abort() // nothing once committed
	tmp := dir.Path
	meta := maps.Clone(ck.Metadata())
	for _, k := range []string{plan.MetaFormat, plan.MetaScheme, plan.MetaTensors} {
		delete(meta, k)
	}
	ss := opt.ShardSize
	if ss == 0 {
		ss = DefaultShardSize
	}
	w, err := checkpoint.Create(tmp, infos, ss, meta)
	if err != nil {
		return nil, err
	}
	workers := opt.Workers
	if workers == 0 {
		workers = cpu.Threads()
	}
	var done int64
	err = plan.Ordered(ctx, len(items), workers, func(i int) ([]byte, error) {
		it := items[i]
		if it.decode == nil {
			return ck.Bytes(it.info.Name)
		}
		codes, p, err := it.decode()
		if err != nil {
			return nil, inputerr.Mark(fmt.Errorf("tensor %q: %w", it.info.Name, err))
		}
		x := make([]float32, p.Len())
		if err := cpu.Dequantize(x, codes, p); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", it.info.Name, err)
		}
		return encodeFloats(x, it.info.DType), nil
	}, func(i int, b []byte) error {
		if err := w.WriteTensor(items[i].info.Name, b); err != nil {
			return err
		}
		done += int64(len(b))
		if opt.Progress != nil {
			opt.Progress(Progress{Output: out, Tensor: items[i].info.Name, BytesDone: done, BytesTotal: need, TensorsDone: i + 1, TensorsTotal: len(items)})
		}
		return nil
	})
	if err == nil {
		err = ck.Changed()
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		w.Abort()
		return nil, output.NoSpace(out, need, ck.Explain(err))
	}
	if cfg := ck.Config(); cfg != nil {
		cfg, err := ctensors.UpdateConfig(cfg, nil)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(tmp, checkpoint.ConfigFileName), cfg, 0o666); err != nil {
			return nil, err
		}
	}
	if err := ck.CopySideFiles(tmp, checkpoint.ConfigFileName); err != nil {
		return nil, err
	}
	if err := dir.Commit(); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

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
// DequantizeOptions.DType).
func dequantPlan(ck *checkpoint.Checkpoint, dtype string) ([]dequantItem, error) {
	fallback := "F32"
	if dt, ok := torchDType(ck.Config()); ok {
		fallback = dt
	}
	dtypeOf := func(orig string) string {
		switch {
		case dtype != "":
			return dtype
		case slices.Contains(FloatDTypes, orig):
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
			return func() ([]byte, *quant.Params, error) { return plan.DecodeRaw(ck, w, s, shapes[w]) }
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

// encodeFloats encodes x as little-endian dtype (F32, F16 or BF16; F32
// for any other).
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
