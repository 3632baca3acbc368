package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/energy/monitor"
	"github.com/quantkit/quantkit/energy/profile"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// profile --monitor reports each source's energy, as its report gives it,
// under --job and --label; --textfile writes the same counters.
func TestProfileReportsToMonitor(t *testing.T) {
	e := monitor.New(monitor.Options{})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	dir := t.TempDir()
	gpu := energy.NewFakeSource("gpu:1 fake").Constant(250)
	cpu := energy.NewFakeSource("cpu package-0 (RAPL)").Constant(40)
	stdout, stderr, err := runProfileCLI(t, []energy.Source{gpu, cpu}, "--idle", "0", "--interval", "10ms", "--json",
		"--job", "resnet50", "--label", "precision=int8", "--monitor", srv.URL, "--textfile", dir, "--", "sleep", "0.2")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep profile.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	metrics := get(t, srv.URL+"/metrics")
	file, err := os.ReadFile(filepath.Join(dir, monitor.TextfileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Sources {
		line := fmt.Sprintf(`quantkit_job_energy_joules_total{job="resnet50",precision="int8",source="%s"} %v`,
			monitor.SourceLabel(s.Name), s.EnergyJ)
		if s.EnergyJ <= 0 || !strings.Contains(metrics, line) || !strings.Contains(string(file), line) {
			t.Errorf("want %s in the exposition and the textfile:\n%s\n%s", line, metrics, file)
		}
	}
	for _, want := range []string{`source="gpu:1"`, `source="cpu:package-0"`,
		`quantkit_job_runs_total{job="resnet50",precision="int8"} 1`,
		fmt.Sprintf(`quantkit_job_seconds_total{job="resnet50",precision="int8"} %v`, rep.Seconds)} {
		if !strings.Contains(metrics, want) {
			t.Errorf("no %s in:\n%s", want, metrics)
		}
	}

	// Without --job, the job is the command's name; a monitor that cannot
	// be reached is a warning, not a failure.
	srv.Close()
	_, stderr, err = runProfileCLI(t, []energy.Source{gpu}, "--idle", "0", "--monitor", srv.URL, "--", "true")
	if err != nil || !strings.Contains(stderr, "warning: --monitor: the run of true was not reported") {
		t.Errorf("monitor down: %v\n%s", err, stderr)
	}
}

// Bad job flags are refused before the command runs.
func TestProfileJobFlagsChecked(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	for _, args := range [][]string{
		{"--label", "precision", "--monitor", "http://h:1"},
		{"--label", "job=x", "--monitor", "http://h:1"},
		{"--monitor", "ftp://h"},
		{"--textfile", filepath.Join(t.TempDir(), "none")},
	} {
		args = append(append([]string{"--idle", "0"}, args...), "--", "touch", marker)
		_, _, err := runProfileCLI(t, nil, args...)
		if err == nil || !strings.HasPrefix(err.Error(), "profile: --") {
			t.Errorf("%v: %v, want an error naming the flag", args, err)
		}
		if _, statErr := os.Stat(marker); statErr == nil {
			t.Fatalf("%v: the command ran", args)
		}
	}
}

// quantkit monitor serves until its context ends, then exits cleanly.
func TestMonitorCommand(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "intel-rapl:0"), 0o755)
	os.WriteFile(filepath.Join(root, "intel-rapl:0/name"), []byte("package-0\n"), 0o644)
	os.WriteFile(filepath.Join(root, "intel-rapl:0/energy_uj"), []byte("2500000\n"), 0o644)
	app := newApp()
	pr, pw := io.Pipe()
	app.Writer, app.ErrWriter = io.Discard, pw
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"quantkit", "monitor", "--listen", "127.0.0.1:0", "--gpu=false", "--rapl-root", root})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "monitor: serving ")
	if err != nil || !ok {
		cancel()
		t.Fatalf("first line %q, %v", line, err)
	}
	body := get(t, addr)
	if !strings.Contains(body, `quantkit_cpu_energy_joules_total{index="0",zone="package"} 2.5`) ||
		strings.Contains(body, "quantkit_gpu_") || strings.Contains(body, `source="nvml"`) {
		t.Errorf("--gpu=false, fake RAPL:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stopped: %v, want no error", err)
	}
	if _, err := run(t, "monitor", "extra"); err == nil {
		t.Error("an argument was accepted")
	}
}

// lm generate --monitor reports the energy its device's counter counted
// from its start to its end.
func TestLMGenerateReportsToMonitor(t *testing.T) {
	e := monitor.New(monitor.Options{})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	reads := 0
	src := energy.NewFakeSource("cpu package-0 (RAPL)")
	src.EnergyFn = func(time.Duration) (float64, error) { reads++; return []float64{10, 35.5}[min(reads, 2)-1], nil }
	old := openDeviceEnergy
	openDeviceEnergy = func(device string) (energy.Source, func(), error) {
		if device != "cpu" {
			t.Errorf("opened %q, want the backend's name", device)
		}
		return src, func() {}, nil
	}
	defer func() { openDeviceEnergy = old }()
	_, err := run(t, "lm", "generate", "--device", "cpu", "-n", "5", "--label", "precision=fp32", "--monitor", srv.URL,
		storiesDir+"hf")
	if err != nil {
		t.Fatal(err)
	}
	body := get(t, srv.URL+"/metrics")
	if want := `quantkit_job_energy_joules_total{job="lm-generate",precision="fp32",source="cpu:package-0"} 25.5`; !strings.Contains(body, want) {
		t.Errorf("no %s in:\n%s", want, body)
	}
}
