package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The supervisor is this same executable, started by Start through
// /proc/self/exe with supervisorEnv set and supervisorArg0 as its argv[0]:
//
//	quantkit-supervisor KILL-AFTER tty|notty PATH ARGV0 ARG...
//
// Its files: 0, 1, 2 the command's; 3 the status pipe, on which it writes
// "ready" once set up, "pid N T" when the command has started (or "error
// ERRNO TEXT" when it cannot), "stop" each time the command stops, and
// "exit WAITSTATUS T" when it has reaped it, T being CLOCK_MONOTONIC in
// nanoseconds then; 4 the control pipe, from which it reads "start" (start
// the command), "kill" (SIGKILL the whole tree now) and, at end of file,
// that the process that started it is done with the tree or dead; 5 the
// terminal, with tty.
const (
	supervisorEnv   = "QUANTKIT_PROC_SUPERVISOR"
	supervisorArg0  = "quantkit-supervisor"
	protocolVersion = "1"

	statusFD  = 3
	controlFD = 4
	ttyFD     = 5
)

// killSweep is how often the supervisor signals the tree again while
// killing it, for processes forked while it was being signalled.
const killSweep = 50 * time.Millisecond

// init turns this process into a supervisor when Start started it as one:
// before main, and before any other work a program would do.
func init() {
	if os.Getenv(supervisorEnv) != protocolVersion || len(os.Args) == 0 || os.Args[0] != supervisorArg0 {
		return
	}
	os.Exit(supervise(os.Args[1:]))
}

// supervise starts the command and supervises its tree until the tree is
// empty. It keeps its goroutine on one thread (the main one, during init),
// so that the thread that forks the command, whose end Pdeathsig watches,
// lives as long as this process.
func supervise(args []string) int {
	runtime.LockOSThread()
	status := os.NewFile(statusFD, "status")
	controlFile := os.NewFile(controlFD, "control")
	if status == nil || controlFile == nil || len(args) < 4 {
		fmt.Fprintf(os.Stderr, "%s: not started by proc.Start\n", supervisorArg0)
		return 2
	}
	syscall.CloseOnExec(statusFD)
	syscall.CloseOnExec(controlFD)
	grace, err := time.ParseDuration(args[0])
	if err != nil || grace < 0 {
		fmt.Fprintf(status, "fail kill-after %q\n", args[0])
		return 2
	}
	tty := args[1] == "tty"
	path, argv := args[2], args[3:]

	// Signals meant for the job (a process group signalled, a terminal
	// hanging up) must not end the supervisor: catch them and drop them.
	// (Caught rather than ignored, so that the command starts with the
	// default dispositions: an ignored signal stays ignored across exec.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	go func() {
		for range sigs {
		}
	}()

	// Orphans of the command's tree (a daemon's double fork, a shell that
	// exited before its background jobs) become this process's children
	// instead of init's, so that the tree stays findable and reaped here.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(status, "fail PR_SET_CHILD_SUBREAPER: %v\n", err)
		return 2
	}

	// Start the command when told to: the starter may take readings that
	// must bracket the command alone, not this process's start.
	fmt.Fprintf(status, "ready\n")
	control := bufio.NewReader(controlFile)
	if line, err := control.ReadString('\n'); err != nil || line != "start\n" {
		return 0 // the starter is gone, or changed its mind
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, supervisorEnv+"=") {
			env = append(env, kv)
		}
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if tty {
		syscall.CloseOnExec(ttyFD)
		attr.Foreground, attr.Ctty = true, ttyFD
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}, Sys: attr})
	if err != nil {
		errno, _ := err.(syscall.Errno)
		fmt.Fprintf(status, "error %d %s\n", int(errno), strings.ReplaceAll(err.Error(), "\n", " "))
		return 0
	}
	fmt.Fprintf(status, "pid %d %d\n", pid, monotonic())

	// Let go of the command's files and the terminal: the pipes behind
	// them must close when the command's tree is done with them.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		for fd := range 3 {
			unix.Dup3(int(null.Fd()), fd, 0)
		}
		null.Close()
	}
	if tty {
		syscall.Close(ttyFD)
	}

	s := &supervisor{pid: pid, status: status, grace: grace}
	s.run(control)
	return 0
}

// supervisor is the state of a running supervisor. Reaping the command and
// signalling its group exclude each other, so that the group is never
// signalled after its id could have been reused.
type supervisor struct {
	pid    int // the command, and its process group
	status *os.File
	grace  time.Duration

	mu     sync.Mutex // held to reap, and to signal the command's group
	reaped bool       // the command has been reaped
}

func (s *supervisor) report(format string, args ...any) {
	fmt.Fprintf(s.status, format+"\n", args...) // nobody to tell if this fails
}

// run relays signals and state changes until the supervisor has no child
// left: the command and everything it started have exited. When the
// control pipe closes it ends the tree: SIGTERM (and SIGCONT, for stopped
// processes), then SIGKILL after the grace period.
func (s *supervisor) run(control io.Reader) {
	msgs := make(chan string)
	go func() {
		sc := bufio.NewScanner(control)
		for sc.Scan() {
			msgs <- sc.Text()
		}
		close(msgs)
	}()
	// The waiter learns that a child has changed state without collecting
	// it (WNOWAIT), then collects under s.mu, and reports at once: the
	// starter takes its readings when it hears of the command's exit.
	empty := make(chan struct{})
	go func() {
		defer close(empty)
		for {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOWAIT|unix.WALL, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil { // ECHILD: nothing left to wait for
				return
			}
			s.mu.Lock()
			done := s.collect()
			s.mu.Unlock()
			if done {
				return
			}
		}
	}()

	var graceEnd, sweep <-chan time.Time // sweep: killing
	ending := false
	kill := func() {
		s.signalTree(syscall.SIGKILL)
		if sweep == nil {
			sweep = time.NewTicker(killSweep).C
		}
	}
	for {
		select {
		case m, ok := <-msgs:
			switch {
			case !ok:
				msgs = nil
				if !ending && sweep == nil {
					ending = true
					s.signalTree(syscall.SIGTERM)
					s.signalTree(syscall.SIGCONT)
					graceEnd = time.After(s.grace)
				}
			case m == "kill":
				kill()
			}
		case <-empty:
			return
		case <-graceEnd:
			graceEnd = nil
			kill()
		case <-sweep:
			s.signalTree(syscall.SIGKILL)
		}
	}
}

// collect reaps the children that have exited and consumes the stops,
// reporting the command's; it returns true when no child is left. s.mu is
// held.
func (s *supervisor) collect() (empty bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|syscall.WUNTRACED|syscall.WALL, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return true // ECHILD
		case pid <= 0:
			return false
		case pid != s.pid:
			continue
		case ws.Stopped():
			s.report("stop")
		case ws.Exited() || ws.Signaled():
			s.reaped = true
			s.report("exit %d %d", uint32(ws), monotonic())
		}
	}
}

// signalTree sends sig to the command's group, while the command has not
// been reaped, and to every descendant of the supervisor: with the
// supervisor a subreaper, those are all the processes the command's tree
// holds, whatever group or session they moved to.
func (s *supervisor) signalTree(sig syscall.Signal) {
	s.mu.Lock()
	if !s.reaped {
		syscall.Kill(-s.pid, sig)
	}
	s.mu.Unlock()
	for _, p := range descendants(os.Getpid()) {
		p.signal(sig)
	}
}

// monotonic is CLOCK_MONOTONIC in nanoseconds: the clock of Go's monotonic
// time readings, the same in every process.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// monotonicTime is the time.Time of CLOCK_MONOTONIC reading ns, taken in
// this process or another, with a monotonic reading of its own.
func monotonicTime(ns int64) time.Time {
	return time.Now().Add(-time.Duration(monotonic() - ns))
}
