package nn

import (
	"errors"
	"fmt"
)

// Samples is a labelled set of inputs for calibration, training and
// accuracy. Fill writes the samples idx, one after the other, into dst
// in the net's input layout and scale (for a dataset.Set s:
// s.Input(dst, idx, net.InputScale)). Labels may be nil for calibration.
type Samples struct {
	N      int
	Labels []uint8
	Fill   func(dst []float32, idx []int)
}

// Check reports whether s has samples to fill, and labels for each of
// them when needLabels is set.
func (s *Samples) Check(needLabels bool) error {
	switch {
	case s == nil || s.Fill == nil:
		return errors.New("nn: no samples")
	case s.N <= 0:
		return fmt.Errorf("nn: %d samples", s.N)
	case needLabels && len(s.Labels) < s.N:
		return fmt.Errorf("nn: %d labels for %d samples", len(s.Labels), s.N)
	}
	return nil
}
