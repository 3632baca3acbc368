//go:build !noasm && !gccgo && !safe

package cpu

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// ProcessorFeatures agrees with the flags Linux lists in /proc/cpuinfo, an
// account of the processor that shares nothing with the detection.
func TestProcessorFeaturesMatchCPUInfo(t *testing.T) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo here")
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
			break
		}
	}
	want := []string{}
	avx512 := flags["avx512f"] && flags["avx512bw"] && flags["avx512vl"] && flags["avx512dq"]
	if avx512 && flags["avx512_vnni"] {
		want = append(want, "avx512-vnni")
	}
	if flags["avx2"] && flags["avx_vnni"] {
		want = append(want, "avx-vnni")
	}
	if avx512 {
		want = append(want, "avx512")
	}
	if flags["avx2"] && flags["fma"] {
		want = append(want, "avx2-fma")
	}
	if got := ProcessorFeatures(); !slices.Equal(got, want) {
		t.Errorf("ProcessorFeatures %v, /proc/cpuinfo's flags say %v", got, want)
	}
}
