package energy

import (
	"errors"
	"testing"
	"time"
)

func TestCombine(t *testing.T) {
	a, b := NewFakeSource("cpu package-0 (RAPL)").Constant(50), NewFakeSource("cpu package-1 (RAPL)").Constant(70)
	if Combine(a) != Source(a) {
		t.Fatal("Combine of one source should be that source")
	}
	c := Combine(a, b)
	if c.Name() != "cpu package-0 (RAPL) + cpu package-1 (RAPL)" || c.WrapJ() != 0 {
		t.Fatalf("name %q, wrap %g", c.Name(), c.WrapJ())
	}
	if p, err := c.Power(); err != nil || p != 120 {
		t.Fatalf("power %g, %v; want 120", p, err)
	}
	a.EnergyFn = func(time.Duration) (float64, error) { return 10, nil }
	b.EnergyFn = func(time.Duration) (float64, error) { return 32.5, nil }
	if e, err := c.Energy(); err != nil || e != 42.5 {
		t.Fatalf("energy %g, %v; want 42.5", e, err)
	}
	b.EnergyFn = nil // no counter on one part: none for the whole
	if _, err := c.Energy(); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("energy with a part missing: %v", err)
	}
}
