package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/bench/gpucheck"
	"github.com/quantkit/quantkit/internal/atomicfile"
)

var (
	gpuSumTestsFlag  = &cli.StringFlag{Name: "tests", Usage: "the gpu test binary's verbose output (`FILE`, from gpu.test -test.v)"}
	gpuSumExitFlag   = &cli.IntFlag{Name: "tests-exit", Usage: "the gpu test binary's exit code"}
	gpuSumReportFlag = &cli.StringFlag{Name: "report", Usage: "the JSON report of `bench all --device gpu` (--json-out FILE)"}
	gpuSumPeersFlag  = &cli.StringFlag{Name: "peers", Usage: "optional: the JSON scripts/gpu/gpu_check.py wrote (PyTorch's figures), kept as it is"}
	gpuSumOutFlag    = &cli.StringFlag{Name: "out", Required: true, Usage: "write the summary to `FILE`.json"}
)

var benchGPUSummaryCommand = &cli.Command{
	Name:  "gpu-summary",
	Usage: "the GPU check's one JSON summary and short table, from the gpu tests' log and the bench report",
	Description: "The last step of build/gpu-check/run.sh (make gpu-check; see README, \"The GPU check\").\n" +
		"It reads the files the check wrote and needs no GPU. A file that is missing is a note,\n" +
		"not an error. It prints the table, writes --out, and exits 1 when the check is not OK.\n\n" +
		"The summary (schema \"quantkit-gpu-check/1\"):\n" +
		"  schema, date, device;\n" +
		"  ok: the tests passed and every cuBLAS/cuBLASLt result agreed with quantkit's;\n" +
		"  tests: exit_code, passed, failed, skipped, failures [names],\n" +
		"         results [{name, status (pass|fail|skip), seconds}];\n" +
		"  gemm [{impl (quantkit|cublas|cublaslt), precision (fp32|tf32|bf16|fp16|int8), m, n, k,\n" +
		"         seconds, tops (10¹² operations/s, a multiply-add two), vs_vendor (over the best\n" +
		"         vendor rate of the precision), int8_over_fp32, agreement {against, exact,\n" +
		"         mismatches, non_finite, rel_error, max_abs_error, tolerance, ok}, avg_power_w,\n" +
		"         pj_per_op, error, describe}];\n" +
		"  memory [{op (copy|absmax|histogram|quantize-int8|quantize-int4-g128|dequantize-int8),\n" +
		"           elements, seconds, gb_per_s (read + written), vs_copy, avg_power_w, pj_per_byte}];\n" +
		"  notes [missing libraries, energy not measured, …]; peers (gpu_check.py's JSON).\n" +
		"Fields not measured are left out.",
	Flags:  []cli.Flag{gpuSumTestsFlag, gpuSumExitFlag, gpuSumReportFlag, gpuSumPeersFlag, gpuSumOutFlag},
	Action: runBenchGPUSummary,
}

func runBenchGPUSummary(c *cli.Context) error {
	out := c.String(gpuSumOutFlag.Name)
	if err := checkOutputFile(gpuSumOutFlag.Name, out, false, ".json"); err != nil {
		return err
	}
	s := gpucheck.BuildFiles(gpucheck.Files{TestLog: c.String(gpuSumTestsFlag.Name), ExitCode: c.Int(gpuSumExitFlag.Name),
		Report: c.String(gpuSumReportFlag.Name), Peers: c.String(gpuSumPeersFlag.Name)})
	if err := s.WriteTable(c.App.Writer); err != nil {
		return err
	}
	if err := atomicfile.Write(out, 0o666, func(f *os.File) error { return s.WriteJSON(f) }); err != nil {
		return fmt.Errorf("bench gpu-summary: %w", err)
	}
	if !s.OK {
		return fmt.Errorf("bench gpu-summary: the GPU check is not OK (summary in %s)", out)
	}
	return nil
}
