package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/energy"
	"github.com/quantkit/quantkit/energy/monitor"
	"github.com/quantkit/quantkit/gpu/telemetry"
)

var (
	monitorListenFlag = &cli.StringFlag{Name: "listen", Value: ":" + strconv.Itoa(monitor.DefaultPort), Usage: "serve on " +
		"`ADDR` (HOST:PORT, :PORT or PORT); 9877 is used by no common exporter (node_exporter 9100, DCGM exporter 9400, " +
		"nvidia_gpu_exporter 9835, Kepler 28282)"}
	monitorGPUFlag  = &cli.BoolFlag{Name: "gpu", Value: true, Usage: "read the NVIDIA GPUs through NVML"}
	monitorCPUFlag  = &cli.BoolFlag{Name: "cpu", Value: true, Usage: "read the CPU's RAPL zones"}
	monitorRAPLFlag = &cli.StringFlag{Name: "rapl-root", Value: energy.RAPLRoot, EnvVars: []string{energy.RAPLRootEnv},
		Usage: "the powercap tree to read RAPL from (a host's /sys/class/powercap mounted into a container)"}
	monitorFakeNVMLFlag = &cli.StringFlag{Name: "fake-nvml", EnvVars: []string{telemetry.FakeFileEnv}, Hidden: true,
		Usage: "read GPUs from a JSON `FILE` (telemetry.FakeFile) instead of NVML, for tests"}
)

var monitorCommand = &cli.Command{
	Name:  "monitor",
	Usage: "serve GPU and CPU energy, and the energy of jobs, to Prometheus",
	Description: "Serves, on --listen (default :9877):\n" +
		"  GET  /metrics  the metrics, in Prometheus's text format or OpenMetrics (as the scraper asks)\n" +
		"  GET  /healthz  ok\n" +
		"  POST /jobs     a job's run as JSON (quantkit profile, bench and lm --monitor send it):\n" +
		"                 {\"job\": \"resnet50\", \"labels\": {\"precision\": \"int8\"}, \"seconds\": 12.5,\n" +
		"                  \"energy\": [{\"source\": \"gpu:0\", \"joules\": 3120.5}]}\n" +
		"  GET  /         a page linking to these\n" +
		"\n" +
		"Every scrape reads the sources then (nothing is read on a timer). Metrics, in base units:\n" +
		"  quantkit_gpu_energy_joules_total{gpu,uuid,name}    NVML's total-energy counter, mJ in J\n" +
		"  quantkit_gpu_power_watts{gpu,uuid,name,reading}    reading=\"average\": NVML's power usage (a 1 s\n" +
		"                                                     average on Ampere and later); \"instant\": the\n" +
		"                                                     instantaneous field, where the driver has it\n" +
		"  quantkit_gpu_power_limit_watts, _memory_used_bytes, _memory_total_bytes, _sm_clock_hertz,\n" +
		"  _memory_clock_hertz, _temperature_celsius, _utilization_ratio, _memory_utilization_ratio,\n" +
		"  quantkit_gpu_throttle_reason{...,reason} (1 while it holds the clocks down), and\n" +
		"  quantkit_gpu_info{gpu,uuid,name,driver,cuda,pci_bus_id} 1 (gpu is NVML's index, as nvidia-smi's)\n" +
		"  quantkit_cpu_energy_joules_total{zone,index}       RAPL package, dram, psys, corrected here for the\n" +
		"                                                     counter's wraparound at max_energy_range_uj\n" +
		"  quantkit_job_energy_joules_total{job,precision,source}, quantkit_job_seconds_total{job,precision},\n" +
		"  quantkit_job_runs_total{job,precision}             (and any other label the jobs were sent with)\n" +
		"  quantkit_source_up{source}                         0 when nvml or rapl (or a part) cannot be read\n" +
		"  quantkit_scrape_duration_seconds{source}, quantkit_build_info, go_*, process_*\n" +
		"\n" +
		"A source that cannot be read never fails the scrape: its quantkit_source_up is 0 and the reason\n" +
		"is logged on stderr, once each time it changes. RAPL's energy_uj is readable by root only since\n" +
		"Linux 5.10: run as root for CPU energy; the GPUs need no privilege.\n" +
		"\n" +
		"Job counters live in this process: a restart starts them again from 0, which rate() and\n" +
		"increase() read as a counter reset. Give Prometheus honor_labels: true for this target, or the\n" +
		"jobs' job label arrives as exported_job. SIGINT and SIGTERM stop the monitor (exit status 0).",
	Flags:  []cli.Flag{monitorListenFlag, monitorGPUFlag, monitorCPUFlag, monitorRAPLFlag, monitorFakeNVMLFlag},
	Action: runMonitor,
}

func runMonitor(c *cli.Context) error {
	if c.Args().Present() {
		return badInput(fmt.Errorf("monitor: takes no arguments (got %q)", c.Args().First()))
	}
	o := monitor.Options{Log: c.App.ErrWriter, Version: version}
	if c.Bool(monitorGPUFlag.Name) {
		o.OpenNVML = telemetry.Open
		if path := c.String(monitorFakeNVMLFlag.Name); path != "" {
			o.OpenNVML = func() (telemetry.System, error) { return telemetry.OpenFile(path) }
		}
	}
	if c.Bool(monitorCPUFlag.Name) {
		o.RAPLRoot = filepath.Clean(c.String(monitorRAPLFlag.Name))
	}
	e := monitor.New(o)
	defer e.Close()
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := e.Serve(ctx, c.String(monitorListenFlag.Name), func(addr string) {
		fmt.Fprintf(c.App.ErrWriter, "monitor: serving http://%s/metrics\n", addr)
	})
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}
