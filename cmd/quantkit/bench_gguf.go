package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/buildinfo"
	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/job/quantize"
)

var (
	benchGGUFInputFlag   = &cli.StringFlag{Name: "input", Usage: "F32, F16 or BF16 `FILE`.gguf to quantize; default: an F32 one of --params, generated into --workdir (gen, then quantize --type F32) and removed after"}
	benchGGUFParamsFlag  = &cli.StringFlag{Name: "params", Value: "300M", Usage: "size of the generated input (300M: 1.2 GB of F32)"}
	benchGGUFTypesFlag   = &cli.StringFlag{Name: "types", Value: "Q4_K_M,Q8_0", Usage: "comma-separated llama-quantize types, a row each"}
	benchGGUFPureFlag    = &cli.BoolFlag{Name: "pure", Usage: "llama-quantize's --pure, for both tools"}
	benchGGUFThreadsFlag = &cli.IntFlag{Name: "threads", Value: 2, Usage: "llama_model_quantize's nthread, and quantkit's --workers and GOMAXPROCS"}
	benchGGUFRoundsFlag  = &cli.IntFlag{Name: "rounds", Value: 3, Usage: "interleaved rounds (both tools, every type); medians are reported"}
	benchGGUFWorkdirFlag = &cli.StringFlag{Name: "workdir", Usage: "`DIR` for the outputs (and the generated input): on the disk you mean to measure; default the system's temporary directory"}
	benchGGUFLlamaFlag   = &cli.StringFlag{Name: "llama-quantize", EnvVars: []string{"QUANTKIT_LLAMACPP_QUANTIZE"},
		Usage: "the llama_model_quantize harness `FILE` (scripts/integration/quantize.c; make integration builds it)"}
	benchGGUFLibFlag = &cli.StringFlag{Name: "llama-lib", Usage: "libllama `FILE` for the harness (its --lib); default: the one in $QUANTKIT_LLAMACPP_LIB_DIR"}
)

var benchGGUFCommand = &cli.Command{
	Name:  "gguf",
	Usage: "GGUF → GGUF quantization: quantkit against llama.cpp's llama_model_quantize, in the same run",
	Description: "Quantizes one F32/F16/BF16 GGUF to each --types with `quantkit quantize --format gguf`\n" +
		"and with llama.cpp's own llama_model_quantize (what llama-quantize calls), each run a\n" +
		"process of its own with --threads threads (quantkit: --workers and GOMAXPROCS), for\n" +
		"--rounds interleaved rounds (which tool goes first alternates); the input is read once\n" +
		"before, so every run finds it in the page cache. Per type and tool: the median wall\n" +
		"time of the process and every round's, the same with an fsync of the output after\n" +
		"the process exits (quantkit syncs before its rename, llama-quantize does not), MB/s of\n" +
		"input, CPU seconds, peak RSS (wait4's ru_maxrss of the process) and the output's size;\n" +
		"then quantkit's time and peak RSS over llama.cpp's, and whether the two outputs are\n" +
		"the same bytes (in every round). The load average before and after is reported, as\n" +
		"other work on the machine skews the times.\n" +
		"\n" +
		"The harness (--llama-quantize, or $QUANTKIT_LLAMACPP_QUANTIZE) is quantkit's\n" +
		"scripts/integration/quantize.c built against llama.cpp's prebuilt library from\n" +
		"node-llama-cpp@3.21.1: `make integration` builds it, or in a clone\n" +
		"`eval \"$(scripts/integration/setup-llamacpp.sh)\"` (cached in ~/.cache/quantkit; it also\n" +
		"exports QUANTKIT_LLAMACPP_LIB_DIR, where the harness finds libllama).",
	Flags: []cli.Flag{benchGGUFInputFlag, benchGGUFParamsFlag, benchGGUFTypesFlag, benchGGUFPureFlag, benchGGUFThreadsFlag,
		benchGGUFRoundsFlag, benchGGUFWorkdirFlag, benchGGUFLlamaFlag, benchGGUFLibFlag, jsonFlag, jsonOutFlag},
	Action: runBenchGGUF,
}

func runBenchGGUF(c *cli.Context) error {
	opt, err := parseBenchGGUFFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("bench gguf: %w", err))
	}
	var finish func()
	opt.Progress, finish = stepBar(c)
	rep, err := quantize.BenchGGUF(c.Context, *opt)
	finish()
	if err == nil {
		err = report(c, rep, rep.WriteTable)
	}
	if err != nil {
		return fmt.Errorf("bench gguf: %w", err)
	}
	return nil
}

func parseBenchGGUFFlags(c *cli.Context) (*quantize.BenchGGUFOptions, error) {
	if c.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (the input goes after --input)", c.Args().Slice())
	}
	if err := checkJSONOut(c); err != nil {
		return nil, err
	}
	opt := &quantize.BenchGGUFOptions{Input: c.String(benchGGUFInputFlag.Name), Types: list(c, benchGGUFTypesFlag),
		Pure: c.Bool(benchGGUFPureFlag.Name), Threads: c.Int(benchGGUFThreadsFlag.Name), Rounds: c.Int(benchGGUFRoundsFlag.Name),
		Workdir: c.String(benchGGUFWorkdirFlag.Name), QuantkitVersion: buildinfo.String(version),
		LlamaQuantize: c.String(benchGGUFLlamaFlag.Name), LlamaLib: c.String(benchGGUFLibFlag.Name),
		LlamaVersion: os.Getenv("QUANTKIT_LLAMACPP_VERSION")}
	if opt.LlamaQuantize == "" {
		return nil, errors.New("no llama-quantize harness: give --llama-quantize FILE or set QUANTKIT_LLAMACPP_QUANTIZE; " +
			quantize.LlamaQuantizeHint)
	}
	if opt.Threads < 1 {
		return nil, errors.New("--threads must be at least 1")
	}
	if opt.Rounds < 1 {
		return nil, errors.New("--rounds must be at least 1")
	}
	if len(opt.Types) == 0 {
		return nil, errors.New("--types is empty")
	}
	if opt.Input == "" {
		n, err := units.ParseCount(c.String(benchGGUFParamsFlag.Name))
		if err != nil {
			return nil, fmt.Errorf("--params: %w", err)
		}
		opt.Params = n
	} else if c.IsSet(benchGGUFParamsFlag.Name) {
		return nil, errors.New("--params is for the generated input: drop it or --input")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding quantkit's own executable, to run it: %w", err)
	}
	opt.Quantkit = []string{exe}
	return opt, nil
}
