// Package human writes quantities for people to read in tables: byte
// sizes with decimal units, counts with K/M/B/T suffixes.
package human

import (
	"fmt"
	"strconv"
)

// Bytes writes n bytes with a decimal unit and three significant digits:
// 4.07 MB, 999 B.
func Bytes(n int64) string {
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

// Count writes a count with a suffix K, M, B or T and three significant
// digits: 1.02M, 6.74B, 12.
func Count(n int64) string {
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
