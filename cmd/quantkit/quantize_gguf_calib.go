package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	imatrixjob "github.com/quantkit/quantkit/job/imatrix"
	"github.com/quantkit/quantkit/job/quantize"
)

// quantize --format gguf --calib FILE: the importance matrix computed on
// the fly by job/imatrix (as `quantkit imatrix` computes it), then the
// quantization with it, as --imatrix FILE does.

// ggufCalibrated reports whether c is --format gguf with calibration data
// and no --method: the importance-matrix path, not job/llmq's.
func ggufCalibrated(c *cli.Context) bool {
	return c.String(quantFormatFlag.Name) == ggufFormat && !c.IsSet(quantMethodFlag.Name)
}

// quantCalibCtxFlag and quantCalibChunksFlag cut --format gguf's --calib
// text as llama-imatrix cuts it (its --ctx-size and --chunks), the
// default; --calib-samples, --calib-len and --seed take the seeded
// windows every other calibrated path takes instead.
var (
	quantCalibCtxFlag    = &cli.IntFlag{Name: "calib-ctx", Value: imatrixjob.DefaultCtx, Usage: "with --format gguf --calib: chunk length in `TOKENS` of the importance matrix, as llama-imatrix --ctx-size"}
	quantCalibChunksFlag = &cli.IntFlag{Name: "calib-chunks", Usage: "with --format gguf --calib: use at most `N` chunks, as llama-imatrix --chunks", DefaultText: "all"}
)

// ggufCalibImatrix computes opt.Imatrix when --calib is given: on the model
// being quantized (hf, its Hugging Face folder, or the GGUF opt.Input),
// cut as llama-imatrix cuts text (chunks of --calib-ctx tokens, at most
// --calib-chunks of them), or, when any of --calib-samples, --calib-len
// or --seed is given, in the seeded windows `quantize --method gptq` and
// `imatrix --calib-samples` take. The output records the calibration file
// as quantize.imatrix.dataset.
func ggufCalibImatrix(c *cli.Context, opt *quantize.GGUFOptions, hf string) error {
	calib := c.String(quantCalibFlag.Name)
	if calib == "" {
		for _, f := range []cli.Flag{quantCalibNFlag, quantCalibTFlag, quantSeedFlag, quantCalibCtxFlag, quantCalibChunksFlag, quantActOrderFlag, quantUpdatedFlag} {
			if name := f.Names()[0]; c.IsSet(name) {
				return fmt.Errorf("--%s applies with --calib FILE (--format gguf: an importance matrix computed on it)", name)
			}
		}
		return nil
	}
	if opt.Imatrix != nil {
		return errors.New("--imatrix FILE and --calib FILE both give an importance matrix: give one")
	}
	for _, f := range []cli.Flag{quantActOrderFlag, quantUpdatedFlag} {
		if name := f.Names()[0]; c.IsSet(name) {
			return fmt.Errorf("--%s is a gptq option; --format gguf --calib computes an importance matrix", name)
		}
	}
	model := opt.Input
	if hf != "" {
		model = hf
	}
	iopt := imatrixjob.Options{Model: model, Calib: calib, Ctx: c.Int(quantCalibCtxFlag.Name), Chunks: c.Int(quantCalibChunksFlag.Name)}
	windows := c.IsSet(quantCalibNFlag.Name) || c.IsSet(quantCalibTFlag.Name) || c.IsSet(quantSeedFlag.Name)
	if windows {
		for _, f := range []cli.Flag{quantCalibCtxFlag, quantCalibChunksFlag} {
			if name := f.Names()[0]; c.IsSet(name) {
				return fmt.Errorf("--%s cuts llama-imatrix's chunks; windows (--calib-samples, --calib-len, --seed) are the other selection: give one", name)
			}
		}
		iopt.Samples, iopt.SeqLen, iopt.Seed = c.Int(quantCalibNFlag.Name), c.Int(quantCalibTFlag.Name), c.Uint64(quantSeedFlag.Name)
		if iopt.Samples <= 0 || iopt.SeqLen <= 0 {
			return fmt.Errorf("--calib-samples %d, --calib-len %d: both must be positive", iopt.Samples, iopt.SeqLen)
		}
	} else if iopt.Ctx <= 0 || iopt.Chunks < 0 {
		return fmt.Errorf("--calib-ctx %d, --calib-chunks %d: the chunk length must be positive and the count not negative", iopt.Ctx, iopt.Chunks)
	}
	update, finish := stepBar(c)
	iopt.Progress = func(l, n int) { update(l, n, "importance matrix: layers") }
	f, rep, err := imatrixjob.Run(c.Context, iopt)
	finish()
	if err != nil {
		return err
	}
	opt.Imatrix = f
	if opt.Log != nil {
		fmt.Fprintf(opt.Log, "quantkit: importance matrix of %s on %s: %d entries, %d chunks of %d tokens (%.2f s)\n",
			model, calib, rep.Entries, rep.Chunks, rep.ChunkSize, rep.Seconds)
	}
	return nil
}
