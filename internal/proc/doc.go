// Package proc runs a command the way a shell runs a foreground job, for a
// program (quantkit profile) that measures the command and must outlive it,
// and makes sure that the command's whole process tree ends with that
// program, however the program ends:
//
//   - The command gets a process group of its own, and Signal signals that
//     whole group. A signal sent to the starter's group (kill -TERM -PGID,
//     a batch system stopping the job) then reaches the command once, as the
//     starter forwards it, not twice.
//   - When the starter is the foreground job of its controlling terminal
//     (Options.Terminal), the command's group is made the terminal's
//     foreground group while it runs, as a shell does: the command reads the
//     terminal, and Ctrl-C, Ctrl-\ and Ctrl-Z reach it straight from the
//     terminal, exactly once, while the starter, now in the background,
//     receives none of them. When the command stops (Ctrl-Z), the starter
//     takes the terminal back and stops its own group, so that the shell above
//     sees the job stop; fg and bg continue it as they would the command. The
//     starter takes the terminal back when the command exits.
//   - The command runs under a supervisor, and its tree dies with the
//     starter (below).
//   - Exited says the moment the command ended, before its output pipes are
//     drained, so that measurements can be taken right at its end.
//   - Statuses are a shell's: the exit code, 128+N when killed by signal N,
//     127 when the command is not found, 126 when it cannot be executed.
//
// # The supervisor, and why
//
// A command's tree must not outlive the starter, even when the starter is
// killed with SIGKILL, when nothing in it runs. What the kernel offers
// without root falls short alone:
//
//   - PR_SET_PDEATHSIG on the command kills the command, not the processes
//     it started: a shell's background jobs, a launcher's workers.
//   - Killing the command's process group when the starter exits needs the
//     starter to run, and misses the processes that left the group (setsid,
//     a daemon's double fork).
//   - A cgroup holds a whole tree whatever it does, but creating one needs
//     root or a delegated cgroup v2 subtree (a systemd user slice), which
//     containers and batch nodes often lack.
//
// So Start re-executes the running program (/proc/self/exe: the same file
// even if it has been replaced or removed since) with an environment marker
// that this package's init recognises, before main and any other work, and
// that process becomes the command's supervisor. It sits between the
// starter and the command, in a process group of its own, and catches and
// drops the job's signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP and the
// terminal's stops: caught rather than ignored, so that the command starts
// with the default dispositions). It is a child subreaper
// (PR_SET_CHILD_SUBREAPER): every process of the command's tree whose
// parent exits is reparented to it, not to init, so that the tree is
// always the supervisor's descendants, wherever they moved, and it reaps
// them. It holds the read end of a control pipe whose only writer is the
// starter; end of file means the starter is done or dead, and the
// supervisor then ends the tree: SIGTERM to the command's group and to
// every descendant (found in /proc, and signalled through a pidfd after a
// check of its start time, so that a reused pid is never signalled),
// SIGCONT for the stopped ones, and after Options.KillAfter (default 10 s)
// SIGKILL, repeated until it has no child left. Then it exits.
//
// The starter closes the control pipe when Wait returns, so processes the
// command left behind end then too, as they would a moment later when the
// starter exits; Kill asks for SIGKILL of the whole tree at once.
// The supervisor reports the command's pid, stops and wait status on a
// status pipe; the command has PR_SET_PDEATHSIG (SIGKILL) on the
// supervisor, and a starter whose supervisor died kills the command's
// group and reports the command as killed.
//
// Packages initialised before this one run their init in the supervisor
// too: they must do nothing there that needs main (in quantkit-cuda,
// gpu/preflight's CUDA probe runs, and costs the supervisor its time).
//
// What escapes: a process that a command has another service start
// (systemd-run, at, a D-Bus activation) is no descendant of it, and a
// process still being forked when the last SIGKILL sweep runs is caught
// by the next sweep, 50 ms later.
//
// The package is Linux-only (waitid, PR_SET_PDEATHSIG,
// PR_SET_CHILD_SUBREAPER, /proc), as is quantkit's command, whose NVML
// binding builds only there.
package proc
