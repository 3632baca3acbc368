package energy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

func TestOpenDevice(t *testing.T) {
	root := fakeRAPL(t, map[string]string{
		"intel-rapl:0/name":                "package-0\n",
		"intel-rapl:0/energy_uj":           "1000000\n",
		"intel-rapl:0/max_energy_range_uj": "262143328850\n",
		"intel-rapl:1/name":                "package-1\n",
		"intel-rapl:1/energy_uj":           "2000000\n",
		"intel-rapl:1/max_energy_range_uj": "262143328850\n",
	})
	joules := 0.0
	fake := &telemetry.Fake{Devices: []*telemetry.FakeDevice{
		{NameV: "A"},
		{NameV: "B", EnergyFn: func() float64 { joules += 10; return joules }},
	}}
	nvml := func() (telemetry.System, error) { fake.Closed = false; return fake, nil }

	src, done, err := openDevice("cpu", nvml, root)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := src.Energy(); err != nil || j != 3 {
		t.Errorf("cpu: both packages summed: got %v J, %v; want 3 J", j, err)
	}
	done()

	src, done, err = openDevice("gpu:1", nvml, root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(src.Name(), "gpu:1 B") {
		t.Errorf("gpu:1 opened %q", src.Name())
	}
	if j, _ := src.Energy(); j != 10 {
		t.Errorf("gpu:1 energy %v, want its own counter's 10", j)
	}
	if fake.Closed {
		t.Error("NVML closed before the source was released")
	}
	done()
	if !fake.Closed {
		t.Error("close did not release NVML")
	}

	for _, dev := range []string{"gpu:2", "gpu:x", "tpu:0"} {
		fake.Closed = true
		if _, done, err := openDevice(dev, nvml, root); err == nil || done == nil {
			t.Errorf("%s: opened, want an error and a non-nil close", dev)
		} else if dev == "gpu:2" && !fake.Closed {
			t.Error("gpu:2: NVML left open after failing")
		}
	}
	down := errors.New("NVML: driver not loaded")
	if _, _, err := openDevice("gpu:0", func() (telemetry.System, error) { return nil, down }, root); !errors.Is(err, down) {
		t.Errorf("NVML failing: got %v, want its error", err)
	}
	if _, _, err := openDevice("cpu", nvml, t.TempDir()); err == nil {
		t.Error("cpu without RAPL: opened")
	}
}

func TestOpenSources(t *testing.T) {
	root := fakeRAPL(t, map[string]string{
		"intel-rapl:0/name":                "package-0\n",
		"intel-rapl:0/energy_uj":           "1000000\n",
		"intel-rapl:0/max_energy_range_uj": "262143328850\n",
		"intel-rapl:1/name":                "package-1\n",
		"intel-rapl:1/energy_uj":           "2000000\n",
		"intel-rapl:1/max_energy_range_uj": "262143328850\n",
	})
	fake := &telemetry.Fake{Devices: []*telemetry.FakeDevice{{NameV: "A"}, {NameV: "B"}}}
	opened := 0
	nvml := func() (telemetry.System, error) { opened++; fake.Closed = false; return fake, nil }
	names := func(srcs []Source) string {
		var n []string
		for _, s := range srcs {
			n = append(n, strings.Fields(s.Name())[0]+" "+strings.Fields(s.Name())[1])
		}
		return strings.Join(n, ", ")
	}
	for _, tc := range []struct{ gpu, want string }{
		{"all", "gpu:0 A, gpu:1 B, cpu package-0, cpu package-1"},
		{"1", "gpu:1 B, cpu package-0, cpu package-1"},
		{"0", "gpu:0 A, cpu package-0, cpu package-1"},
	} {
		srcs, done, unavailable, err := openSources(tc.gpu, nvml, root)
		if err != nil || names(srcs) != tc.want || len(unavailable) != 0 {
			t.Errorf("--gpu %s: %q, %q, %v; want %q", tc.gpu, names(srcs), unavailable, err, tc.want)
		}
		if fake.Closed {
			t.Errorf("--gpu %s: NVML closed before close", tc.gpu)
		}
		done()
		if !fake.Closed {
			t.Errorf("--gpu %s: close left NVML open", tc.gpu)
		}
	}
	opened = 0
	srcs, done, _, err := openSources("none", nvml, root)
	done()
	if err != nil || names(srcs) != "cpu package-0, cpu package-1" || opened != 0 {
		t.Errorf("--gpu none: %q, %v, NVML opened %d times", names(srcs), err, opened)
	}
	for _, gpu := range []string{"2", "x", "-1", ""} {
		fake.Closed = true
		srcs, done, _, err := openSources(gpu, nvml, root)
		if err == nil || srcs != nil || done == nil {
			t.Errorf("--gpu %q: %q, %v; want an error", gpu, names(srcs), err)
		} else if !fake.Closed {
			t.Errorf("--gpu %q: NVML left open after failing", gpu)
		}
	}

	// What is missing is said, and the rest still opened.
	down := errors.New("NVML: driver not loaded")
	srcs, _, unavailable, err := openSources("all", func() (telemetry.System, error) { return nil, down }, root)
	if err != nil || names(srcs) != "cpu package-0, cpu package-1" || len(unavailable) != 1 || unavailable[0] != down.Error() {
		t.Errorf("no driver: %q, %q, %v", names(srcs), unavailable, err)
	}
	none := &telemetry.Fake{}
	srcs, done, unavailable, err = openSources("all", func() (telemetry.System, error) { return none, nil }, t.TempDir())
	done()
	if err != nil || len(srcs) != 0 || len(unavailable) != 2 || unavailable[0] != "no NVIDIA GPU found (NVML: 0 devices)" ||
		!strings.HasPrefix(unavailable[1], "CPU energy not available") {
		t.Errorf("no GPU, no RAPL: %q, %q, %v", names(srcs), unavailable, err)
	}
}

// CUDA's device N is read from the card CUDA_VISIBLE_DEVICES makes device
// N, matched by UUID, whatever the order the variable gives.
func TestOpenDeviceCUDAVisible(t *testing.T) {
	fake := &telemetry.Fake{}
	for i, u := range []string{"GPU-0a", "GPU-1b", "GPU-2c"} {
		joules := float64(100 * (i + 1))
		fake.Devices = append(fake.Devices, &telemetry.FakeDevice{NameV: "card", UUIDV: u,
			EnergyFn: func() float64 { return joules }})
	}
	nvml := func() (telemetry.System, error) { return fake, nil }
	for _, c := range []struct {
		env    string
		joules []float64 // of CUDA's devices 0, 1, ...
	}{
		{"2,0", []float64{300, 100}},
		{"GPU-1b,GPU-2c,GPU-0a", []float64{200, 300, 100}},
		{"GPU-2c,1", []float64{300, 200}},
	} {
		t.Setenv(telemetry.VisibleEnv, c.env)
		for ordinal, want := range c.joules {
			src, done, err := openDevice(fmt.Sprintf("gpu:%d", ordinal), nvml, t.TempDir())
			if err != nil {
				t.Fatalf("%s: gpu:%d: %v", c.env, ordinal, err)
			}
			if j, _ := src.Energy(); j != want {
				t.Errorf("CUDA_VISIBLE_DEVICES=%s: gpu:%d read %v J (%s), want %v J", c.env, ordinal, j, src.Name(), want)
			}
			done()
		}
		if _, _, err := openDevice(fmt.Sprintf("gpu:%d", len(c.joules)), nvml, t.TempDir()); err == nil {
			t.Errorf("CUDA_VISIBLE_DEVICES=%s: gpu:%d opened", c.env, len(c.joules))
		}
	}

	t.Setenv(telemetry.VisibleEnv, "GPU-2c,GPU-0a")
	for gpu, want := range map[string]string{"visible": "gpu:2 gpu:0", "GPU-1b": "gpu:1", "GPU-1": "gpu:1", "all": "gpu:0 gpu:1 gpu:2"} {
		srcs, done, _, err := openSources(gpu, nvml, t.TempDir())
		var got []string
		for _, s := range srcs {
			got = append(got, strings.Fields(s.Name())[0])
		}
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("--gpu %s: %v, %v; want %s", gpu, got, err, want)
		}
		done()
	}
	if _, _, _, err := openSources("GPU-ff", nvml, t.TempDir()); err == nil {
		t.Error("--gpu GPU-ff: opened, want an error")
	}
	// A MIG instance: the default measures every GPU and says why.
	t.Setenv(telemetry.VisibleEnv, "MIG-1234")
	srcs, done, unavailable, err := openSources("visible", nvml, t.TempDir())
	done()
	if err != nil || len(srcs) != 3 || !strings.Contains(strings.Join(unavailable, "; "), "MIG-1234") {
		t.Errorf("--gpu visible with a MIG instance: %d sources, %q, %v", len(srcs), unavailable, err)
	}
}

func TestOpenEnv(t *testing.T) {
	t.Setenv(RAPLRootEnv, "")
	if RAPLRootDir() != RAPLRoot {
		t.Errorf("unset: %s", RAPLRootDir())
	}
	t.Setenv(RAPLRootEnv, "/host/powercap")
	if RAPLRootDir() != "/host/powercap" {
		t.Errorf("set: %s", RAPLRootDir())
	}
	path := filepath.Join(t.TempDir(), "gpus.json")
	if err := os.WriteFile(path, []byte(`{"gpus":[{"name":"fake","uuid":"GPU-f","energy_j":5}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(telemetry.FakeFileEnv, path)
	t.Setenv(telemetry.VisibleEnv, "GPU-f")
	src, done, err := OpenDevice("gpu:0")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if j, err := src.Energy(); j != 5 || err != nil || src.Name() != "gpu:0 fake" {
		t.Errorf("%s: %v J, %v", src.Name(), j, err)
	}
}
