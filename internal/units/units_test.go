package units

import "testing"

func TestParseCountSize(t *testing.T) {
	for s, want := range map[string]int64{"1000": 1000, "10K": 10_000, "1.5B": 1_500_000_000, "7b": 7_000_000_000, "500M": 500_000_000, "1e6": 1_000_000} {
		if got, err := ParseCount(s); err != nil || got != want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "B", "-1M", "NaN", "1e20"} {
		if _, err := ParseCount(s); err == nil {
			t.Errorf("ParseCount(%q) accepted", s)
		}
	}
	for s, want := range map[string]int64{"5GB": 5e9, "500mb": 5e8, "2GiB": 2 << 30, "1048576": 1 << 20, "10 KiB": 10240, "1.5G": 1.5e9, "7B": 7} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GB", "-5GB", "5 parsecs", "1e30"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
	for n, want := range map[int64]string{999: "999 B", 4067584: "4.07 MB", 1000: "1 kB", 999_999: "1 MB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{12: "12", 1016896: "1.02M", 6738415616: "6.74B"} {
		if got := FormatCount(n); got != want {
			t.Errorf("FormatCount(%d) = %q, want %q", n, got, want)
		}
	}
}
