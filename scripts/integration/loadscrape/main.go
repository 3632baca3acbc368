// Command loadscrape scrapes a Prometheus exporter from many goroutines at
// once for a while and reports what it saw: scrapes, errors, latency
// percentiles, and the exporter's resident memory before, during (peak)
// and after, read from /proc. make integration runs it against quantkit
// monitor (scripts/integration/prometheus.sh).
//
//	loadscrape -url http://127.0.0.1:9877/metrics -pid 1234 -scrapers 50 -for 30s -max-rss-mib 256
//
// It exits 1 when a scrape failed (an error or a status other than 200) or
// the exporter's peak resident memory passed -max-rss-mib.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "the /metrics address")
	pid := flag.Int("pid", 0, "the exporter's process id (0: memory not read)")
	scrapers := flag.Int("scrapers", 50, "concurrent scrapers")
	dur := flag.Duration("for", 30*time.Second, "how long to scrape")
	maxRSS := flag.Float64("max-rss-mib", 256, "the most peak resident memory allowed, MiB")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "loadscrape: -url is required")
		os.Exit(2)
	}
	rssBefore := rss(*pid, "VmRSS")
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *scrapers}, Timeout: 10 * time.Second}

	var mu sync.Mutex
	var lat []time.Duration
	var errs []string
	var bytes int64
	var wg sync.WaitGroup
	for range *scrapers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := scrape(ctx, client, *url)
				d := time.Since(t0)
				if ctx.Err() != nil {
					return // cut short by the end of the run, not a failure
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					lat = append(lat, d)
					bytes += n
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rssAfter, peak := rss(*pid, "VmRSS"), rss(*pid, "VmHWM")

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("loadscrape: %d scrapers for %v: %d scrapes (%.0f/s), %d errors, %.1f KiB each\n",
		*scrapers, *dur, len(lat), float64(len(lat))/dur.Seconds(), len(errs), float64(bytes)/float64(max(1, len(lat)))/1024)
	fmt.Printf("loadscrape: latency p50 %v, p90 %v, p99 %v, max %v\n",
		pct(0.5).Round(10*time.Microsecond), pct(0.9).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond),
		pct(1).Round(10*time.Microsecond))
	if *pid > 0 {
		fmt.Printf("loadscrape: exporter resident memory %.1f MiB before, %.1f MiB after, peak %.1f MiB\n",
			rssBefore, rssAfter, peak)
	}
	fail := false
	if len(errs) > 0 {
		fmt.Printf("loadscrape: FAIL: %d scrapes failed, the first: %s\n", len(errs), errs[0])
		fail = true
	}
	if peak > *maxRSS {
		fmt.Printf("loadscrape: FAIL: peak resident memory %.1f MiB > %.0f MiB\n", peak, *maxRSS)
		fail = true
	}
	if fail {
		os.Exit(1)
	}
}

// scrape GETs url and reads the whole body; its length.
func scrape(ctx context.Context, c *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return n, err
}

// rss reads field (VmRSS, VmHWM) of /proc/pid/status in MiB; 0 when it
// cannot.
func rss(pid int, field string) float64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
