package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/job/lmbench"
)

// A child process of `bench lm` (lmbench.Run re-executes this program to
// measure one precision) does its measurement and exits here, in package
// main's init: after every package's, so every backend has registered.
func init() {
	if lmbench.IsChild() {
		os.Exit(lmbench.ChildMain())
	}
}

var (
	benchLMPrecisionsFlag = &cli.StringFlag{Name: "precisions", Usage: "comma-separated precisions of a float model, of " +
		strings.Join(lmbench.Precisions, ",") + "; default all (a quantized MODEL runs as it is, or as those of these it holds)"}
	benchLMHeadFlag      = &cli.BoolFlag{Name: "quantize-head", Usage: "at w8a16, w4a16 and w8a8 quantize the lm_head (the embedding when tied) too with the precision's scheme, and in an already quantized checkpoint its float lm_head as int8 per channel, as llama.cpp's Q8_0 and Q4_0 files hold it (Q8_0, Q6_K); without it the head stays float32, as llm-compressor leaves it"}
	benchLMGroupFlag     = &cli.IntFlag{Name: "group-size", Value: lmbench.DefaultGroupSize, Usage: "w4a16's group: int4 values sharing a scale"}
	benchLMPromptFlag    = &cli.IntFlag{Name: "prompt-len", Value: 512, Usage: "tokens of the synthetic prompt (prefill, time to first token)"}
	benchLMGenFlag       = &cli.IntFlag{Name: "gen", Value: 128, Usage: "tokens decoded after the prompt"}
	benchLMBatchFlag     = &cli.IntFlag{Name: "batch", Value: 1, Usage: "also decode this many sequences together (1: batch 1 only)"}
	benchLMRoundsFlag    = &cli.IntFlag{Name: "rounds", Value: 3, Usage: "rounds, every precision once in each (order rotated); medians and spread are reported"}
	benchLMSeedFlag      = &cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the synthetic prompt's token ids"}
	benchLMThreadsFlag   = &cli.IntFlag{Name: "threads", Usage: "CPU threads (the kernels' and GOMAXPROCS); 0: every core"}
	benchLMDeviceFlag    = &cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, gpu or gpu:N (a GPU runs what its backend has the operations for)"}
	benchLMInProcessFlag = &cli.BoolFlag{Name: "in-process", Usage: "measure every precision in this process instead of a child process each (peak RSS then through /proc/self/clear_refs)"}
)

var benchLMCommand = &cli.Command{
	Name:      "lm",
	Usage:     "a language model at FP32, BF16, INT8 and INT4 on one device: tokens per second, time to first token, memory, joules per token",
	ArgsUsage: "MODEL...",
	Description: "MODEL is a Hugging Face folder, a .gguf file or a llama2.c .bin checkpoint; several go in one table.\n" +
		"A float Hugging Face model runs at each --precisions, loaded from the same files: fp32 (every\n" +
		"weight float32), bf16 (rounded to bfloat16, matrices kept in 16 bits), w8a16 and w4a16 (the\n" +
		"projections quantized at load, round-to-nearest with min-max scales: int8 per channel, int4\n" +
		"symmetric in groups of --group-size; activations float32), w8a8 (int8 per-channel weights,\n" +
		"activations quantized to int8 per token, integer GEMMs). Embedding and lm_head stay float32\n" +
		"except in bf16. A quantized MODEL (compressed-tensors or quantkit safetensors, GGUF) runs as it\n" +
		"is, labelled by what it holds.\n" +
		"\n" +
		"The prompt is --prompt-len token ids drawn uniformly from the vocabulary by a PCG seeded with\n" +
		"--seed (the same for every precision and round). Measured, per precision and round:\n" +
		"  TTFT          a new sequence: a fresh KV cache, the prompt's prefill, the last position's\n" +
		"                logits and their argmax, i.e. the first generated token's id;\n" +
		"  prefill tok/s --prompt-len over the time of the prompt through the (reset) cache;\n" +
		"  decode tok/s  --gen over the time of --gen greedy steps of one token at batch 1;\n" +
		"  batch tok/s   with --batch B > 1: B sequences (own prompts and caches) decoded together,\n" +
		"                B·gen over the time of gen steps (a step is a loop over the sequences\n" +
		"                until the engine's batched step lands: the report says which);\n" +
		"  weights       bytes as the model holds them; KV cache: layers·(prompt+gen)·2·KVdim·4\n" +
		"                bytes (times B for the batch); peak RSS: see below.\n" +
		"Each precision of each round runs in a child process of this program, which loads the model,\n" +
		"warms up once (a prefill and a few decode steps) and measures: its peak RSS (wait4's\n" +
		"ru_maxrss, load included) is that precision's alone. Precisions are interleaved, their order\n" +
		"rotated each round, so that drift on the machine hits all alike; the table gives medians over\n" +
		"--rounds with ± half their range, and each speed (and J/token) over the fp32 row's (the first\n" +
		"row's when there is no fp32).\n" +
		"\n" +
		"With --energy, after the timed runs each child measures the prefill (the prompt through the\n" +
		"reset cache) and the decode (--gen steps after the prompt) again, each repeated over at least\n" +
		"--min-window between two readings of the device's energy counter (RAPL on the CPU, NVML on\n" +
		"a GPU; sampled power integrated where there is no counter, and said so), the rules of\n" +
		"`bench --energy`; the idle power is measured once for --idle before the run. J/token is the\n" +
		"window's energy over its tokens, gross and with the idle power over the window subtracted.\n" +
		"Where no counter can be read the report says why and measures the rest.",
	Flags: []cli.Flag{benchLMPrecisionsFlag, benchLMGroupFlag, benchLMHeadFlag, benchLMPromptFlag, benchLMGenFlag, benchLMBatchFlag, lmExactFlag,
		benchLMRoundsFlag, benchLMSeedFlag, benchLMThreadsFlag, benchLMDeviceFlag, benchLMInProcessFlag,
		benchEnergyFlag, benchMinWindowFlag, benchIntervalFlag, benchIdleFlag, jsonFlag, jsonOutFlag, benchCSVFlag, benchPlotFlag,
		jobNameFlag, jobLabelFlag, jobMonitorFlag, jobTextfileFlag},
	Action: runBenchLM,
}

func runBenchLM(c *cli.Context) error {
	applyExact(c)
	opt, err := parseBenchLMFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("bench lm: %w", err))
	}
	if err := checkBenchOutputs(c); err != nil {
		return fmt.Errorf("bench lm: %w", err)
	}
	sink, err := benchJobSink(c, "bench-lm")
	if err != nil {
		return fmt.Errorf("bench lm: %w", err)
	}
	var finish func()
	opt.Progress, finish = stepBar(c)
	rep, err := lmbench.Run(c.Context, *opt)
	finish()
	if err != nil {
		return fmt.Errorf("bench lm: %w", err)
	}
	if err := printReport(c, rep, rep.WriteTable); err != nil {
		return fmt.Errorf("bench lm: writing the report: %w", err)
	}
	if err := writeSideOutputs(jsonOut(c, rep),
		sideOutput{flag: benchCSVFlag.Name, path: c.String(benchCSVFlag.Name), write: rep.WriteCSV},
		sideOutput{flag: benchPlotFlag.Name, path: c.String(benchPlotFlag.Name), save: rep.Plot}); err != nil {
		return fmt.Errorf("bench lm: %w", err)
	}
	if err := sink.send(c.Context, c.App.ErrWriter, benchLMJobRuns(sink, rep)...); err != nil {
		return fmt.Errorf("bench lm: %w", err)
	}
	return nil
}

// parseBenchLMFlags turns the command line into lmbench.Options, checked.
func parseBenchLMFlags(c *cli.Context) (*lmbench.Options, error) {
	if c.NArg() == 0 {
		return nil, errors.New("no MODEL: give a Hugging Face folder, a .gguf file or a llama2.c .bin checkpoint")
	}
	opt := &lmbench.Options{Models: c.Args().Slice(), Precisions: list(c, benchLMPrecisionsFlag),
		GroupSize: c.Int(benchLMGroupFlag.Name), QuantizeHead: c.Bool(benchLMHeadFlag.Name), PromptLen: c.Int(benchLMPromptFlag.Name), Gen: c.Int(benchLMGenFlag.Name),
		Batch: c.Int(benchLMBatchFlag.Name), Rounds: c.Int(benchLMRoundsFlag.Name), Seed: c.Uint64(benchLMSeedFlag.Name),
		Threads: c.Int(benchLMThreadsFlag.Name), Device: c.String(benchLMDeviceFlag.Name), InProcess: c.Bool(benchLMInProcessFlag.Name)}
	if c.IsSet(benchLMPrecisionsFlag.Name) && opt.Precisions == nil {
		return nil, errors.New("--precisions is empty")
	}
	if c.Bool(benchEnergyFlag.Name) {
		opt.Energy = &lmbench.EnergySetup{Idle: c.Duration(benchIdleFlag.Name), Log: c.App.ErrWriter,
			Window: energy.Options{MinWindow: c.Duration(benchMinWindowFlag.Name), Interval: c.Duration(benchIntervalFlag.Name)}}
	}
	if err := opt.Check(); err != nil {
		return nil, err
	}
	return opt, nil
}
