package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/model/inspect"
)

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
		"elements), the file type (general.file_type, as llama.cpp names it: MOSTLY_Q4_K_M),\n" +
		"every tensor (name, ggml type, shape outermost first, parameters, bytes) and the totals\n" +
		"by type with bits per weight. For .npy, prints the dtype, shape, elements and bytes.\n" +
		"\n" +
		"--json prints one object instead of the tables; --json-out FILE writes it to FILE and\n" +
		"prints the tables. For safetensors: {format: \"safetensors\", path, files: [FILE], tensors:\n" +
		"[{name, file, dtype, shape: [INT], params, bytes, quantize: BOOL, keep_reason: STRING\n" +
		"(absent when quantized)}], dtypes: [{dtype, tensors, params, bytes}], total:\n" +
		"{tensors, params, bytes}, estimates: [{format: original | int8-per-channel |\n" +
		"int4-group128, quantized_tensors, quantized_params, code_bytes, scale_bytes,\n" +
		"kept_bytes, bytes, ratio (bytes / original bytes)}]}. For GGUF: {format: \"gguf\", path,\n" +
		"version, alignment, data_offset, metadata: [{key, type (\"uint32\", \"string\", \"array of\n" +
		"string\"...), value, count (arrays only)}], tensors: [{name, type, shape: [INT] (outermost\n" +
		"first), dims: [INT] (ggml order, innermost first), params, bytes, offset}], types:\n" +
		"[{type, tensors, params, bytes, bits_per_weight}], total: {tensors, params, bytes,\n" +
		"bits_per_weight}, file_type (null when absent), file_type_name}, where an array's\n" +
		"value is its first 8 elements (absent for an array of arrays) and a float JSON cannot\n" +
		"hold is a string (\"NaN\", \"+Inf\", \"-Inf\"). For .npy: {format: \"npy\", path, version,\n" +
		"dtype (as the file gives it: \"<f4\"), type (numpy's name: \"float32\"), shape: [INT],\n" +
		"elements, bytes, data_offset}. Sizes are tensor data in bytes, without file headers.",
	Flags:  []cli.Flag{jsonFlag, jsonOutFlag},
	Action: runInspect,
}

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("inspect: give one PATH: a .safetensors, GGUF or .npy file, or a checkpoint directory")
	}
	if err := checkJSONOut(c); err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	rep, err := inspect.Path(c.Args().First())
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if err := report(c, rep, rep.WriteText); err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	return nil
}
