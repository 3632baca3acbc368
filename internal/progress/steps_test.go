package progress

import (
	"strings"
	"testing"
	"time"
)

func newTestSteps(o Options) (*Steps, *clock, *syncBuffer) {
	out := &syncBuffer{}
	o.Out = out
	c := &clock{t: time.Unix(1e9, 0)}
	s := NewSteps(o)
	s.now = c.now
	return s, c, out
}

func TestNilStepsDoNothing(t *testing.T) {
	var s *Steps
	s.Update(1, 2, "x")
	s.Finish()
}

// Each step has a bar of its own: the second's ETA counts from its own
// first update, not from the first step's.
func TestStepsBarEach(t *testing.T) {
	s, c, out := newTestSteps(Options{})
	s.Update(1, 2, "loss 0.5")
	c.advance(time.Second)
	s.Update(2, 2, "loss 0.25") // the end of the first step
	c.advance(time.Minute)
	s.Update(1, 4, "loss 0.125")
	c.advance(time.Second)
	s.Update(2, 4, "")
	s.Finish()
	s.Update(3, 4, "after Finish: a new step")
	s.Finish()
	bar := func(n int) string { return "[" + strings.Repeat("█", n) + strings.Repeat("·", 24-n) + "]" }
	want := []string{
		bar(12) + "  50% 1/2 loss 0.5",
		bar(24) + " 100% 2/2 ETA 0s loss 0.25",
		"", // the end of the step
		bar(6) + "  25% 1/4 loss 0.125",
		// two of four in 1 s: two more take 1 s (the minute between the
		// steps is not the second's).
		bar(12) + "  50% 2/4 ETA 1s loss 0.125",
		"", // Finish
		bar(18) + "  75% 3/4 after Finish: a new step",
		"",
	}
	got := out.frames()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("frames\n%q\nwant\n%q", got, want)
	}
}

// A step's total may change on the way; a step that ends before Delay
// leaves nothing, and a step after it still gets its own bar.
func TestStepsTotalAndDelay(t *testing.T) {
	s, c, out := newTestSteps(Options{Unit: "images", Delay: time.Second})
	s.Update(0, 10, "")
	c.advance(100 * time.Millisecond)
	s.Update(10, 10, "")
	if got := out.buf.String(); got != "" {
		t.Fatalf("a step shorter than the delay drew %q", got)
	}
	s.Update(0, 10, "")
	c.advance(time.Second)
	s.Update(5, 20, "")
	// Drawn by the redraw the first update scheduled, when the delay has
	// passed in real time.
	deadline := time.Now().Add(5 * time.Second)
	for len(out.frames()) < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if f := out.frames(); len(f) != 1 || !strings.Contains(f[0], " 5/20 images") {
		t.Errorf("frames %q, want one showing 5/20", f)
	}
	s.Finish()
}

// A Percent bar shows the share alone.
func TestPercentFrame(t *testing.T) {
	b, c, out := newTestBar(Options{Total: 2048, Unit: Percent})
	c.advance(time.Second)
	b.Update(1024, "entropy threshold of x")
	b.Finish()
	want := "[" + strings.Repeat("█", 12) + strings.Repeat("·", 12) + "]  50% ETA 1s entropy threshold of x"
	if f := out.frames(); len(f) != 2 || f[0] != want {
		t.Errorf("frames %q, want %q", f, want)
	}
}
