package monitor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

// fakeRAPL writes files (path relative to the root: content) into a new
// powercap tree and returns its root.
func fakeRAPL(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		writeFile(t, filepath.Join(root, p), c)
	}
	return root
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scrape GETs /metrics from h and parses the text exposition back.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// find is the value of the series of family name whose labels include
// want, and how many series match.
func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	var v float64
	n := 0
	for _, m := range fams[name].GetMetric() {
		l := labelMap(m)
		match := true
		for k, w := range want {
			match = match && l[k] == w
		}
		if !match {
			continue
		}
		n++
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
	}
	return v, n
}

func expect(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, n := find(fams, name, labels)
	if n != 1 || got != want {
		t.Errorf("%s%v: %v (%d series), want %v", name, labels, got, n, want)
	}
}

func absent(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) {
	t.Helper()
	if _, n := find(fams, name, labels); n != 0 {
		t.Errorf("%s%v: %d series, want none", name, labels, n)
	}
}

// labelNames are the label names of every series of family name, which
// must be the same for all.
func labelNames(t *testing.T, fams map[string]*dto.MetricFamily, name string) string {
	t.Helper()
	var names string
	for i, m := range fams[name].GetMetric() {
		n := strings.Join(slices.Sorted(maps.Keys(labelMap(m))), ",")
		if i > 0 && n != names {
			t.Errorf("%s: label sets %s and %s", name, names, n)
		}
		names = n
	}
	return names
}

func twoGPUs() *telemetry.Fake {
	return &telemetry.Fake{Driver: "580.65.06", CUDA: "13.0", Devices: []*telemetry.FakeDevice{
		{NameV: "NVIDIA H100 80GB HBM3", UUIDV: "GPU-aaaa", PCIBusIDV: "00000000:1B:00.0",
			MemTotal: 80 << 30, MemUsed: 3 << 30, PowerFn: func() float64 { return 312.5 },
			PowerInstantFn: func() float64 { return 340.25 }, PowerLimitV: 700,
			EnergyFn: func() float64 { return 1234567.891 }, TempV: 55, SMMHz: 1980, MemMHz: 2619,
			UtilGPU: 87, UtilMem: 41, ThrottleV: []string{"sw_power_cap"}},
		{NameV: "Tesla T4", UUIDV: "GPU-bbbb", MemTotal: 16 << 30, MemUsed: 1 << 20,
			PowerFn: func() float64 { return 27 }, TempV: 40, SMMHz: 585, MemMHz: 5000},
	}}
}

func newExporter(sys telemetry.System, root string, log io.Writer) *Exporter {
	o := Options{RAPLRoot: root, Log: log, Version: "v9.9"}
	if sys != nil {
		o.OpenNVML = func() (telemetry.System, error) { return sys, nil }
	}
	return New(o)
}

func TestGPUMetrics(t *testing.T) {
	e := newExporter(twoGPUs(), "", nil)
	fams := scrape(t, e.Handler())
	g0 := map[string]string{"gpu": "0", "uuid": "GPU-aaaa", "name": "NVIDIA H100 80GB HBM3"}
	with := func(k, v string) map[string]string { m := maps.Clone(g0); m[k] = v; return m }
	expect(t, fams, "quantkit_gpu_energy_joules_total", g0, 1234567.891)
	expect(t, fams, "quantkit_gpu_power_watts", with("reading", "average"), 312.5)
	expect(t, fams, "quantkit_gpu_power_watts", with("reading", "instant"), 340.25)
	expect(t, fams, "quantkit_gpu_power_limit_watts", g0, 700)
	expect(t, fams, "quantkit_gpu_memory_used_bytes", g0, 3<<30)
	expect(t, fams, "quantkit_gpu_memory_total_bytes", g0, 80<<30)
	expect(t, fams, "quantkit_gpu_sm_clock_hertz", g0, 1980e6)
	expect(t, fams, "quantkit_gpu_memory_clock_hertz", g0, 2619e6)
	expect(t, fams, "quantkit_gpu_temperature_celsius", g0, 55)
	expect(t, fams, "quantkit_gpu_utilization_ratio", g0, 0.87)
	expect(t, fams, "quantkit_gpu_memory_utilization_ratio", g0, 0.41)
	expect(t, fams, "quantkit_gpu_throttle_reason", with("reason", "sw_power_cap"), 1)
	expect(t, fams, "quantkit_gpu_throttle_reason", with("reason", "hw_thermal_slowdown"), 0)
	if _, n := find(fams, "quantkit_gpu_throttle_reason", g0); n != len(telemetry.ThrottleReasonNames()) {
		t.Errorf("GPU 0: %d throttle reasons, want one per name (%d)", n, len(telemetry.ThrottleReasonNames()))
	}
	expect(t, fams, "quantkit_gpu_info", map[string]string{"gpu": "0", "uuid": "GPU-aaaa", "name": "NVIDIA H100 80GB HBM3",
		"driver": "580.65.06", "cuda": "13.0", "pci_bus_id": "00000000:1B:00.0"}, 1)
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 1)
	expect(t, fams, "quantkit_build_info", map[string]string{"version": "v9.9"}, 1)
	if _, n := find(fams, "quantkit_scrape_duration_seconds", map[string]string{"source": "nvml"}); n != 1 {
		t.Error("no scrape duration for nvml")
	}
	absent(t, fams, "quantkit_source_up", map[string]string{"source": "rapl"}) // not asked for

	// The T4 has no energy counter and no instantaneous power: left out,
	// not exported as 0, and not a failure.
	g1 := map[string]string{"gpu": "1", "uuid": "GPU-bbbb"}
	absent(t, fams, "quantkit_gpu_energy_joules_total", g1)
	expect(t, fams, "quantkit_gpu_power_watts", map[string]string{"gpu": "1", "reading": "average"}, 27)
	absent(t, fams, "quantkit_gpu_power_watts", map[string]string{"gpu": "1", "reading": "instant"})
	expect(t, fams, "quantkit_gpu_info", map[string]string{"gpu": "1", "pci_bus_id": ""}, 1)

	for name, want := range map[string]string{
		"quantkit_gpu_energy_joules_total": "gpu,name,uuid",
		"quantkit_gpu_power_watts":         "gpu,name,reading,uuid",
		"quantkit_gpu_throttle_reason":     "gpu,name,reason,uuid",
		"quantkit_gpu_info":                "cuda,driver,gpu,name,pci_bus_id,uuid",
	} {
		if got := labelNames(t, fams, name); got != want {
			t.Errorf("%s: labels %s, want %s", name, got, want)
		}
	}
	if got := fams["quantkit_gpu_energy_joules_total"].GetType(); got != dto.MetricType_COUNTER {
		t.Errorf("energy is a %v, want a counter", got)
	}
}

// A GPU that goes away between scrapes (or fails to be read) is left out;
// the others stay, and nvml is down only while one fails.
func TestGPUDisappears(t *testing.T) {
	sys := twoGPUs()
	var log bytes.Buffer
	e := newExporter(sys, "", &log)
	h := e.Handler()
	fams := scrape(t, h)
	if _, n := find(fams, "quantkit_gpu_info", nil); n != 2 {
		t.Fatalf("%d GPUs, want 2", n)
	}
	sys.Devices = sys.Devices[:1] // unplugged: NVML counts one
	fams = scrape(t, h)
	absent(t, fams, "quantkit_gpu_power_watts", map[string]string{"gpu": "1"})
	expect(t, fams, "quantkit_gpu_power_watts", map[string]string{"gpu": "0", "reading": "average"}, 312.5)
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 1)

	// An optional field that fails is left out, and is no failure.
	sys.Devices[0].Errs = map[string]error{"power_instant": errors.New("NVML: invalid argument")}
	fams = scrape(t, h)
	absent(t, fams, "quantkit_gpu_power_watts", map[string]string{"gpu": "0", "reading": "instant"})
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 1)

	sys.Devices[0].Errs = map[string]error{"name": errors.New("NVML: GPU is lost")}
	fams = scrape(t, h)
	absent(t, fams, "quantkit_gpu_info", nil)
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 0)
	sys.Devices[0].Errs = map[string]error{"temperature": errors.New("NVML: unknown error")}
	fams = scrape(t, h)
	absent(t, fams, "quantkit_gpu_temperature_celsius", nil)
	expect(t, fams, "quantkit_gpu_power_watts", map[string]string{"gpu": "0", "reading": "average"}, 312.5)
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 0) // a field failing is a failure
	sys.Devices[0].Errs = nil
	scrape(t, h)
	scrape(t, h)
	if got := log.String(); strings.Count(got, "GPU is lost") != 1 || !strings.Contains(got, "temperature: NVML: unknown error") ||
		!strings.Contains(got, "readable again") {
		t.Errorf("log: want the reason once, then the recovery:\n%s", got)
	}
}

// Without NVML, nvml is down and the rest is served.
func TestNoNVML(t *testing.T) {
	var log bytes.Buffer
	opened := 0
	e := New(Options{Log: &log, OpenNVML: func() (telemetry.System, error) {
		opened++
		return nil, errors.New("no NVIDIA GPU found (NVML: library not found)")
	}})
	scrape(t, e.Handler())
	fams := scrape(t, e.Handler())
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 0)
	if opened != 2 || strings.Count(log.String(), "library not found") != 1 {
		t.Errorf("NVML tried %d times (want at every scrape), log:\n%s", opened, log.String())
	}
}

func raplTree(t *testing.T) string {
	return fakeRAPL(t, map[string]string{
		"intel-rapl:0/name":                  "package-0\n",
		"intel-rapl:0/energy_uj":             "900000\n",
		"intel-rapl:0/max_energy_range_uj":   "1000000\n",
		"intel-rapl:0:0/name":                "core\n",
		"intel-rapl:0:0/energy_uj":           "5\n",
		"intel-rapl:0:1/name":                "dram\n",
		"intel-rapl:0:1/energy_uj":           "2000000\n",
		"intel-rapl:0:1/max_energy_range_uj": "65712999613\n",
		"intel-rapl:1/name":                  "psys\n",
		"intel-rapl:1/energy_uj":             "7000000\n",
		"intel-rapl:1/max_energy_range_uj":   "262143328850\n",
		"intel-rapl-mmio:0/name":             "package-0\n",
		"intel-rapl-mmio:0/energy_uj":        "900000\n",
	})
}

// The counter goes µJ → J, and on across wraparounds at
// max_energy_range_uj, however the scrapes fall.
func TestRAPLWraparound(t *testing.T) {
	root := raplTree(t)
	e := newExporter(nil, root, nil)
	h := e.Handler()
	pkg := map[string]string{"zone": "package", "index": "0"}
	const name = "quantkit_cpu_energy_joules_total"

	fams := scrape(t, h)
	expect(t, fams, name, pkg, 0.9)
	expect(t, fams, name, map[string]string{"zone": "dram", "index": "0"}, 2)
	expect(t, fams, name, map[string]string{"zone": "psys", "index": "1"}, 7)
	if _, n := find(fams, name, nil); n != 3 {
		t.Errorf("%d zones, want package, dram and psys (core is in the package; MMIO repeats it)", n)
	}
	if got := labelNames(t, fams, name); got != "index,zone" {
		t.Errorf("labels %s", got)
	}
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "rapl"}, 1)

	// Raw readings and the total energy since the first scrape, µJ: a
	// wrap at 1 000 000 between the first two, two more later.
	want := 900000.0
	prev := 900000.0
	for _, raw := range []float64{100000, 600000, 999999, 0, 400000, 300000, 300000} {
		writeFile(t, filepath.Join(root, "intel-rapl:0/energy_uj"), formatUint(raw))
		if raw >= prev {
			want += raw - prev
		} else {
			want += 1000000 - prev + raw
		}
		prev = raw
		got, _ := find(scrape(t, h), name, pkg)
		if diff := got - want/1e6; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("after raw %v µJ: %v J, want %v J", raw, got, want/1e6)
		}
	}
}

func formatUint(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "\n" }

// An unreadable zone is rapl down, with the reason in the log; the zones
// that can be read are still exported. No RAPL at all is down too.
func TestRAPLUnreadable(t *testing.T) {
	root := raplTree(t)
	bad := filepath.Join(root, "intel-rapl:0:1/energy_uj")
	os.Remove(bad)
	os.Mkdir(bad, 0o755) // read fails, even as root
	var log bytes.Buffer
	e := newExporter(nil, root, &log)
	fams := scrape(t, e.Handler())
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "rapl"}, 0)
	expect(t, fams, "quantkit_cpu_energy_joules_total", map[string]string{"zone": "package"}, 0.9)
	absent(t, fams, "quantkit_cpu_energy_joules_total", map[string]string{"zone": "dram"})
	if !strings.Contains(log.String(), "intel-rapl:0:1/energy_uj") {
		t.Errorf("log does not name the zone:\n%s", log.String())
	}

	log.Reset()
	e = newExporter(nil, filepath.Join(t.TempDir(), "none"), &log)
	fams = scrape(t, e.Handler())
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "rapl"}, 0)
	absent(t, fams, "quantkit_cpu_energy_joules_total", nil)
	if !strings.Contains(log.String(), "no RAPL domains") {
		t.Errorf("log: %s", log.String())
	}
}

func post(t *testing.T, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/jobs", strings.NewReader(body)))
	return rec
}

func TestJobs(t *testing.T) {
	e := newExporter(nil, "", nil)
	h := e.Handler()
	for _, body := range []string{
		`{"job":"resnet50","labels":{"precision":"int8"},"seconds":10,"energy":[{"source":"gpu:0","joules":1000.5},{"source":"cpu:package-0","joules":200}]}`,
		`{"job":"resnet50","labels":{"precision":"int8"},"seconds":12,"energy":[{"source":"gpu:0","joules":1100.25}]}`,
		`{"job":"resnet50","labels":{"precision":"fp32"},"seconds":20,"energy":[{"source":"gpu:0","joules":3000}]}`,
		`{"job":"llm","labels":{"precision":"w8a8","model":"llama-1b"},"seconds":5,"energy":[{"source":"cpu","joules":50}]}`,
	} {
		if rec := post(t, h, body); rec.Code != http.StatusNoContent {
			t.Fatalf("POST %s: %d %s", body, rec.Code, rec.Body)
		}
	}
	fams := scrape(t, h)
	int8 := map[string]string{"job": "resnet50", "precision": "int8"}
	with := func(m map[string]string, k, v string) map[string]string { m = maps.Clone(m); m[k] = v; return m }
	expect(t, fams, "quantkit_job_energy_joules_total", with(int8, "source", "gpu:0"), 2100.75)
	expect(t, fams, "quantkit_job_energy_joules_total", with(int8, "source", "cpu:package-0"), 200)
	expect(t, fams, "quantkit_job_seconds_total", int8, 22)
	expect(t, fams, "quantkit_job_runs_total", int8, 2)
	expect(t, fams, "quantkit_job_energy_joules_total", map[string]string{"job": "resnet50", "precision": "fp32", "source": "gpu:0"}, 3000)
	expect(t, fams, "quantkit_job_runs_total", map[string]string{"job": "llm", "model": "llama-1b"}, 1)
	// Every series has every label a job was reported with; the text
	// format leaves the empty ones out, so each series has its own set.
	if _, n := find(fams, "quantkit_job_runs_total", nil); n != 3 {
		t.Errorf("%d job series, want 3", n)
	}
	if fams["quantkit_job_energy_joules_total"].GetType() != dto.MetricType_COUNTER {
		t.Error("job energy is not a counter")
	}

	for _, body := range []string{
		`{"job":"","seconds":1}`,
		`{"job":"x","seconds":-1}`,
		`{"job":"x","seconds":1,"energy":[{"source":"gpu:0","joules":-5}]}`,
		`{"job":"x","labels":{"source":"a"},"seconds":1}`,
		`{"job":"x","labels":{"__name__":"a"},"seconds":1}`,
		`{"job":"x","labels":{"bad-name":"a"},"seconds":1}`,
		`{"job":"x","seconds":1,"energies":[]}`,
		`not json`,
	} {
		if rec := post(t, h, body); rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), "job report: ") {
			t.Errorf("POST %s: %d %q, want 400 and why", body, rec.Code, rec.Body)
		}
	}
	if _, n := find(scrape(t, h), "quantkit_job_runs_total", map[string]string{"job": "x"}); n != 0 {
		t.Error("a refused report was counted")
	}
}

// /metrics speaks OpenMetrics to a scraper that asks for it, the text
// format otherwise; / and /healthz answer.
func TestHTTP(t *testing.T) {
	e := newExporter(twoGPUs(), raplTree(t), nil)
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	get := func(path, accept string) (string, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("Content-Type"), string(b)
	}
	ct, body := get("/metrics", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	if !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") ||
		!strings.Contains(body, "# TYPE quantkit_gpu_energy_joules counter") {
		t.Errorf("OpenMetrics: %s\n%.300s", ct, body)
	}
	ct, body = get("/metrics", "")
	if !strings.HasPrefix(ct, "text/plain") || !strings.Contains(body, "# TYPE quantkit_gpu_energy_joules_total counter") {
		t.Errorf("text: %s\n%.300s", ct, body)
	}
	if _, body := get("/healthz", ""); body != "ok\n" {
		t.Errorf("/healthz: %q", body)
	}
	if ct, body := get("/", ""); !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, `href="metrics"`) {
		t.Errorf("/: %s %.200s", ct, body)
	}
	resp, _ := http.Get(srv.URL + "/nothing")
	if resp.StatusCode != 404 {
		t.Errorf("/nothing: %d", resp.StatusCode)
	}
	resp.Body.Close()

	// The client side: Post reaches POST /jobs.
	r := JobReport{Job: "bench", Labels: map[string]string{"precision": "int8"}, Seconds: 3,
		Energy: []SourceEnergy{{Source: "gpu:0", Joules: 42}}}
	if err := Post(context.Background(), srv.URL, r); err != nil {
		t.Fatal(err)
	}
	if err := Post(context.Background(), srv.URL, JobReport{Job: "x", Labels: map[string]string{"job": "y"}}); err == nil {
		t.Error("Post of an invalid report: no error")
	}
	_, body = get("/metrics", "")
	if !strings.Contains(body, `quantkit_job_energy_joules_total{job="bench",precision="int8",source="gpu:0"} 42`) {
		t.Errorf("the posted job is not exported:\n%s", body)
	}
	// OpenMetrics carries when the series began, for created-timestamp
	// ingestion.
	_, body = get("/metrics", "application/openmetrics-text;version=1.0.0")
	if !strings.Contains(body, `quantkit_job_energy_joules_created{job="bench",precision="int8",source="gpu:0"} `) {
		t.Errorf("no _created for the job's energy:\n%s", body)
	}
}

func TestTextfile(t *testing.T) {
	dir := t.TempDir()
	r := JobReport{Job: "resnet50", Labels: map[string]string{"precision": "int8"}, Seconds: 1.5,
		Energy: []SourceEnergy{{Source: "gpu:0", Joules: 100.25}, {Source: "cpu", Joules: 10}}}
	for range 3 {
		if err := WriteTextfile(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteTextfile(dir, JobReport{Job: "other", Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, TextfileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	int8 := map[string]string{"job": "resnet50", "precision": "int8"}
	expect(t, fams, "quantkit_job_energy_joules_total", map[string]string{"job": "resnet50", "source": "gpu:0"}, 300.75)
	expect(t, fams, "quantkit_job_energy_joules_total", map[string]string{"job": "resnet50", "source": "cpu"}, 30)
	expect(t, fams, "quantkit_job_seconds_total", int8, 4.5)
	expect(t, fams, "quantkit_job_runs_total", int8, 3)
	expect(t, fams, "quantkit_job_runs_total", map[string]string{"job": "other"}, 1)
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d files in the directory, want the .prom and its lock", len(ents))
	}
	writeFile(t, filepath.Join(dir, TextfileName), "garbage{\n")
	if err := WriteTextfile(dir, r); err == nil || !strings.Contains(err.Error(), TextfileName) {
		t.Errorf("a corrupt file: %v, want an error naming it", err)
	}
}

func TestSourceLabel(t *testing.T) {
	for name, want := range map[string]string{
		"gpu:0 NVIDIA H100 80GB HBM3": "gpu:0",
		"gpu:3":                       "gpu:3",
		"cpu package-1 (RAPL)":        "cpu:package-1",
		"cpu package-0 (RAPL) + cpu package-1 (RAPL)": "cpu",
		"fake": "fake",
	} {
		if got := SourceLabel(name); got != want {
			t.Errorf("SourceLabel(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestJobsURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:9877":      "http://h:9877/jobs",
		"h:9877":             "http://h:9877/jobs",
		"http://h:9877/":     "http://h:9877/jobs",
		"https://h/mon/jobs": "https://h/mon/jobs",
	} {
		if got, err := JobsURL(in); err != nil || got != want {
			t.Errorf("JobsURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := JobsURL("ftp://h"); err == nil {
		t.Error("ftp://h accepted")
	}
}

// countFails is a System whose Count fails until fixed.
type countFails struct {
	*telemetry.Fake
	broken bool
}

func (c *countFails) Count() (int, error) {
	if c.broken {
		return 0, errors.New("NVML: driver not loaded")
	}
	return c.Fake.Count()
}

// A session that fails is closed and NVML started again at the next scrape.
func TestNVMLRestarted(t *testing.T) {
	sys := &countFails{Fake: twoGPUs(), broken: true}
	opened := 0
	e := New(Options{OpenNVML: func() (telemetry.System, error) { opened++; return sys, nil }})
	h := e.Handler()
	fams := scrape(t, h)
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 0)
	if !sys.Closed {
		t.Error("the failing session was not closed")
	}
	sys.broken = false
	fams = scrape(t, h)
	expect(t, fams, "quantkit_source_up", map[string]string{"source": "nvml"}, 1)
	scrape(t, h)
	if opened != 2 {
		t.Errorf("NVML started %d times, want 2 (once more after the failure, then kept)", opened)
	}
}

// Scrapes at once, while the counter wraps: every scraper sees the counter
// never go back, and the last value is the energy the raw readings add up
// to. (Run with -race.)
func TestConcurrentScrapes(t *testing.T) {
	root := raplTree(t)
	e := newExporter(nil, root, nil)
	h := e.Handler()
	pkg := map[string]string{"zone": "package", "index": "0"}
	const steps, wrap = 200, 1000000.0
	scrape(t, h) // the counter starts from the first reading: 0.9 J
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			last := 0.0
			for {
				select {
				case <-done:
					return
				default:
				}
				v, _ := find(scrape(t, h), "quantkit_cpu_energy_joules_total", pkg)
				if v < last {
					t.Errorf("the counter went back: %v after %v", v, last)
					return
				}
				last = v
			}
		})
	}
	// Step the raw counter by 0.3 J, wrapping at 1 J, scraping between
	// steps so that no wrap goes unseen.
	raw, total := 900000.0, 900000.0
	for range steps {
		raw += 300000
		total += 300000
		if raw >= wrap {
			raw -= wrap
		}
		// Replaced in one rename: a sysfs read never sees half a number.
		path := filepath.Join(root, "intel-rapl:0/energy_uj")
		writeFile(t, path+".new", formatUint(raw))
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
		scrape(t, h)
	}
	close(done)
	wg.Wait()
	got, _ := find(scrape(t, h), "quantkit_cpu_energy_joules_total", pkg)
	if d := got - total/1e6; d > 1e-6 || d < -1e-6 {
		t.Errorf("after %d steps: %v J, want %v J", steps, got, total/1e6)
	}
}
