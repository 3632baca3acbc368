package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/proc"
	"github.com/quantkit/quantkit/internal/proc/proctest"
)

// runProfileCLI runs `quantkit profile args...` with the command's stdout
// and quantkit's stderr kept apart, and sources replaced by srcs.
func runProfileCLI(t *testing.T, srcs []energy.Source, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	old := openProfileSources
	openProfileSources = func(string) ([]energy.Source, func(), []string, error) {
		return srcs, func() {}, []string{"no NVIDIA GPU found (test)"}, nil
	}
	defer func() { openProfileSources = old }()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Reader, app.Writer, app.ErrWriter = strings.NewReader(""), &out, &errOut
	err = app.Run(append([]string{"quantkit", "profile"}, args...))
	return out.String(), errOut.String(), err
}

// job is a profileJob without sources or idle measurement, writing to
// stdout and stderr.
func job(stdout, stderr *bytes.Buffer, args ...string) profileJob {
	return profileJob{Args: args, Interval: 10 * time.Millisecond, Stdout: stdout, Stderr: stderr, Log: stderr}
}

func TestProfileExitStatus(t *testing.T) {
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
		rep, _, err := profile(job(&out, &errOut, "sh", "-c", tc.script))
		if err != nil || rep.ExitCode != tc.code || rep.Signal != tc.signal {
			t.Errorf("%q: exit code %d, signal %q, %v; want %d, %q", tc.script, rep.ExitCode, rep.Signal, err, tc.code, tc.signal)
		}
		var table bytes.Buffer
		writeProfileTable(&table, rep)
		if tc.signal != "" && !strings.Contains(table.String(), "killed by "+tc.signal) {
			t.Errorf("%q: the table does not name the signal:\n%s", tc.script, table.String())
		}
	}
}

// The CLI exits with the command's status (through exitStatus, which main
// turns into the exit code without a message of its own).
func TestProfileCLIExitStatus(t *testing.T) {
	_, stderr, err := runProfileCLI(t, nil, "--idle", "0", "--", "sh", "-c", "kill -KILL $$")
	if st, ok := errors.AsType[*exitStatus](err); !ok || st.Code != 137 || st.Err != nil {
		t.Fatalf("error %#v, want exitStatus 137", err)
	}
	if !strings.Contains(stderr, "killed by SIGKILL (exit status 137)") {
		t.Errorf("stderr:\n%s", stderr)
	}
	_, _, err = runProfileCLI(t, nil, "--idle", "0", "true")
	if err != nil {
		t.Errorf("true: %v", err)
	}
}

func TestProfilePassthrough(t *testing.T) {
	var out, errOut bytes.Buffer
	j := job(&out, &errOut, "sh", "-c", `cat; printf 'to stderr\r\n' >&2; printf 'no newline\000'`)
	j.Stdin = strings.NewReader("line 1\n\x00\xff binary\n")
	rep, _, err := profile(j)
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

// A signal quantkit receives is passed on to the command, which runs its
// trap once; the report follows with the command's status. (The shell runs
// a trap only when its foreground command ends: hence `sleep & wait`; the
// background job says it is ready, so that the signal does not arrive
// while the shell forks it, when the child can lose it.)
func TestProfileForwardsSignal(t *testing.T) {
	ready := make(chan struct{})
	out := &readyWriter{ready: ready}
	var errOut bytes.Buffer
	sigs := make(chan os.Signal, 1)
	j := profileJob{
		Args:     []string{"sh", "-c", `trap 'echo got TERM; exit 42' TERM; sh -c 'echo ready; exec sleep 5' & wait`},
		Sources:  []energy.Source{energy.NewFakeSource("fake").Constant(10)},
		Interval: 10 * time.Millisecond, Stdout: out, Stderr: &errOut, Log: &errOut, Signals: sigs,
	}
	go func() {
		<-ready
		sigs <- syscall.SIGTERM
	}()
	start := time.Now()
	rep, _, err := profile(j)
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

func TestProfileCommandNotFound(t *testing.T) {
	var out, errOut bytes.Buffer
	_, _, err := profile(job(&out, &errOut, "quantkit-no-such-command", "x"))
	if se, ok := errors.AsType[*proc.StartError](err); !ok || se.Code != 127 {
		t.Errorf("core: %v, want a StartError with code 127", err)
	}
	_, _, err = runProfileCLI(t, nil, "--idle", "0", "--", "quantkit-no-such-command")
	st, ok := errors.AsType[*exitStatus](err)
	if !ok || st.Code != 127 || !strings.Contains(err.Error(), "quantkit-no-such-command") {
		t.Errorf("CLI: %v, want exit status 127 naming the command", err)
	}
}

func TestProfileUsage(t *testing.T) {
	_, _, err := runProfileCLI(t, nil)
	if err == nil || !strings.Contains(err.Error(), "no command") || !strings.Contains(err.Error(), "usage:") {
		t.Errorf("no command: %v", err)
	}
	for _, args := range [][]string{{"--interval", "0", "true"}, {"--idle", "-1s", "true"},
		{"--csv", "/no/such/dir/x.csv", "true"}, {"--kill-after", "0", "true"}} {
		if _, _, err := runProfileCLI(t, nil, args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	out, err := run(t, "profile", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--gpu", "--idle", "--csv", "--kill-after", "counter", "sampled-power", "idle power",
		"SIGTERM", "SIGKILL", "127"} {
		if !strings.Contains(out, want) {
			t.Errorf("profile --help does not mention %q:\n%s", want, out)
		}
	}
}

func TestProfileOpenSourcesWithoutGPU(t *testing.T) {
	srcs, closeFn, unavailable, err := openProfileSources("none")
	defer closeFn()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if strings.HasPrefix(s.Name(), "gpu:") {
			t.Errorf("--gpu none opened %s", s.Name())
		}
	}
	if len(srcs) == 0 && len(unavailable) == 0 {
		t.Error("no source and no reason why")
	}
	if _, _, _, err := openProfileSources("x"); err == nil {
		t.Error("--gpu x accepted")
	}
}

// The JSON report's schema, and its numbers for sources that draw constant
// power: one with a counter, one with power only.
func TestProfileJSON(t *testing.T) {
	counter := energy.NewFakeSource("gpu:0 fake").Constant(100)
	counter.StateV = energy.State{MemoryUsed: 3 << 30, UtilPct: 80, SMClockMHz: 1980}
	sampled := energy.NewFakeSource("cpu fake")
	sampled.PowerFn = func(time.Duration) (float64, error) { return 50, nil }

	stdout, stderr, err := runProfileCLI(t, []energy.Source{counter, sampled},
		"--idle", "50ms", "--interval", "10ms", "--json", "--", "sh", "-c", "echo hi; sleep 0.1; exit 3")
	if st, ok := errors.AsType[*exitStatus](err); !ok || st.Code != 3 {
		t.Fatalf("error %v, want exit status 3; stderr:\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "profile: no NVIDIA GPU found (test)") {
		t.Errorf("stderr does not say which sources are missing:\n%s", stderr)
	}
	js, ok := strings.CutPrefix(stdout, "hi\n")
	if !ok {
		t.Fatalf("stdout does not start with the command's output:\n%s", stdout)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("%v:\n%s", err, js)
	}
	for _, k := range []string{"command", "exit_code", "signal", "started", "seconds", "sources", "unavailable"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	srcs, _ := m["sources"].([]any)
	if len(srcs) != 2 {
		t.Fatalf("sources: %v", m["sources"])
	}
	for _, s := range srcs {
		sm := s.(map[string]any)
		for _, k := range []string{"name", "method", "seconds", "energy_j", "energy_wh", "idle_w", "net_energy_j",
			"avg_power_w", "peak_power_w", "peak_memory_bytes", "mean_util_pct", "samples"} {
			if _, ok := sm[k]; !ok {
				t.Errorf("%v lacks %q", sm["name"], k)
			}
		}
	}

	var rep ProfileReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode != 3 || rep.Seconds < 0.1 || !slices.Equal(rep.Command, []string{"sh", "-c", "echo hi; sleep 0.1; exit 3"}) {
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
}

// --csv writes the header, then one row per sample and source.
func TestProfileCSV(t *testing.T) {
	a := energy.NewFakeSource("gpu:0 fake").Constant(100)
	a.StateV = energy.State{SMClockMHz: 1980, MemClockMHz: 2619, TemperatureC: 61, MemoryUsed: 1 << 30, UtilPct: 97,
		Throttle: []string{"sw_power_cap", "hw_slowdown"}}
	b := energy.NewFakeSource("cpu fake, with a comma").Constant(20)
	path := filepath.Join(t.TempDir(), "curve.csv")
	stdout, stderr, err := runProfileCLI(t, []energy.Source{a, b},
		"--idle", "0", "--interval", "10ms", "--csv", path, "--json", "sleep", "0.1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep ProfileReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Sources[0].IdleW != nil || rep.Sources[0].NetEnergyJ != nil {
		t.Error("--idle 0 reported idle power")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := "source,t_seconds,power_w,sm_clock_mhz,mem_clock_mhz,temperature_c,memory_used_bytes,util_pct,throttle"
	if got := strings.Join(rows[0], ","); got != want {
		t.Errorf("header %s\nwant   %s", got, want)
	}
	perSource := map[string]int{}
	for _, r := range rows[1:] {
		perSource[r[0]]++
	}
	for _, s := range rep.Sources {
		if s.Samples < 5 || perSource[s.Name] != s.Samples {
			t.Errorf("%s: %d rows for %d samples", s.Name, perSource[s.Name], s.Samples)
		}
	}
	first := rows[1]
	if want := []string{"gpu:0 fake", first[1], "100.000", "1980", "2619", "61", "1073741824", "97",
		"sw_power_cap|hw_slowdown"}; !slices.Equal(first, want) {
		t.Errorf("first row %q, want %q", first, want)
	}
	if t0, err := strconv.ParseFloat(first[1], 64); err != nil || t0 > 0.001 || t0 < -0.5 {
		t.Errorf("first sample at t = %s, want just before the start", first[1])
	}
	last := rows[perSource["gpu:0 fake"]]
	if t1, err := strconv.ParseFloat(last[1], 64); err != nil || t1 < 0.1 {
		t.Errorf("last sample at t = %s, want after the command's 0.1 s", last[1])
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
	if none.Method != methodNone || none.EnergyJ != 0 || none.AvgPowerW != 0 {
		t.Errorf("no counter, no power: %+v", none)
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"python", "train.py", "--lr=3e-4", "a b", "it's", ""})
	if want := `python train.py --lr=3e-4 'a b' 'it'\''s' ''`; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

// A bad --csv is refused before the command runs.
func TestProfileCSVCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	isDir := filepath.Join(dir, "curve.csv")
	if err := os.Mkdir(isDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/nonexistent/x.csv", "--csv /nonexistent/x.csv: directory /nonexistent does not exist"},
		{filepath.Join(dir, "curve.png"), "want a .csv file"},
		{isDir, "is a directory"},
	} {
		_, _, err := runProfileCLI(t, nil, "--idle", "0", "--csv", tc.path, "--", "touch", ran)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errBadInput) {
			t.Errorf("--csv %s: error %v, want bad input saying %q", tc.path, err, tc.want)
		}
		if _, err := os.Stat(ran); err == nil {
			t.Fatalf("--csv %s: the command ran", tc.path)
		}
	}
}

// A --csv that fails at the end (the command removed its directory) costs
// neither the report nor the exit status: quantkit prints the report, then
// fails naming --csv.
func TestProfileReportKeptWhenCSVFails(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(gone, "curve.csv")
	src := energy.NewFakeSource("fake").Constant(10)
	stdout, _, err := runProfileCLI(t, []energy.Source{src}, "--idle", "0", "--interval", "10ms", "--csv", csvPath,
		"--json", "--", "rmdir", gone)
	st, ok := errors.AsType[*exitStatus](err)
	if !ok || st.Code != 1 || !strings.Contains(err.Error(), "--csv: ") || !strings.Contains(err.Error(), csvPath) {
		t.Fatalf("error %v, want exit status 1 naming --csv", err)
	}
	var rep ProfileReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.ExitCode != 0 || len(rep.Sources) != 1 {
		t.Errorf("report lost (%v):\n%s", err, stdout)
	}
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := runProfileCLI(t, nil, "--idle", "0", "--csv", csvPath, "--", "sh", "-c", `rmdir "$0"; exit 5`, gone)
	if st, ok := errors.AsType[*exitStatus](err); !ok || st.Code != 5 || !strings.Contains(stderr, "exit status 5") ||
		!strings.Contains(err.Error(), "--csv: ") {
		t.Errorf("error %v, want the command's status 5, and the table:\n%s", err, stderr)
	}
}

// A command that ignores the SIGTERM quantkit passes on is killed, with
// what it started, --kill-after later.
func TestProfileSIGTERMEscalates(t *testing.T) {
	ready := make(chan struct{})
	out := &readyWriter{ready: ready}
	var errOut, log bytes.Buffer // apart: the command's stderr is copied while profile logs
	sigs := make(chan os.Signal, 1)
	j := profileJob{
		Args:     []string{"sh", "-c", `trap '' TERM; sleep 30 & echo "$$ $!"; echo ready; wait`},
		Interval: 10 * time.Millisecond, KillAfter: 300 * time.Millisecond,
		Stdout: out, Stderr: &errOut, Log: &log, Signals: sigs,
	}
	type result struct {
		rep ProfileReport
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		rep, _, err := profile(j)
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
	waitGone(t, []int{sleep}, 2*time.Second)
}

// procStart is the start time of process pid (field 22 of /proc/PID/stat,
// in clock ticks after boot), which with pid names one process; 0 when it
// has exited (a zombie counts as exited).
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// waitGone fails the test unless every process in pids exits within d.
func waitGone(t *testing.T, pids []int, d time.Duration) {
	t.Helper()
	starts := make([]uint64, len(pids))
	for i, pid := range pids {
		starts[i] = procStart(pid)
	}
	deadline := time.Now().Add(d)
	for {
		var left []string
		for i, pid := range pids {
			if s := procStart(pid); s != 0 && s == starts[i] {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				left = append(left, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for i, pid := range pids {
				if procStart(pid) == starts[i] {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			t.Fatalf("still running %v later: %s", d, strings.Join(left, ", "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SIGKILL of quantkit (this test binary, re-run as `quantkit profile`)
// ends the profiled command's whole tree within --kill-after and a little.
func TestProfileTreeDiesWithQuantkit(t *testing.T) {
	if os.Getenv("QUANTKIT_PROFILE_TREE") != "" {
		return // the child below runs TestProfileTreeChild instead
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pids")
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestProfileTreeChild$", "-test.v")
	cmd.Env = append(os.Environ(), "QUANTKIT_PROFILE_TREE="+pidFile)
	cmd.Stdout, cmd.Stderr = log, log // files: nothing waits for the tree to close them
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); len(pids) < 5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("the tree did not start:\n%s", out)
		}
		b, _ := os.ReadFile(pidFile)
		pids = pids[:0]
		for _, l := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(l); err == nil {
				pids = append(pids, pid)
			} else {
				pids = append(pids, 0) // no setsid
			}
		}
	}
	pids = slices.DeleteFunc(pids, func(pid int) bool { return pid == 0 })
	// The shell's parent, when it is not quantkit: the supervisor, which
	// must go too.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pids[0])); err == nil {
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid != cmd.Process.Pid && ppid > 1 {
				pids = append(pids, ppid)
			}
		}
	}
	starts := make([]uint64, len(pids))
	for i, pid := range pids {
		starts[i] = procStart(pid)
	}
	t.Cleanup(func() {
		for i, pid := range pids {
			if procStart(pid) == starts[i] {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	cmd.Process.Kill()
	cmd.Wait()
	waitGone(t, pids, 5*time.Second)
}

func TestProfileTreeChild(t *testing.T) {
	pidFile := os.Getenv("QUANTKIT_PROFILE_TREE")
	if pidFile == "" {
		t.Skip("run by TestProfileTreeDiesWithQuantkit")
	}
	_, stderr, err := runProfileCLI(t, nil, "--idle", "0", "--kill-after", "500ms", "--",
		"sh", "-c", proctest.TreeScript, "sh", pidFile)
	t.Fatalf("profile returned (%v) before being killed:\n%s", err, stderr)
}
