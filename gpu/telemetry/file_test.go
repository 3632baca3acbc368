package telemetry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpus.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"driver":"580.1","cuda":"13.0","gpus":[
		{"name":"A","uuid":"GPU-a","pci_bus_id":"00000000:1B:00.0","energy_j":10.5,"power_w":300,"sm_clock_mhz":1980,"mem_clock_mhz":2619},
		{"name":"B","uuid":"GPU-b"}]}`)
	sys, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Read(sys)
	if err != nil || s.Driver != "580.1" || len(s.GPUs) != 2 {
		t.Fatalf("%+v, %v", s, err)
	}
	if g := s.GPUs[0]; g.EnergyJ != 10.5 || g.PowerW != 300 || g.SMClockMHz != 1980 || g.MemClockMHz != 2619 || g.UUID != "GPU-a" {
		t.Errorf("GPU 0: %+v", g)
	}
	if g := s.GPUs[1]; !strings.Contains(strings.Join(g.Missing, ","), "energy") {
		t.Errorf("GPU 1 has no energy field, Missing %v", g.Missing)
	}
	d, _ := sys.Device(1)
	if bus, err := d.(PCIBusIDReader).PCIBusID(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("GPU 1's bus id: %q, %v", bus, err)
	}
	// Readings change, and a GPU goes, while the device is held.
	write(`{"gpus":[{"name":"A","uuid":"GPU-a","energy_j":20}]}`)
	d0, _ := sys.Device(0)
	if j, err := d0.TotalEnergy(); err != nil || j != 20 {
		t.Errorf("after the change: %v J, %v", j, err)
	}
	if _, err := d.Name(); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("a removed GPU: %v", err)
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, ErrNoGPU) {
		t.Errorf("a missing file: %v", err)
	}
}
