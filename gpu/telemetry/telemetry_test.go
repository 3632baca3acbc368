package telemetry

import (
	"errors"
	"reflect"
	"testing"
)

func TestReadFake(t *testing.T) {
	f := &Fake{Driver: "580.65.06", CUDA: "13.0", Devices: []*FakeDevice{
		{NameV: "NVIDIA H100 80GB HBM3", UUIDV: "GPU-1", MemTotal: 80 << 30, MemUsed: 1 << 30,
			PowerFn: func() float64 { return 71.5 }, PowerLimitV: 700, EnergyFn: func() float64 { return 1234.5 },
			TempV: 31, SMMHz: 1980, MemMHz: 2619, UtilGPU: 3, UtilMem: 1},
		{NameV: "old card", MemTotal: 1 << 30}, // no power or energy counter
	}}
	s, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if s.Driver != "580.65.06" || s.CUDA != "13.0" || len(s.GPUs) != 2 {
		t.Fatalf("snapshot = %+v", s)
	}
	g := s.GPUs[0]
	if g.PowerW != 71.5 || g.EnergyJ != 1234.5 || g.MemoryTotal != 80<<30 || g.SMClockMHz != 1980 || len(g.Missing) != 0 {
		t.Errorf("GPU 0 = %+v", g)
	}
	if got, want := s.GPUs[1].Missing, []string{"power", "energy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("GPU 1 missing %v, want %v", got, want)
	}
}

// On a machine without NVML, Open must fail cleanly with ErrNoGPU and a
// reason, never crash. On a machine with a GPU it must list it.
func TestOpenHere(t *testing.T) {
	sys, err := Open()
	if err != nil {
		if !errors.Is(err, ErrNoGPU) {
			t.Fatalf("Open error %v does not wrap ErrNoGPU", err)
		}
		t.Logf("as expected without a GPU: %v", err)
		return
	}
	defer sys.Close()
	s, err := Read(sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s)
}
