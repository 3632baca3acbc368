package energy

import (
	"errors"
	"sync"
	"time"
)

// DefaultInterval is the sampling period when none is given.
const DefaultInterval = 100 * time.Millisecond

// Sampler reads a source's power and state every interval in the
// background. Where the source has no Power (ErrNotSupported) but an
// energy counter (RAPL), power is derived from successive counter
// readings: each sample's power is the mean over the time since the
// previous counter reading.
//
// Stop must be called once to end the goroutine; it may be called again,
// from any goroutine, and returns the same samples.
type Sampler struct {
	src      Source
	interval time.Duration
	start    time.Time
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	samples  []Sample // written only by the sampling goroutine until done

	// Derived power: the last counter reading and when it was taken.
	lastE        float64
	lastT        time.Duration
	haveE        bool
	firstDerived bool // the first sample wanted derived power
}

// StartSampler starts sampling src every interval (an immediate first
// sample, then one per interval). interval ≤ 0 means DefaultInterval.
// The first sample is taken before StartSampler returns.
func StartSampler(src Source, interval time.Duration) *Sampler {
	if interval <= 0 {
		interval = DefaultInterval
	}
	s := &Sampler{
		src:      src,
		interval: interval,
		start:    time.Now(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.take()
	s.firstDerived = s.haveE && s.samples[0].NoPower
	go s.run()
	return s
}

// Started is when sampling started: Sample.T counts from it.
func (s *Sampler) Started() time.Time { return s.start }

// Stop stops the sampler (taking one last sample) and returns the
// samples in time order. It waits for the sampling goroutine to end.
//
// With derived power the first sample has no reading before it; it is
// given the second sample's power, which makes the first interval's
// trapezoid exactly the counter's energy over it.
func (s *Sampler) Stop() []Sample {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return s.samples
}

func (s *Sampler) run() {
	defer close(s.done)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.take()
		case <-s.stop:
			s.take()
			if s.firstDerived && len(s.samples) > 1 && !s.samples[1].NoPower {
				s.samples[0].PowerW, s.samples[0].NoPower = s.samples[1].PowerW, false
			}
			return
		}
	}
}

// take appends one sample. T is the middle of the power (or counter)
// reading; State is read after it.
func (s *Sampler) take() {
	var smp Sample
	t0 := time.Since(s.start)
	p, err := s.src.Power()
	switch {
	case err == nil:
		smp.T = mid(t0, time.Since(s.start))
		smp.PowerW = p
	case errors.Is(err, ErrNotSupported):
		smp.T, smp.PowerW, smp.NoPower = s.derive(t0)
	default:
		smp.T = mid(t0, time.Since(s.start))
		smp.NoPower = true
	}
	smp.State = s.src.State()
	s.samples = append(s.samples, smp)
}

// derive reads the counter and returns the mean power since the previous
// reading. Readings closer than half an interval apart (the last sample,
// taken at Stop just after a tick) are too short for a counter that
// updates every millisecond or so: the sample is marked NoPower and the
// previous reading kept, so that the next sample spans both.
func (s *Sampler) derive(t0 time.Duration) (t time.Duration, watts float64, noPower bool) {
	e, err := s.src.Energy()
	t = mid(t0, time.Since(s.start))
	if err != nil {
		return t, 0, true
	}
	if !s.haveE {
		s.lastE, s.lastT, s.haveE = e, t, true
		return t, 0, true
	}
	dt := t - s.lastT
	if dt < s.interval/2 {
		return t, 0, true
	}
	d, ok := Delta(s.lastE, e, s.src.WrapJ())
	s.lastE, s.lastT = e, t
	if !ok {
		return t, 0, true // counter reset: no power for this interval
	}
	return t, d / dt.Seconds(), false
}

func mid(a, b time.Duration) time.Duration { return a + (b-a)/2 }
