package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/progress"
)

var (
	benchSizesFlag    = &cli.StringFlag{Name: "sizes", Value: "256,512,1024", Usage: "comma-separated GEMM sizes; each runs M = N = K"}
	benchElemsFlag    = &cli.StringFlag{Name: "elements", Value: "1048576,16777216", Usage: "comma-separated element counts for the memory-bound kernels"}
	benchDTypesFlag   = &cli.StringFlag{Name: "dtypes", Value: "fp32,int8", Usage: "comma-separated GEMM element types: fp32 (float32), int8 (int8 in, int32 out)"}
	benchBaselineFlag = &cli.BoolFlag{Name: "baseline", Value: true, Usage: "also measure gonum's Sgemm (same A·Bᵀ layout) on the CPU in the same run"}
	benchVendorFlag   = &cli.BoolFlag{Name: "vendor", Value: true, Usage: "on a GPU, also measure cuBLAS and cuBLASLt (loaded at run time: SGEMM with TF32 off and on, BF16 and FP16 with float32 accumulation, INT8 to int32) on the same operands, each checked against quantkit's result, and a device-to-device copy beside the memory-bound kernels"}
	benchMinTimeFlag  = &cli.DurationFlag{Name: "min-time", Value: bench.DefaultTiming.MinTime, Usage: "time each kernel for at least this long (after one warm-up call, and at least 3 calls), however many calls that takes"}

	benchCSVFlag  = &cli.StringFlag{Name: "csv", Usage: "also write the report as CSV to `FILE`.csv (columns: see README)"}
	benchPlotFlag = &cli.StringFlag{Name: "plot", Usage: "also draw throughput (and energy) against size to `FILE`.png or .svg"}

	benchEnergyFlag    = &cli.BoolFlag{Name: "energy", Usage: "also measure energy: each kernel repeated over a window between two readings of the device's energy counter (NVML on a GPU, RAPL on the CPU)"}
	benchMinWindowFlag = &cli.DurationFlag{Name: "min-window", Value: 2 * time.Second, Usage: "with --energy: the shortest measured window per kernel"}
	benchIntervalFlag  = &cli.DurationFlag{Name: "interval", Value: 100 * time.Millisecond, Usage: "with --energy: power sampling period, for the peak and the curve"}
	benchIdleFlag      = &cli.DurationFlag{Name: "idle", Value: 2 * time.Second, Usage: "with --energy: how long to measure idle power before the run"}
)

// benchOutputFlags are the flags every kernel bench subcommand has.
var benchOutputFlags = append([]cli.Flag{deviceFlag, benchMinTimeFlag, benchEnergyFlag, benchMinWindowFlag, benchIntervalFlag,
	benchIdleFlag, jsonFlag, jsonOutFlag, benchCSVFlag, benchPlotFlag}, jobFlags...)

func flags(fs ...[]cli.Flag) []cli.Flag {
	var all []cli.Flag
	for _, f := range fs {
		all = append(all, f...)
	}
	return all
}

var benchCommand = &cli.Command{
	Name:  "bench",
	Usage: "measure quantkit's kernels (time, throughput, energy) against baselines",
	Description: "Every kernel is timed as the median of repeated calls after a warm-up (CUDA events\n" +
		"on a GPU). With --energy each kernel then runs again for at least --min-window\n" +
		"between two readings of the device's energy counter (NVML's total energy on a\n" +
		"GPU, RAPL on the CPU; sampled power integrated where there is no counter, and\n" +
		"said so), after the idle power has been measured for --idle: the report gives\n" +
		"average and peak power, joules per call (gross and idle-subtracted), operations\n" +
		"per joule and INT8's energy per operation over FP32's.",
	Subcommands: []*cli.Command{{
		Name:  "gemm",
		Usage: "FP32 and INT8 GEMM, C = A·Bᵀ with M = N = K, against gonum's Sgemm",
		Description: "For each size: the median time of one GEMM, GFLOP/s (FP32) or GOP/s (INT8, a\n" +
			"multiply-add counting as two operations), INT8's speed-up over FP32, and each\n" +
			"rate over gonum's Sgemm measured in the same run. INT8 takes int8 A and B and\n" +
			"writes exact int32 accumulators. On a GPU (--vendor, on by default) cuBLAS and\n" +
			"cuBLASLt run on the same operands: SGEMM with TF32 off (fp32) and on (tf32),\n" +
			"BF16 and FP16 inputs with float32 accumulation (cublasGemmEx), INT8 to int32\n" +
			"(cublasGemmEx and cublasLtMatmul); \"vs vendor\" is each rate over the best\n" +
			"vendor rate of the same precision, and each vendor result is checked against\n" +
			"quantkit's (INT8 exactly; floats by relative Frobenius error: fp32 2e-5, tf32\n" +
			"and fp16 2e-3, bf16 1.5e-2). Where the libraries are missing the report says\n" +
			"which names it tried.",
		Flags:  flags([]cli.Flag{benchSizesFlag, benchDTypesFlag, benchBaselineFlag, benchVendorFlag}, benchOutputFlags),
		Action: runBench("gemm"),
	}, {
		Name:  "quantize",
		Usage: "quantize (int8 per tensor, int4 per group of 128) and dequantize of float32 arrays",
		Description: "GB/s counts the bytes read plus the bytes written (float32 values and packed codes),\n" +
			"so that it compares directly with the copy bandwidth of the device.",
		Flags:  flags([]cli.Flag{benchElemsFlag, benchVendorFlag}, benchOutputFlags),
		Action: runBench("quantize"),
	}, {
		Name:        "histogram",
		Usage:       "the calibration kernels: abs-max and the 2048-bin |x| histogram",
		Description: "GB/s counts the float32 bytes read.",
		Flags:       flags([]cli.Flag{benchElemsFlag, benchVendorFlag}, benchOutputFlags),
		Action:      runBench("histogram"),
	}, {
		Name:  "transfer",
		Usage: "host-to-device and device-to-host copies of float32 arrays (Upload, Download)",
		Description: "GB/s counts each byte moved once. On a GPU the copies are timed with CUDA events like\n" +
			"the kernels, in rows of their own: from and to Go slices (through page-locked staging\n" +
			"buffers from 1 MiB up), and, Impl quantkit-pinned, from and to page-locked memory.",
		Flags:  flags([]cli.Flag{benchElemsFlag}, benchOutputFlags),
		Action: runBench("transfer"),
	}, {
		Name:   "all",
		Usage:  "gemm, quantize, histogram and transfer in one report",
		Flags:  flags([]cli.Flag{benchSizesFlag, benchElemsFlag, benchDTypesFlag, benchBaselineFlag, benchVendorFlag}, benchOutputFlags),
		Action: runBench("gemm", "quantize", "histogram", "transfer"),
	}, benchCheckpointCommand, benchGGUFCommand, benchLMCommand, benchGPUSummaryCommand},
}

func runBench(suites ...string) cli.ActionFunc {
	return func(c *cli.Context) error {
		o := bench.Options{Suites: suites, Baseline: c.Bool(benchBaselineFlag.Name), Timing: bench.DefaultTiming,
			DTypes: list(c, benchDTypesFlag), Vendor: c.Bool(benchVendorFlag.Name)}
		o.Timing.MinTime = c.Duration(benchMinTimeFlag.Name)
		var err error
		if o.Sizes, err = intList(c, benchSizesFlag); err != nil {
			return err
		}
		if o.Elements, err = intList(c, benchElemsFlag); err != nil {
			return err
		}
		if c.Bool(benchEnergyFlag.Name) {
			o.MeasureEnergy = &bench.EnergySetup{Idle: c.Duration(benchIdleFlag.Name), Log: c.App.ErrWriter,
				Window: energy.Options{MinWindow: c.Duration(benchMinWindowFlag.Name),
					Interval: c.Duration(benchIntervalFlag.Name), KeepSamples: true}}
		}
		// The options and the side outputs now rather than after the work.
		if err := o.Check(); err != nil {
			return err
		}
		if err := checkBenchOutputs(c); err != nil {
			return fmt.Errorf("bench %s: %w", c.Command.Name, err)
		}
		sink, err := benchJobSink(c, "bench-"+c.Command.Name)
		if err != nil {
			return fmt.Errorf("bench %s: %w", c.Command.Name, err)
		}

		var rep *bench.Report
		err = onDevice(c, func(b backend.Backend) error {
			bar := progress.Start(int64(o.CasesOn(b)), "cases")
			defer bar.Finish()
			o.Progress = func(done, _ int, what string) { bar.Update(int64(done), what) }
			var err error
			rep, err = bench.Run(c.Context, b, o)
			return err
		})
		if err != nil {
			return err
		}
		if err := writeBenchReport(c, rep); err != nil {
			return fmt.Errorf("bench %s: %w", c.Command.Name, err)
		}
		if err := sink.send(c.Context, c.App.ErrWriter, benchJobRuns(sink, rep)...); err != nil {
			return fmt.Errorf("bench %s: %w", c.Command.Name, err)
		}
		return nil
	}
}

// checkBenchOutputs refuses a side file's path before any work.
func checkBenchOutputs(c *cli.Context) error {
	if err := checkJSONOut(c); err != nil {
		return err
	}
	if path := c.String(benchCSVFlag.Name); path != "" {
		if err := checkOutputFile(benchCSVFlag.Name, path, false, ".csv"); err != nil {
			return err
		}
	}
	if path := c.String(benchPlotFlag.Name); path != "" {
		if err := bench.CheckPlotPath(path); err != nil {
			return badInput(fmt.Errorf("--%s: %w", benchPlotFlag.Name, err))
		}
		return checkOutputFile(benchPlotFlag.Name, path, false)
	}
	return nil
}

// writeBenchReport prints rep, then writes the side files.
func writeBenchReport(c *cli.Context, rep *bench.Report) error {
	if err := printReport(c, rep, rep.WriteTable); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return writeSideOutputs(jsonOut(c, rep),
		sideOutput{flag: benchCSVFlag.Name, path: c.String(benchCSVFlag.Name), write: rep.WriteCSV},
		sideOutput{flag: benchPlotFlag.Name, path: c.String(benchPlotFlag.Name), save: rep.Plot})
}

// list is the comma-separated values of the string flag f, trimmed; none
// when it is empty or not a flag of the command.
func list(c *cli.Context, f *cli.StringFlag) []string {
	if c.String(f.Name) == "" {
		return nil
	}
	vs := strings.Split(c.String(f.Name), ",")
	for i := range vs {
		vs[i] = strings.TrimSpace(vs[i])
	}
	return vs
}

// intList is list's values as integers.
func intList(c *cli.Context, f *cli.StringFlag) ([]int, error) {
	var ns []int
	for _, v := range list(c, f) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, badInput(fmt.Errorf("--%s: %q is not an integer", f.Name, v))
		}
		ns = append(ns, n)
	}
	return ns, nil
}
