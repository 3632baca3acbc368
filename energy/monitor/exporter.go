package monitor

import (
	"errors"
	"fmt"
	"io"
	"log"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantkit/quantkit/gpu/telemetry"
)

// Options configure an Exporter.
type Options struct {
	// OpenNVML starts NVML (energy.OpenNVML); nil: no GPUs are read. A
	// start that fails is tried again at the next scrape.
	OpenNVML func() (telemetry.System, error)
	// RAPLRoot is the powercap tree (energy.RAPLRootDir()); "": no CPU
	// energy is read.
	RAPLRoot string
	// Log receives the reasons a source cannot be read, once each time
	// the reason changes; nil: discarded.
	Log io.Writer
	// Version is quantkit's version, for quantkit_build_info.
	Version string
}

// Exporter is the prometheus.Collector of GPU and CPU energy and state,
// read at scrape time, and of the jobs reported to it (Jobs). It is safe
// for concurrent scrapes.
type Exporter struct {
	openNVML func() (telemetry.System, error)
	rapl     *raplReader
	Jobs     *Jobs
	log      *log.Logger
	build    prometheus.Metric

	mu     sync.Mutex // guards nvml and reported
	nvml   telemetry.System
	report map[string]string // the last problem logged per source ("" once fixed)
}

// New is an Exporter reading what o names. Close releases NVML.
func New(o Options) *Exporter {
	w := o.Log
	if w == nil {
		w = io.Discard
	}
	e := &Exporter{openNVML: o.OpenNVML, Jobs: NewJobs(), log: log.New(w, "monitor: ", log.LstdFlags),
		report: map[string]string{}}
	if o.RAPLRoot != "" {
		e.rapl = newRAPLReader(o.RAPLRoot)
	}
	e.build = prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, buildLabels(o.Version)...)
	return e
}

// Close releases NVML.
func (e *Exporter) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nvml == nil {
		return nil
	}
	err := e.nvml.Close()
	e.nvml = nil
	return err
}

func buildLabels(version string) []string {
	rev := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
		if version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			version = info.Main.Version
		}
	}
	if version == "" {
		version = "dev"
	}
	return []string{version, rev, runtime.Version()}
}

var gpuLabels = []string{"gpu", "uuid", "name"}

func gpuDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, gpuLabels...), extra...), nil)
}

var (
	descGPUEnergy = gpuDesc("quantkit_gpu_energy_joules_total",
		"Energy the GPU used since its driver loaded: NVML's total-energy counter (millijoules, Volta and later) in joules.")
	descGPUPower = gpuDesc("quantkit_gpu_power_watts",
		`Board power draw. reading="average" is NVML's power usage, a 1-second average on Ampere and later `+
			`(instantaneous on older cards); reading="instant" is NVML's instantaneous power field `+
			`(FI_DEV_POWER_INSTANT), exported where the driver has it.`, "reading")
	descGPUPowerLimit = gpuDesc("quantkit_gpu_power_limit_watts", "The power limit the driver enforces.")
	descGPUMemUsed    = gpuDesc("quantkit_gpu_memory_used_bytes", "GPU memory in use.")
	descGPUMemTotal   = gpuDesc("quantkit_gpu_memory_total_bytes", "GPU memory in all.")
	descGPUSMClock    = gpuDesc("quantkit_gpu_sm_clock_hertz", "The streaming multiprocessors' clock now.")
	descGPUMemClock   = gpuDesc("quantkit_gpu_memory_clock_hertz", "The memory clock now.")
	descGPUTemp       = gpuDesc("quantkit_gpu_temperature_celsius", "GPU die temperature.")
	descGPUUtil       = gpuDesc("quantkit_gpu_utilization_ratio",
		"Fraction of the last sample period (NVML's, 1/6 s to 1 s) in which a kernel ran on the GPU.")
	descGPUMemUtil = gpuDesc("quantkit_gpu_memory_utilization_ratio",
		"Fraction of the last sample period in which GPU memory was read or written.")
	descGPUThrottle = gpuDesc("quantkit_gpu_throttle_reason",
		"1 while the reason holds the GPU's clocks down (NVML's clock event reasons), else 0.", "reason")
	descGPUInfo = prometheus.NewDesc("quantkit_gpu_info", "The GPU's identity; always 1.",
		[]string{"gpu", "uuid", "name", "driver", "cuda", "pci_bus_id"}, nil)
	descCPUEnergy = prometheus.NewDesc("quantkit_cpu_energy_joules_total",
		"Energy of a RAPL zone (package, dram, psys): energy_uj in joules, corrected by the exporter for its "+
			"wraparound at max_energy_range_uj, so it only goes back when the exporter restarts.", []string{"zone", "index"}, nil)
	descUp = prometheus.NewDesc("quantkit_source_up",
		"1 when the source (nvml, rapl) was read in full at this scrape, 0 when it or a part of it could not be "+
			"(the reason is in the exporter's log).", []string{"source"}, nil)
	descScrape = prometheus.NewDesc("quantkit_scrape_duration_seconds", "How long reading the source took at this scrape.",
		[]string{"source"}, nil)
	descBuild = prometheus.NewDesc("quantkit_build_info", "The quantkit that exports these metrics; always 1.",
		[]string{"version", "revision", "goversion"}, nil)
)

// Describe sends every fixed metric's description (the jobs' label sets
// vary: Jobs is a collector of its own).
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGPUEnergy, descGPUPower, descGPUPowerLimit, descGPUMemUsed, descGPUMemTotal,
		descGPUSMClock, descGPUMemClock, descGPUTemp, descGPUUtil, descGPUMemUtil, descGPUThrottle, descGPUInfo,
		descCPUEnergy, descUp, descScrape, descBuild} {
		ch <- d
	}
}

// Collect reads every source now.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	if e.openNVML != nil {
		start := time.Now()
		up := e.collectGPUs(ch)
		ch <- gauge(descScrape, time.Since(start).Seconds(), "nvml")
		ch <- gauge(descUp, b2f(up), "nvml")
	}
	if e.rapl != nil {
		start := time.Now()
		up := e.collectRAPL(ch)
		ch <- gauge(descScrape, time.Since(start).Seconds(), "rapl")
		ch <- gauge(descUp, b2f(up), "rapl")
	}
	ch <- e.build
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// problem logs source's problem when it differs from the last one logged
// ("" says the source recovered).
func (e *Exporter) problem(source, why string) {
	e.mu.Lock()
	last, seen := e.report[source]
	e.report[source] = why
	e.mu.Unlock()
	switch {
	case why == last && seen, why == "" && !seen:
	case why == "":
		e.log.Printf("%s: readable again", source)
	default:
		e.log.Printf("%s: %s", source, why)
	}
}

// system is the NVML session, started now if it is not yet.
func (e *Exporter) system() (telemetry.System, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nvml != nil {
		return e.nvml, nil
	}
	sys, err := e.openNVML()
	if err != nil {
		return nil, err
	}
	e.nvml = sys
	return sys, nil
}

// dropNVML closes sys if it is still the session, so that the next scrape
// starts NVML again.
func (e *Exporter) dropNVML(sys telemetry.System) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nvml == sys {
		e.nvml.Close()
		e.nvml = nil
	}
}

// collectGPUs reads every GPU; up is false when NVML or a GPU could not be
// read. A GPU that went away between scrapes is left out.
func (e *Exporter) collectGPUs(ch chan<- prometheus.Metric) (up bool) {
	sys, err := e.system()
	if err != nil {
		e.problem("nvml", err.Error())
		return false
	}
	n, err := sys.Count()
	if err != nil {
		// The session may be what broke (a driver reload): start a new
		// one at the next scrape.
		e.problem("nvml", "counting GPUs: "+err.Error())
		e.dropNVML(sys)
		return false
	}
	driver, _ := sys.DriverVersion()
	cuda, _ := sys.CUDAVersion()
	var problems []string
	for i := range n {
		if err := collectGPU(ch, sys, i, driver, cuda); err != nil {
			problems = append(problems, err.Error())
		}
	}
	e.problem("nvml", strings.Join(problems, "; "))
	return len(problems) == 0
}

// collectGPU sends GPU i's metrics. Fields the GPU does not have are left
// out; the error names the first field that failed otherwise, or the GPU
// when it cannot be opened or named (it went away).
func collectGPU(ch chan<- prometheus.Metric, sys telemetry.System, i int, driver, cuda string) error {
	d, err := sys.Device(i)
	if err != nil {
		return fmt.Errorf("GPU %d: %w", i, err)
	}
	name, err := d.Name()
	if err != nil {
		return fmt.Errorf("GPU %d: reading its name: %w", i, err)
	}
	uuid, _ := d.UUID()
	gpu := []string{strconv.Itoa(i), uuid, name}
	var bus string
	if r, ok := d.(telemetry.PCIBusIDReader); ok {
		bus, _ = r.PCIBusID()
	}
	ch <- gauge(descGPUInfo, 1, strconv.Itoa(i), uuid, name, driver, cuda, bus)

	var failed []string
	ok := func(field string, err error) bool {
		if err != nil && !errors.Is(err, telemetry.ErrNotSupported) {
			failed = append(failed, field+": "+err.Error())
		}
		return err == nil
	}
	with := func(extra ...string) []string { return append(append([]string{}, gpu...), extra...) }
	if j, err := d.TotalEnergy(); ok("energy", err) {
		ch <- prometheus.MustNewConstMetric(descGPUEnergy, prometheus.CounterValue, j, gpu...)
	}
	if w, err := d.PowerDraw(); ok("power", err) {
		ch <- gauge(descGPUPower, w, with("average")...)
	}
	// The instantaneous field is optional: a driver that predates it may
	// answer with any error, which is not the GPU failing.
	if r, isR := d.(telemetry.InstantPowerReader); isR {
		if w, err := r.PowerInstant(); err == nil {
			ch <- gauge(descGPUPower, w, with("instant")...)
		}
	}
	if w, err := d.PowerLimit(); ok("power_limit", err) {
		ch <- gauge(descGPUPowerLimit, w, gpu...)
	}
	if total, used, err := d.Memory(); ok("memory", err) {
		ch <- gauge(descGPUMemUsed, float64(used), gpu...)
		ch <- gauge(descGPUMemTotal, float64(total), gpu...)
	}
	if sm, mem, err := d.Clocks(); ok("clocks", err) {
		ch <- gauge(descGPUSMClock, float64(sm)*1e6, gpu...)
		ch <- gauge(descGPUMemClock, float64(mem)*1e6, gpu...)
	}
	if t, err := d.Temperature(); ok("temperature", err) {
		ch <- gauge(descGPUTemp, float64(t), gpu...)
	}
	if u, m, err := d.Utilization(); ok("utilization", err) {
		ch <- gauge(descGPUUtil, float64(u)/100, gpu...)
		ch <- gauge(descGPUMemUtil, float64(m)/100, gpu...)
	}
	if active, err := d.ThrottleReasons(); ok("throttle", err) {
		collectThrottle(ch, gpu, active)
	}
	if len(failed) > 0 {
		return fmt.Errorf("GPU %d (%s): %s", i, uuid, strings.Join(failed, ", "))
	}
	return nil
}

// collectThrottle sends one gauge per known reason (1 when active) and one
// for each active reason this version does not know.
func collectThrottle(ch chan<- prometheus.Metric, gpu, active []string) {
	on := map[string]bool{}
	for _, r := range active {
		on[r] = true
	}
	for _, r := range telemetry.ThrottleReasonNames() {
		ch <- gauge(descGPUThrottle, b2f(on[r]), append(append([]string{}, gpu...), r)...)
		delete(on, r)
	}
	for _, r := range active {
		if on[r] {
			ch <- gauge(descGPUThrottle, 1, append(append([]string{}, gpu...), r)...)
		}
	}
}

// collectRAPL reads every zone; up is false when a zone, or the root,
// could not be read.
func (e *Exporter) collectRAPL(ch chan<- prometheus.Metric) (up bool) {
	readings, problems := e.rapl.read()
	for _, r := range readings {
		ch <- prometheus.MustNewConstMetric(descCPUEnergy, prometheus.CounterValue, r.Joules, r.Kind, r.Index)
	}
	why := strings.Join(problems, "; ")
	if why != "" && strings.Contains(why, "permission denied") {
		why += " (energy_uj is readable by root only since Linux 5.10: run the monitor as root, or grant read access)"
	}
	e.problem("rapl", why)
	return len(problems) == 0
}
