package atomicfile

import (
	"errors"
	"os"
	"slices"
	"sync"
)

// live holds every temporary file and directory of this process that is
// neither committed nor aborted, so that Cleanup can remove them when the
// process is interrupted.
var live struct {
	sync.Mutex
	paths  map[string]bool
	closed bool // Cleanup ran: no new temporaries
}

// errShuttingDown is what Create and TempDir return after Cleanup.
var errShuttingDown = errors.New("interrupted: no new output is started")

func register(path string) error {
	live.Lock()
	defer live.Unlock()
	if live.closed {
		return errShuttingDown
	}
	if live.paths == nil {
		live.paths = map[string]bool{}
	}
	live.paths[path] = true
	return nil
}

func unregister(path string) {
	live.Lock()
	delete(live.paths, path)
	live.Unlock()
}

// Cleanup removes every temporary file and directory of this process that
// was neither committed nor aborted, and makes every later Create and
// TempDir fail, so that workers still running cannot start new ones. It
// is for a process that was told to stop (SIGINT, SIGTERM) and is about to
// exit: destinations are left as they were. It returns the paths removed.
func Cleanup() []string {
	live.Lock()
	live.closed = true
	paths := make([]string, 0, len(live.paths))
	for p := range live.paths {
		paths = append(paths, p)
	}
	live.paths = nil
	live.Unlock()
	// Longest first: files inside a temporary directory go before it.
	slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) })
	var removed []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		// A worker may still be writing into a directory: retry once.
		if os.RemoveAll(p) != nil {
			os.RemoveAll(p)
		}
		removed = append(removed, p)
	}
	return removed
}

// Live returns the temporaries of this process not yet committed or
// aborted (for tests).
func Live() []string {
	live.Lock()
	defer live.Unlock()
	var paths []string
	for p := range live.paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// Track adds path, a scratch file or directory of the caller's (a
// benchmark's work directory), to what Cleanup removes; done removes it
// from the list once the caller has removed it itself. It fails after
// Cleanup.
func Track(path string) (done func(), err error) {
	if err := register(path); err != nil {
		return nil, err
	}
	return func() { unregister(path) }, nil
}
