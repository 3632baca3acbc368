// Package profile runs a command (a training or serving job) and measures
// its energy on the sources it is given (GPUs through NVML, CPU packages
// through RAPL: see energy.OpenSources), the job behind `quantkit
// profile`.
//
// Run measures each source's idle power, starts the command with its
// standard streams passed through (internal/proc: its own process group,
// the terminal handed over, its tree dying with the caller), samples every
// source while it runs, passes signals on to it, and reads every energy
// counter just before the start and just after the exit. A source's energy
// is its counter's difference (method "counter"); where there is no
// counter, or it reset during the run, the sampled power integrated
// (method "sampled-power"). The Report gives each source's energy, average
// and peak power, idle-subtracted energy, peak memory and mean utilization,
// and the command's exit status as a shell reports it; its Curves are the
// samples, for WriteCSV.
package profile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/proc"
)

// Options are one run: the command, the sources, and all it touches, so
// that tests can give it fake sources, writers and signals.
type Options struct {
	Args     []string
	Sources  []energy.Source
	Interval time.Duration // the sampling period; 0: energy.DefaultInterval
	Idle     time.Duration // how long to measure idle power first; 0: not measured
	// KillAfter is how long the command has to exit after a SIGTERM passed
	// on to it (or ctx's end) before it and its tree are killed (SIGKILL),
	// and the grace its tree gets when the caller dies; 0:
	// proc.DefaultKillAfter.
	KillAfter time.Duration
	// Stdin, Stdout and Stderr are the command's (see proc.Options).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Terminal       bool      // give the command the terminal (see proc.Options)
	Log            io.Writer // the run's own warnings; nil: none
	// Signals delivers the signals to pass on to the command while it runs;
	// nil: Run subscribes to ForwardedSignals itself for that time.
	Signals <-chan os.Signal
	// Unavailable says why sources are missing (energy.OpenSources's
	// words); it is copied into the report.
	Unavailable []string
}

// ForwardedSignals are the signals Run passes on to the command when
// Options.Signals is nil.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// Report is a run's outcome: what `quantkit profile --json` prints.
type Report struct {
	Command []string `json:"command"`
	// ExitCode is the command's exit code, or 128+N when signal N killed
	// it, as a shell reports it.
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
	// Curves are the sources' samples, in the order of Sources (WriteCSV).
	Curves []Curve `json:"-"`
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

// MethodNone is the method of a source with neither a usable counter nor
// power: it has no energy.
const MethodNone energy.Method = "none"

// Curve is one source's samples, T counting from Offset before the
// command started.
type Curve struct {
	Source  string
	Offset  time.Duration // when the sampler started, from the command's start (≤ 0)
	Samples []energy.Sample
}

// sourceRun is what Run collects about one source.
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

// Run measures idle power, starts the command, passes signals on to it,
// and measures it until it exits. Cancelling ctx sends the command SIGTERM
// (and SIGKILL KillAfter later), as a passed-on SIGTERM would; the report
// follows its exit. A command that cannot start gives a *proc.StartError
// (with a shell's status, 127 or 126), before any measurement.
func Run(ctx context.Context, o Options) (Report, error) {
	if len(o.Args) == 0 {
		return Report{}, errors.New("profile: no command")
	}
	if _, err := proc.LookPath(o.Args[0]); err != nil {
		return Report{}, err
	}
	interval := cmp.Or(o.Interval, energy.DefaultInterval)
	runs := make([]*sourceRun, len(o.Sources))
	var wg sync.WaitGroup
	for i, src := range o.Sources {
		r := &sourceRun{src: src, idleErr: errIdleOff}
		runs[i] = r
		if o.Idle > 0 {
			wg.Go(func() { r.idleW, r.idleErr = energy.IdlePower(src, o.Idle, interval) })
		}
	}
	wg.Wait()

	sigs := o.Signals
	if sigs == nil {
		ch := make(chan os.Signal, len(ForwardedSignals))
		signal.Notify(ch, ForwardedSignals...)
		defer signal.Stop(ch)
		sigs = ch
	}
	for _, r := range runs {
		r.sampler = energy.StartSampler(r.src, interval)
		r.started = r.sampler.Started()
	}
	killAfter := cmp.Or(o.KillAfter, proc.DefaultKillAfter)
	p, err := proc.Start(o.Args, proc.Options{
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Terminal: o.Terminal, KillAfter: killAfter,
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
		return Report{}, err
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "profile: "+format+"\n", args...)
		}
	}
	var kill *time.Timer // after a SIGTERM: when to kill
	var escalate <-chan time.Time
	defer func() {
		if kill != nil {
			kill.Stop()
		}
	}()
	terminate := func(s os.Signal) {
		if err := p.Signal(s); err != nil && !errors.Is(err, proc.ErrExited) {
			logf("passing %v on: %v", s, err)
		}
		if s == syscall.SIGTERM && kill == nil {
			kill = time.NewTimer(killAfter)
			escalate = kill.C
		}
	}
	cancelled := ctx.Done()
forward:
	for {
		select {
		case s, ok := <-sigs:
			if !ok {
				sigs = nil
				continue
			}
			terminate(s)
		case <-cancelled:
			cancelled = nil
			terminate(syscall.SIGTERM)
		case <-escalate:
			logf("%s still running %v after SIGTERM: killing it (SIGKILL)", o.Args[0], killAfter)
			if err := p.Kill(); err != nil && !errors.Is(err, proc.ErrExited) {
				logf("killing %s: %v", o.Args[0], err)
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
	if err != nil {
		logf("the command's output: %v", err)
	}

	rep := Report{
		Command:     o.Args,
		ExitCode:    st.Code,
		Signal:      st.SignalName(),
		Started:     st.Start,
		Seconds:     st.Duration().Seconds(),
		Sources:     make([]SourceReport, 0, len(runs)),
		Unavailable: o.Unavailable,
		Curves:      make([]Curve, len(runs)),
	}
	for i, r := range runs {
		rep.Sources = append(rep.Sources, r.report())
		rep.Curves[i] = Curve{Source: r.src.Name(), Offset: r.started.Sub(st.Start), Samples: r.samples}
	}
	return rep, nil
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
			rep.Method = MethodNone
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
		if rep.Method != MethodNone {
			net := rep.EnergyJ - idle*rep.Seconds
			rep.NetEnergyJ = &net
		}
	case r.idleErr != errIdleOff:
		notes = append(notes, strings.TrimPrefix(r.idleErr.Error(), "energy: ")) // "idle power of ...: why"
	}
	rep.Note = strings.Join(notes, "; ")
	return rep
}
