package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

var (
	benchCkInputFlag   = &cli.StringFlag{Name: "input", Usage: "checkpoint `DIR` to quantize; default: a synthetic Llama-like one of --params, generated into --workdir and removed after"}
	benchCkParamsFlag  = &cli.StringFlag{Name: "params", Value: "550M", Usage: "size of the synthetic checkpoint (550M: 2.2 GB of F32)"}
	benchCkSchemesFlag = &cli.StringFlag{Name: "schemes", Value: "int8,int4", Usage: "comma-separated schemes, each with quantize's default granularity (int8: per channel, int4: groups of 128); not for the gguf formats"}
	benchCkFormatFlag  = &cli.StringFlag{Name: "format", Value: string(plan.CompressedTensors), Usage: "output format, as quantize --format"}
	benchCkRoundsFlag  = &cli.IntFlag{Name: "rounds", Value: 3, Usage: "interleaved rounds (baseline, then quantize, for each scheme); medians are reported"}
	benchCkWorkdirFlag = &cli.StringFlag{Name: "workdir", Usage: "`DIR` for the outputs (and the synthetic input): on the disk you mean to measure; default the system's temporary directory"}
	benchCkColdFlag    = &cli.BoolFlag{Name: "cold", Usage: "evict the input's files from the page cache (posix_fadvise DONTNEED) before each phase, so that the baseline and quantize both read it from the disk (Linux)"}
)

var benchCheckpointCommand = &cli.Command{
	Name:  "checkpoint",
	Usage: "quantize a checkpoint against just reading it and writing output-sized bytes, in the same run",
	Description: "Each round runs, for every scheme, first the baseline and then `quantize` on the same\n" +
		"input and disk. The baseline reads every input file and, at the same time, writes as\n" +
		"many bytes as that scheme's output and syncs them: the least any quantizer must do.\n" +
		"quantize is the command's own code path (plan, parallel workers, ordered writer,\n" +
		"temporary directory renamed on success), timed from opening the input to the rename.\n" +
		"Peak RSS is measured for each phase alone (VmHWM reset through /proc/self/clear_refs,\n" +
		"else sampled) and compared with the largest tensor, which bounds what streaming can do.\n" +
		"It runs on the CPU, as quantize.",
	Flags: []cli.Flag{benchCkInputFlag, benchCkParamsFlag, benchCkSchemesFlag, benchCkFormatFlag, benchCkRoundsFlag, ckptMemFlag, benchCkColdFlag,
		benchCkWorkdirFlag, ckptWorkFlag, ckptDeviceFlag, jsonFlag, jsonOutFlag},
	Action: runBenchCheckpoint,
}

func runBenchCheckpoint(c *cli.Context) error {
	opt, err := parseBenchCheckpointFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("bench checkpoint: %w", err))
	}
	var finish func()
	opt.Progress, finish = stepBar(c)
	opt.Tensor = func(p quantize.Progress) { afterWrite(p.Output) }
	rep, err := quantize.Bench(c.Context, *opt)
	finish()
	if err == nil {
		err = report(c, rep, rep.WriteTable)
	}
	if err != nil {
		return fmt.Errorf("bench checkpoint: %w", err)
	}
	return nil
}

func parseBenchCheckpointFlags(c *cli.Context) (*quantize.BenchOptions, error) {
	if c.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (the input goes after --input)", c.Args().Slice())
	}
	if err := checkCPUDevice(c); err != nil {
		return nil, err
	}
	if err := checkJSONOut(c); err != nil {
		return nil, err
	}
	opt := &quantize.BenchOptions{Input: c.String(benchCkInputFlag.Name), Format: plan.Format(c.String(benchCkFormatFlag.Name)),
		Rounds: c.Int(benchCkRoundsFlag.Name), Workdir: c.String(benchCkWorkdirFlag.Name), Workers: c.Int(ckptWorkFlag.Name)}
	if opt.Rounds < 1 {
		return nil, errors.New("--rounds must be at least 1")
	}
	if opt.Workers < 0 {
		return nil, errors.New("--workers must be positive")
	}
	opt.Cold = c.Bool(benchCkColdFlag.Name)
	var err error
	if opt.MaxMemory, err = parseMaxMemory(c); err != nil {
		return nil, err
	}
	if plan.IsGGUF(opt.Format) {
		if c.IsSet(benchCkSchemesFlag.Name) {
			return nil, fmt.Errorf("--schemes does not apply to --format %s, which quantizes in blocks of 32 with a scale each", opt.Format)
		}
		opt.Schemes = []quant.Scheme{quant.Int8PerChannel} // unused by the format: one row
	} else {
		for _, name := range strings.Split(c.String(benchCkSchemesFlag.Name), ",") {
			s, err := parseScheme(strings.TrimSpace(name), "", false)
			if err != nil {
				return nil, fmt.Errorf("--schemes: %w", err)
			}
			opt.Schemes = append(opt.Schemes, s)
		}
	}
	if opt.Input == "" {
		n, err := units.ParseCount(c.String(benchCkParamsFlag.Name))
		if err != nil {
			return nil, fmt.Errorf("--params: %w", err)
		}
		opt.Params = n
	}
	return opt, nil
}
