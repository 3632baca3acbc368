package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	imatrixjob "github.com/quantkit/quantkit/job/imatrix"
	"github.com/quantkit/quantkit/job/llmq"
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

// ggufCalibImatrix computes opt.Imatrix when --calib is given: on the model
// being quantized (hf, its Hugging Face folder, or the GGUF opt.Input),
// cut as llama-imatrix cuts text: chunks of --calib-len tokens (default
// 512, llama-imatrix's), at most --calib-samples of them when given (else
// all). The output records the calibration file as quantize.imatrix.dataset.
func ggufCalibImatrix(c *cli.Context, opt *quantize.GGUFOptions, hf string) error {
	calib := c.String(quantCalibFlag.Name)
	if calib == "" {
		for _, f := range []cli.Flag{quantCalibNFlag, quantCalibTFlag, quantSeedFlag, quantActOrderFlag, quantUpdatedFlag} {
			if name := f.Names()[0]; c.IsSet(name) {
				return fmt.Errorf("--%s applies with --calib FILE (--format gguf: an importance matrix computed on it)", name)
			}
		}
		return nil
	}
	if opt.Imatrix != nil {
		return errors.New("--imatrix FILE and --calib FILE both give an importance matrix: give one")
	}
	for _, f := range []cli.Flag{quantSeedFlag, quantActOrderFlag, quantUpdatedFlag} {
		if name := f.Names()[0]; c.IsSet(name) {
			return fmt.Errorf("--%s does not apply to --format gguf --calib, whose text is cut in consecutive chunks as llama-imatrix cuts it", name)
		}
	}
	model := opt.Input
	if hf != "" {
		model = hf
	}
	ctx := llmq.DefaultSeqLen
	if c.IsSet(quantCalibTFlag.Name) {
		ctx = c.Int(quantCalibTFlag.Name)
	}
	chunks := 0
	if c.IsSet(quantCalibNFlag.Name) {
		if chunks = c.Int(quantCalibNFlag.Name); chunks <= 0 {
			return fmt.Errorf("--calib-samples %d: must be positive", chunks)
		}
	}
	if ctx <= 0 {
		return fmt.Errorf("--calib-len %d: must be positive", ctx)
	}
	update, finish := stepBar(c)
	f, rep, err := imatrixjob.Run(c.Context, imatrixjob.Options{Model: model, Calib: calib, Ctx: ctx, Chunks: chunks,
		Progress: func(l, n int) { update(l, n, "importance matrix: layers") }})
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
