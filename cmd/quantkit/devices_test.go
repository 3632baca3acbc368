package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

func TestDevicesTable(t *testing.T) {
	fake := &telemetry.Fake{Driver: "580.65.06", CUDA: "13.0", Devices: []*telemetry.FakeDevice{{
		NameV: "NVIDIA H100 80GB HBM3", UUIDV: "GPU-1", MemTotal: 80 << 30, MemUsed: 2 << 30,
		PowerFn: func() float64 { return 72 }, PowerLimitV: 700, EnergyFn: func() float64 { return 123456 },
		TempV: 33, SMMHz: 1980, MemMHz: 2619, UtilGPU: 5, ThrottleV: []string{"gpu_idle"},
	}, {NameV: "old card", MemTotal: 4 << 30}}}
	r := addGPUs(DevicesReport{CPU: CPUInfo{Model: "test cpu", Threads: 4}}, fake)
	var out bytes.Buffer
	writeDevices(&out, r)
	for _, want := range []string{"NVIDIA driver 580.65.06, CUDA 13.0", "NVIDIA H100 80GB HBM3", "2.0/80.0 GiB", "72/700 W",
		"123.5 kJ", "33 °C", "1980/2619 MHz", "gpu_idle", "GPU 1 does not report: power, energy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("devices table lacks %q:\n%s", want, out.String())
		}
	}
}
