package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/bench"
)

var (
	benchSizesFlag    = &cli.StringFlag{Name: "sizes", Value: "256,512,1024", Usage: "comma-separated GEMM sizes; each runs M = N = K"}
	benchDTypesFlag   = &cli.StringFlag{Name: "dtypes", Value: "fp32,int8", Usage: "comma-separated element types: fp32 (float32), int8 (int8 in, int32 out)"}
	benchJSONFlag     = &cli.BoolFlag{Name: "json", Usage: "print the report as JSON"}
	benchBaselineFlag = &cli.BoolFlag{Name: "baseline", Value: true, Usage: "also measure gonum's Sgemm (same A·Bᵀ layout) in the same run"}
	benchMinTimeFlag  = &cli.DurationFlag{Name: "min-time", Value: bench.DefaultTiming.MinTime, Usage: "measure each kernel at least this long (after one warm-up call)"}
)

var benchCommand = &cli.Command{
	Name:  "bench",
	Usage: "measure quantkit's kernels against baselines",
	Subcommands: []*cli.Command{{
		Name:  "gemm",
		Usage: "FP32 and INT8 GEMM, C = A·Bᵀ with M = N = K, against gonum's Sgemm",
		Description: "For each size: the median time of one GEMM, GFLOP/s (FP32) or GOP/s (INT8, a\n" +
			"multiply-add counting as two operations), INT8's speed-up over FP32, and each\n" +
			"rate over gonum's Sgemm measured in the same run. INT8 takes int8 A and B and\n" +
			"writes exact int32 accumulators.",
		Flags:  []cli.Flag{deviceFlag, benchSizesFlag, benchDTypesFlag, benchBaselineFlag, benchMinTimeFlag, benchJSONFlag},
		Action: runBenchGemm,
	}, {
		Name:  "quantize",
		Usage: "quantize (int8 per tensor, int4 per group of 128) and dequantize of float32 arrays",
		Description: "GB/s counts the bytes read plus the bytes written (float32 values and packed codes),\n" +
			"so that it compares directly with the copy bandwidth of the device.",
		Flags:  []cli.Flag{deviceFlag, benchElemsFlag, benchMinTimeFlag, benchJSONFlag},
		Action: runBenchMemory("quantize-int8", "quantize-int4-g128", "dequantize-int8"),
	}, {
		Name:        "histogram",
		Usage:       "the calibration kernels: abs-max and the 2048-bin |x| histogram",
		Description: "GB/s counts the float32 bytes read.",
		Flags:       []cli.Flag{deviceFlag, benchElemsFlag, benchMinTimeFlag, benchJSONFlag},
		Action:      runBenchMemory("absmax", "histogram"),
	}},
}

var benchElemsFlag = &cli.StringFlag{Name: "sizes", Value: "1048576,16777216", Usage: "comma-separated element counts"}

func runBenchMemory(ops ...string) cli.ActionFunc {
	return func(c *cli.Context) error {
		sizes, err := parseSizes(c.String(benchElemsFlag.Name))
		if err != nil {
			return err
		}
		asJSON := c.Bool(benchJSONFlag.Name)
		timing := bench.DefaultTiming
		timing.MinTime = c.Duration(benchMinTimeFlag.Name)
		var rep *bench.Report
		err = onDevice(c, func(b backend.Backend) error {
			progress, clear := progressLine(!asJSON)
			defer clear()
			var err error
			rep, err = bench.Memory(b, bench.MemoryOptions{Sizes: sizes, Ops: ops, Timing: timing, Progress: progress})
			return err
		})
		if err != nil {
			return err
		}
		if asJSON {
			return rep.WriteJSON(c.App.Writer)
		}
		return rep.WriteTable(c.App.Writer)
	}
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--sizes: %q is not a positive integer", f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// progressLine returns a progress callback that rewrites one line on
// stderr when it is a terminal, and nil otherwise.
func progressLine(enabled bool) (func(done, total int, what string), func()) {
	if !enabled || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil, func() {}
	}
	return func(done, total int, what string) {
			fmt.Fprintf(os.Stderr, "\r\033[K[%d/%d] %s", done+1, total, what)
		}, func() {
			fmt.Fprint(os.Stderr, "\r\033[K")
		}
}

func runBenchGemm(c *cli.Context) error {
	sizes, err := parseSizes(c.String(benchSizesFlag.Name))
	if err != nil {
		return err
	}
	var dtypes []string
	for _, d := range strings.Split(c.String(benchDTypesFlag.Name), ",") {
		dtypes = append(dtypes, strings.TrimSpace(d))
	}
	asJSON := c.Bool(benchJSONFlag.Name)
	timing := bench.DefaultTiming
	timing.MinTime = c.Duration(benchMinTimeFlag.Name)
	var rep *bench.Report
	err = onDevice(c, func(b backend.Backend) error {
		progress, clear := progressLine(!asJSON)
		defer clear()
		var err error
		rep, err = bench.Gemm(b, bench.GemmOptions{Sizes: sizes, DTypes: dtypes, Timing: timing,
			Baseline: c.Bool(benchBaselineFlag.Name), Progress: progress})
		return err
	})
	if err != nil {
		return err
	}
	if asJSON {
		return rep.WriteJSON(c.App.Writer)
	}
	return rep.WriteTable(c.App.Writer)
}
