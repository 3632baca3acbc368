package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// procStat is what /proc/PID/stat says of a process that a tree walk
// needs.
type procStat struct {
	pid, ppid, pgrp int
	state           byte   // R, S, D, T, Z, ...
	start           uint64 // clock ticks after boot: with pid, names one process for all time
}

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// pid (comm) state ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// num_threads itrealvalue starttime ...; comm may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(f))
	}
	st := procStat{pid: pid, state: f[0][0]}
	var errs [3]error
	st.ppid, errs[0] = strconv.Atoi(string(f[1]))
	st.pgrp, errs[1] = strconv.Atoi(string(f[2]))
	st.start, errs[2] = strconv.ParseUint(string(f[19]), 10, 64)
	if err := errors.Join(errs[:]...); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// descendants lists the living descendants of process root, from
// /proc, parents before their children. Zombies are left out: they have
// exited already.
func descendants(root int) []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]procStat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			children[st.ppid] = append(children[st.ppid], st)
		}
	}
	var out []procStat
	queue := []int{root}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			if c.state != 'Z' && c.state != 'X' {
				out = append(out, c)
			}
			queue = append(queue, c.pid)
		}
		queue = queue[1:]
	}
	return out
}

// signal sends sig to p if p is still the process the walk found: not
// one that has taken its pid since. A pidfd pins the process while its
// start time is checked; kernels without pidfd_open (before 5.3) get the
// check and kill(2), which leaves a window of microseconds.
func (p procStat) signal(sig syscall.Signal) {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		if err == unix.ESRCH {
			return
		}
		fd = -1
	}
	if fd >= 0 {
		defer unix.Close(fd)
	}
	if now, err := readStat(p.pid); err != nil || now.start != p.start {
		return
	}
	if fd >= 0 {
		unix.PidfdSendSignal(fd, sig, nil, 0)
		return
	}
	syscall.Kill(p.pid, sig)
}
