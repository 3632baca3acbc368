package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/proc"
	"github.com/quantkit/quantkit/internal/proc/proctest"
)

// opts runs args without sources or idle measurement, writing to stdout
// and stderr, with signals only from the test (nil channel: none).
func opts(stdout, stderr *bytes.Buffer, args ...string) Options {
	return Options{Args: args, Interval: 10 * time.Millisecond, Stdout: stdout, Stderr: stderr, Log: stderr,
		Signals: make(chan os.Signal)}
}

func TestRunExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
		signal string
	}{
		{"exit 0", 0, ""},
		{"exit 7", 7, ""},
		{"kill -KILL $$", 137, "SIGKILL"},
	} {
		var out, errOut bytes.Buffer
		rep, err := Run(context.Background(), opts(&out, &errOut, "sh", "-c", tc.script))
		if err != nil || rep.ExitCode != tc.code || rep.Signal != tc.signal {
			t.Errorf("%q: exit code %d, signal %q, %v; want %d, %q", tc.script, rep.ExitCode, rep.Signal, err, tc.code, tc.signal)
		}
	}
}

func TestRunPassthrough(t *testing.T) {
	var out, errOut bytes.Buffer
	o := opts(&out, &errOut, "sh", "-c", `cat; printf 'to stderr\r\n' >&2; printf 'no newline\000'`)
	o.Stdin = strings.NewReader("line 1\n\x00\xff binary\n")
	rep, err := Run(context.Background(), o)
	if err != nil || rep.ExitCode != 0 {
		t.Fatal(rep, err)
	}
	if want := "line 1\n\x00\xff binary\nno newline\x00"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if want := "to stderr\r\n"; errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
}

func TestRunCommandNotFound(t *testing.T) {
	var out, errOut bytes.Buffer
	_, err := Run(context.Background(), opts(&out, &errOut, "quantkit-no-such-command", "x"))
	if se, ok := errors.AsType[*proc.StartError](err); !ok || se.Code != 127 {
		t.Errorf("%v, want a StartError with code 127", err)
	}
	if _, err := Run(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("no command: %v", err)
	}
}

// readyWriter closes ready once "ready\n" has been written to it.
type readyWriter struct {
	buf   bytes.Buffer
	ready chan struct{}
}

func (w *readyWriter) Write(b []byte) (int, error) {
	n, err := w.buf.Write(b)
	if w.ready != nil && strings.Contains(w.buf.String(), "ready\n") {
		close(w.ready)
		w.ready = nil
	}
	return n, err
}

// trapTERM runs its trap once on SIGTERM and exits 42. (The shell runs a
// trap only when its foreground command ends: hence `sleep & wait`; the
// background job says it is ready, so that the signal does not arrive
// while the shell forks it, when the child can lose it.)
var trapTERM = []string{"sh", "-c", `trap 'echo got TERM; exit 42' TERM; sh -c 'echo ready; exec sleep 5' & wait`}

// A signal passed in is passed on to the command, which runs its trap
// once; the report follows with the command's status.
func TestRunForwardsSignal(t *testing.T) {
	ready := make(chan struct{})
	out := &readyWriter{ready: ready}
	var errOut bytes.Buffer
	sigs := make(chan os.Signal, 1)
	o := Options{Args: trapTERM, Sources: []energy.Source{energy.NewFakeSource("fake").Constant(10)},
		Interval: 10 * time.Millisecond, Stdout: out, Stderr: &errOut, Log: &errOut, Signals: sigs}
	go func() {
		<-ready
		sigs <- syscall.SIGTERM
	}()
	start := time.Now()
	rep, err := Run(context.Background(), o)
	if err != nil || rep.ExitCode != 42 || rep.Signal != "" {
		t.Fatalf("exit code %d, signal %q, %v; want 42", rep.ExitCode, rep.Signal, err)
	}
	if n := strings.Count(out.buf.String(), "got TERM"); n != 1 {
		t.Errorf("the trap ran %d times:\n%s", n, out.buf.String())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: the background sleep was not signalled", d)
	}
	if len(rep.Sources) != 1 || rep.Sources[0].Samples < 2 {
		t.Errorf("no report after the signal: %+v", rep.Sources)
	}
}

// Cancelling the context is a SIGTERM to the command: its trap runs once,
// and the report follows.
func TestRunCancel(t *testing.T) {
	ready := make(chan struct{})
	out := &readyWriter{ready: ready}
	var errOut bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-ready
		cancel()
	}()
	o := Options{Args: trapTERM, Interval: 10 * time.Millisecond, Stdout: out, Stderr: &errOut, Log: &errOut,
		Signals: make(chan os.Signal)}
	rep, err := Run(ctx, o)
	if err != nil || rep.ExitCode != 42 || strings.Count(out.buf.String(), "got TERM") != 1 {
		t.Errorf("exit code %d, %v, output %q; want 42 after one trap", rep.ExitCode, err, out.buf.String())
	}
}

// A command that ignores the SIGTERM passed on is killed, with what it
// started, KillAfter later.
func TestRunSIGTERMEscalates(t *testing.T) {
	ready := make(chan struct{})
	out := &readyWriter{ready: ready}
	var errOut, log bytes.Buffer // apart: the command's stderr is copied while Run logs
	sigs := make(chan os.Signal, 1)
	o := Options{
		Args:     []string{"sh", "-c", `trap '' TERM; sleep 30 & echo "$$ $!"; echo ready; wait`},
		Interval: 10 * time.Millisecond, KillAfter: 300 * time.Millisecond,
		Stdout: out, Stderr: &errOut, Log: &log, Signals: sigs,
	}
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		rep, err := Run(context.Background(), o)
		done <- result{rep, err}
	}()
	<-ready
	var shell, sleep int
	fmt.Sscanf(out.buf.String(), "%d %d", &shell, &sleep)
	sigs <- syscall.SIGTERM
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(shell, syscall.SIGKILL)
		syscall.Kill(sleep, syscall.SIGKILL)
		t.Fatal("the command still runs 5 s after SIGTERM")
	}
	if r.err != nil || r.rep.ExitCode != 137 || r.rep.Signal != "SIGKILL" {
		t.Errorf("exit code %d, signal %q, %v; want 137, SIGKILL", r.rep.ExitCode, r.rep.Signal, r.err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	if !strings.Contains(log.String(), "still running 300ms after SIGTERM: killing it") {
		t.Errorf("the log does not say why:\n%s", log.String())
	}
	proctest.WaitGone(t, []int{sleep}, 2*time.Second)
}

// The report's numbers for sources that draw constant power: one with a
// counter, one with power only; and the curves beside them.
func TestRunEnergy(t *testing.T) {
	counter := energy.NewFakeSource("gpu:0 fake").Constant(100)
	counter.StateV = energy.State{MemoryUsed: 3 << 30, UtilPct: 80, SMClockMHz: 1980}
	sampled := energy.NewFakeSource("cpu fake")
	sampled.PowerFn = func(time.Duration) (float64, error) { return 50, nil }
	var out, errOut bytes.Buffer
	o := opts(&out, &errOut, "sh", "-c", "sleep 0.1; exit 3")
	o.Sources, o.Idle, o.Unavailable = []energy.Source{counter, sampled}, 50*time.Millisecond, []string{"no GPU (test)"}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode != 3 || rep.Seconds < 0.1 || !slices.Equal(rep.Command, o.Args) ||
		!slices.Equal(rep.Unavailable, o.Unavailable) {
		t.Errorf("report: %+v", rep)
	}
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %g, want %g ± %g", what, got, want, tol)
		}
	}
	c, s := rep.Sources[0], rep.Sources[1]
	if c.Method != energy.Counter || s.Method != energy.Sampled || !strings.Contains(s.Note, "no energy counter") {
		t.Errorf("methods %q, %q (note %q)", c.Method, s.Method, s.Note)
	}
	near("counter energy", c.EnergyJ, 100*c.Seconds, 0.5)
	near("counter window", c.Seconds, rep.Seconds, 0.05)
	near("Wh", c.EnergyWh, c.EnergyJ/3600, 1e-9)
	near("sampled energy", s.EnergyJ, 50*s.Seconds, 1e-6)
	near("counter avg power", c.AvgPowerW, 100, 2)
	near("sampled avg power", s.AvgPowerW, 50, 1e-6)
	near("peak power", c.PeakPowerW, 100, 1e-9)
	if c.IdleW == nil || c.NetEnergyJ == nil || s.IdleW == nil || s.NetEnergyJ == nil {
		t.Fatal("idle power not reported")
	}
	near("idle power", *c.IdleW, 100, 2)
	near("net energy", *c.NetEnergyJ, 0, 0.05*c.EnergyJ)
	near("sampled idle power", *s.IdleW, 50, 1e-6)
	if c.PeakMemoryBytes != 3<<30 || c.MeanUtilPct != 80 || c.Samples < 5 {
		t.Errorf("peak memory %d, util %g, %d samples", c.PeakMemoryBytes, c.MeanUtilPct, c.Samples)
	}
	if len(rep.Curves) != 2 {
		t.Fatalf("%d curves for 2 sources", len(rep.Curves))
	}
	for i, cv := range rep.Curves {
		if cv.Source != rep.Sources[i].Name || len(cv.Samples) != rep.Sources[i].Samples || cv.Offset > 0 ||
			cv.Offset < -time.Second {
			t.Errorf("curve %d: %s, %d samples from %v; source %s, %d samples", i, cv.Source, len(cv.Samples),
				cv.Offset, rep.Sources[i].Name, rep.Sources[i].Samples)
		}
	}
	last := rep.Curves[0].Samples[len(rep.Curves[0].Samples)-1]
	// The command's window is what the report measured (Started is
	// stamped once the process runs, so a loaded machine can measure
	// sleep 0.1 as a little less): the sampling must cover it.
	if end := (rep.Curves[0].Offset + last.T).Seconds(); end < rep.Seconds || rep.Seconds < 0.05 {
		t.Errorf("last sample at %g s from the start, want after the command's end at %g s", end, rep.Seconds)
	}
}

// The JSON report's schema: what scripts read.
func TestReportJSON(t *testing.T) {
	idle, net := 1.0, 2.0
	b, err := json.Marshal(Report{Command: []string{"x"}, Unavailable: []string{"u"}, Curves: []Curve{{Source: "s"}},
		Sources: []SourceReport{{Name: "s", IdleW: &idle, NetEnergyJ: &net}}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if got, want := keys(m), []string{"command", "exit_code", "seconds", "signal", "sources", "started", "unavailable"}; !slices.Equal(got, want) {
		t.Errorf("report keys %q, want %q", got, want)
	}
	src := m["sources"].([]any)[0].(map[string]any)
	if got, want := keys(src), []string{"avg_power_w", "energy_j", "energy_wh", "idle_w", "mean_util_pct", "method", "name",
		"net_energy_j", "peak_memory_bytes", "peak_power_w", "samples", "seconds"}; !slices.Equal(got, want) {
		t.Errorf("source keys %q, want %q", got, want)
	}
}

// report picks the counter when it is usable, else the sampled curve, and
// subtracts idle power.
func TestSourceReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	curve := []energy.Sample{
		{T: 0, PowerW: 100, State: energy.State{MemoryUsed: 5, UtilPct: 10}},
		{T: time.Second, PowerW: 300, State: energy.State{MemoryUsed: 9, UtilPct: 90}},
		{T: 1500 * time.Millisecond, NoPower: true},
		{T: 2 * time.Second, PowerW: 100, State: energy.State{MemoryUsed: 7, UtilPct: 50}},
	}
	run := func(e0, e1 float64, err error, wrap float64, idle error) SourceReport {
		src := energy.NewFakeSource("s")
		src.Wrap = wrap
		r := &sourceRun{src: src, idleW: 40, idleErr: idle, e0: e0, e1: e1, err0: err, err1: err,
			t0: t0, t1: t0.Add(2 * time.Second), samples: curve}
		return r.report()
	}
	c := run(1000, 1500, nil, 0, nil)
	if c.Method != energy.Counter || c.EnergyJ != 500 || c.Seconds != 2 || c.AvgPowerW != 250 || c.Note != "" {
		t.Errorf("counter: %+v", c)
	}
	if *c.IdleW != 40 || *c.NetEnergyJ != 500-80 || c.PeakPowerW != 300 || c.PeakMemoryBytes != 9 ||
		c.MeanUtilPct != 37.5 || c.Samples != 4 {
		t.Errorf("counter: %+v", c)
	}
	if w := run(900, 100, nil, 1000, nil); w.Method != energy.Counter || w.EnergyJ != 200 {
		t.Errorf("wrapped counter: %+v", w)
	}
	// Integrate: 1 s at (100+300)/2, then 1 s at (300+100)/2.
	r := run(1500, 10, nil, 0, errIdleOff)
	if r.Method != energy.Sampled || r.EnergyJ != 400 || r.Seconds != 2 || !strings.Contains(r.Note, "reset") ||
		r.IdleW != nil || r.NetEnergyJ != nil {
		t.Errorf("reset counter: %+v", r)
	}
	n := run(0, 0, energy.ErrNotSupported, 0, errors.New("energy: idle power of s: boom"))
	if n.Method != energy.Sampled || !strings.Contains(n.Note, "no energy counter") ||
		!strings.Contains(n.Note, "; idle power of s: boom") || n.IdleW != nil {
		t.Errorf("no counter: %+v", n)
	}
	none := (&sourceRun{src: energy.NewFakeSource("s"), idleErr: errIdleOff, err0: energy.ErrNotSupported,
		err1: energy.ErrNotSupported, samples: []energy.Sample{{NoPower: true}, {NoPower: true}}}).report()
	if none.Method != MethodNone || none.EnergyJ != 0 || none.AvgPowerW != 0 {
		t.Errorf("no counter, no power: %+v", none)
	}
}

// WriteCSV: the header, then one row per sample and source, t counting
// from the command's start.
func TestWriteCSV(t *testing.T) {
	curves := []Curve{{
		Source: "gpu:0 fake",
		Offset: -20 * time.Millisecond,
		Samples: []energy.Sample{
			{T: 0, PowerW: 100, State: energy.State{SMClockMHz: 1980, MemClockMHz: 2619, TemperatureC: 61,
				MemoryUsed: 1 << 30, UtilPct: 97, Throttle: []string{"sw_power_cap", "hw_slowdown"}}},
			{T: 120 * time.Millisecond, NoPower: true},
		},
	}, {
		Source:  "cpu fake, with a comma",
		Samples: []energy.Sample{{T: 1500 * time.Millisecond, PowerW: 20.25}},
	}}
	var b bytes.Buffer
	if err := WriteCSV(&b, curves); err != nil {
		t.Fatal(err)
	}
	want := "source,t_seconds,power_w,sm_clock_mhz,mem_clock_mhz,temperature_c,memory_used_bytes,util_pct,throttle\n" +
		"gpu:0 fake,-0.0200,100.000,1980,2619,61,1073741824,97,sw_power_cap|hw_slowdown\n" +
		"gpu:0 fake,0.1000,,0,0,0,0,0,\n" +
		"\"cpu fake, with a comma\",1.5000,20.250,0,0,0,0,0,\n"
	if b.String() != want {
		t.Errorf("CSV\n%s\nwant\n%s", b.String(), want)
	}
}
