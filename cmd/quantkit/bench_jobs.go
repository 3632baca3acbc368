package main

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/energy/monitor"
	"github.com/quantkit/quantkit/job/lmbench"
)

// benchJobRuns are the kernels of rep whose energy was measured, each a
// run of the job: its energy the measured window's (joules per call ×
// calls), its seconds the window's, labelled precision (the element type),
// op, impl and size (M×N×K, or the elements of a memory-bound kernel).
func benchJobRuns(s jobSink, rep *bench.Report) []monitor.JobReport {
	var runs []monitor.JobReport
	for _, r := range rep.Results {
		if r.Energy == nil || r.Energy.Method == "" {
			continue
		}
		size := strconv.Itoa(r.Elements)
		if r.Op == "gemm" {
			size = fmt.Sprintf("%dx%dx%d", r.M, r.N, r.K)
		}
		runs = append(runs, s.report(map[string]string{"precision": r.DType, "op": r.Op, "impl": r.Impl, "size": size},
			r.Energy.WindowSeconds, []monitor.SourceEnergy{{Source: monitor.SourceLabel(r.Energy.Source),
				Joules: r.Energy.JoulesPerCall * float64(r.Energy.Calls)}}))
	}
	return runs
}

// benchLMJobRuns are the rows of rep whose energy was measured, each a
// run of the job: one request of the prompt's and the decoded tokens at
// the row's median rates and joules per token, labelled precision (the
// row's, or what it runs as when it has none) and model (the file or
// folder's name).
func benchLMJobRuns(s jobSink, rep *lmbench.Report) []monitor.JobReport {
	var runs []monitor.JobReport
	for _, r := range rep.Rows {
		e := r.Energy
		if e == nil || r.PrefillTokensPerSecond.Median <= 0 || r.DecodeTokensPerSecond.Median <= 0 {
			continue
		}
		precision := r.Precision
		if precision == "" {
			precision = r.Label
		}
		seconds := float64(r.PrefillTokens)/r.PrefillTokensPerSecond.Median +
			float64(r.DecodeTokens)/r.DecodeTokensPerSecond.Median
		joules := e.PrefillJPerToken*float64(r.PrefillTokens) + e.DecodeJPerToken*float64(r.DecodeTokens)
		runs = append(runs, s.report(map[string]string{"precision": precision, "model": filepath.Base(r.Model)},
			seconds, []monitor.SourceEnergy{{Source: monitor.SourceLabel(e.Source), Joules: joules}}))
	}
	return runs
}

// benchJobSink is jobSinkFrom, refusing --monitor and --textfile without
// --energy (there would be nothing to report).
func benchJobSink(c *cli.Context, defaultJob string) (jobSink, error) {
	s, err := jobSinkFrom(c, defaultJob)
	if err == nil && s.enabled() && !c.Bool(benchEnergyFlag.Name) {
		err = badInput(fmt.Errorf("--%s and --%s report energy: add --%s", jobMonitorFlag.Name, jobTextfileFlag.Name,
			benchEnergyFlag.Name))
	}
	return s, err
}
