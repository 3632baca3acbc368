package energy

import (
	"errors"
	"fmt"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

// GPUSources are the NVIDIA GPUs of sys as sources, named
// "gpu:N <name>". Energy is NVML's total-energy counter; Power NVML's
// power draw; State clocks, temperature, memory used, utilization and
// throttle reasons. Failing to count or open the devices is an error; a
// device whose name cannot be read is named "gpu:N".
func GPUSources(sys telemetry.System) ([]Source, error) {
	n, err := sys.Count()
	if err != nil {
		return nil, fmt.Errorf("energy: counting GPUs: %w", err)
	}
	srcs := make([]Source, 0, n)
	for i := range n {
		d, err := sys.Device(i)
		if err != nil {
			return nil, fmt.Errorf("energy: opening GPU %d: %w", i, err)
		}
		name, _ := d.Name()
		srcs = append(srcs, GPUSource(i, d, name))
	}
	return srcs, nil
}

// GPUSource is GPU index d, named "gpu:<index> <name>" ("gpu:<index>"
// when name is empty). Its counter is NVML's total energy since the
// driver loaded (millijoules, Volta and later; 64 bits, so it does not
// wrap); a GPU without one gives ErrNotSupported. Power is NVML's power
// draw, a one-second average on H100/H200. State reads each field
// separately: one that fails is left zero.
func GPUSource(index int, d telemetry.Device, name string) Source {
	s := &gpuSource{d: d, name: fmt.Sprintf("gpu:%d", index)}
	if name != "" {
		s.name += " " + name
	}
	return s
}

type gpuSource struct {
	d    telemetry.Device
	name string
}

func (s *gpuSource) Name() string   { return s.name }
func (s *gpuSource) WrapJ() float64 { return 0 }

func (s *gpuSource) Energy() (float64, error) {
	j, err := s.d.TotalEnergy()
	return j, s.wrap("energy counter", err)
}

func (s *gpuSource) Power() (float64, error) {
	w, err := s.d.PowerDraw()
	return w, s.wrap("power", err)
}

// wrap maps telemetry's ErrNotSupported to this package's and gives other
// errors context.
func (s *gpuSource) wrap(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, telemetry.ErrNotSupported):
		return ErrNotSupported
	}
	return fmt.Errorf("energy: %s: reading %s: %w", s.name, what, err)
}

func (s *gpuSource) State() State {
	var st State
	if sm, mem, err := s.d.Clocks(); err == nil {
		st.SMClockMHz, st.MemClockMHz = sm, mem
	}
	if t, err := s.d.Temperature(); err == nil {
		st.TemperatureC = t
	}
	if _, used, err := s.d.Memory(); err == nil {
		st.MemoryUsed = used
	}
	if u, _, err := s.d.Utilization(); err == nil {
		st.UtilPct = u
	}
	if r, err := s.d.ThrottleReasons(); err == nil {
		st.Throttle = r
	}
	return st
}
