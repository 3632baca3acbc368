package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quantkit/quantkit/internal/proc/proctest"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a supervisor process for the tests that need
// one of their own (a new session with a terminal, or one to kill).
const helperEnv = "PROC_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "terminal":
		helperTerminal()
	case "orphan":
		helperOrphan()
	case "tree":
		helperTree()
	}
	os.Exit(0)
}

func mustStart(t *testing.T, opt Options, args ...string) *Process {
	t.Helper()
	p, err := Start(args, opt)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
		sig    string
	}{
		{"exit 0", 0, ""},
		{"exit 7", 7, ""},
		{"kill -KILL $$", 137, "SIGKILL"},
		{"kill -TERM $$", 143, "SIGTERM"},
	} {
		p := mustStart(t, Options{}, "sh", "-c", tc.script)
		st, err := p.Wait()
		if err != nil || st.Code != tc.code || st.SignalName() != tc.sig {
			t.Errorf("%q: status %v (code %d, signal %q), %v; want code %d, signal %q",
				tc.script, st, st.Code, st.SignalName(), err, tc.code, tc.sig)
		}
		if st.End.Before(st.Start) || st.Start.IsZero() {
			t.Errorf("%q: start %v, end %v", tc.script, st.Start, st.End)
		}
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		code int
	}{
		{"quantkit-no-such-command", 127},
		{filepath.Join(dir, "missing"), 127},
		{notExec, 126},
	} {
		_, err := Start([]string{tc.name}, Options{})
		var se *StartError
		if !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: %v; want a StartError with code %d naming it", tc.name, err, tc.code)
		}
		_, err = LookPath(tc.name)
		if !errors.As(err, &se) || se.Code != tc.code {
			t.Errorf("LookPath(%s): %v; want code %d", tc.name, err, tc.code)
		}
	}
}

func TestPassthrough(t *testing.T) {
	var out, errOut bytes.Buffer
	p := mustStart(t, Options{Stdin: strings.NewReader("in\x00put\n"), Stdout: &out, Stderr: &errOut},
		"sh", "-c", `cat; printf 'to stderr\r\n' >&2`)
	if st, err := p.Wait(); err != nil || st.Code != 0 {
		t.Fatal(st, err)
	}
	if out.String() != "in\x00put\n" || errOut.String() != "to stderr\r\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
	}
}

// readyWriter closes ready the first time "ready\n" has been written. (It
// does not embed bytes.Buffer, whose ReadFrom io.Copy would use instead of
// Write.)
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

func (w *readyWriter) String() string { return w.buf.String() }

// A signal reaches the whole group: the shell runs its trap, and the
// background sleep dies too instead of holding the output pipe for 5 s.
// (The background job says it is ready, not the shell: a signal that
// arrives while the shell is forking it can be lost in the child before it
// drops the shell's trap, and the sleep would then survive it.)
func TestSignalGroup(t *testing.T) {
	ready := make(chan struct{})
	out := &readyWriter{ready: ready}
	p := mustStart(t, Options{Stdout: out},
		"sh", "-c", `trap 'echo got TERM; exit 42' TERM; sh -c 'echo ready; exec sleep 5' & wait`)
	<-ready
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil || st.Code != 42 || st.Signal != 0 {
		t.Fatalf("status %v, %v; want exit status 42", st, err)
	}
	if got := strings.Count(out.String(), "got TERM"); got != 1 {
		t.Errorf("the trap ran %d times:\n%s", got, out.String())
	}
	if d := st.Duration(); d > 3*time.Second {
		t.Errorf("took %v: the group's sleep was not signalled", d)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrExited) {
		t.Errorf("Signal after exit: %v, want ErrExited", err)
	}
}

// Exited closes when the command exits, before a process it left behind
// closes the output pipe; Wait still collects that output.
func TestExitedBeforeOutputDrained(t *testing.T) {
	var out bytes.Buffer
	p := mustStart(t, Options{Stdout: &out}, "sh", "-c", `(sleep 0.3; echo late) & exit 3`)
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("Exited not closed")
	}
	st, err := p.Wait()
	if err != nil || st.Code != 3 {
		t.Fatal(st, err)
	}
	if d := st.Duration(); d > 250*time.Millisecond {
		t.Errorf("exit seen after %v, want at once", d)
	}
	if out.String() != "late\n" {
		t.Errorf("output %q", out.String())
	}
}

func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0 // gone
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2]
	}
	return '?'
}

func helperOrphan() {
	p, err := Start([]string{"sleep", "30"}, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("pid %d\n", p.Pid())
	p.Wait()
}

// Killing the supervisor kills the command (Pdeathsig).
func TestNoOrphanWhenSupervisorKilled(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=orphan")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if _, err := fmt.Sscanf(line, "pid %d", &pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := procState(pid)
		if st == 0 || st == 'Z' || st == 'X' {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command (pid %d, state %c) outlived its supervisor", pid, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// treeProcs waits until proctest.TreeScript has written every pid to file, and
// returns those processes, the shell first; they are killed when the test
// ends.
func treeProcs(t *testing.T, file string) []procStat {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		lines := strings.Fields(string(b))
		if len(lines) >= proctest.TreeLines {
			var procs []procStat
			for _, l := range lines {
				pid, err := strconv.Atoi(l)
				if err != nil {
					continue // "none"
				}
				st, err := readStat(pid)
				if err != nil {
					t.Fatalf("process %d of the tree: %v", pid, err)
				}
				procs = append(procs, st)
			}
			t.Cleanup(func() {
				for _, p := range procs {
					p.signal(syscall.SIGKILL)
				}
			})
			return procs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tree wrote %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether p is still running: not exited, not a zombie, and
// its pid not taken by another process.
func alive(p procStat) bool {
	st, err := readStat(p.pid)
	return err == nil && st.start == p.start && st.state != 'Z' && st.state != 'X'
}

// assertGone fails the test unless every process in procs has exited
// within d.
func assertGone(t *testing.T, procs []procStat, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var left []string
		for _, p := range procs {
			if alive(p) {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
				left = append(left, fmt.Sprintf("%d (%s)", p.pid, bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running %v later: %s", d, strings.Join(left, ", "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// helperTree supervises proctest.TreeScript with a short KillAfter, writing the
// pids to the file that PROC_TEST_TREE names, and waits to be killed.
func helperTree() {
	p, err := Start([]string{"sh", "-c", proctest.TreeScript, "sh", os.Getenv("PROC_TEST_TREE")},
		Options{KillAfter: 500 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	p.Wait()
}

// Killing the process that started the command (SIGKILL: nothing in it
// runs) ends the command's whole tree: the processes that ignore SIGTERM
// after KillAfter, the orphan and the one that left the session too. The
// supervisor then exits.
func TestNoOrphansWhenStarterKilled(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pids")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=tree", "PROC_TEST_TREE="+file)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	procs := treeProcs(t, file)
	shell := procs[0]
	if sup, err := readStat(shell.ppid); err == nil && sup.ppid == cmd.Process.Pid {
		procs = append(procs, sup)
	} else {
		t.Logf("no supervisor between the helper and the command (%+v, %v)", sup, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	assertGone(t, procs, 5*time.Second)
}

// Kill ends the whole tree at once, SIGTERM ignored or not; the command's
// status says SIGKILL.
func TestKillEndsTree(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pids")
	p := mustStart(t, Options{KillAfter: time.Minute}, "sh", "-c", proctest.TreeScript, "sh", file)
	procs := treeProcs(t, file)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil || st.Signal != syscall.SIGKILL || st.Code != 137 {
		t.Errorf("status %v, %v; want killed by SIGKILL", st, err)
	}
	assertGone(t, procs, 2*time.Second)
}

// The processes the command leaves behind are ended once Wait has
// returned, as they would be when the starter exits: SIGTERM, then SIGKILL
// after KillAfter.
func TestLeftoversEndedAfterWait(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pids")
	p := mustStart(t, Options{KillAfter: 300 * time.Millisecond}, "sh", "-c",
		`sleep 31 & echo $! >> "$1"
		sh -c 'trap "" TERM; echo $$ >> "$0"; exec sleep 32' "$1" &
		while [ "$(wc -l < "$1")" -lt 2 ]; do sleep 0.01; done
		exit 3`, "sh", file)
	st, err := p.Wait()
	if err != nil || st.Code != 3 {
		t.Fatalf("status %v, %v", st, err)
	}
	var procs []procStat
	b, _ := os.ReadFile(file)
	for _, l := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(l)
		if s, err := readStat(pid); err == nil {
			procs = append(procs, s)
		}
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.signal(syscall.SIGKILL)
		}
	})
	assertGone(t, procs, 3*time.Second)
}

// The supervisor shrugs off the signals meant for the job (it sits in a
// process group of its own, but a signal may be sent to it by pid), and
// when it is killed all the same, the command dies with it and Wait says
// so.
func TestSupervisorKilled(t *testing.T) {
	p := mustStart(t, Options{}, "sleep", "30")
	st0, err := readStat(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	sup := st0.ppid
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTSTP} {
		syscall.Kill(sup, sig)
	}
	time.Sleep(50 * time.Millisecond)
	if s := procState(sup); s == 0 || s == 'Z' || s == 'T' {
		t.Fatalf("the supervisor (state %c) did not shrug off the job's signals", s)
	}
	syscall.Kill(sup, syscall.SIGKILL)
	select {
	case <-p.Exited():
	case <-time.After(3 * time.Second):
		t.Fatal("the command outlived its supervisor")
	}
	st, err := p.Wait()
	if err == nil || !strings.Contains(err.Error(), "supervisor") || st.Signal != syscall.SIGKILL {
		t.Errorf("status %v, %v; want SIGKILL and an error about the supervisor", st, err)
	}
	assertGone(t, []procStat{st0}, 2*time.Second)
}

// helperTerminal supervises a shell script on its controlling terminal and
// reports its status and how many SIGINTs the supervisor itself received.
func helperTerminal() {
	ints := make(chan os.Signal, 8)
	signal.Notify(ints, syscall.SIGINT)
	p, err := Start([]string{"sh", "-c", `trap 'echo got INT; exit 3' INT; echo ready; while :; do sleep 0.05; done`},
		Options{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Terminal: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("pid %d\n", p.Pid())
	st, err := p.Wait()
	time.Sleep(20 * time.Millisecond) // let a stray SIGINT arrive
	fg, _ := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	fmt.Printf("status %d, supervisor got %d SIGINT, terminal back %v, %v\n", st.Code, len(ints), fg == unix.Getpgrp(), err)
}

func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("opening the pty: %v", err)
	}
	return m, s
}

// On a terminal, the command holds it: Ctrl-C reaches the command exactly
// once and the supervisor not at all; Ctrl-Z stops the command, and (the
// helper's group being orphaned, so that it cannot stop itself) the command
// is continued with the terminal; the supervisor takes the terminal back at
// the end.
func TestTerminalCtrlZCtrlC(t *testing.T) {
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=terminal")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	defer cmd.Wait()
	defer cmd.Process.Kill()

	lines := make(chan string, 16)
	var all strings.Builder
	go func() {
		sc := bufio.NewScanner(master) // ends with EIO when the helper is gone
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("terminal closed before %q:\n%s", prefix, all.String())
				}
				all.WriteString(l + "\n")
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q on the terminal:\n%s", prefix, all.String())
			}
		}
	}
	// The helper prints "pid N" and the command "ready", in either order.
	var pid int
	for ready := false; pid == 0 || !ready; {
		switch l := next(""); {
		case strings.HasPrefix(l, "pid "):
			fmt.Sscanf(l, "pid %d", &pid)
		case strings.HasPrefix(l, "ready"):
			ready = true
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out (state %c)", what, procState(pid))
			}
		}
	}
	fgIs := func(pgid int) func() bool {
		return func() bool {
			fg, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPGRP)
			return err == nil && fg == pgid
		}
	}
	waitFor("command in the foreground", fgIs(pid))

	// Ctrl-Z: the stopped state lasts only until the supervisor continues
	// the command (stopGrace), and some sandboxes report it late or not at
	// all, so this part runs only when asked for.
	if os.Getenv("QUANTKIT_TEST_CTRLZ") != "" {
		master.Write([]byte{0x1a}) // Ctrl-Z
		waitFor("command stopped", func() bool { return procState(pid) == 'T' })
		waitFor("command continued", func() bool { return procState(pid) != 'T' })
		waitFor("command in the foreground again", fgIs(pid))
	}

	master.Write([]byte{0x03}) // Ctrl-C
	end := next("status ")
	if got := strings.Count(all.String(), "got INT"); got != 1 {
		t.Errorf("the command's trap ran %d times, want 1:\n%s", got, all.String())
	}
	if want := "status 3, supervisor got 0 SIGINT, terminal back true, <nil>"; end != want {
		t.Errorf("helper: %q, want %q", end, want)
	}
}
