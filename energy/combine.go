package energy

import "strings"

// Combine is one source for several, such as the packages of a
// two-socket CPU: its energy and power are the sums of theirs, its state
// that of the first. Its counter does not wrap as a whole: a wrap of one
// part reads as a reset, and Measure then integrates sampled power for
// that window (and says so). One source is returned as it is.
func Combine(srcs ...Source) Source {
	if len(srcs) == 1 {
		return srcs[0]
	}
	return combined(srcs)
}

type combined []Source

func (c combined) Name() string {
	names := make([]string, len(c))
	for i, s := range c {
		names[i] = s.Name()
	}
	return strings.Join(names, " + ")
}

func (c combined) WrapJ() float64 { return 0 }
func (c combined) State() State   { return c[0].State() }

func (c combined) Energy() (float64, error) { return c.sum(Source.Energy) }
func (c combined) Power() (float64, error)  { return c.sum(Source.Power) }

func (c combined) sum(read func(Source) (float64, error)) (float64, error) {
	total := 0.0
	for _, s := range c {
		v, err := read(s)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}
