package main

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/gpu/telemetry"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/proc"
)

var (
	profileGPUFlag = &cli.StringFlag{Name: "gpu", Value: "all", Usage: "GPUs to measure: all, none, or the index N " +
		"NVML gives one (as nvidia-smi numbers them)"}
	profileIntervalFlag = &cli.DurationFlag{Name: "interval", Value: energy.DefaultInterval, Usage: "sampling period of " +
		"power, clocks, temperature, memory used, utilization and throttle reasons"}
	profileIdleFlag = &cli.DurationFlag{Name: "idle", Value: time.Second, Usage: "measure each source's idle power " +
		"this long before starting the command (0: do not; no idle-subtracted energy is then reported)"}
	profileCSVFlag = &cli.StringFlag{Name: "csv", Usage: "write the power curve to `FILE`.csv: a header " +
		"(" + strings.Join(profileCSVHeader, ",") + "), then one row per sample and source"}
	profileJSONFlag = &cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout (after the command's " +
		"own output) instead of a table on stderr"}
	profileKillAfterFlag = &cli.DurationFlag{Name: "kill-after", Value: proc.DefaultKillAfter, Usage: "how long the " +
		"command has to exit after a SIGTERM that quantkit passes on, and its processes after quantkit dies, before " +
		"SIGKILL ends them"}
)

var profileCommand = &cli.Command{
	Name:      "profile",
	Usage:     "run a command (a training or serving job) and measure its energy on the GPUs and the CPU",
	ArgsUsage: "-- COMMAND [ARG...]",
	Description: "Runs COMMAND with its standard input, output and error passed through untouched, and\n" +
		"measures its energy on every source there is: each NVIDIA GPU that NVML sees (or the one\n" +
		"--gpu names) and the CPU packages through Linux RAPL (/sys/class/powercap, readable by\n" +
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
		"Output: a table on stderr after the command ends, so that the command's stdout stays\n" +
		"clean; --json prints the report as JSON on stdout instead. --csv writes the power curve,\n" +
		"t_seconds counting from the command's start: its path is checked before the command\n" +
		"starts, and the file written after the report, which a failure to write it does not cost\n" +
		"(quantkit then exits with the command's status, or 1).\n" +
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
	Flags: []cli.Flag{profileGPUFlag, profileIntervalFlag, profileIdleFlag, profileCSVFlag, profileJSONFlag,
		profileKillAfterFlag},
	Action: runProfile,
}

// ProfileReport is what `quantkit profile --json` prints.
type ProfileReport struct {
	Command []string `json:"command"`
	// ExitCode is the command's exit code, or 128+N when signal N killed
	// it; quantkit exits with it.
	ExitCode int `json:"exit_code"`
	// Signal names the signal that killed the command ("SIGKILL"); "" when
	// it exited.
	Signal  string    `json:"signal"`
	Started time.Time `json:"started"`
	// Seconds is the command's wall time, from its start to its exit.
	Seconds float64        `json:"seconds"`
	Sources []SourceReport `json:"sources"`
	// Unavailable says why sources are missing ("no NVIDIA GPU found
	// (NVML: driver not loaded)", "CPU energy not available: ...").
	Unavailable []string `json:"unavailable,omitempty"`
}

// SourceReport is the energy of the command on one source.
type SourceReport struct {
	Name string `json:"name"` // "gpu:0 NVIDIA H100 80GB HBM3", "cpu package-0 (RAPL)"
	// Method is "counter" (the energy counter read before the start and
	// after the exit), "sampled-power" (no usable counter: the sampled
	// power curve integrated) or "none" (neither: no energy).
	Method energy.Method `json:"method"`
	// Seconds is the window the energy covers: the counter readings' or
	// the sampled curve's.
	Seconds  float64 `json:"seconds"`
	EnergyJ  float64 `json:"energy_j"`
	EnergyWh float64 `json:"energy_wh"`
	// IdleW is the idle power measured before the start, and NetEnergyJ =
	// EnergyJ − IdleW·Seconds; both null when idle power was not measured.
	IdleW      *float64 `json:"idle_w"`
	NetEnergyJ *float64 `json:"net_energy_j"`
	AvgPowerW  float64  `json:"avg_power_w"` // EnergyJ / Seconds
	PeakPowerW float64  `json:"peak_power_w"`
	// PeakMemoryBytes and MeanUtilPct are over the samples; 0 where the
	// source does not report them (RAPL).
	PeakMemoryBytes uint64  `json:"peak_memory_bytes"`
	MeanUtilPct     float64 `json:"mean_util_pct"`
	Samples         int     `json:"samples"`
	// Note says what was unusual: no counter, a counter reset, no idle
	// power.
	Note string `json:"note,omitempty"`
}

// profileCSVHeader is the header of --csv. Each row is one sample of one
// source: t_seconds counts from the command's start (the first sample,
// taken just before it, is slightly negative); power_w is empty where the
// sample has no power; throttle joins the active throttle reasons with
// '|'; fields a source does not report are 0.
var profileCSVHeader = []string{"source", "t_seconds", "power_w", "sm_clock_mhz", "mem_clock_mhz",
	"temperature_c", "memory_used_bytes", "util_pct", "throttle"}

// methodNone: a source with neither a usable counter nor power.
const methodNone energy.Method = "none"

// forwardedSignals are passed on to the command.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// exitStatus makes quantkit exit with Code, printing Err (when set) as any
// error. It is not a cli.ExitCoder, whose handling calls os.Exit inside
// app.Run (and so inside tests); main handles it.
type exitStatus struct {
	Code int
	Err  error
}

func (e *exitStatus) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *exitStatus) Unwrap() error { return e.Err }

func runProfile(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return badInput(fmt.Errorf("profile: no command to run\nusage: quantkit profile [--gpu N|all|none] " +
			"[--interval 100ms] [--idle 1s] [--kill-after 10s] [--csv FILE] [--json] -- COMMAND [ARG...]"))
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
	csvPath := c.String(profileCSVFlag.Name)
	if csvPath != "" {
		// Now rather than after a long job.
		if err := checkOutputFile(profileCSVFlag.Name, csvPath, false, ".csv"); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	if _, err := proc.LookPath(args[0]); err != nil {
		return startFailure(err)
	}
	stderr := c.App.ErrWriter
	srcs, closeSources, unavailable, err := openProfileSources(c.String(profileGPUFlag.Name))
	if err != nil {
		return err
	}
	defer closeSources()
	if len(unavailable) > 0 {
		fmt.Fprintf(stderr, "profile: %s\n", strings.Join(unavailable, "; "))
	}

	rep, curves, err := profile(profileJob{
		// Hand the terminal over only when the command reads it as stdin.
		Args: args, Sources: srcs, Interval: interval, Idle: idle, KillAfter: killAfter,
		Terminal: c.App.Reader == os.Stdin && isTerminal(os.Stdin),
		Stdin:    c.App.Reader, Stdout: c.App.Writer, Stderr: stderr, Log: stderr,
	})
	if err != nil {
		return startFailure(err)
	}
	rep.Unavailable = unavailable

	// The report first: a side output that fails must not cost it.
	var outErr error
	if c.Bool(profileJSONFlag.Name) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			outErr = fmt.Errorf("profile: writing the report: %w", err)
		}
	} else {
		writeProfileTable(stderr, rep)
	}
	if csvPath != "" {
		var buf bytes.Buffer
		err := writeProfileCSV(&buf, curves)
		if err == nil {
			err = atomicfile.WriteFile(csvPath, buf.Bytes(), 0o666)
		}
		if err != nil {
			outErr = errors.Join(outErr, fmt.Errorf("profile: --csv: %w", err)) // err names the file
		}
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

// startFailure is err, with a shell's status (127, 126) when the command
// could not be started.
func startFailure(err error) error {
	var se *proc.StartError
	if errors.As(err, &se) {
		return &exitStatus{Code: se.Code, Err: fmt.Errorf("profile: %w", err)}
	}
	return err
}

// openProfileSources opens the sources that --gpu selects and the CPU
// packages, and says why those missing are. Only a --gpu naming a GPU that
// NVML does not have is an error.
var openProfileSources = func(gpu string) (srcs []energy.Source, closeFn func(), unavailable []string, err error) {
	closeFn = func() {}
	index := -1
	switch gpu {
	case "all", "none":
	default:
		n, err := strconv.Atoi(gpu)
		if err != nil || n < 0 {
			return nil, closeFn, nil, fmt.Errorf("profile: --gpu %q: want all, none or a GPU index", gpu)
		}
		index = n
	}
	if gpu != "none" {
		sys, err := telemetry.Open()
		if err != nil {
			unavailable = append(unavailable, err.Error())
		} else {
			closeFn = func() { sys.Close() }
			gpus, err := energy.GPUSources(sys)
			switch {
			case err != nil:
				unavailable = append(unavailable, strings.TrimPrefix(err.Error(), "energy: "))
			case len(gpus) == 0:
				unavailable = append(unavailable, "no NVIDIA GPU found (NVML: 0 devices)")
			}
			if index >= 0 && err == nil {
				var picked []energy.Source
				for _, g := range gpus {
					if name := g.Name(); name == "gpu:"+gpu || strings.HasPrefix(name, "gpu:"+gpu+" ") {
						picked = append(picked, g)
					}
				}
				if len(picked) == 0 {
					closeFn()
					return nil, func() {}, nil, fmt.Errorf("profile: --gpu %d: NVML sees %d GPUs", index, len(gpus))
				}
				gpus = picked
			}
			srcs = append(srcs, gpus...)
		}
	}
	cpus, err := energy.RAPLSources(energy.RAPLRoot)
	if err != nil {
		unavailable = append(unavailable, strings.TrimPrefix(err.Error(), "energy: "))
	}
	return append(srcs, cpus...), closeFn, unavailable, nil
}

// profileJob is one run of the profile command, with all it touches passed
// in, so that tests can give it fake sources, writers and signals.
type profileJob struct {
	Args     []string
	Sources  []energy.Source
	Interval time.Duration
	Idle     time.Duration // 0: idle power is not measured
	// KillAfter is how long the command has to exit after a SIGTERM passed
	// on to it before it and its tree are killed (SIGKILL), and the grace
	// its tree gets when quantkit dies; 0: proc.DefaultKillAfter.
	KillAfter time.Duration
	// Stdin, Stdout and Stderr are the command's (see proc.Options).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Terminal       bool      // give the command the terminal (see proc.Options)
	Log            io.Writer // profile's own warnings; nil: none
	// Signals delivers the signals to pass on to the command while it runs;
	// nil: profile subscribes to forwardedSignals itself for that time.
	Signals <-chan os.Signal
}

// profileCurve is one source's samples, T counting from Offset before the
// command started.
type profileCurve struct {
	Source  string
	Offset  time.Duration // when the sampler started, from the command's start (≤ 0)
	Samples []energy.Sample
}

// sourceRun is what profile collects about one source.
type sourceRun struct {
	src     energy.Source
	idleW   float64
	idleErr error // nil with idleW set; errIdleOff when not measured
	sampler *energy.Sampler
	e0, e1  float64 // the counter before the start, after the exit
	err0    error
	err1    error
	t0, t1  time.Time
	samples []energy.Sample
	started time.Time // the sampler's start
}

var errIdleOff = errors.New("not measured")

// profile measures idle power, starts the command, passes signals on to
// it, and measures it until it exits. A command that cannot start gives a
// *proc.StartError, before any measurement.
func profile(job profileJob) (ProfileReport, []profileCurve, error) {
	if len(job.Args) == 0 {
		return ProfileReport{}, nil, errors.New("profile: no command")
	}
	if _, err := proc.LookPath(job.Args[0]); err != nil {
		return ProfileReport{}, nil, err
	}
	runs := make([]*sourceRun, len(job.Sources))
	var wg sync.WaitGroup
	for i, src := range job.Sources {
		r := &sourceRun{src: src, idleErr: errIdleOff}
		runs[i] = r
		if job.Idle > 0 {
			wg.Go(func() { r.idleW, r.idleErr = energy.IdlePower(src, job.Idle, job.Interval) })
		}
	}
	wg.Wait()

	sigs := job.Signals
	if sigs == nil {
		ch := make(chan os.Signal, len(forwardedSignals))
		signal.Notify(ch, forwardedSignals...)
		defer signal.Stop(ch)
		sigs = ch
	}
	for _, r := range runs {
		r.sampler = energy.StartSampler(r.src, job.Interval)
		r.started = r.sampler.Started()
	}
	killAfter := cmp.Or(job.KillAfter, proc.DefaultKillAfter)
	p, err := proc.Start(job.Args, proc.Options{
		Stdin: job.Stdin, Stdout: job.Stdout, Stderr: job.Stderr, Terminal: job.Terminal, KillAfter: killAfter,
		Starting: func() {
			for _, r := range runs {
				r.e0, r.err0 = r.src.Energy()
				r.t0 = time.Now()
			}
		},
	})
	if err != nil {
		for _, r := range runs {
			r.sampler.Stop()
		}
		return ProfileReport{}, nil, err
	}
	var escalate <-chan time.Time // after a SIGTERM: when to kill
forward:
	for {
		select {
		case s, ok := <-sigs:
			if !ok {
				sigs = nil
				continue
			}
			if err := p.Signal(s); err != nil && !errors.Is(err, proc.ErrExited) && job.Log != nil {
				fmt.Fprintf(job.Log, "profile: passing %v on: %v\n", s, err)
			}
			if s == syscall.SIGTERM && escalate == nil {
				t := time.NewTimer(killAfter)
				defer t.Stop()
				escalate = t.C
			}
		case <-escalate:
			if job.Log != nil {
				fmt.Fprintf(job.Log, "profile: %s still running %v after SIGTERM: killing it (SIGKILL)\n",
					job.Args[0], killAfter)
			}
			if err := p.Kill(); err != nil && !errors.Is(err, proc.ErrExited) && job.Log != nil {
				fmt.Fprintf(job.Log, "profile: killing %s: %v\n", job.Args[0], err)
			}
		case <-p.Exited():
			break forward
		}
	}
	for _, r := range runs {
		r.e1, r.err1 = r.src.Energy()
		r.t1 = time.Now()
	}
	for _, r := range runs {
		r.samples = r.sampler.Stop()
	}
	st, err := p.Wait()
	if err != nil && job.Log != nil {
		fmt.Fprintf(job.Log, "profile: the command's output: %v\n", err)
	}

	rep := ProfileReport{
		Command:  job.Args,
		ExitCode: st.Code,
		Signal:   st.SignalName(),
		Started:  st.Start,
		Seconds:  st.Duration().Seconds(),
		Sources:  make([]SourceReport, 0, len(runs)),
	}
	curves := make([]profileCurve, len(runs))
	for i, r := range runs {
		rep.Sources = append(rep.Sources, r.report())
		curves[i] = profileCurve{Source: r.src.Name(), Offset: r.started.Sub(st.Start), Samples: r.samples}
	}
	return rep, curves, nil
}

// report is the energy of the run on r's source: by counter when both
// readings succeeded and Delta accepts them, else by the sampled curve.
func (r *sourceRun) report() SourceReport {
	rep := SourceReport{Name: r.src.Name(), Samples: len(r.samples)}
	var notes []string
	switch {
	case r.err0 == nil && r.err1 == nil:
		if d, ok := energy.Delta(r.e0, r.e1, r.src.WrapJ()); ok {
			rep.Method, rep.EnergyJ, rep.Seconds = energy.Counter, d, r.t1.Sub(r.t0).Seconds()
		} else {
			notes = append(notes, fmt.Sprintf("energy counter reset during the run (%.6g J, then %.6g J)", r.e0, r.e1))
		}
	case errors.Is(r.err0, energy.ErrNotSupported) || errors.Is(r.err1, energy.ErrNotSupported):
		notes = append(notes, "no energy counter")
	default:
		notes = append(notes, fmt.Sprintf("energy counter: %v", errors.Join(r.err0, r.err1)))
	}

	var first, last time.Duration
	withPower := 0
	var utilSum float64
	for _, s := range r.samples {
		if !s.NoPower {
			if withPower == 0 || s.PowerW > rep.PeakPowerW {
				rep.PeakPowerW = s.PowerW
			}
			if withPower == 0 {
				first = s.T
			}
			last = s.T
			withPower++
		}
		rep.PeakMemoryBytes = max(rep.PeakMemoryBytes, s.MemoryUsed)
		utilSum += float64(s.UtilPct)
	}
	if len(r.samples) > 0 {
		rep.MeanUtilPct = utilSum / float64(len(r.samples))
	}
	if rep.Method == "" {
		if withPower >= 2 {
			rep.Method, rep.EnergyJ, rep.Seconds = energy.Sampled, energy.Integrate(r.samples), (last - first).Seconds()
		} else {
			rep.Method = methodNone
			notes = append(notes, "too few power samples to integrate")
		}
	}
	rep.EnergyWh = rep.EnergyJ / 3600
	if rep.Seconds > 0 {
		rep.AvgPowerW = rep.EnergyJ / rep.Seconds
	}
	switch {
	case r.idleErr == nil:
		idle := r.idleW
		rep.IdleW = &idle
		if rep.Method != methodNone {
			net := rep.EnergyJ - idle*rep.Seconds
			rep.NetEnergyJ = &net
		}
	case r.idleErr != errIdleOff:
		notes = append(notes, strings.TrimPrefix(r.idleErr.Error(), "energy: ")) // "idle power of ...: why"
	}
	rep.Note = strings.Join(notes, "; ")
	return rep
}

// writeProfileCSV writes the power curves as profileCSVHeader describes.
func writeProfileCSV(w io.Writer, curves []profileCurve) error {
	cw := csv.NewWriter(w)
	cw.Write(profileCSVHeader)
	for _, c := range curves {
		for _, s := range c.Samples {
			power := ""
			if !s.NoPower {
				power = strconv.FormatFloat(s.PowerW, 'f', 3, 64)
			}
			cw.Write([]string{
				c.Source,
				strconv.FormatFloat((c.Offset + s.T).Seconds(), 'f', 4, 64),
				power,
				strconv.Itoa(s.SMClockMHz),
				strconv.Itoa(s.MemClockMHz),
				strconv.Itoa(s.TemperatureC),
				strconv.FormatUint(s.MemoryUsed, 10),
				strconv.Itoa(s.UtilPct),
				strings.Join(s.Throttle, "|"),
			})
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeProfileTable writes the report for people.
func writeProfileTable(w io.Writer, r ProfileReport) {
	status := fmt.Sprintf("exit status %d", r.ExitCode)
	if r.Signal != "" {
		status = fmt.Sprintf("killed by %s (exit status %d)", r.Signal, r.ExitCode)
	}
	fmt.Fprintf(w, "profile: %s: %s after %.3f s\n", shellQuote(r.Command), status, r.Seconds)
	if len(r.Sources) == 0 {
		fmt.Fprintln(w, "profile: no energy source measured")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "source\tmethod\tseconds\tenergy\tavg/peak power\tidle power\tnet energy\tpeak memory\tmean util\tsamples")
	for _, s := range r.Sources {
		secs, energyCol, power := "-", "-", "-"
		if s.Method != methodNone {
			secs = fmt.Sprintf("%.3f", s.Seconds)
			energyCol = fmt.Sprintf("%.1f J (%.4f Wh)", s.EnergyJ, s.EnergyWh)
			power = fmt.Sprintf("%.1f/%.1f W", s.AvgPowerW, s.PeakPowerW)
		}
		idle, net := "-", "-"
		if s.IdleW != nil {
			idle = fmt.Sprintf("%.1f W", *s.IdleW)
		}
		if s.NetEnergyJ != nil {
			net = fmt.Sprintf("%.1f J", *s.NetEnergyJ)
		}
		mem, util := "-", "-"
		if s.PeakMemoryBytes > 0 { // a source with state (a GPU), not RAPL
			mem = fmt.Sprintf("%.2f GiB", float64(s.PeakMemoryBytes)/(1<<30))
			util = fmt.Sprintf("%.0f %%", s.MeanUtilPct)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, s.Method, secs, energyCol, power,
			idle, net, mem, util, s.Samples)
	}
	tw.Flush()
	for _, s := range r.Sources {
		if s.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Note)
		}
	}
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote is args as one would type them in a POSIX shell.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if shellSafe.MatchString(a) {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
