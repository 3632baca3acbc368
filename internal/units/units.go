// Package units reads and writes the sizes and counts people type and
// read: 5GB, 2GiB, 1.5B parameters, 4.07 MB.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseCount parses a count with an optional suffix K, M or B (or k, m,
// b) for 1e3, 1e6, 1e9: 1000, 1.5B, 10M.
func ParseCount(s string) (int64, error) {
	num, mul := strings.TrimSpace(s), 1.0
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'K', 'k':
			mul = 1e3
		case 'M', 'm':
			mul = 1e6
		case 'B', 'b':
			mul = 1e9
		}
		if mul != 1 {
			num = num[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v*mul < 1 || v*mul > 1e15 || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a count between 1 and 1e15 (a number with an optional suffix K, M or B)", s)
	}
	return int64(math.Round(v * mul)), nil
}

// sizeUnits are the suffixes ParseSize accepts, longest first so that
// "GiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	mul    float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseSize parses a size in bytes with an optional unit, decimal (KB MB
// GB TB, or K M G T) or binary (KiB MiB GiB TiB), case-insensitive: 5GB,
// 500MB, 2GiB, 1048576.
func ParseSize(s string) (int64, error) {
	num, mul := strings.TrimSpace(s), 1.0
	for _, u := range sizeUnits {
		if len(num) > len(u.suffix) && strings.EqualFold(num[len(num)-len(u.suffix):], u.suffix) {
			num, mul = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v*mul > 1<<62 || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a size (a number of bytes with an optional unit: 500MB, 5GB, 2GiB)", s)
	}
	return int64(v * mul), nil
}

// FormatBytes writes n bytes with a decimal unit, to three significant
// digits: 4.07 MB.
func FormatBytes(n int64) string {
	const units = "kMGTPE"
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1000, 0
	for v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.3g %cB", v, units[i])
}

// FormatCount writes a count with a suffix K, M, B or T, to three
// significant digits: 1.10B.
func FormatCount(n int64) string {
	const units = "KMBT"
	if n < 1000 {
		return strconv.FormatInt(n, 10)
	}
	v, i := float64(n)/1000, 0
	for v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%c", v, units[i])
}
