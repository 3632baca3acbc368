package monitor

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// JobReport is one finished run of a job, as POST /jobs takes it and
// `quantkit profile --monitor` sends it:
//
//	{"job": "resnet50", "labels": {"precision": "int8"}, "seconds": 12.5,
//	 "energy": [{"source": "gpu:0", "joules": 3120.5}, {"source": "cpu:package-0", "joules": 410.2}]}
type JobReport struct {
	// Job names the work; it is the job label.
	Job string `json:"job"`
	// Labels are further labels (precision and any other), each a
	// Prometheus label name not starting with "__" and not job, source,
	// instance or le.
	Labels map[string]string `json:"labels,omitempty"`
	// Seconds is the run's wall time.
	Seconds float64 `json:"seconds"`
	// Energy is the run's energy on each source it was measured on.
	Energy []SourceEnergy `json:"energy"`
}

// SourceEnergy is a run's energy on one source.
type SourceEnergy struct {
	// Source names the device as SourceLabel does: "gpu:N" (NVML's index,
	// the gpu label of quantkit_gpu_*), "cpu:package-N", "cpu".
	Source string  `json:"source"`
	Joules float64 `json:"joules"`
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are the labels a job may not set: the exporter's own and
// those Prometheus gives every target.
var reservedLabels = map[string]bool{"job": true, "source": true, "instance": true, "le": true, "quantile": true}

// Validate says what is wrong with r, or nil.
func (r JobReport) Validate() error {
	if r.Job == "" || !utf8.ValidString(r.Job) {
		return errors.New("job: want a name (UTF-8)")
	}
	for k, v := range r.Labels {
		switch {
		case !labelName.MatchString(k) || strings.HasPrefix(k, "__"):
			return fmt.Errorf("label %q: want a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", k)
		case reservedLabels[k]:
			return fmt.Errorf("label %q: reserved (job, source, instance, le and quantile are not a job's to set)", k)
		case !utf8.ValidString(v):
			return fmt.Errorf("label %s: value is not UTF-8", k)
		}
	}
	if !finite(r.Seconds) || r.Seconds < 0 {
		return fmt.Errorf("seconds %v: want a finite number ≥ 0", r.Seconds)
	}
	for _, s := range r.Energy {
		if s.Source == "" || !utf8.ValidString(s.Source) {
			return errors.New("energy: a source without a name")
		}
		if !finite(s.Joules) || s.Joules < 0 {
			return fmt.Errorf("energy of %s: %v J: want a finite number ≥ 0", s.Source, s.Joules)
		}
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// ParseLabels reads KEY=VALUE pairs (the --label flags) into a map.
func ParseLabels(pairs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want KEY=VALUE", p)
		}
		m[k] = v
	}
	return m, nil
}

// Jobs are the counters of the jobs reported: energy per source, seconds
// and runs, per job and label set. Each series carries the time it was
// first reported as its created timestamp (OpenMetrics' _created), from
// which a Prometheus that ingests created timestamps counts the first run
// in increase() too; others see a series appear at its first value. It is a prometheus.Collector whose
// label names are job, precision (always, "" where a job has none), every
// other label any job was reported with (sorted; "" where a job has none,
// which Prometheus reads as no label), and, for energy, source. It is safe
// for concurrent use.
type Jobs struct {
	mu     sync.Mutex
	series map[string]*jobSeries // by job and labels
}

type jobSeries struct {
	created time.Time // when the series was first reported (OpenMetrics' _created)
	job     string
	labels  map[string]string
	seconds float64
	runs    float64
	joules  map[string]float64 // by source
}

// NewJobs is an empty set of job counters.
func NewJobs() *Jobs { return &Jobs{series: map[string]*jobSeries{}} }

func seriesKey(job string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(job)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if labels[k] != "" { // an empty label is no label
			fmt.Fprintf(&b, "\x00%s\x00%s", k, labels[k])
		}
	}
	return b.String()
}

func (j *Jobs) get(job string, labels map[string]string) *jobSeries {
	key := seriesKey(job, labels)
	s := j.series[key]
	if s == nil {
		s = &jobSeries{created: time.Now(), job: job, labels: map[string]string{}, joules: map[string]float64{}}
		for k, v := range labels {
			if v != "" {
				s.labels[k] = v
			}
		}
		j.series[key] = s
	}
	return s
}

// Add counts one run r (which must Validate).
func (j *Jobs) Add(r JobReport) error {
	if err := r.Validate(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.get(r.Job, r.Labels)
	s.runs++
	s.seconds += r.Seconds
	for _, e := range r.Energy {
		s.joules[e.Source] += e.Joules
	}
	return nil
}

// Describe sends nothing: the label names depend on the jobs reported.
func (j *Jobs) Describe(chan<- *prometheus.Desc) {}

const (
	jobEnergyName  = "quantkit_job_energy_joules_total"
	jobSecondsName = "quantkit_job_seconds_total"
	jobRunsName    = "quantkit_job_runs_total"
)

// Collect sends every job's counters.
func (j *Jobs) Collect(ch chan<- prometheus.Metric) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.series) == 0 {
		return
	}
	extra := map[string]bool{}
	for _, s := range j.series {
		for k := range s.labels {
			if k != "precision" {
				extra[k] = true
			}
		}
	}
	names := append([]string{"job", "precision"}, slices.Sorted(maps.Keys(extra))...)
	energy := prometheus.NewDesc(jobEnergyName, "Energy of the runs of a job on a source, as the runs measured "+
		"it (their energy counters, or sampled power where there is none) and reported it to the monitor.",
		append(slices.Clone(names), "source"), nil)
	seconds := prometheus.NewDesc(jobSecondsName, "Wall time of the runs of a job.", names, nil)
	runs := prometheus.NewDesc(jobRunsName, "Runs of a job reported.", names, nil)
	for _, key := range slices.Sorted(maps.Keys(j.series)) {
		s := j.series[key]
		values := []string{s.job, s.labels["precision"]}
		for _, k := range names[2:] {
			values = append(values, s.labels[k])
		}
		counter := func(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
			return prometheus.MustNewConstMetricWithCreatedTimestamp(d, prometheus.CounterValue, v, s.created, labels...)
		}
		ch <- counter(seconds, s.seconds, values...)
		ch <- counter(runs, s.runs, values...)
		for _, src := range slices.Sorted(maps.Keys(s.joules)) {
			ch <- counter(energy, s.joules[src], append(slices.Clone(values), src)...)
		}
	}
}

// load adds the job counters of families (a previous textfile) to j.
func (j *Jobs) load(families map[string]*dto.MetricFamily) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			var job, source string
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "job":
					job = lp.GetValue()
				case "source":
					source = lp.GetValue()
				default:
					labels[lp.GetName()] = lp.GetValue()
				}
			}
			v := m.GetCounter().GetValue()
			if job == "" {
				continue
			}
			s := j.get(job, labels)
			switch name {
			case jobEnergyName:
				if source != "" {
					s.joules[source] += v
				}
			case jobSecondsName:
				s.seconds += v
			case jobRunsName:
				s.runs += v
			}
		}
	}
}
