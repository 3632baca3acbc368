package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	imatrixjob "github.com/quantkit/quantkit/job/imatrix"
	"github.com/quantkit/quantkit/job/llmq"
)

// quantkit imatrix: llama.cpp importance matrices computed by the engine
// (job/imatrix).

var (
	imxCalibFlag   = &cli.StringFlag{Name: "calib", Aliases: []string{"f"}, Required: true, Usage: "calibration text `FILE` (plain text for llama-imatrix's chunks; JSONL or .npy ids with --calib-samples)"}
	imxCtxFlag     = &cli.IntFlag{Name: "ctx", Aliases: []string{"c"}, Value: imatrixjob.DefaultCtx, Usage: "chunk length in tokens, as llama-imatrix --ctx-size"}
	imxChunksFlag  = &cli.IntFlag{Name: "chunks", Value: -1, Usage: "use at most `N` chunks, as llama-imatrix --chunks (-1: all)"}
	imxSkipFlag    = &cli.IntFlag{Name: "chunk", Usage: "skip the first `N` chunks, as llama-imatrix --chunk"}
	imxSamplesFlag = &cli.IntFlag{Name: "calib-samples", Usage: "instead of chunks, `N` windows at seeded random offsets (quantize --method gptq's calibration set)"}
	imxLenFlag     = &cli.IntFlag{Name: "calib-len", Value: llmq.DefaultSeqLen, Usage: "tokens a window (with --calib-samples)"}
	imxSeedFlag    = &cli.Uint64Flag{Name: "seed", Usage: "seed of the windows (with --calib-samples)"}
	imxOutputFlag  = &cli.BoolFlag{Name: "process-output", Usage: "also collect output.weight (a model with an lm_head of its own), as llama-imatrix --process-output"}
	imxOutFlag     = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "the importance matrix `FILE` to write (.gguf, or .dat for the legacy format)"}
	imxFormatFlag  = &cli.StringFlag{Name: "format", Usage: "gguf (llama-imatrix's default) or dat (its --output-format dat)", DefaultText: "dat for a .dat FILE, else gguf"}
	imxForceFlag   = &cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists"}
)

var imatrixCommand = &cli.Command{
	Name:      "imatrix",
	Usage:     "compute llama.cpp's importance matrix of a model on calibration text, as llama-imatrix does",
	ArgsUsage: "MODEL --calib FILE -o imatrix.gguf",
	Description: "MODEL is what `quantkit lm` runs: a Hugging Face folder, a .gguf file or a llama2.c .bin\n" +
		"(with --tokenizer). The model runs layer by layer over the calibration text and, for\n" +
		"every projection of every layer, the sum of x² of its input per column and the tokens\n" +
		"counted are written under llama.cpp's names (blk.N.attn_q.weight, ...) in llama-imatrix's\n" +
		"format, for `quantkit quantize --format gguf --imatrix FILE` or llama-quantize --imatrix.\n\n" +
		"The text is cut as llama-imatrix cuts it, so the same text gives the same statistics\n" +
		"(checked against llama.cpp's own llama-imatrix to float32 rounding): the whole file,\n" +
		"tokenized with BOS, in consecutive chunks of --ctx tokens (the partial last one\n" +
		"dropped), each starting with BOS, every token collected; at least 2 chunks.\n" +
		"--calib-samples N takes N windows of --calib-len tokens at seeded random offsets instead\n" +
		"(quantize --method gptq's calibration set; JSONL and .npy ids too).",
	Flags: []cli.Flag{imxCalibFlag, imxCtxFlag, imxChunksFlag, imxSkipFlag, imxSamplesFlag, imxLenFlag, imxSeedFlag, imxOutputFlag,
		imxOutFlag, imxFormatFlag, imxForceFlag, lmTokenizerFlag, deviceFlag, jsonFlag, jsonOutFlag},
	Action: runImatrix,
}

func runImatrix(c *cli.Context) error {
	fail := func(err error) error { return badInput(fmt.Errorf("imatrix: %w", err)) }
	if c.NArg() != 1 {
		return fail(errors.New("give one MODEL: imatrix MODEL --calib FILE -o imatrix.gguf"))
	}
	if err := checkJSONOut(c); err != nil {
		return fail(err)
	}
	out := c.String(imxOutFlag.Name)
	format := c.String(imxFormatFlag.Name)
	if format == "" {
		format = "gguf"
		if strings.EqualFold(filepath.Ext(out), ".dat") {
			format = "dat"
		}
	}
	if format != "gguf" && format != "dat" {
		return fail(fmt.Errorf("--format %s: want gguf or dat", format))
	}
	if err := checkOutputFile(imxOutFlag.Name, out, false); err != nil {
		return err
	}
	if _, err := os.Stat(out); err == nil && !c.Bool(imxForceFlag.Name) {
		return fail(fmt.Errorf("%s exists: give --force to replace it", out))
	}
	opt := imatrixjob.Options{Model: c.Args().First(), Calib: c.String(imxCalibFlag.Name), Ctx: c.Int(imxCtxFlag.Name),
		Chunks: max(0, c.Int(imxChunksFlag.Name))}
	if opt.Ctx <= 0 {
		return fail(fmt.Errorf("--ctx %d: must be positive", opt.Ctx))
	}
	if c.IsSet(imxSamplesFlag.Name) || c.IsSet(imxLenFlag.Name) || c.IsSet(imxSeedFlag.Name) {
		for _, f := range []cli.Flag{imxCtxFlag, imxChunksFlag, imxSkipFlag} {
			if c.IsSet(f.Names()[0]) {
				return fail(fmt.Errorf("--%s cuts llama-imatrix's chunks; windows (--calib-samples, --calib-len, --seed) are the other selection", f.Names()[0]))
			}
		}
		opt.Samples, opt.SeqLen, opt.Seed = c.Int(imxSamplesFlag.Name), c.Int(imxLenFlag.Name), c.Uint64(imxSeedFlag.Name)
		if opt.Samples <= 0 || opt.SeqLen <= 0 {
			return fail(errors.New("windows need --calib-samples N and --calib-len T, both positive"))
		}
	}
	opt.Skip, opt.ProcessOutput = c.Int(imxSkipFlag.Name), c.Bool(imxOutputFlag.Name)
	opt.Tokenizer = c.String(lmTokenizerFlag.Name)
	return onDevice(c, func(b backend.Backend) error {
		opt.Backend = b
		update, finish := stepBar(c)
		opt.Progress = func(l, n int) { update(l, n, "layers") }
		f, rep, err := imatrixjob.Run(c.Context, opt)
		finish()
		if err != nil {
			return fmt.Errorf("imatrix: %w", err)
		}
		if err := imatrixjob.Write(out, format, f); err != nil {
			return err
		}
		rep.Output = out
		return report(c, rep, rep.WriteTable)
	})
}
