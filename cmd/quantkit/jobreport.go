package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/energy/monitor"
)

// The flags with which profile, bench and lm report their energy as a job's:
// to a running `quantkit monitor`, or to node_exporter's textfile
// collector.
var (
	jobNameFlag = &cli.StringFlag{Name: "job", Usage: "the job `NAME` under which --monitor and --textfile count " +
		"the run's energy (default: the profiled command's name; bench-gemm, bench-lm, lm-eval, ... for quantkit's own)"}
	jobLabelFlag = &cli.StringSliceFlag{Name: "label", Usage: "a `KEY=VALUE` label of the job's counters, " +
		"e.g. precision=int8 (repeat for more)"}
	jobMonitorFlag = &cli.StringFlag{Name: "monitor", Usage: "report the run's energy, per source, to the quantkit " +
		"monitor at `URL` (http://HOST:9877; POST /jobs) when it ends; a monitor that cannot be reached is a warning " +
		"(lm: the energy of the device it ran on, from the start to the end, model loading included)"}
	jobTextfileFlag = &cli.StringFlag{Name: "textfile", Usage: "add the run's energy to `DIR`/" + monitor.TextfileName +
		" (node_exporter's textfile-collector format, counters kept across runs)"}
)

// jobFlags are the flags jobSinkFrom reads.
var jobFlags = []cli.Flag{jobNameFlag, jobLabelFlag, jobMonitorFlag, jobTextfileFlag}

// jobSink is where a command reports its runs as a job's: nowhere when
// neither --monitor nor --textfile is given.
type jobSink struct {
	job      string
	labels   map[string]string
	url      string
	textfile string
}

// jobSinkFrom reads and checks the job flags before any work; defaultJob
// names the job when --job is not given.
func jobSinkFrom(c *cli.Context, defaultJob string) (jobSink, error) {
	s := jobSink{job: c.String(jobNameFlag.Name), url: c.String(jobMonitorFlag.Name),
		textfile: c.String(jobTextfileFlag.Name)}
	if s.job == "" {
		s.job = defaultJob
	}
	var err error
	if s.labels, err = monitor.ParseLabels(c.StringSlice(jobLabelFlag.Name)); err != nil {
		return s, badInput(fmt.Errorf("--%s: %w", jobLabelFlag.Name, err))
	}
	if err := (monitor.JobReport{Job: s.job, Labels: s.labels}).Validate(); err != nil {
		return s, badInput(fmt.Errorf("--%s/--%s: %w", jobNameFlag.Name, jobLabelFlag.Name, err))
	}
	if s.url != "" {
		if _, err := monitor.JobsURL(s.url); err != nil {
			return s, badInput(fmt.Errorf("--%s: %w", jobMonitorFlag.Name, err))
		}
	}
	if s.textfile != "" {
		if st, err := os.Stat(s.textfile); err != nil || !st.IsDir() {
			return s, badInput(fmt.Errorf("--%s %s: not a directory", jobTextfileFlag.Name, s.textfile))
		}
	}
	return s, nil
}

func (s jobSink) enabled() bool { return s.url != "" || s.textfile != "" }

// report is a run of the job: labels are added to (and override) the
// --label ones.
func (s jobSink) report(labels map[string]string, seconds float64, energy []monitor.SourceEnergy) monitor.JobReport {
	l := maps.Clone(s.labels)
	maps.Copy(l, labels)
	return monitor.JobReport{Job: s.job, Labels: l, Seconds: seconds, Energy: energy}
}

// send reports runs: to the monitor (a failure is a warning on log) and to
// the textfile (a failure is the error).
func (s jobSink) send(ctx context.Context, log io.Writer, runs ...monitor.JobReport) error {
	for _, r := range runs {
		if s.url != "" {
			if err := monitor.Post(ctx, s.url, r); err != nil {
				fmt.Fprintf(log, "warning: --%s: the run of %s was not reported: %v\n", jobMonitorFlag.Name, r.Job, err)
			}
		}
		if s.textfile != "" {
			if err := monitor.WriteTextfile(s.textfile, r); err != nil {
				return fmt.Errorf("--%s: %w", jobTextfileFlag.Name, err)
			}
		}
	}
	return nil
}

// openDeviceEnergy opens a device's energy counter; tests replace it.
var openDeviceEnergy = energy.OpenDevice

// onDeviceAsJob is onDevice, and, when s reports anywhere, the energy of
// job on its device (energy.OpenDevice: RAPL for cpu, NVML's counter of
// the card for gpu:N) between its start and its end, reported as one run
// of s's job when job succeeds. A device without a counter, or a counter
// that reset meanwhile, is a warning: the run is not reported.
func onDeviceAsJob(c *cli.Context, s jobSink, job func(b backend.Backend) error) error {
	if !s.enabled() {
		return onDevice(c, job)
	}
	return onDevice(c, func(b backend.Backend) error {
		warn := func(format string, a ...any) {
			fmt.Fprintf(c.App.ErrWriter, "warning: --%s/--%s: the run of %s was not reported: %s\n",
				jobMonitorFlag.Name, jobTextfileFlag.Name, s.job, fmt.Sprintf(format, a...))
		}
		src, closeSrc, err := openDeviceEnergy(b.Name())
		defer closeSrc()
		if err != nil {
			warn("%v", strings.TrimPrefix(err.Error(), "energy: "))
			return job(b)
		}
		joules, seconds, workErr, err := energy.Around(src, func() error { return job(b) })
		switch {
		case workErr != nil:
			return workErr
		case err != nil:
			warn("%s: %v", src.Name(), err)
			return nil
		}
		return s.send(c.Context, c.App.ErrWriter, s.report(nil, seconds,
			[]monitor.SourceEnergy{{Source: monitor.SourceLabel(src.Name()), Joules: joules}}))
	})
}
