//go:build unix

package testenv

import (
	"syscall"
	"time"
)

// ProcessCPU is the process's user and system CPU time so far, so that a
// benchmark on a busy machine can report its speed per CPU second as well
// as per wall-clock second.
func ProcessCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
