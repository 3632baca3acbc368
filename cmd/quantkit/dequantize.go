package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/job/quantize"
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
		"copied. OUT is written atomically, as quantize writes it. It runs on the CPU, as quantize.\n" +
		"--json prints, instead of the line for people, and --json-out FILE writes {input, output,\n" +
		"device, tensors, dequantized: {DTYPE: count}, copied, bytes_out, seconds}.",
	Flags: []cli.Flag{dequantOutFlag, dequantDTypeFlag, dequantForceFlag, quantSizeFlag, ckptWorkFlag, ckptDeviceFlag,
		jsonFlag, jsonOutFlag},
	Action: runDequantize,
}

func runDequantize(c *cli.Context) error {
	opt, err := parseDequantizeFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("dequantize: %w", err))
	}
	var done func()
	opt.Progress, done = tensorProgress()
	rep, err := quantize.Dequantize(c.Context, *opt)
	done()
	if err == nil {
		err = report(c, rep, rep.WriteTable)
	}
	if err != nil {
		return fmt.Errorf("dequantize: %w", err)
	}
	return nil
}

func parseDequantizeFlags(c *cli.Context) (*quantize.DequantizeOptions, error) {
	args := c.Args().Slice()
	if len(args) != 1 || c.String(dequantOutFlag.Name) == "" {
		return nil, errors.New("give one input checkpoint and the output: dequantize IN -o OUT")
	}
	if err := checkCPUDevice(c); err != nil {
		return nil, err
	}
	if err := checkJSONOut(c); err != nil {
		return nil, err
	}
	opt := &quantize.DequantizeOptions{Input: args[0], Output: c.String(dequantOutFlag.Name), Workers: c.Int(ckptWorkFlag.Name),
		Force: c.Bool(dequantForceFlag.Name), Log: c.App.ErrWriter}
	if dt := strings.ToUpper(c.String(dequantDTypeFlag.Name)); dt != "AUTO" {
		if !slices.Contains(quantize.FloatDTypes, dt) {
			return nil, fmt.Errorf("--dtype %s: not auto, f32, f16 or bf16", c.String(dequantDTypeFlag.Name))
		}
		opt.DType = dt
	}
	if opt.Workers < 0 {
		return nil, errors.New("--workers must be positive")
	}
	var err error
	if opt.ShardSize, err = parseShardSize(c, quantSizeFlag); err != nil {
		return nil, err
	}
	return opt, nil
}
