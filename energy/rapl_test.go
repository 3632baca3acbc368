package energy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRAPL writes a powercap tree: files maps "intel-rapl:0/energy_uj" to
// its content.
func fakeRAPL(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRAPLSources(t *testing.T) {
	root := fakeRAPL(t, map[string]string{
		"intel-rapl:0/name":                  "package-0\n",
		"intel-rapl:0/energy_uj":             "262143000000\n",
		"intel-rapl:0/max_energy_range_uj":   "262143328850\n",
		"intel-rapl:10/name":                 "package-10\n",
		"intel-rapl:10/energy_uj":            "5\n",
		"intel-rapl:10/max_energy_range_uj":  "262143328850\n",
		"intel-rapl:2/name":                  "package-2\n",
		"intel-rapl:2/energy_uj":             "1000000\n",
		"intel-rapl:2/max_energy_range_uj":   "65532610987\n",
		"intel-rapl:0:0/name":                "core\n", // a subdomain: skipped
		"intel-rapl:0:0/energy_uj":           "1\n",
		"intel-rapl-mmio:0/name":             "package-0\n", // the same energy again: skipped
		"intel-rapl:3/name":                  "psys\n",      // the platform, packages included: skipped
		"intel-rapl:3/energy_uj":             "9000000\n",
		"intel-rapl-mmio:0/energy_uj":        "1\n",
		"intel-rapl:0:0/max_energy_range_uj": "262143328850\n",
	})
	srcs, err := RAPLSources(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name())
	}
	if got, want := strings.Join(names, ", "), "cpu package-0 (RAPL), cpu package-2 (RAPL), cpu package-10 (RAPL)"; got != want {
		t.Fatalf("sources %q, want %q", got, want)
	}
	s := srcs[0]
	if e, err := s.Energy(); err != nil || e != 262143 {
		t.Errorf("Energy = %v, %v; want 262143 J", e, err)
	}
	if s.WrapJ() != 262143.328850 || srcs[1].WrapJ() != 65532.610987 {
		t.Errorf("WrapJ = %v, %v", s.WrapJ(), srcs[1].WrapJ())
	}
	if _, err := s.Power(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Power: %v, want ErrNotSupported", err)
	}

	// The counter wraps across max_energy_range_uj: 0.328850 J to the
	// wrap, then 1.5 J.
	e0, _ := s.Energy()
	if err := os.WriteFile(filepath.Join(root, "intel-rapl:0/energy_uj"), []byte("1500000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e1, err := s.Energy()
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := Delta(e0, e1, s.WrapJ()); !ok || !near(d, 1.828850, 1e-9) {
		t.Errorf("Delta across the wrap = %v, %v; want 1.82885 J", d, ok)
	}
}

func TestRAPLUnavailable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "powercap")
	_, err := RAPLSources(root)
	if err == nil || err.Error() != "energy: CPU energy not available: no RAPL domains under "+root {
		t.Errorf("missing root: %v", err)
	}

	root = fakeRAPL(t, map[string]string{"intel-rapl:0:0/energy_uj": "1\n", "dtpm/name": "x\n"})
	if _, err := RAPLSources(root); err == nil || !strings.Contains(err.Error(), "no RAPL domains under") {
		t.Errorf("only subdomains: %v", err)
	}

	// An unreadable counter (a directory here, so that the test works as
	// root too) is named in the error; a readable domain beside it is
	// still used.
	root = fakeRAPL(t, map[string]string{
		"intel-rapl:0/name":                "package-0\n",
		"intel-rapl:0/energy_uj/x":         "",
		"intel-rapl:0/max_energy_range_uj": "262143328850\n",
	})
	want := "energy: CPU energy not available: " + filepath.Join(root, "intel-rapl:0/energy_uj") + ": is a directory"
	if _, err := RAPLSources(root); err == nil || err.Error() != want {
		t.Errorf("unreadable counter: %v\nwant %s", err, want)
	}
	if err := os.Mkdir(filepath.Join(root, "intel-rapl:1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "intel-rapl:1/energy_uj"), []byte("42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcs, err := RAPLSources(root)
	if err != nil || len(srcs) != 1 || srcs[0].Name() != "cpu intel-rapl:1 (RAPL)" || srcs[0].WrapJ() != 0 {
		t.Errorf("one readable domain without name or range: %v, %v", srcs, err)
	}

	// Linux 5.10 and later: energy_uj is 0400 root.
	if os.Geteuid() != 0 {
		root = fakeRAPL(t, map[string]string{"intel-rapl:0/name": "package-0\n", "intel-rapl:0/energy_uj": "1\n"})
		p := filepath.Join(root, "intel-rapl:0/energy_uj")
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := RAPLSources(root); err == nil || err.Error() != "energy: CPU energy not available: "+p+": permission denied" {
			t.Errorf("permission denied: %v", err)
		}
	}

	// A garbled counter.
	root = fakeRAPL(t, map[string]string{"intel-rapl:0/energy_uj": "lots\n"})
	if _, err := RAPLSources(root); err == nil || !strings.Contains(err.Error(), "intel-rapl:0/energy_uj") {
		t.Errorf("garbled counter: %v", err)
	}
}
