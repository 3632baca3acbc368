package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// clock is a fake time source that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a bytes.Buffer that a redraw timer may write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// frames are the lines drawn so far, in order (each redraw starts with
// "\r\033[K"; a clear is an empty frame).
func (b *syncBuffer) frames() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := strings.Split(b.buf.String(), "\r\033[K")
	return f[1:]
}

func newTestBar(o Options) (*Bar, *clock, *syncBuffer) {
	out := &syncBuffer{}
	o.Out = out
	c := &clock{t: time.Unix(1e9, 0)}
	b := New(o)
	b.now, b.start = c.now, c.now()
	return b, c, out
}

func TestNilBarDoesNothing(t *testing.T) {
	var b *Bar
	b.Update(1, "x")
	b.Add(1, "x")
	b.SetTotal(3)
	b.Finish()
}

func TestCountFrames(t *testing.T) {
	b, c, out := newTestBar(Options{Total: 4, Unit: "cases"})
	b.Update(0, "gonum fp32 256³")
	c.advance(2 * time.Second)
	b.Update(1, "quantkit int8 256³")
	b.Finish()
	b.Update(2, "after the end")
	want := []string{
		"[" + strings.Repeat("·", 24) + "]   0% 0/4 cases gonum fp32 256³",
		// one of four in 2 s: three more take 6 s.
		"[" + strings.Repeat("█", 6) + strings.Repeat("·", 18) + "]  25% 1/4 cases ETA 6s quantkit int8 256³",
		"", // the clear
	}
	got := out.frames()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("frames\n%q\nwant\n%q", got, want)
	}
}

func TestBytesFrame(t *testing.T) {
	b, c, out := newTestBar(Options{Total: 4e9, Unit: Bytes, Width: 120})
	c.advance(5 * time.Second)
	b.Add(1.5e9, "model.layers.0.mlp.up_proj.weight")
	b.Add(0, "") // throttled: drawn later, with the same state
	got := out.frames()
	// 1.5 GB in 5 s: 300 MB/s; 2.5 GB left at that rate: 8.33 s.
	want := "[█████████···············]  38% 1.5 GB/4 GB 300 MB/s ETA 8s model.layers.0.mlp.up_proj.weight"
	if len(got) != 1 || got[0] != want {
		t.Errorf("frames %q\nwant %q", got, want)
	}
	b.Finish()
}

// Updates faster than Interval draw once; the last state is drawn when
// they pause, not lost.
func TestThrottle(t *testing.T) {
	b, c, out := newTestBar(Options{Total: 100, Unit: "items"})
	for i := range 50 {
		b.Update(int64(i+1), "")
		c.advance(time.Millisecond)
	}
	if n := len(out.frames()); n != 1 {
		t.Fatalf("%d frames for 50 updates within 50 ms, want 1", n)
	}
	c.advance(Interval)
	deadline := time.Now().Add(5 * time.Second)
	for len(out.frames()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	f := out.frames()
	if len(f) != 2 || !strings.Contains(f[1], " 50/100 items") {
		t.Errorf("after the pause: frames %q, want a second one showing 50/100", f)
	}
	b.Finish()
	n := len(out.frames())
	time.Sleep(2 * Interval)
	if len(out.frames()) != n {
		t.Error("drawn after Finish")
	}
}

// With a Delay, work that ends before it leaves nothing on the terminal.
func TestDelay(t *testing.T) {
	b, c, out := newTestBar(Options{Total: 10, Unit: "items", Delay: time.Second})
	b.Update(5, "x")
	c.advance(100 * time.Millisecond)
	b.Finish()
	if s := out.buf.String(); s != "" {
		t.Errorf("wrote %q before the delay", s)
	}
	b, c, out = newTestBar(Options{Total: 10, Unit: "items", Delay: time.Second})
	c.advance(time.Second)
	b.Update(5, "x")
	if f := out.frames(); len(f) != 1 || !strings.Contains(f[0], "5/10 items") {
		t.Errorf("after the delay: frames %q", f)
	}
	b.Finish()
}

// A line never reaches the last column, however long the label.
func TestWidth(t *testing.T) {
	b, _, out := newTestBar(Options{Total: 3, Unit: "items", Width: 40})
	b.Update(1, strings.Repeat("é", 100))
	f := out.frames()
	if len(f) != 1 || utf8.RuneCountInString(f[0]) != 39 || !strings.HasSuffix(f[0], "…") {
		t.Errorf("frame %q (%d runes), want 39 runes ending in …", f, utf8.RuneCountInString(f[0]))
	}
	b.Finish()
}

// An unknown total shows the count alone, and SetTotal brings the bar.
func TestNoTotal(t *testing.T) {
	b, c, out := newTestBar(Options{Unit: "items"})
	b.Update(7, "")
	c.advance(time.Second)
	b.SetTotal(14)
	f := out.frames()
	if len(f) != 2 || f[0] != "7 items" || !strings.HasPrefix(f[1], "[") || !strings.Contains(f[1], "7/14 items ETA 1s") {
		t.Errorf("frames %q", f)
	}
	b.Finish()
}

func TestConcurrentAdd(t *testing.T) {
	b, _, _ := newTestBar(Options{Total: 8000, Unit: Bytes})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.Add(1, "t")
			}
		})
	}
	wg.Wait()
	b.Finish()
	if b.done != 8000 {
		t.Errorf("done %d, want 8000", b.done)
	}
}

func TestETA(t *testing.T) {
	for _, tc := range []struct {
		elapsed     time.Duration
		done, total int64
		want        time.Duration
		ok          bool
	}{
		{10 * time.Second, 1, 4, 30 * time.Second, true},
		{3 * time.Second, 2, 3, 2 * time.Second, true}, // 1.5 s rounds to 2 s
		{time.Second, 5, 5, 0, true},
		{time.Second, 0, 5, 0, false},
		{time.Second, 1, 0, 0, false},
		{100 * time.Millisecond, 1, 5, 0, false},
	} {
		got, ok := ETA(tc.elapsed, tc.done, tc.total)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ETA(%v, %d, %d) = %v, %v; want %v, %v", tc.elapsed, tc.done, tc.total, got, ok, tc.want, tc.ok)
		}
	}
}

// Off a terminal, Start gives nil: go test's stderr is a pipe or a file.
func TestStartOffTerminal(t *testing.T) {
	if b := Start(10, "items"); b != nil {
		t.Skip("stderr is a terminal here")
	}
}
