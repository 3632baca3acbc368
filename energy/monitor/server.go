package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultPort is the port `quantkit monitor` listens on by default. It is
// not one that node_exporter (9100), DCGM exporter (9400),
// nvidia_gpu_exporter (9835), Kepler (28282) or, as far as we know, any
// exporter in Prometheus's list of default port allocations uses.
const DefaultPort = 9877

// maxReport caps the body of POST /jobs.
const maxReport = 1 << 20

// Handler serves the exporter:
//
//	GET  /metrics  the metrics, in Prometheus's text format or OpenMetrics (as the scraper asks)
//	GET  /healthz  "ok"
//	POST /jobs     a JobReport as JSON: 204, or 400 and why
//	GET  /         a page linking to the above
//
// Besides e's metrics, /metrics has the Go runtime's (go_*) and the
// process's (process_*: memory, CPU, open files).
func (e *Exporter) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(e, e.Jobs, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics:                   true,
		EnableOpenMetricsTextCreatedSamples: true,
		ErrorLog:                            e.log,
		ErrorHandling:                       promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /jobs", e.postJob)
	mux.HandleFunc("GET /{$}", landing)
	return mux
}

func (e *Exporter) postJob(w http.ResponseWriter, r *http.Request) {
	var rep JobReport
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReport))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		http.Error(w, "job report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := e.Jobs.Add(rep); err != nil {
		http.Error(w, "job report: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var landingPage = template.Must(template.New("").Parse(`<!DOCTYPE html>
<html><head><title>quantkit monitor</title></head>
<body><h1>quantkit monitor</h1>
<p>GPU and CPU energy for Prometheus, and the energy of the jobs reported to it.</p>
<ul><li><a href="metrics">/metrics</a>: the metrics</li>
<li><a href="healthz">/healthz</a>: ok while it serves</li>
<li>POST /jobs: a job's run as JSON, {"job": "resnet50", "labels": {"precision": "int8"}, "seconds": 12.5, "energy": [{"source": "gpu:0", "joules": 3120.5}]}; quantkit profile --monitor sends it</li></ul>
</body></html>
`))

func landing(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	landingPage.Execute(w, nil)
}

// Serve serves e's Handler on addr until ctx ends, then shuts down,
// giving requests in flight up to 5 s.
func (e *Exporter) Serve(ctx context.Context, addr string, ready func(addr string)) error {
	srv := &http.Server{Addr: addr, Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(e.log.Writer(), "monitor: http: ", log.LstdFlags)}
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// JobsURL is the POST /jobs address of the monitor at base
// ("http://host:9877", "host:9877", or the /jobs address itself).
func JobsURL(base string) (string, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("monitor %q: want http://HOST:PORT", base)
	}
	if !strings.HasSuffix(u.Path, "/jobs") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/jobs"
	}
	return u.String(), nil
}

// Post reports r to the monitor at base (JobsURL), waiting at most 10 s.
func Post(ctx context.Context, base string, r JobReport) error {
	if err := r.Validate(); err != nil {
		return err
	}
	u, err := JobsURL(base)
	if err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// SourceLabel is the source label of an energy.Source's name: "gpu:0" for
// "gpu:0 NVIDIA H100 80GB HBM3" (NVML's index, as quantkit_gpu_*'s gpu
// label), "cpu:package-0" for "cpu package-0 (RAPL)", and "cpu" for the
// CPU packages combined ("cpu package-0 (RAPL) + cpu package-1 (RAPL)").
func SourceLabel(name string) string {
	parts := strings.Split(name, " + ")
	labels := make([]string, len(parts))
	allCPU := true
	for i, p := range parts {
		f := strings.Fields(p)
		switch {
		case len(f) == 0:
			labels[i] = "unnamed"
		case f[0] == "cpu" && len(f) > 1:
			labels[i] = "cpu:" + f[1]
		default:
			labels[i] = f[0]
		}
		allCPU = allCPU && strings.HasPrefix(labels[i], "cpu")
	}
	if len(parts) > 1 && allCPU {
		return "cpu"
	}
	return strings.Join(labels, "+")
}
