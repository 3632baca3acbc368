// Package progress draws one progress bar on a terminal: the share done,
// the count or the bytes, a rate for bytes, the time left and a label (the
// tensor, the case, the step being worked on).
//
//	bar := progress.Start(total, progress.Bytes)
//	defer bar.Finish()
//	for ... {
//		bar.Add(n, name)
//	}
//
// Work in steps, reported as the jobs' Progress callbacks report it (done
// of total and a label, a step ending at done == total), draws a bar per
// step through Steps.
//
// A bar draws only on a terminal: Start returns nil when stderr is not one
// (a pipe, a file, a CI log), and every method of a nil *Bar does nothing,
// so callers need no condition of their own. Redraws are limited to ten a
// second, whatever the rate of updates; the last state is drawn when the
// updates pause. A bar is safe for concurrent use.
//
// It has no dependency: what the commands need (one line, \r redraws, an
// ETA, byte units) is less code than adapting a library's defaults, and a
// clock and a writer passed in make every frame testable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/quantkit/quantkit/internal/units"
	"golang.org/x/term"
)

// Bytes is the unit of a bar that counts bytes: it shows sizes (1.5 GB)
// and a rate (320 MB/s). Any other unit is a plural noun shown after the
// count ("3/12 cases").
const Bytes = "bytes"

// Percent is the unit of a bar whose counts mean nothing to a reader (the
// steps of a search, in units of its own): it shows the share done and no
// count.
const Percent = "percent"

// Interval is the shortest time between two redraws.
const Interval = 100 * time.Millisecond

// Options describe a bar; Start covers the common case.
type Options struct {
	Total int64  // the work, in Unit; 0: not known yet (SetTotal)
	Unit  string // Bytes, Percent, or a plural noun: "cases", "items", "images"
	// Delay shows nothing until the work has run this long, so that work
	// which ends quickly leaves no trace.
	Delay time.Duration
	// Out is where the bar is drawn; nil: os.Stderr, when it is a
	// terminal (New returns nil otherwise). A non-nil Out is always drawn
	// on (tests, or a caller that checked for a terminal itself).
	Out io.Writer
	// Width is the line's width in columns; 0: the terminal's, or 80.
	Width int
}

// Bar is one progress bar. Its zero value is not usable; a nil *Bar is,
// and draws nothing.
type Bar struct {
	mu      sync.Mutex
	out     io.Writer
	width   int
	unit    string
	delay   time.Duration
	now     func() time.Time
	start   time.Time
	total   int64
	done    int64
	label   string
	last    time.Time   // the last redraw; zero: none yet
	pending *time.Timer // a redraw of a throttled update
	drawn   bool        // the line holds a bar
	ended   bool
}

// Start begins a bar of total units on stderr when stderr is a terminal,
// and returns nil (a bar that draws nothing) otherwise.
func Start(total int64, unit string) *Bar { return New(Options{Total: total, Unit: unit}) }

// New begins a bar as o describes; nil when o.Out is nil and stderr is not
// a terminal.
func New(o Options) *Bar {
	out, width := o.Out, o.Width
	if out == nil {
		fd := int(os.Stderr.Fd())
		if !term.IsTerminal(fd) {
			return nil
		}
		out = os.Stderr
		if w, _, err := term.GetSize(fd); err == nil && width == 0 {
			width = w
		}
	}
	if width <= 0 {
		width = 80
	}
	return &Bar{out: out, width: width, unit: o.Unit, delay: o.Delay, now: time.Now, start: time.Now(), total: o.Total}
}

// Update sets the work done so far and the label (what is being worked on
// now; "" keeps the last one).
func (b *Bar) Update(done int64, label string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	b.set(label)
}

// Add adds n to the work done, and sets the label as Update does.
func (b *Bar) Add(n int64, label string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.set(label)
}

// SetTotal changes the total, for work whose size is learnt on the way.
func (b *Bar) SetTotal(total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total = total
	b.set("")
}

// Finish clears the bar's line and stops drawing: later calls do nothing.
// Call it before printing anything else on the bar's writer.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending != nil {
		b.pending.Stop()
		b.pending = nil
	}
	if b.drawn {
		fmt.Fprint(b.out, "\r\033[K")
		b.drawn = false
	}
	b.ended = true
}

// set records label and redraws now, or schedules a redraw for when
// Interval has passed since the last one. b.mu is held.
func (b *Bar) set(label string) {
	if label != "" {
		b.label = label
	}
	if b.ended || b.pending != nil {
		return // the scheduled redraw will show this state
	}
	now := b.now()
	wait := b.start.Add(b.delay).Sub(now)
	if !b.last.IsZero() {
		wait = max(wait, b.last.Add(Interval).Sub(now))
	}
	if wait > 0 {
		b.pending = time.AfterFunc(wait, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.pending = nil
			if !b.ended {
				b.draw(b.now())
			}
		})
		return
	}
	b.draw(now)
}

// draw writes the bar. b.mu is held.
func (b *Bar) draw(now time.Time) {
	b.last, b.drawn = now, true
	fmt.Fprint(b.out, "\r\033[K"+b.line(now))
}

// line is the bar's text at now, cut to the width less one column (a
// line that fills the terminal wraps on some, and \r then redraws only its
// second half).
func (b *Bar) line(now time.Time) string {
	const cells = 24
	done, total := b.done, b.total
	var s strings.Builder
	if total > 0 {
		frac := min(max(float64(done)/float64(total), 0), 1)
		fill := int(frac * cells)
		fmt.Fprintf(&s, "[%s%s] %3.0f%%", strings.Repeat("█", fill), strings.Repeat("·", cells-fill), 100*frac)
	}
	elapsed := now.Sub(b.start)
	var count strings.Builder
	switch {
	case b.unit == Bytes:
		count.WriteString(units.FormatBytes(done))
		if total > 0 {
			count.WriteString("/" + units.FormatBytes(total))
		}
		if sec := elapsed.Seconds(); sec >= 0.5 && done > 0 {
			count.WriteString(" " + units.FormatBytes(int64(float64(done)/sec)) + "/s")
		}
	case b.unit == Percent && total > 0: // the share says it all
	default:
		fmt.Fprintf(&count, "%d", done)
		if total > 0 {
			fmt.Fprintf(&count, "/%d", total)
		}
		if b.unit != "" && b.unit != Percent {
			count.WriteString(" " + b.unit)
		}
	}
	if count.Len() > 0 {
		if s.Len() > 0 {
			s.WriteString(" ")
		}
		s.WriteString(count.String())
	}
	if eta, ok := ETA(elapsed, done, total); ok {
		s.WriteString(" ETA " + eta.String())
	}
	if b.label != "" {
		s.WriteString(" " + b.label)
	}
	return truncate(s.String(), b.width-1)
}

// ETA is the time left when done of total took elapsed, at the same rate,
// rounded to the second; ok is false when it cannot be told (nothing done
// yet, no total, or too early for a rate).
func ETA(elapsed time.Duration, done, total int64) (left time.Duration, ok bool) {
	if done <= 0 || total <= 0 || elapsed < 500*time.Millisecond {
		return 0, false
	}
	if done >= total {
		return 0, true
	}
	left = time.Duration(float64(elapsed) / float64(done) * float64(total-done))
	return left.Round(time.Second), true
}

// truncate cuts s to at most n runes (each drawn in one column here),
// ending in "…" when cut.
func truncate(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
