package monitor

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/quantkit/quantkit/energy"
)

// raplDomain matches powercap's RAPL domains: intel-rapl:N (a package, or
// psys) and intel-rapl:N:M (its subdomains: core, uncore, dram). MMIO's
// intel-rapl-mmio:N reads the package again and is left out.
var raplDomain = regexp.MustCompile(`^intel-rapl:([0-9]+)(?::([0-9]+))?$`)

// Zone is one RAPL zone the exporter reads.
type Zone struct {
	Dir   string // e.g. /sys/class/powercap/intel-rapl:0:1
	Kind  string // "package", "dram" or "psys"
	Index string // the package number (package-N, or its dram's), or psys's domain number
}

// findZones lists the package, dram and psys zones under root, in
// directory order. Zones whose name cannot be read are left out; the
// error is only for a root that cannot be listed.
func findZones(root string) ([]Zone, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var zones []Zone
	for _, e := range entries {
		m := raplDomain.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		dir := filepath.Join(root, e.Name())
		name, err := readName(dir)
		if err != nil {
			continue
		}
		z := Zone{Dir: dir}
		switch {
		case m[2] == "" && strings.HasPrefix(name, "package-"):
			z.Kind, z.Index = "package", strings.TrimPrefix(name, "package-")
		case m[2] == "" && name == "psys":
			z.Kind, z.Index = "psys", m[1]
		case m[2] != "" && name == "dram":
			z.Kind, z.Index = "dram", m[1]
			if parent, err := readName(filepath.Join(root, "intel-rapl:"+m[1])); err == nil && strings.HasPrefix(parent, "package-") {
				z.Index = strings.TrimPrefix(parent, "package-")
			}
		default:
			continue // core and uncore are inside the package's energy
		}
		zones = append(zones, z)
	}
	slices.SortStableFunc(zones, func(a, b Zone) int {
		return strings.Compare(a.Kind+"\x00"+a.Index, b.Kind+"\x00"+b.Index)
	})
	return zones, nil
}

func readName(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "name"))
	return strings.TrimSpace(string(b)), err
}

// zoneCounter turns one zone's raw energy_uj readings into a counter that
// does not go back when energy_uj wraps.
type zoneCounter struct {
	seen    bool
	last    float64 // the last raw reading, µJ
	total   float64 // µJ since the first reading, plus that reading
	wrap    float64 // max_energy_range_uj; 0: unknown
	wrapErr error
}

// advance adds the reading raw (µJ): after − before, across one wrap at
// max_energy_range_uj (energy.Delta). A reading that goes back with no
// wrap to explain it is a reset (the driver reloaded): the counter
// restarted from 0, so raw itself is what it counted since.
func (c *zoneCounter) advance(raw float64) {
	if !c.seen {
		c.seen, c.last, c.total = true, raw, raw
		return
	}
	d, ok := energy.Delta(c.last, raw, c.wrap)
	if !ok {
		d = raw
	}
	c.total += d
	c.last = raw
}

// raplReader reads the zones under a root and keeps their counters
// across scrapes.
type raplReader struct {
	root string
	mu   sync.Mutex // guards counters and serializes the reads that feed them
	cnt  map[string]*zoneCounter
}

func newRAPLReader(root string) *raplReader {
	return &raplReader{root: root, cnt: map[string]*zoneCounter{}}
}

// zoneReading is one zone's counter at one scrape.
type zoneReading struct {
	Zone
	Joules float64
}

// read reads every zone. problems says, per zone or for the root, what
// could not be read ("intel-rapl:0/energy_uj: permission denied"); the
// zones that could are returned all the same.
func (r *raplReader) read() (readings []zoneReading, problems []string) {
	zones, err := findZones(r.root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, []string{"no RAPL domains under " + r.root}
		}
		return nil, []string{energy.DescribePathError(err)}
	}
	if len(zones) == 0 {
		return nil, []string{"no RAPL package, dram or psys zone under " + r.root}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, z := range zones {
		c := r.cnt[z.Dir]
		if c == nil {
			c = &zoneCounter{}
			c.wrap, c.wrapErr = energy.ReadSysfsUint(filepath.Join(z.Dir, "max_energy_range_uj"))
			r.cnt[z.Dir] = c
		}
		raw, err := energy.ReadSysfsUint(filepath.Join(z.Dir, "energy_uj"))
		if err != nil {
			problems = append(problems, energy.DescribePathError(err))
			continue
		}
		c.advance(raw)
		readings = append(readings, zoneReading{z, c.total / 1e6})
	}
	return readings, problems
}
