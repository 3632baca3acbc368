package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TextfileName is the file WriteTextfile keeps in node_exporter's
// textfile-collector directory.
const TextfileName = "quantkit_jobs.prom"

// WriteTextfile adds the run r to the job counters in dir/quantkit_jobs.prom,
// node_exporter's textfile-collector format: the counters already there are
// read, r added, and the file replaced in one rename, so node_exporter never
// reads half a file. Runs writing at once take turns (a lock on
// dir/.quantkit_jobs.prom.lock).
func WriteTextfile(dir string, r JobReport) error {
	if err := r.Validate(); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "."+TextfileName+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%s: locking: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	path := filepath.Join(dir, TextfileName)
	jobs := NewJobs()
	switch f, err := os.Open(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w (remove it to start the counts again)", path, err)
		}
		jobs.load(families)
	}
	if err := jobs.Add(r); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(jobs)
	return prometheus.WriteToTextfile(path, reg)
}
