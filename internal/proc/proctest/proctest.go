// Package proctest holds what the tests of internal/proc and of
// `quantkit profile` share: a process tree of every shape that can outlive
// its parent.
package proctest

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
