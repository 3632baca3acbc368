// Package procmem reads this process's memory figures as Linux reports
// them in /proc/self/status, for the benchmarks' peak-RSS measurements.
// Elsewhere (no /proc) every figure is 0 and nothing can be reset.
package procmem

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Status is a "kB" field of /proc/self/status ("VmRSS", "VmHWM", ...) in
// bytes, 0 where there is none.
func Status(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && k == field {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n << 10
			}
		}
	}
	return 0
}

// ResetPeak resets the kernel's high-water mark of resident memory
// (VmHWM) to what is resident now (writing 5 to /proc/self/clear_refs)
// and reports whether the kernel allowed it.
func ResetPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
