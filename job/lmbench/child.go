package lmbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/internal/procmem"
)

// ChildEnv is set in the environment of the child processes Run starts:
// a program that runs Run must, first thing in main (or in an init of
// package main, after every backend has registered), hand over to
// ChildMain when IsChild:
//
//	if lmbench.IsChild() {
//		os.Exit(lmbench.ChildMain())
//	}
const ChildEnv = "QUANTKIT_LMBENCH_CHILD"

// IsChild reports whether this process is a child Run started.
func IsChild() bool { return os.Getenv(ChildEnv) != "" }

// ChildMain is a child process's work: it reads one measurement's job as
// JSON on stdin, measures it (opening the device's energy counter itself
// when the job asks for energy) and writes the result as JSON on stdout;
// it returns the exit status, 1 when the measurement failed (the error
// is in the JSON too).
func ChildMain() int {
	res := childMain(os.Stdin)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "lmbench child:", err)
		return 1
	}
	if res.Error != "" {
		return 1
	}
	return 0
}

// childResult is what a child writes back.
type childResult struct {
	Sample *sample `json:"sample,omitempty"`
	Error  string  `json:"error,omitempty"`
}

func childMain(r io.Reader) childResult {
	var j job
	if err := json.NewDecoder(r).Decode(&j); err != nil {
		return childResult{Error: fmt.Sprintf("reading the job: %v", err)}
	}
	var src energy.Source
	note := ""
	if j.Energy {
		s, closeSrc, err := energy.OpenDevice(j.Device)
		defer closeSrc()
		if err != nil {
			note = strings.TrimPrefix(err.Error(), "energy: ")
		}
		src = s
	}
	s, err := measure(context.Background(), &j, src)
	if err != nil {
		return childResult{Error: err.Error()}
	}
	s.EnergyNote = note
	return childResult{Sample: s}
}

// runChild measures j in a child process of exe (the running program,
// which hands over to ChildMain): the job on its stdin, the result as JSON
// on its stdout, its peak RSS from wait4. Cancelling ctx kills it.
func runChild(ctx context.Context, exe string, j *job) (*sample, error) {
	in, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	runErr := cmd.Run()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lmbench: %w", err)
	}
	var res childResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || (res.Sample == nil && res.Error == "") {
		return nil, fmt.Errorf("%s %s: the child process (%s) %v and gave no result: %s", j.Path, j.Precision, exe,
			errors.Join(runErr, err), lastLines(stderr.String(), 5))
	}
	if res.Error != "" {
		return nil, fmt.Errorf("%s %s: %s", j.Path, j.Precision, res.Error)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.Sample.PeakRSS = ru.Maxrss << 10 // kilobytes on Linux
	}
	return res.Sample, nil
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// inProcessRSS runs fn and returns the process's peak RSS while it ran:
// the Go heap returned to the system first, the high-water mark reset
// through /proc/self/clear_refs and read after. ok is false where the
// kernel does not allow the reset (the mark would be the process's).
func inProcessRSS(fn func()) (peak int64, ok bool) {
	debug.FreeOSMemory()
	if !procmem.ResetPeak() {
		fn()
		return 0, false
	}
	fn()
	return procmem.Status("VmHWM"), true
}
