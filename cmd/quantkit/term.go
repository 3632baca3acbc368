package main

import (
	"os"

	"golang.org/x/term"

	"github.com/quantkit/quantkit/internal/progress"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progressLine is a progress bar (internal/progress) on stderr, when it is
// a terminal and enabled, as a callback of done, total and a label, and a
// function that clears it. It serves the commands not yet calling
// internal/progress themselves (calibrate, eval, gen, qat, demo, bench
// checkpoint); new code should use progress.Start.
func progressLine(enabled bool) (func(done, total int, what string), func()) {
	var bar *progress.Bar
	if enabled {
		bar = progress.Start(0, "")
	}
	if bar == nil {
		return nil, func() {}
	}
	total := -1
	return func(done, n int, what string) {
		if n != total {
			total = n
			bar.SetTotal(int64(n))
		}
		bar.Update(int64(done), what)
	}, bar.Finish
}
