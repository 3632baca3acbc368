package proc

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// stdio is the command's standard files: what the supervisor passes on to
// it as 0, 1 and 2, and the copying between pipes and the caller's readers
// and writers that are not files, as os/exec does it.
type stdio struct {
	child      [3]*os.File
	closeAfter []*os.File // child ends opened here, closed once the supervisor has them

	stdin   io.Reader
	stdinW  *os.File // our end of the stdin pipe; nil when none
	outputs []outputPipe
	delay   time.Duration
	copying sync.WaitGroup

	mu  sync.Mutex
	err error // the first copying error
}

type outputPipe struct {
	r *os.File
	w io.Writer
}

func newStdio(opt Options) (*stdio, error) {
	s := &stdio{delay: cmp.Or(opt.WaitDelay, DefaultWaitDelay), stdin: opt.Stdin}
	fail := func(err error) (*stdio, error) {
		s.abort()
		return nil, fmt.Errorf("proc: %w", err)
	}
	switch in := opt.Stdin.(type) {
	case nil:
		f, err := os.Open(os.DevNull)
		if err != nil {
			return fail(err)
		}
		s.child[0] = f
		s.closeAfter = append(s.closeAfter, f)
	case *os.File:
		s.child[0] = in
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		s.child[0], s.stdinW = r, w
		s.closeAfter = append(s.closeAfter, r)
	}
	for fd, out := range []io.Writer{opt.Stdout, opt.Stderr} {
		fd++
		if fd == 2 && interfaceEqual(opt.Stderr, opt.Stdout) {
			s.child[2] = s.child[1] // one pipe, so that writes keep their order
			continue
		}
		switch out := out.(type) {
		case nil:
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return fail(err)
			}
			s.child[fd] = f
			s.closeAfter = append(s.closeAfter, f)
		case *os.File:
			s.child[fd] = out
		default:
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			s.child[fd] = w
			s.closeAfter = append(s.closeAfter, w)
			s.outputs = append(s.outputs, outputPipe{r, out})
		}
	}
	return s, nil
}

// interfaceEqual is a == b, false where they hold values that cannot be
// compared.
func interfaceEqual(a, b any) (eq bool) {
	defer func() { recover() }()
	return a == b
}

// started closes the child ends, now that the supervisor holds them: the
// pipes then end when the command's tree is done with them.
func (s *stdio) started() {
	for _, f := range s.closeAfter {
		f.Close()
	}
	s.closeAfter = nil
}

// copy starts copying between the pipes and the caller's reader and
// writers.
func (s *stdio) copy() {
	if s.stdinW != nil {
		go func() {
			_, err := io.Copy(s.stdinW, s.stdin)
			s.stdinW.Close()
			// EPIPE: the command did not read it all, which is its right.
			if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
				s.fail(fmt.Errorf("proc: copying to the command's stdin: %w", err))
			}
		}()
	}
	for _, o := range s.outputs {
		s.copying.Go(func() {
			_, err := io.Copy(o.w, o.r)
			o.r.Close()
			if err != nil && !errors.Is(err, os.ErrClosed) {
				s.fail(fmt.Errorf("proc: copying the command's output: %w", err))
			}
		})
	}
}

func (s *stdio) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// wait waits for the output to be copied, at most s.delay; then it stops
// copying and returns what went wrong.
func (s *stdio) wait() error {
	done := make(chan struct{})
	go func() {
		s.copying.Wait()
		close(done)
	}()
	t := time.NewTimer(s.delay)
	defer t.Stop()
	var err error
	select {
	case <-done:
	case <-t.C:
		for _, o := range s.outputs {
			o.r.Close()
		}
		<-done
		err = fmt.Errorf("proc: the command's output still open %v after it exited: %w", s.delay, exec.ErrWaitDelay)
	}
	if s.stdinW != nil {
		s.stdinW.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.err)
}

// abort closes every file of a command that did not start.
func (s *stdio) abort() {
	s.started()
	if s.stdinW != nil {
		s.stdinW.Close()
	}
	for _, o := range s.outputs {
		o.r.Close()
	}
}
