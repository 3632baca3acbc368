// Package monitor is the Prometheus exporter behind `quantkit monitor`:
// GPU and CPU energy, power and state read at scrape time, and the energy
// of jobs that `quantkit profile`, `bench` and `lm` report to it.
//
// An Exporter is a prometheus.Collector. Each scrape reads NVML (through
// gpu/telemetry, so telemetry.Fake and telemetry.OpenFile stand in for a
// GPU) and the RAPL zones under a powercap root (so a fake sysfs tree
// stands in for a CPU); nothing is read on a timer. RAPL's microjoule
// counters wrap at max_energy_range_uj: the exporter keeps, per zone, the
// last raw reading and a running total across scrapes and exports the
// total, so that rate() never sees a false reset. A source that cannot be
// read is quantkit_source_up{source} 0, with the reason in the log, never
// a failed scrape.
//
// Jobs arrive as JSON on POST /jobs (JobReport); the exporter adds them to
// counters per job, label set and source. WriteTextfile writes the same
// counters in node_exporter's textfile-collector format for machines that
// run node_exporter instead.
//
// Metric names, in base units, counters ending in _total:
//
//	quantkit_gpu_energy_joules_total{gpu,uuid,name}          NVML's total-energy counter (mJ → J)
//	quantkit_gpu_power_watts{gpu,uuid,name,reading}          reading="average" (NVML power usage), "instant"
//	quantkit_gpu_power_limit_watts{gpu,uuid,name}
//	quantkit_gpu_memory_used_bytes, _memory_total_bytes{gpu,uuid,name}
//	quantkit_gpu_sm_clock_hertz, _memory_clock_hertz{gpu,uuid,name}
//	quantkit_gpu_temperature_celsius{gpu,uuid,name}
//	quantkit_gpu_utilization_ratio, _memory_utilization_ratio{gpu,uuid,name}
//	quantkit_gpu_throttle_reason{gpu,uuid,name,reason}       1 while the reason holds the clocks down
//	quantkit_gpu_info{gpu,uuid,name,driver,cuda,pci_bus_id}  1
//	quantkit_cpu_energy_joules_total{zone,index}             RAPL package, dram, psys; wraparound corrected
//	quantkit_job_energy_joules_total{job,precision,source,...}
//	quantkit_job_seconds_total, quantkit_job_runs_total{job,precision,...}
//	quantkit_source_up{source}                               nvml, rapl
//	quantkit_scrape_duration_seconds{source}
//	quantkit_build_info{version,revision,goversion}          1
package monitor
