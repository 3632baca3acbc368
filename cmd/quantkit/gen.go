package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/progress"
	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/synth"
)

var (
	genLikeFlag   = &cli.StringFlag{Name: "like", Value: "llama", Usage: "architecture to imitate: llama (the only one so far)"}
	genParamsFlag = &cli.StringFlag{Name: "params", Value: "1B", Usage: "parameter budget, with an optional suffix K, M or B (1e3, 1e6, 1e9): 10M, 1.5B"}
	genDTypeFlag  = &cli.StringFlag{Name: "dtype", Value: "f32", Usage: "element type: f32, f16 or bf16"}
	genShardFlag  = &cli.StringFlag{Name: "shard-size", Value: "5GB", Usage: "split into shards of at most `SIZE` of tensor data (5GB, 500MB, 2GiB) with model.safetensors.index.json, as Hugging Face does; one model.safetensors when it all fits"}
	genSeedFlag   = &cli.Uint64Flag{Name: "seed", Usage: "seed of the weights: the same seed and shape give the same bytes"}
	genOutFlag    = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the checkpoint to `DIR`", Required: true}
	genForceFlag  = &cli.BoolFlag{Name: "force", Usage: "replace DIR if it exists (an empty DIR needs no --force)"}
)

var genCommand = &cli.Command{
	Name:  "gen",
	Usage: "generate a synthetic Llama-like checkpoint for tests and benchmarks",
	Description: "Writes a Hugging Face LlamaForCausalLM checkpoint (safetensors and config.json)\n" +
		"of about --params parameters, with the widths of a real Llama-family model for that\n" +
		"size (see `go doc github.com/quantkit/quantkit/model/synth` for the table) and\n" +
		"weights with the heavy tails and outlier channels of trained models: Student-t\n" +
		"(ν = 6) scaled to 1/√fan-in, a few input channels ×5–20, RMSNorm weights 1 ± 0.05.\n" +
		"The data streams to disk block by block, so memory stays small whatever the size.\n" +
		"Sizes are decimal (5GB = 5·10⁹ bytes, as Hugging Face's max_shard_size) unless\n" +
		"written KiB, MiB, GiB, TiB.\n" +
		"\n" +
		"DIR is written as quantize writes its output: the space it needs is checked first, the\n" +
		"files go into a temporary directory beside DIR, which becomes DIR only when complete; an\n" +
		"existing DIR is refused unless --force (or empty), and Ctrl-C or SIGTERM leave nothing.",
	Flags:  []cli.Flag{genLikeFlag, genParamsFlag, genDTypeFlag, genShardFlag, genSeedFlag, genOutFlag, genForceFlag, jsonFlag, jsonOutFlag},
	Action: runGen,
}

func runGen(c *cli.Context) error {
	opt, err := parseGenFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("gen: %w", err))
	}
	var bar *progress.Bar // nil draws nothing
	if !c.Bool(jsonFlag.Name) {
		bar = progress.Start(opt.Config.Bytes(), progress.Bytes)
	}
	opt.Progress = func(written, _ int64) {
		bar.Update(written, "")
		afterWrite(opt.Output)
	}
	rep, err := quantize.Generate(c.Context, *opt)
	bar.Finish()
	if err == nil {
		err = report(c, rep, rep.WriteTable)
	}
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	return nil
}

func parseGenFlags(c *cli.Context) (*quantize.GenerateOptions, error) {
	if c.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (the output directory goes after -o)", c.Args().Slice())
	}
	if like := c.String(genLikeFlag.Name); !strings.EqualFold(like, "llama") {
		return nil, fmt.Errorf("--like %q: only llama is supported", like)
	}
	params, err := units.ParseCount(c.String(genParamsFlag.Name))
	if err != nil {
		return nil, fmt.Errorf("--params: %w", err)
	}
	if params < synth.MinParams {
		return nil, fmt.Errorf("--params %s: the smallest checkpoint gen writes has %d parameters", c.String(genParamsFlag.Name), synth.MinParams)
	}
	if err := checkJSONOut(c); err != nil {
		return nil, err
	}
	opt := &quantize.GenerateOptions{Output: c.String(genOutFlag.Name), Config: synth.LlamaLike(params), Force: c.Bool(genForceFlag.Name), Log: c.App.ErrWriter}
	opt.Config.DType = strings.ToUpper(c.String(genDTypeFlag.Name))
	opt.Config.Seed = c.Uint64(genSeedFlag.Name)
	if err := opt.Config.Validate(); err != nil {
		return nil, fmt.Errorf("--dtype: %w", err)
	}
	if opt.ShardSize, err = parseShardSize(c, genShardFlag); err != nil {
		return nil, err
	}
	return opt, nil
}
