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
	ThrottleV         []string       // active throttle reasons; nil: none
	PCIBusIDV         string         // "": not supported
	PowerInstantFn    func() float64 // watts, instantaneous; nil: not supported
	// Errs makes a field fail: its method returns Errs[field] instead of
	// a reading. Fields are named as in GPU.Missing: "name", "uuid",
	// "memory", "power", "power_limit", "energy", "temperature",
	// "clocks", "utilization", "throttle", and "pci_bus_id",
	// "power_instant" for the optional readers (PCIBusIDReader,
	// InstantPowerReader).
	Errs map[string]error
}

func (f *Fake) DriverVersion() (string, error) { return f.Driver, nil }
func (f *Fake) CUDAVersion() (string, error)   { return f.CUDA, nil }
func (f *Fake) Count() (int, error)            { return len(f.Devices), nil }
func (f *Fake) Device(i int) (Device, error)   { return f.Devices[i], nil }
func (f *Fake) Close() error                   { f.Closed = true; return nil }

func (d *FakeDevice) Name() (string, error) {
	if err := d.Errs["name"]; err != nil {
		return "", err
	}
	return d.NameV, nil
}

func (d *FakeDevice) UUID() (string, error) {
	if err := d.Errs["uuid"]; err != nil {
		return "", err
	}
	return d.UUIDV, nil
}

func (d *FakeDevice) Memory() (uint64, uint64, error) {
	if err := d.Errs["memory"]; err != nil {
		return 0, 0, err
	}
	return d.MemTotal, d.MemUsed, nil
}

func (d *FakeDevice) PowerLimit() (float64, error) {
	if err := d.Errs["power_limit"]; err != nil {
		return 0, err
	}
	return d.PowerLimitV, nil
}

func (d *FakeDevice) Temperature() (int, error) {
	if err := d.Errs["temperature"]; err != nil {
		return 0, err
	}
	return d.TempV, nil
}

func (d *FakeDevice) Clocks() (int, int, error) {
	if err := d.Errs["clocks"]; err != nil {
		return 0, 0, err
	}
	return d.SMMHz, d.MemMHz, nil
}

func (d *FakeDevice) Utilization() (int, int, error) {
	if err := d.Errs["utilization"]; err != nil {
		return 0, 0, err
	}
	return d.UtilGPU, d.UtilMem, nil
}

func (d *FakeDevice) ThrottleReasons() ([]string, error) {
	if err := d.Errs["throttle"]; err != nil {
		return nil, err
	}
	return d.ThrottleV, nil
}

func (d *FakeDevice) PowerDraw() (float64, error)   { return d.call("power", d.PowerFn) }
func (d *FakeDevice) TotalEnergy() (float64, error) { return d.call("energy", d.EnergyFn) }

func (d *FakeDevice) call(field string, f func() float64) (float64, error) {
	if err := d.Errs[field]; err != nil {
		return 0, err
	}
	if f == nil {
		return 0, ErrNotSupported
	}
	return f(), nil
}
