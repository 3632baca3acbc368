// Package proctest holds what the tests of internal/proc and of
// `quantkit profile` share: a process tree of every shape that can outlive
// its parent, and a way to wait for processes to go.
package proctest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TreeScript, run as `sh -c TreeScript sh FILE`, builds a process tree of
// every shape that outlives a kill of the command's process group or of
// the command alone, and writes each process's pid to FILE, one a line
// (TreeLines in all; "none" where setsid(1) is missing): the shell itself,
// first, which ignores SIGTERM; a background sleep 31; a sleep 32 that
// ignores SIGTERM; a sleep 33 orphaned at once (its parent, a subshell,
// exits); a sleep 34 in a session of its own (setsid).
const TreeScript = `f=$1
echo $$ >> "$f"
sleep 31 & echo $! >> "$f"
sh -c 'trap "" TERM; echo $$ >> "$0"; exec sleep 32' "$f" &
(sleep 33 & echo $! >> "$f")
if command -v setsid >/dev/null; then setsid sleep 34 & echo $! >> "$f"; else echo none >> "$f"; fi
trap '' TERM
wait`

// TreeLines is the number of lines TreeScript writes.
const TreeLines = 5

// StartTime is the start time of process pid (field 22 of /proc/PID/stat,
// in clock ticks after boot), which with pid names one process; 0 when it
// has exited (a zombie counts as exited).
func StartTime(pid int) uint64 {
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

// WaitGone fails the test unless every process in pids exits within d;
// those still running then are killed.
func WaitGone(t testing.TB, pids []int, d time.Duration) {
	t.Helper()
	starts := make([]uint64, len(pids))
	for i, pid := range pids {
		starts[i] = StartTime(pid)
	}
	deadline := time.Now().Add(d)
	for {
		var left []string
		for i, pid := range pids {
			if s := StartTime(pid); s != 0 && s == starts[i] {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				left = append(left, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for i, pid := range pids {
				if StartTime(pid) == starts[i] {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			t.Fatalf("still running %v later: %s", d, strings.Join(left, ", "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
