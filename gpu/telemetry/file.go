package telemetry

import (
	"encoding/json"
	"fmt"
	"os"
)

// FakeFileEnv names a JSON file that quantkit reads instead of NVML
// (OpenFile), for tests of whole commands on machines without a GPU.
const FakeFileEnv = "QUANTKIT_FAKE_NVML"

// FakeFile is the JSON of a file OpenFile reads: the driver and the GPUs,
// each field null (or absent) where the fake card does not report it.
type FakeFile struct {
	Driver string        `json:"driver"`
	CUDA   string        `json:"cuda"`
	GPUs   []FakeFileGPU `json:"gpus"`
}

// FakeFileGPU is one GPU of a FakeFile.
type FakeFileGPU struct {
	Name          string   `json:"name"`
	UUID          string   `json:"uuid"`
	PCIBusID      string   `json:"pci_bus_id,omitempty"`
	EnergyJ       *float64 `json:"energy_j"`
	PowerW        *float64 `json:"power_w"`
	PowerInstantW *float64 `json:"power_instant_w"`
	PowerLimitW   *float64 `json:"power_limit_w"`
	MemoryTotal   *uint64  `json:"memory_total_bytes"`
	MemoryUsed    *uint64  `json:"memory_used_bytes"`
	TemperatureC  *int     `json:"temperature_c"`
	SMClockMHz    *int     `json:"sm_clock_mhz"`
	MemClockMHz   *int     `json:"mem_clock_mhz"`
	UtilGPUPct    *int     `json:"util_gpu_pct"`
	UtilMemPct    *int     `json:"util_mem_pct"`
	Throttle      []string `json:"throttle"`
}

// OpenFile is a System whose readings come from the JSON file path
// (FakeFile), read again at every call, so that a test can change the
// readings, or take a GPU away, while a command runs. A device whose index
// the file no longer has returns an error from every method.
func OpenFile(path string) (System, error) {
	s := fileSystem{path}
	if _, err := s.read(); err != nil {
		return nil, fmt.Errorf("%w (%s: %v)", ErrNoGPU, path, err)
	}
	return s, nil
}

type fileSystem struct{ path string }

func (s fileSystem) read() (FakeFile, error) {
	var f FakeFile
	b, err := os.ReadFile(s.path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s: %w", s.path, err)
	}
	return f, nil
}

func (s fileSystem) DriverVersion() (string, error) { f, err := s.read(); return f.Driver, err }
func (s fileSystem) CUDAVersion() (string, error)   { f, err := s.read(); return f.CUDA, err }
func (s fileSystem) Count() (int, error)            { f, err := s.read(); return len(f.GPUs), err }
func (s fileSystem) Close() error                   { return nil }

func (s fileSystem) Device(i int) (Device, error) {
	d := fileDevice{s, i}
	_, err := d.gpu()
	return d, err
}

type fileDevice struct {
	s fileSystem
	i int
}

func (d fileDevice) gpu() (FakeFileGPU, error) {
	f, err := d.s.read()
	if err != nil {
		return FakeFileGPU{}, err
	}
	if d.i < 0 || d.i >= len(f.GPUs) {
		return FakeFileGPU{}, fmt.Errorf("%s: GPU %d is gone (%d GPUs)", d.s.path, d.i, len(f.GPUs))
	}
	return f.GPUs[d.i], nil
}

// field reads one field of the device, ErrNotSupported when it is null.
func field[T any](d fileDevice, get func(FakeFileGPU) *T) (T, error) {
	var zero T
	g, err := d.gpu()
	if err != nil {
		return zero, err
	}
	p := get(g)
	if p == nil {
		return zero, ErrNotSupported
	}
	return *p, nil
}

func (d fileDevice) Name() (string, error) { g, err := d.gpu(); return g.Name, err }
func (d fileDevice) UUID() (string, error) { g, err := d.gpu(); return g.UUID, err }

func (d fileDevice) PCIBusID() (string, error) {
	g, err := d.gpu()
	if err == nil && g.PCIBusID == "" {
		err = ErrNotSupported
	}
	return g.PCIBusID, err
}

func (d fileDevice) Memory() (uint64, uint64, error) {
	total, err := field(d, func(g FakeFileGPU) *uint64 { return g.MemoryTotal })
	if err != nil {
		return 0, 0, err
	}
	used, err := field(d, func(g FakeFileGPU) *uint64 { return g.MemoryUsed })
	return total, used, err
}

func (d fileDevice) PowerDraw() (float64, error) {
	return field(d, func(g FakeFileGPU) *float64 { return g.PowerW })
}

func (d fileDevice) PowerInstant() (float64, error) {
	return field(d, func(g FakeFileGPU) *float64 { return g.PowerInstantW })
}

func (d fileDevice) PowerLimit() (float64, error) {
	return field(d, func(g FakeFileGPU) *float64 { return g.PowerLimitW })
}

func (d fileDevice) TotalEnergy() (float64, error) {
	return field(d, func(g FakeFileGPU) *float64 { return g.EnergyJ })
}

func (d fileDevice) Temperature() (int, error) {
	return field(d, func(g FakeFileGPU) *int { return g.TemperatureC })
}

func (d fileDevice) Clocks() (int, int, error) {
	sm, err := field(d, func(g FakeFileGPU) *int { return g.SMClockMHz })
	if err != nil {
		return 0, 0, err
	}
	mem, err := field(d, func(g FakeFileGPU) *int { return g.MemClockMHz })
	return sm, mem, err
}

func (d fileDevice) Utilization() (int, int, error) {
	gpu, err := field(d, func(g FakeFileGPU) *int { return g.UtilGPUPct })
	if err != nil {
		return 0, 0, err
	}
	mem, err := field(d, func(g FakeFileGPU) *int { return g.UtilMemPct })
	return gpu, mem, err
}

func (d fileDevice) ThrottleReasons() ([]string, error) { g, err := d.gpu(); return g.Throttle, err }
