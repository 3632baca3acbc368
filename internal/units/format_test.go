package units

import (
	"math"
	"strings"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1 kB", 4067584: "4.07 MB", 999_499: "999 kB", 999_500: "1 MB",
		999_999: "1 MB", 2e12: "2 TB", math.MaxInt64: "9.22 EB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 12: "12", 999: "999", 1000: "1K", 1016896: "1.02M", 6738415616: "6.74B",
		405e9: "405B", 999_499_999: "999M", 999_500_000: "1B"} {
		if got := FormatCount(n); got != want {
			t.Errorf("FormatCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// The unit switches where rounding to three digits would print 1e+03.
func TestNoThousandBeforeTheUnit(t *testing.T) {
	for n := int64(990_000); n < 1_010_000; n += 7 {
		if s := FormatBytes(n); strings.Contains(s, "e+") || strings.HasPrefix(s, "1000") {
			t.Fatalf("FormatBytes(%d) = %q", n, s)
		}
		if s := FormatCount(n); strings.Contains(s, "e+") || strings.HasPrefix(s, "1000") {
			t.Fatalf("FormatCount(%d) = %q", n, s)
		}
	}
}
