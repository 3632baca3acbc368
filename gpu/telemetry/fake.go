package telemetry

// Fake is a System for tests: a driver, and devices whose readings are set
// field by field. A nil function in a FakeDevice reports ErrNotSupported.
type Fake struct {
	Driver  string
	CUDA    string
	Devices []*FakeDevice
	Closed  bool
}

// FakeDevice is one fake GPU.
type FakeDevice struct {
	NameV, UUIDV      string
	MemTotal, MemUsed uint64
	PowerFn           func() float64 // watts; nil: not supported
	PowerLimitV       float64
	EnergyFn          func() float64 // joules since driver load; nil: not supported
	TempV             int
	SMMHz, MemMHz     int
	UtilGPU, UtilMem  int
}

func (f *Fake) DriverVersion() (string, error) { return f.Driver, nil }
func (f *Fake) CUDAVersion() (string, error)   { return f.CUDA, nil }
func (f *Fake) Count() (int, error)            { return len(f.Devices), nil }
func (f *Fake) Device(i int) (Device, error)   { return f.Devices[i], nil }
func (f *Fake) Close() error                   { f.Closed = true; return nil }

func (d *FakeDevice) Name() (string, error)           { return d.NameV, nil }
func (d *FakeDevice) UUID() (string, error)           { return d.UUIDV, nil }
func (d *FakeDevice) Memory() (uint64, uint64, error) { return d.MemTotal, d.MemUsed, nil }
func (d *FakeDevice) PowerLimit() (float64, error)    { return d.PowerLimitV, nil }
func (d *FakeDevice) Temperature() (int, error)       { return d.TempV, nil }
func (d *FakeDevice) Clocks() (int, int, error)       { return d.SMMHz, d.MemMHz, nil }
func (d *FakeDevice) Utilization() (int, int, error)  { return d.UtilGPU, d.UtilMem, nil }
func (d *FakeDevice) PowerDraw() (float64, error)     { return call(d.PowerFn) }
func (d *FakeDevice) TotalEnergy() (float64, error)   { return call(d.EnergyFn) }

func call(f func() float64) (float64, error) {
	if f == nil {
		return 0, ErrNotSupported
	}
	return f(), nil
}
