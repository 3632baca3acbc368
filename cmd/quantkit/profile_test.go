package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/quantkit/quantkit/energy/profile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/proc/proctest"
)

// The profile job's own tests (energy, signals, the CSV's rows) are in
// energy/profile; these are the command line's: flags, exit status,
// rendering, side files.

// runProfileCLI runs `quantkit profile args...` with the command's stdout
// and quantkit's stderr kept apart, and sources replaced by srcs.
func runProfileCLI(t *testing.T, srcs []energy.Source, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	old := openEnergySources
	openEnergySources = func(string) ([]energy.Source, func(), []string, error) {
		return srcs, func() {}, []string{"no NVIDIA GPU found (test)"}, nil
	}
	defer func() { openEnergySources = old }()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Reader, app.Writer, app.ErrWriter = strings.NewReader(""), &out, &errOut
	err = app.Run(append([]string{"quantkit", "profile"}, args...))
	return out.String(), errOut.String(), err
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
	_, _, err = runProfileCLI(t, nil, "--idle", "0", "--", "quantkit-no-such-command")
	st, ok := errors.AsType[*exitStatus](err)
	if !ok || st.Code != 127 || !strings.Contains(err.Error(), "quantkit-no-such-command") {
		t.Errorf("no such command: %v, want exit status 127 naming the command", err)
	}
}

func TestProfileUsage(t *testing.T) {
	_, _, err := runProfileCLI(t, nil)
	if err == nil || !strings.Contains(err.Error(), "no command") || !strings.Contains(err.Error(), "usage:") {
		t.Errorf("no command: %v", err)
	}
	for _, args := range [][]string{{"--interval", "0", "true"}, {"--idle", "-1s", "true"},
		{"--csv", "/no/such/dir/x.csv", "true"}, {"--json-out", "/no/such/dir/x.json", "true"},
		{"--kill-after", "0", "true"}} {
		if _, _, err := runProfileCLI(t, nil, args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	out, err := run(t, "profile", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--gpu", "--idle", "--csv", "--json-out", "--kill-after", "counter", "sampled-power",
		"idle power", "SIGTERM", "SIGKILL", "127"} {
		if !strings.Contains(out, want) {
			t.Errorf("profile --help does not mention %q:\n%s", want, out)
		}
	}
}

// --gpu's errors name the flag.
func TestProfileGPUFlag(t *testing.T) {
	_, _, err := run2(t, "profile", "--gpu", "x", "--idle", "0", "true")
	if err == nil || !strings.Contains(err.Error(), "profile: --gpu: ") || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("--gpu x: %v", err)
	}
}

// run2 is run with stdout and stderr apart.
func run2(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Reader, app.Writer, app.ErrWriter = strings.NewReader(""), &out, &errOut
	err = app.Run(append([]string{"quantkit"}, args...))
	return out.String(), errOut.String(), err
}

// --json prints the report on stdout after the command's own output, in
// place of the table; the missing sources are named on stderr.
func TestProfileJSON(t *testing.T) {
	src := energy.NewFakeSource("gpu:0 fake").Constant(100)
	stdout, stderr, err := runProfileCLI(t, []energy.Source{src},
		"--idle", "0", "--interval", "10ms", "--json", "--", "sh", "-c", "echo hi; exit 3")
	if st, ok := errors.AsType[*exitStatus](err); !ok || st.Code != 3 {
		t.Fatalf("error %v, want exit status 3; stderr:\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "profile: no NVIDIA GPU found (test)") || strings.Contains(stderr, "exit status 3") {
		t.Errorf("stderr: want the missing sources, no table:\n%s", stderr)
	}
	js, ok := strings.CutPrefix(stdout, "hi\n")
	if !ok {
		t.Fatalf("stdout does not start with the command's output:\n%s", stdout)
	}
	var rep profile.Report
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, js)
	}
	if rep.ExitCode != 3 || len(rep.Sources) != 1 || rep.Sources[0].Name != "gpu:0 fake" ||
		!slices.Equal(rep.Unavailable, []string{"no NVIDIA GPU found (test)"}) {
		t.Errorf("report %+v", rep)
	}
}

// --json-out writes the report to a file while the table goes to stderr.
func TestProfileJSONOut(t *testing.T) {
	src := energy.NewFakeSource("gpu:0 fake").Constant(100)
	path := filepath.Join(t.TempDir(), "r.json")
	stdout, stderr, err := runProfileCLI(t, []energy.Source{src},
		"--idle", "0", "--interval", "10ms", "--json-out", path, "--", "echo", "hi")
	if err != nil || stdout != "hi\n" || !strings.Contains(stderr, "profile: echo hi: exit status 0") {
		t.Fatalf("%v; stdout %q; stderr:\n%s", err, stdout, stderr)
	}
	b, err := os.ReadFile(path)
	var rep profile.Report
	if err != nil || json.Unmarshal(b, &rep) != nil || len(rep.Sources) != 1 || rep.Sources[0].Samples < 1 {
		t.Errorf("--json-out wrote %q (%v)", b, err)
	}
}

// --csv writes the curve of every source measured.
func TestProfileCSV(t *testing.T) {
	a := energy.NewFakeSource("gpu:0 fake").Constant(100)
	b := energy.NewFakeSource("cpu fake, with a comma").Constant(20)
	path := filepath.Join(t.TempDir(), "curve.csv")
	stdout, stderr, err := runProfileCLI(t, []energy.Source{a, b},
		"--idle", "0", "--interval", "10ms", "--csv", path, "--json", "sleep", "0.1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep profile.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
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
	if !slices.Equal(rows[0], profile.CSVHeader) {
		t.Errorf("header %q", rows[0])
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
}

// A bad --csv or --json-out is refused before the command runs.
func TestProfileOutputsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	isDir := filepath.Join(dir, "curve.csv")
	if err := os.Mkdir(isDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, path, want string }{
		{"--csv", "/nonexistent/x.csv", "--csv /nonexistent/x.csv: directory /nonexistent does not exist"},
		{"--csv", filepath.Join(dir, "curve.png"), "want a .csv file"},
		{"--csv", isDir, "is a directory"},
		{"--json-out", filepath.Join(dir, "r.txt"), "--json-out " + filepath.Join(dir, "r.txt") + ": want a .json file"},
		{"--json-out", "/nonexistent/r.json", "directory /nonexistent does not exist"},
	} {
		_, _, err := runProfileCLI(t, nil, "--idle", "0", tc.flag, tc.path, "--", "touch", ran)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s %s: error %v, want bad input saying %q", tc.flag, tc.path, err, tc.want)
		}
		if _, err := os.Stat(ran); err == nil {
			t.Fatalf("%s %s: the command ran", tc.flag, tc.path)
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
	var rep profile.Report
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
	for deadline := time.Now().Add(10 * time.Second); len(pids) < proctest.TreeLines; time.Sleep(10 * time.Millisecond) {
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
		starts[i] = proctest.StartTime(pid)
	}
	t.Cleanup(func() {
		for i, pid := range pids {
			if proctest.StartTime(pid) == starts[i] {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	cmd.Process.Kill()
	cmd.Wait()
	proctest.WaitGone(t, pids, 5*time.Second)
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
