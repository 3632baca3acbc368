package energy

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// RAPLRoot is where Linux publishes RAPL (Intel, and AMD since Linux 5.8
// under the same intel-rapl names).
const RAPLRoot = "/sys/class/powercap"

// raplPackage matches the package-level domains (intel-rapl:0,
// intel-rapl:1, ...), not their subdomains (intel-rapl:0:0 for cores,
// uncore or DRAM), which the package already includes, nor MMIO's
// intel-rapl-mmio:0, which reads the same package energy again. A
// top-level domain named psys (the platform, on laptops and some
// desktops) includes the packages too and is left out by RAPLSources.
var raplPackage = regexp.MustCompile(`^intel-rapl:([0-9]+)$`)

// RAPLSources are the RAPL package domains under root (normally
// RAPLRoot) that this process can read, or an error saying why CPU energy
// is not available, e.g. "energy: CPU energy not available:
// /sys/class/powercap/intel-rapl:0/energy_uj: permission denied" (Linux
// 5.10 and later make energy_uj readable by root only) or "energy: CPU
// energy not available: no RAPL domains under /sys/class/powercap".
//
// A source is named "cpu <name> (RAPL)", e.g. "cpu package-0 (RAPL)";
// its counter is energy_uj in joules, wrapping at max_energy_range_uj
// (WrapJ); it has no Power (the Sampler derives it from the counter) and
// an empty State.
func RAPLSources(root string) ([]Source, error) {
	unavailable := func(why string) error {
		return fmt.Errorf("energy: CPU energy not available: %s", why)
	}
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, unavailable("no RAPL domains under " + root)
	}
	if err != nil {
		return nil, unavailable(DescribePathError(err))
	}
	type domain struct {
		n   int
		dir string
	}
	var domains []domain
	for _, e := range entries {
		if m := raplPackage.FindStringSubmatch(e.Name()); m != nil {
			dir := filepath.Join(root, e.Name())
			if b, err := os.ReadFile(filepath.Join(dir, "name")); err == nil && strings.TrimSpace(string(b)) == "psys" {
				continue // the whole platform's energy: the packages' again, and more
			}
			n, err := strconv.Atoi(m[1])
			if err == nil {
				domains = append(domains, domain{n, dir})
			}
		}
	}
	slices.SortFunc(domains, func(a, b domain) int { return a.n - b.n })

	var srcs []Source
	var firstErr error
	for _, d := range domains {
		s, err := openRAPL(d.dir)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		srcs = append(srcs, s)
	}
	switch {
	case len(srcs) > 0:
		return srcs, nil
	case firstErr != nil:
		return nil, unavailable(DescribePathError(firstErr))
	}
	return nil, unavailable("no RAPL domains under " + root)
}

// openRAPL checks that dir's counter can be read and reads its name and
// range. A domain whose max_energy_range_uj cannot be read gets WrapJ 0:
// a wrap then looks like a reset, and Measure falls back to sampled power
// and says so.
func openRAPL(dir string) (*raplSource, error) {
	s := &raplSource{dir: dir}
	if _, err := s.Energy(); err != nil {
		return nil, err
	}
	name := filepath.Base(dir)
	if b, err := os.ReadFile(filepath.Join(dir, "name")); err == nil && strings.TrimSpace(string(b)) != "" {
		name = strings.TrimSpace(string(b))
	}
	s.name = "cpu " + name + " (RAPL)"
	if uj, err := ReadSysfsUint(filepath.Join(dir, "max_energy_range_uj")); err == nil {
		s.wrap = uj / 1e6
	}
	return s, nil
}

type raplSource struct {
	dir  string
	name string
	wrap float64 // joules
}

func (s *raplSource) Name() string            { return s.name }
func (s *raplSource) WrapJ() float64          { return s.wrap }
func (s *raplSource) Power() (float64, error) { return 0, ErrNotSupported }
func (s *raplSource) State() State            { return State{} }

func (s *raplSource) Energy() (float64, error) {
	uj, err := ReadSysfsUint(filepath.Join(s.dir, "energy_uj"))
	return uj / 1e6, err
}

// ReadSysfsUint reads a sysfs file holding one unsigned decimal number
// (a RAPL counter in µJ, or its range).
func ReadSysfsUint(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return float64(v), nil
}

// DescribePathError is "path: reason" for a *fs.PathError (which would
// otherwise read "open path: reason"), else err's text.
func DescribePathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}
