package progress

import (
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Steps draws the progress of work that reports itself as the jobs'
// Progress callbacks do, done of total with a label, in steps (a QAT run
// per bit width, a threshold search per tensor): each step gets a bar of
// its own, with its own ETA and Delay, begun by the step's first update
// and ended when done reaches total.
//
//	steps := progress.NewSteps(progress.Options{Unit: "images"})
//	opt.Progress = steps.Update
//	rep, err := job.Run(ctx, opt)
//	steps.Finish() // clears the bar of a step that did not end
//
// NewSteps returns nil off a terminal, and every method of a nil *Steps
// does nothing, as with Bar. It is safe for concurrent use.
type Steps struct {
	mu    sync.Mutex
	o     Options // of each step's bar; Total comes from the updates
	bar   *Bar    // the step's; nil between steps
	total int     // the step's
	now   func() time.Time
}

// NewSteps begins drawing steps' bars as o describes (o.Total is ignored);
// nil when o.Out is nil and stderr is not a terminal.
func NewSteps(o Options) *Steps {
	if o.Out == nil && !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	o.Total = 0
	return &Steps{o: o, now: time.Now}
}

// Update shows done of total and the label ("" keeps the last one) on
// the step's bar, beginning one when no step is under way; done reaching
// total ends the step.
func (s *Steps) Update(done, total int, label string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar == nil {
		o := s.o
		o.Total = int64(total)
		if s.bar = New(o); s.bar == nil {
			return // stderr stopped being a terminal: nothing to draw on
		}
		s.bar.now, s.bar.start, s.total = s.now, s.now(), total
	} else if total != s.total {
		s.bar.SetTotal(int64(total))
		s.total = total
	}
	s.bar.Update(int64(done), label)
	if done >= total {
		s.bar.Finish()
		s.bar = nil
	}
}

// Finish clears the bar of a step under way, if any. Later updates begin
// a new step.
func (s *Steps) Finish() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bar.Finish()
	s.bar = nil
}
