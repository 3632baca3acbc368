package proc

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultWaitDelay is how long Wait waits, once the command has exited, for
// output still being copied to a Stdout or Stderr that is not a file.
const DefaultWaitDelay = 2 * time.Second

// DefaultKillAfter is how long the command's processes get between SIGTERM
// and SIGKILL when its tree is ended.
const DefaultKillAfter = 10 * time.Second

// Options say how to run a command.
type Options struct {
	// Stdin, Stdout and Stderr are the command's standard files; an
	// *os.File is passed to it as it is (the command writes to it directly,
	// unbuffered), anything else through a pipe. nil: /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Terminal gives the command the controlling terminal while it runs,
	// when this process is the terminal's foreground job; otherwise it has
	// no effect.
	Terminal bool
	// WaitDelay bounds how long Wait waits, after the command exited, for
	// its output to be copied when Stdout or Stderr is not a file
	// (processes the command left behind may hold the pipes open). 0:
	// DefaultWaitDelay.
	WaitDelay time.Duration
	// KillAfter is how long the processes of the command's tree get to
	// exit after SIGTERM, when the tree is ended (this process died, or
	// Wait returned with processes left), before SIGKILL. 0:
	// DefaultKillAfter.
	KillAfter time.Duration
	// Starting, when set, is called once everything else is ready, just
	// before the command is started: the moment for readings that must
	// bracket the command alone (not its supervisor's start).
	Starting func()
}

// StartError says a command could not be started.
type StartError struct {
	Name string
	// Code is a shell's status for it: 127 not found, 126 found but not
	// executable.
	Code int
	Err  error
}

func (e *StartError) Error() string { return fmt.Sprintf("cannot run %s: %v", e.Name, e.Err) }
func (e *StartError) Unwrap() error { return e.Err }

// Status is how a command ended.
type Status struct {
	// Code is the exit code, or 128+N when signal N killed the command.
	Code int
	// Signal is the signal that killed the command; 0 when it exited.
	Signal     syscall.Signal
	CoreDumped bool
	// Start is when the command started, End when its exit was seen.
	Start, End time.Time
}

// Duration is End − Start.
func (s Status) Duration() time.Duration { return s.End.Sub(s.Start) }

// SignalName is the name of the signal that killed the command ("SIGKILL"),
// or "" when it exited.
func (s Status) SignalName() string {
	if s.Signal == 0 {
		return ""
	}
	if n := unix.SignalName(s.Signal); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s.Signal))
}

func (s Status) String() string {
	if s.Signal != 0 {
		core := ""
		if s.CoreDumped {
			core = ", core dumped"
		}
		return fmt.Sprintf("killed by %s (status %d%s)", s.SignalName(), s.Code, core)
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

// Process is a started command.
type Process struct {
	pgid   int
	tty    *terminal // nil when the command was not given the terminal
	io     *stdio
	start  time.Time
	exited chan struct{} // closed when the command has exited

	mu       sync.Mutex
	control  *os.File // the supervisor's control pipe; nil once closed
	gone     bool     // the command has exited: Signal does nothing
	end      time.Time
	ws       syscall.WaitStatus
	watchErr error // the supervisor ended without the command's status

	waitOnce sync.Once
	waitErr  error
}

// LookPath is the command a Start of name would run, or a *StartError.
func LookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", startError(name, err)
	}
	return path, nil
}

func startError(name string, err error) *StartError {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	return &StartError{Name: name, Code: code, Err: err}
}

// Start starts args[0] with arguments args[1:], found as a shell would find
// it (exec.LookPath), in a process group of its own, under a supervisor
// (see the package documentation). A command that cannot be started gives
// a *StartError.
func Start(args []string, opt Options) (*Process, error) {
	if len(args) == 0 {
		return nil, errors.New("proc: no command")
	}
	path, err := LookPath(args[0])
	if err != nil {
		return nil, err
	}
	killAfter := cmp.Or(opt.KillAfter, DefaultKillAfter)
	if killAfter < 0 {
		return nil, fmt.Errorf("proc: KillAfter %v is negative", killAfter)
	}
	sio, err := newStdio(opt)
	if err != nil {
		return nil, err
	}
	p := &Process{io: sio, exited: make(chan struct{})}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		sio.abort()
		return nil, fmt.Errorf("proc: %w", err)
	}
	watching := false
	defer func() {
		if !watching {
			statusR.Close()
		}
	}()
	controlR, controlW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		sio.abort()
		return nil, fmt.Errorf("proc: %w", err)
	}
	files := []*os.File{sio.child[0], sio.child[1], sio.child[2], statusW, controlR}
	ttyArg := "notty"
	if opt.Terminal {
		p.tty = foregroundTerminal()
	}
	if p.tty != nil {
		// The command makes its group the foreground one before exec.
		files = append(files, p.tty.f)
		ttyArg = "tty"
		p.tty.handed = true
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, supervisorEnv+"=") })
	env = append(env, supervisorEnv+"="+protocolVersion)
	argv := append([]string{supervisorArg0, killAfter.String(), ttyArg, path}, args...)
	// /proc/self/exe rather than os.Executable: it is this very program
	// even when its file has since been replaced or removed.
	sup, err := os.StartProcess("/proc/self/exe", argv, &os.ProcAttr{Env: env, Files: files,
		Sys: &syscall.SysProcAttr{Setpgid: true}})
	statusW.Close()
	controlR.Close()
	sio.started()
	fail := func(err error) (*Process, error) {
		controlW.Close()
		sio.abort()
		if p.tty != nil {
			p.tty.takeBack() // a child that failed after taking the terminal
			p.tty.close()
		}
		return nil, err
	}
	if err != nil {
		return fail(fmt.Errorf("proc: starting the supervisor: %w", err))
	}
	go sup.Wait() // reaps it whenever it ends; no one needs its status
	p.control = controlW

	status := bufio.NewReader(statusR)
	if line, err := status.ReadString('\n'); err != nil || line != "ready\n" {
		return fail(fmt.Errorf("proc: the supervisor of %s did not start: %q", args[0], strings.TrimSpace(line)))
	}
	if opt.Starting != nil {
		opt.Starting()
	}
	if _, err := io.WriteString(controlW, "start\n"); err != nil {
		return fail(fmt.Errorf("proc: starting %s: %w", args[0], err))
	}
	line, err := status.ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	var pid, errno int
	var started int64
	var msg string
	switch {
	case err != nil:
		return fail(fmt.Errorf("proc: the supervisor of %s ended before starting it", args[0]))
	case strings.HasPrefix(line, "error "):
		fmt.Sscanf(line, "error %d", &errno)
		_, msg, _ = strings.Cut(strings.TrimPrefix(line, "error "), " ")
		var cause error = syscall.Errno(errno)
		if errno == 0 {
			cause = errors.New(msg)
		}
		return fail(startError(args[0], cause))
	default:
		if _, err := fmt.Sscanf(line, "pid %d %d", &pid, &started); err != nil || pid <= 0 {
			return fail(fmt.Errorf("proc: the supervisor of %s: %s", args[0], strings.TrimPrefix(line, "fail ")))
		}
	}
	// The supervisor's clock readings: this process may hear of the start
	// and the exit a little late.
	p.start = monotonicTime(started)
	p.pgid = pid
	sio.copy()
	watching = true
	go p.watch(status, statusR)
	return p, nil
}

// Pid is the command's process id, which is also its process group id.
func (p *Process) Pid() int { return p.pgid }

// Exited is closed as soon as the command has exited, before Wait has
// collected its status and output.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ErrExited is returned by Signal once the command has exited.
var ErrExited = errors.New("proc: process has exited")

// Signal sends sig to the command's process group: the command and the
// processes it started that have not left the group. Once the command has
// exited it sends nothing and returns ErrExited.
//
// The signal is sent from here, not through the supervisor, so that it
// arrives as soon as it would from a shell. The supervisor reaps the
// command a few microseconds before this process hears of it: only in that
// window, with the group then empty, could the group's id have been handed
// out again, which takes the kernel's whole pid range to cycle.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("proc: %v is not a Unix signal", sig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return ErrExited
	}
	if err := syscall.Kill(-p.pgid, s); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("proc: signalling process group %d: %w", p.pgid, err)
	}
	return nil
}

// Kill sends SIGKILL to the command's whole tree: its process group and
// every process the command started, in whatever group or session,
// including those it left behind when it exited.
func (p *Process) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.gone {
		syscall.Kill(-p.pgid, syscall.SIGKILL)
	}
	return p.tell("kill")
}

// tell sends the supervisor a control message; p.mu is held.
func (p *Process) tell(msg string) error {
	if p.control == nil {
		return ErrExited
	}
	if _, err := io.WriteString(p.control, msg+"\n"); err != nil {
		if errors.Is(err, syscall.EPIPE) {
			return ErrExited // the supervisor is gone, and so is the tree
		}
		return fmt.Errorf("proc: telling the supervisor of %d: %w", p.pgid, err)
	}
	return nil
}

// release closes the control pipe: the supervisor then ends whatever is
// left of the tree, SIGTERM and, after KillAfter, SIGKILL.
func (p *Process) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.control != nil {
		p.control.Close()
		p.control = nil
	}
}

// Wait waits for the command to exit and for its output to be copied, and
// returns how it ended. Processes the command left behind are then ended
// (SIGTERM, SIGKILL after KillAfter), as they would be when this process
// exits. The error is about the command's I/O (a pipe still held open after
// WaitDelay, a failed write) or its supervisor; the status is valid
// whenever the command ran.
func (p *Process) Wait() (Status, error) {
	<-p.exited
	p.waitOnce.Do(func() {
		err := p.io.wait()
		p.release()
		p.waitErr = errors.Join(p.watchErr, err)
	})
	st := Status{Start: p.start}
	p.mu.Lock()
	st.End = p.end
	ws := p.ws
	p.mu.Unlock()
	if ws.Signaled() {
		st.Signal = ws.Signal()
		st.Code = 128 + int(st.Signal)
		st.CoreDumped = ws.CoreDump()
	} else {
		st.Code = ws.ExitStatus()
	}
	return st, p.waitErr
}

// watch reads the supervisor's reports until the command has exited,
// handling stops when it holds the terminal, and closes p.exited.
func (p *Process) watch(status *bufio.Reader, f *os.File) {
	defer f.Close()
	var cont chan os.Signal
	if p.tty != nil {
		cont = make(chan os.Signal, 1)
		signal.Notify(cont, syscall.SIGCONT)
		defer signal.Stop(cont)
	}
	var ws syscall.WaitStatus
	var watchErr error
	var end time.Time
	for {
		line, err := status.ReadString('\n')
		if err != nil {
			// The supervisor died (killed, say): the kernel killed the
			// command (Pdeathsig); what is left of its group goes too.
			syscall.Kill(-p.pgid, syscall.SIGKILL)
			ws = syscall.WaitStatus(syscall.SIGKILL)
			watchErr = fmt.Errorf("proc: the supervisor of process %d died", p.pgid)
			end = time.Now()
			break
		}
		if line == "stop\n" && p.tty != nil {
			p.suspend(cont)
			continue
		}
		var n uint32
		var t int64
		if _, err := fmt.Sscanf(line, "exit %d %d", &n, &t); err == nil {
			ws, end = syscall.WaitStatus(n), monotonicTime(t)
			break
		}
	}
	p.mu.Lock()
	p.gone, p.end, p.ws, p.watchErr = true, end, ws, watchErr
	p.mu.Unlock()
	if p.tty != nil {
		p.tty.takeBack()
		p.tty.close()
	}
	close(p.exited)
	// Keep reading, so that the supervisor's last reports do not block
	// it, until it exits.
	io.Copy(io.Discard, status)
}

// stopGrace is how long suspend waits for SIGCONT after stopping its own
// group before deciding that the stop did not happen.
const stopGrace = 200 * time.Millisecond

// suspend is what a nested shell does when its foreground job stops: take
// the terminal back and stop its own process group, so that the shell above
// sees the job stop. When continued (fg: with the terminal; bg: without),
// it gives the terminal back to the command if it has it, and continues
// the command's group. Where the stop signal is discarded (an orphaned
// process group, SIGTSTP ignored), the command is continued at once:
// Ctrl-Z then does nothing, rather than leave a stopped command holding the
// terminal.
func (p *Process) suspend(cont chan os.Signal) {
	p.tty.takeBack()
	for len(cont) > 0 {
		<-cont
	}
	syscall.Kill(0, syscall.SIGTSTP)
	t := time.NewTimer(stopGrace)
	select {
	case <-cont:
	case <-t.C:
	}
	t.Stop()
	p.tty.giveTo(p.pgid)
	p.Signal(syscall.SIGCONT)
}

// terminal is the controlling terminal, while this process hands it to a
// command.
type terminal struct {
	f      *os.File
	fd     int
	handed bool // the command's group was given the terminal and not yet taken back
}

// foregroundTerminal opens the controlling terminal when this process's
// group is its foreground group; nil otherwise (no terminal, or a job in
// the background).
func foregroundTerminal() *terminal {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	fd := int(f.Fd())
	if fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err != nil || fg != unix.Getpgrp() {
		f.Close()
		return nil
	}
	return &terminal{f: f, fd: fd}
}

// takeBack makes this process's group the foreground one again, if the
// command has the terminal.
func (t *terminal) takeBack() {
	if t.handed {
		t.setForeground(unix.Getpgrp())
		t.handed = false
	}
}

// giveTo gives the terminal to group pgid if this process has it (fg
// rather than bg).
func (t *terminal) giveTo(pgid int) {
	if fg, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP); err == nil && fg == unix.Getpgrp() {
		t.handed = t.setForeground(pgid) == nil
	}
}

// setForeground is tcsetpgrp with SIGTTOU blocked on the calling thread: a
// process in the background may then take the terminal instead of being
// stopped for trying.
func (t *terminal) setForeground(pgid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	bits := uint(unsafe.Sizeof(set.Val[0]) * 8)
	sig := uint(syscall.SIGTTOU) - 1
	set.Val[sig/bits] |= 1 << (sig % bits)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, pgid)
}

func (t *terminal) close() { t.f.Close() }
