package proc

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultWaitDelay is how long Wait waits, once the command has exited, for
// output still being copied to a Stdout or Stderr that is not a file.
const DefaultWaitDelay = 2 * time.Second

// Options say how to run a command.
type Options struct {
	// Stdin, Stdout and Stderr are the command's standard files; an
	// *os.File is passed to it as it is (the command writes to it directly,
	// unbuffered), anything else through a pipe (os/exec). nil: /dev/null.
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
	cmd    *exec.Cmd
	pgid   int
	tty    *terminal // nil when the command was not given the terminal
	start  time.Time
	exited chan struct{} // closed when the command has exited (not yet reaped)

	mu   sync.Mutex
	gone bool // the command has exited: its group id may be reused, Signal does nothing
	end  time.Time
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
// it (exec.LookPath), in a process group of its own. A command that cannot
// be started gives a *StartError.
func Start(args []string, opt Options) (*Process, error) {
	if len(args) == 0 {
		return nil, errors.New("proc: no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	if cmd.Err != nil {
		return nil, startError(args[0], cmd.Err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opt.Stdin, opt.Stdout, opt.Stderr
	cmd.WaitDelay = opt.WaitDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.SysProcAttr = attr
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	if opt.Terminal {
		p.tty = foregroundTerminal()
	}
	if p.tty != nil {
		// The child makes its group the foreground one before exec.
		attr.Foreground, attr.Ctty = true, p.tty.fd
		p.tty.handed = true
	}

	// Start from a locked OS thread that lives until the command exits:
	// Pdeathsig fires when the creating thread ends, not the process.
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-p.exited
		}
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		if p.tty != nil {
			p.tty.takeBack() // a child that failed after taking the terminal
			p.tty.close()
		}
		return nil, startError(args[0], err)
	}
	p.start = time.Now()
	p.pgid = cmd.Process.Pid
	go p.watch()
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

// Wait waits for the command to exit and for its output to be copied, and
// returns how it ended. The error is about the command's I/O (a pipe still
// held open after WaitDelay, a failed write); the status is valid whenever
// the command ran.
func (p *Process) Wait() (Status, error) {
	<-p.exited
	err := p.cmd.Wait()
	st := Status{Start: p.start}
	p.mu.Lock()
	st.End = p.end
	p.mu.Unlock()
	ps := p.cmd.ProcessState
	if ps == nil {
		return st, err
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil // the exit status, reported in st
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		st.Signal = ws.Signal()
		st.Code = 128 + int(st.Signal)
		st.CoreDumped = ws.CoreDump()
	default:
		st.Code = ps.ExitCode()
	}
	return st, err
}

// cldStopped is waitid's si_code for a child stopped by a signal.
const cldStopped = 5

// watch waits for the command to exit without reaping it (Wait does, and
// copies the output), handling stops when it holds the terminal, and
// closes p.exited.
func (p *Process) watch() {
	var cont chan os.Signal
	opts := unix.WEXITED | unix.WNOWAIT
	if p.tty != nil {
		cont = make(chan os.Signal, 1)
		signal.Notify(cont, syscall.SIGCONT)
		defer signal.Stop(cont)
		opts |= unix.WSTOPPED
	}
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pgid, &info, opts, nil)
		if err == unix.EINTR {
			continue
		}
		if err == nil && info.Code == cldStopped {
			// Consume the stop, so that the next waitid reports the next
			// change.
			unix.Waitid(unix.P_PID, p.pgid, &info, unix.WSTOPPED|unix.WNOHANG, nil)
			p.suspend(cont)
			continue
		}
		break // exited; or an error, which Wait reports
	}
	p.mu.Lock()
	p.gone, p.end = true, time.Now()
	p.mu.Unlock()
	if p.tty != nil {
		p.tty.takeBack()
		p.tty.close()
	}
	close(p.exited)
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
