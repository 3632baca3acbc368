package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/cpuinfo"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/devices"
)

// --json prints JSON instead of the table; --json-out writes it to a file
// beside the table; the CPU's features are those the kernels dispatch to.
func TestDevicesJSON(t *testing.T) {
	out, err := run(t, "devices", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r devices.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !slices.Equal(r.CPU.Features, cpu.KernelFeatures()) || r.CPU.Model != cpuinfo.Read().Model || r.CPU.Threads < 1 {
		t.Errorf("cpu %+v; kernels use %v", r.CPU, cpu.KernelFeatures())
	}
	path := filepath.Join(t.TempDir(), "d.json")
	out, err = run(t, "devices", "--json-out", path)
	if err != nil || !strings.HasPrefix(out, "CPU: ") {
		t.Fatalf("--json-out: %v, stdout:\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	var f devices.Report
	if err != nil || json.Unmarshal(b, &f) != nil || f.CPU.Model != r.CPU.Model {
		t.Errorf("--json-out wrote %q (%v)", b, err)
	}
	if _, err := run(t, "devices", "--json-out", filepath.Join(t.TempDir(), "d.txt")); !errors.Is(err, inputerr.ErrInput) {
		t.Errorf("--json-out d.txt: %v, want bad input", err)
	}
}
