package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/job/quantize"
)

var (
	mergeOutFlag   = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the merged checkpoint to directory `OUT` (a .gguf file for the parts of quantize --format gguf --shard)"}
	mergeForceFlag = &cli.BoolFlag{Name: "force", Usage: "replace OUT if it exists"}
	mergeSizeFlag  = &cli.StringFlag{Name: "shard-size", Usage: "output shards of at most `SIZE` of tensor data (5GB, 500MB, 2GiB)", DefaultText: "the parts' --shard-size"}
)

var mergeCommand = &cli.Command{
	Name:      "merge",
	Usage:     "join the parts of `quantize --shard I/N` runs into one checkpoint or GGUF file",
	ArgsUsage: "PART... -o OUT",
	Description: "Each PART is a part directory (OUT/part-I-of-N of a quantize --shard run) or a parts\n" +
		"directory holding them. All N parts of the same plan (the same input, flags and quantkit:\n" +
		"part.json's plan_hash) must be there, once each, each file as part.json records it (size and\n" +
		"SHA-256): merge checks every part before it writes, and names each part that is missing, of\n" +
		"another plan, or changed since quantize wrote it, with the --shard to run again. The tensors\n" +
		"are written in the order one unsharded run writes them, with the same shard size (the\n" +
		"parts' --shard-size unless --shard-size is given), config.json and side files, so the\n" +
		"result equals that run's output byte for byte. OUT is written atomically.\n" +
		"Parts of quantize --format gguf --shard (part.gguf beside part.json) are joined into the one\n" +
		".gguf file OUT that the same quantize without --shard writes, byte for byte: the metadata,\n" +
		"the tensors in its order, each from the part part.json gives it (--shard-size is refused).\n" +
		"--json prints, instead of the line for people, and --json-out FILE writes {output,\n" +
		"plan_hash, format, parts: [DIR], tensors, bytes, shard_size, seconds}.",
	Flags:  []cli.Flag{mergeOutFlag, mergeForceFlag, mergeSizeFlag, ckptDeviceFlag, jsonFlag, jsonOutFlag},
	Action: runMerge,
}

func runMerge(c *cli.Context) error {
	opt, err := parseMergeFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("merge: %w", err))
	}
	var done func()
	opt.Progress, done = tensorProgress()
	rep, err := quantize.Merge(c.Context, *opt)
	done()
	if err == nil {
		err = report(c, rep, rep.WriteTable)
	}
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	return nil
}

func parseMergeFlags(c *cli.Context) (*quantize.MergeOptions, error) {
	args := c.Args().Slice()
	if len(args) == 0 || c.String(mergeOutFlag.Name) == "" {
		return nil, errors.New("give the part directories and the output: merge PART... -o OUT")
	}
	if err := checkCPUDevice(c); err != nil {
		return nil, err
	}
	if err := checkJSONOut(c); err != nil {
		return nil, err
	}
	opt := &quantize.MergeOptions{Parts: args, Output: c.String(mergeOutFlag.Name), Force: c.Bool(mergeForceFlag.Name), Log: c.App.ErrWriter}
	if c.IsSet(mergeSizeFlag.Name) {
		var err error
		if opt.ShardSize, err = parseShardSize(c, mergeSizeFlag); err != nil {
			return nil, err
		}
	}
	return opt, nil
}
