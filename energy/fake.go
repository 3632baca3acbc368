package energy

import "time"

// FakeSource is a Source for tests whose readings are functions of the
// time since Start (on the clock Now, when set). It is safe for
// concurrent use as long as its fields are not changed while it is read
// and its functions are safe for concurrent use.
type FakeSource struct {
	NameV    string
	EnergyFn func(t time.Duration) (float64, error) // nil: ErrNotSupported
	PowerFn  func(t time.Duration) (float64, error) // nil: ErrNotSupported
	Wrap     float64
	StateV   State
	Start    time.Time        // set by NewFakeSource
	Now      func() time.Time // the clock; nil: time.Now
}

// NewFakeSource is a FakeSource named name, starting now, with neither
// counter nor power until EnergyFn or PowerFn (or Constant) sets them.
func NewFakeSource(name string) *FakeSource {
	return &FakeSource{NameV: name, Start: time.Now()}
}

// Constant makes f draw watts steadily: Power is watts and Energy
// watts·t, so that the two agree. It returns f.
func (f *FakeSource) Constant(watts float64) *FakeSource {
	f.PowerFn = func(time.Duration) (float64, error) { return watts, nil }
	f.EnergyFn = func(t time.Duration) (float64, error) { return watts * t.Seconds(), nil }
	return f
}

func (f *FakeSource) elapsed() time.Duration {
	if f.Now != nil {
		return f.Now().Sub(f.Start)
	}
	return time.Since(f.Start)
}

func (f *FakeSource) Name() string   { return f.NameV }
func (f *FakeSource) WrapJ() float64 { return f.Wrap }
func (f *FakeSource) State() State   { return f.StateV }

func (f *FakeSource) Energy() (float64, error) {
	if f.EnergyFn == nil {
		return 0, ErrNotSupported
	}
	return f.EnergyFn(f.elapsed())
}

func (f *FakeSource) Power() (float64, error) {
	if f.PowerFn == nil {
		return 0, ErrNotSupported
	}
	return f.PowerFn(f.elapsed())
}
