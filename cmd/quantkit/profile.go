package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/energy/monitor"
	"github.com/quantkit/quantkit/energy/profile"
	"github.com/quantkit/quantkit/internal/proc"
)

var (
	profileGPUFlag = &cli.StringFlag{Name: "gpu", Value: "visible", Usage: "GPUs to measure: visible (those " +
		"CUDA_VISIBLE_DEVICES lets the command see, matched by UUID; every GPU when it is unset), all, none, the index N " +
		"NVML gives one (as nvidia-smi numbers them) or a GPU's UUID"}
	profileIntervalFlag = &cli.DurationFlag{Name: "interval", Value: energy.DefaultInterval, Usage: "sampling period of " +
		"power, clocks, temperature, memory used, utilization and throttle reasons"}
	profileIdleFlag = &cli.DurationFlag{Name: "idle", Value: time.Second, Usage: "measure each source's idle power " +
		"this long before starting the command (0: do not; no idle-subtracted energy is then reported)"}
	profileCSVFlag = &cli.StringFlag{Name: "csv", Usage: "write the power curve to `FILE`.csv: a header " +
		"(" + strings.Join(profile.CSVHeader, ",") + "), then one row per sample and source"}
	profileKillAfterFlag = &cli.DurationFlag{Name: "kill-after", Value: proc.DefaultKillAfter, Usage: "how long the " +
		"command has to exit after a SIGTERM that quantkit passes on, and its processes after quantkit dies, before " +
		"SIGKILL ends them"}
)

var profileCommand = &cli.Command{
	Name:      "profile",
	Usage:     "run a command (a training or serving job) and measure its energy on the GPUs and the CPU",
	ArgsUsage: "-- COMMAND [ARG...]",
	Description: "Runs COMMAND with its standard input, output and error passed through untouched, and\n" +
		"measures its energy on every source there is: each NVIDIA GPU the command can use (those\n" +
		"CUDA_VISIBLE_DEVICES names, matched to NVML's by UUID, or every one NVML sees when it is\n" +
		"unset; --gpu picks others) and the CPU packages through Linux RAPL (/sys/class/powercap, readable by\n" +
		"root only on Linux 5.10 and later). A source that is not available is named once on\n" +
		"stderr and the command runs anyway: its duration and exit status are always reported.\n" +
		"\n" +
		"How: before the command starts, each source's idle power is measured over --idle. While\n" +
		"it runs, power, clocks, temperature, memory used, utilization and throttle reasons are\n" +
		"sampled every --interval. A source's energy is its energy counter (NVML's total energy,\n" +
		"RAPL's energy_uj) read just before the command starts and just after it exits (method\n" +
		"\"counter\"); where there is no counter, or it reset during the run, the sampled power is\n" +
		"integrated instead (method \"sampled-power\", less precise: it misses what happens\n" +
		"between samples). The net energy is energy - idle power x duration: what the command\n" +
		"cost above the machine standing still. A counter counts its whole device, so other work\n" +
		"on the same GPU or CPU is counted too.\n" +
		"\n" +
		"Jobs: --monitor URL reports the run's energy per source, its duration and the --job and\n" +
		"--label values (e.g. --job resnet50 --label precision=int8) to a running `quantkit\n" +
		"monitor`, which counts them in quantkit_job_energy_joules_total and friends for Prometheus;\n" +
		"--textfile DIR adds them to DIR/" + monitor.TextfileName + " for node_exporter's textfile collector.\n" +
		"\n" +
		"Output: a table on stderr after the command ends, so that the command's stdout stays\n" +
		"clean; --json prints the report as JSON on stdout instead, --json-out FILE writes it to\n" +
		"FILE beside the table. --csv writes the power curve, t_seconds counting from the\n" +
		"command's start. The paths of --json-out and --csv are checked before the command\n" +
		"starts, and the files written after the report, which a failure to write them does not\n" +
		"cost (quantkit then exits with the command's status, or 1).\n" +
		"\n" +
		"Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to quantkit are passed on to the\n" +
		"command (to its process group); the report is printed after it exits. A command still\n" +
		"running --kill-after after a SIGTERM is killed (SIGKILL), with every process it started.\n" +
		"Run from a terminal, the command holds the terminal as if the shell had started it:\n" +
		"Ctrl-C and Ctrl-\\ reach it once, straight from the terminal, and Ctrl-Z stops it (and\n" +
		"quantkit). The command's whole process tree dies with quantkit, even when quantkit is\n" +
		"killed (SIGKILL): a small supervisor process sends it SIGTERM, then SIGKILL after\n" +
		"--kill-after; processes the command leaves behind when it exits are ended the same way.\n" +
		"\n" +
		"Exit status: the command's; 128+N when signal N killed it, as a shell reports it; 127\n" +
		"when the command is not found, 126 when it cannot be executed.",
	Flags: append([]cli.Flag{profileGPUFlag, profileIntervalFlag, profileIdleFlag, profileCSVFlag, jsonFlag,
		jsonOutFlag, profileKillAfterFlag}, jobFlags...),
	Action: runProfile,
}

// openEnergySources opens what --gpu selects and the CPU packages; tests
// replace it with fakes.
var openEnergySources = energy.OpenSources

func runProfile(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return badInput(fmt.Errorf("profile: no command to run\nusage: quantkit profile [--gpu visible|all|none|N|UUID] " +
			"[--interval 100ms] [--idle 1s] [--kill-after 10s] [--csv FILE] [--json] [--json-out FILE] [--job NAME] [--label K=V] [--monitor URL] [--textfile DIR] -- COMMAND [ARG...]"))
	}
	interval, idle := c.Duration(profileIntervalFlag.Name), c.Duration(profileIdleFlag.Name)
	if interval <= 0 {
		return badInput(fmt.Errorf("profile: --interval %v: must be positive", interval))
	}
	if idle < 0 {
		return badInput(fmt.Errorf("profile: --idle %v: must not be negative", idle))
	}
	killAfter := c.Duration(profileKillAfterFlag.Name)
	if killAfter <= 0 {
		return badInput(fmt.Errorf("profile: --kill-after %v: must be positive", killAfter))
	}
	// The side outputs' paths now rather than after a long job.
	csvPath := c.String(profileCSVFlag.Name)
	if csvPath != "" {
		if err := checkOutputFile(profileCSVFlag.Name, csvPath, false, ".csv"); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	if err := checkJSONOut(c); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	sink, err := jobSinkFrom(c, filepath.Base(args[0]))
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := proc.LookPath(args[0]); err != nil {
		return startFailure(err)
	}
	stderr := c.App.ErrWriter
	srcs, closeSources, unavailable, err := openEnergySources(c.String(profileGPUFlag.Name))
	if err != nil {
		return fmt.Errorf("profile: --gpu: %s", strings.TrimPrefix(err.Error(), "energy: "))
	}
	defer closeSources()
	if len(unavailable) > 0 {
		fmt.Fprintf(stderr, "profile: %s\n", strings.Join(unavailable, "; "))
	}

	rep, err := profile.Run(c.Context, profile.Options{
		Args: args, Sources: srcs, Interval: interval, Idle: idle, KillAfter: killAfter, Unavailable: unavailable,
		// Hand the terminal over only when the command reads it as stdin.
		Terminal: c.App.Reader == os.Stdin && isTerminal(os.Stdin),
		Stdin:    c.App.Reader, Stdout: c.App.Writer, Stderr: stderr, Log: stderr,
	})
	if err != nil {
		return startFailure(err)
	}

	// The report first (the table on stderr: stdout is the command's), so
	// that a side output that fails does not cost it.
	outErr := printReport(c, rep, func(io.Writer) error { return rep.WriteTable(stderr) })
	outErr = errors.Join(outErr, writeSideOutputs(jsonOut(c, rep), sideOutput{flag: profileCSVFlag.Name, path: csvPath,
		write: func(w io.Writer) error { return profile.WriteCSV(w, rep.Curves) }}))
	if sink.enabled() {
		outErr = errors.Join(outErr, sink.send(c.Context, stderr, sink.report(nil, rep.Seconds, jobEnergy(rep))))
	}
	if outErr != nil {
		outErr = fmt.Errorf("profile: %w", outErr)
	}
	switch {
	case outErr != nil:
		code := rep.ExitCode
		if code == 0 {
			code = 1
		}
		return &exitStatus{Code: code, Err: outErr}
	case rep.ExitCode != 0:
		return &exitStatus{Code: rep.ExitCode}
	}
	return nil
}

// jobEnergy is the energy of rep's sources that have some, as a job
// report counts it.
func jobEnergy(rep profile.Report) []monitor.SourceEnergy {
	var e []monitor.SourceEnergy
	for _, s := range rep.Sources {
		if s.Method != profile.MethodNone {
			e = append(e, monitor.SourceEnergy{Source: monitor.SourceLabel(s.Name), Joules: s.EnergyJ})
		}
	}
	return e
}

// startFailure is err, with a shell's status (127, 126) when the command
// could not be started.
func startFailure(err error) error {
	var se *proc.StartError
	if errors.As(err, &se) {
		return &exitStatus{Code: se.Code, Err: fmt.Errorf("profile: %w", err)}
	}
	return err
}
