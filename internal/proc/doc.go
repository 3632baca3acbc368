// Package proc runs a command the way a shell runs a foreground job, for a
// supervisor (quantkit profile) that measures the command and must outlive
// it:
//
//   - The command gets a process group of its own, and Signal signals that
//     whole group. A signal sent to the supervisor's group (kill -TERM -PGID,
//     a batch system stopping the job) then reaches the command once, as the
//     supervisor forwards it, not twice.
//   - When the supervisor is the foreground job of its controlling terminal
//     (Options.Terminal), the command's group is made the terminal's
//     foreground group while it runs, as a shell does: the command reads the
//     terminal, and Ctrl-C, Ctrl-\ and Ctrl-Z reach it straight from the
//     terminal, exactly once, while the supervisor, now in the background,
//     receives none of them. When the command stops (Ctrl-Z), the supervisor
//     takes the terminal back and stops its own group, so that the shell above
//     sees the job stop; fg and bg continue it as they would the command. The
//     supervisor takes the terminal back when the command exits.
//   - The command is killed (SIGKILL) if the supervisor dies: Pdeathsig, set
//     from an OS thread that is kept alive until the command exits (the
//     kernel sends the signal when the creating thread ends, go.dev/issue/27505).
//     Processes the command itself started are not covered.
//   - Exited says the moment the command ended, before its output pipes are
//     drained, so that measurements can be taken right at its end.
//   - Statuses are a shell's: the exit code, 128+N when killed by signal N,
//     127 when the command is not found, 126 when it cannot be executed.
//
// The package is Linux-only (waitid, PR_SET_PDEATHSIG), as is quantkit's
// command, whose NVML binding builds only there.
package proc
