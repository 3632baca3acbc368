package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	tail := " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}
	for _, tc := range []struct {
		version string
		info    *debug.BuildInfo
		want    string
	}{
		{"", nil, "quantkit dev"},
		{"v1.2", nil, "quantkit v1.2"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "quantkit dev"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}, Settings: rev}, "quantkit v0.3.0 (0123456789ab)"},
		{"v1.2", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}, Settings: rev}, "quantkit v1.2 (0123456789ab)"},
		{"", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "short"}}}, "quantkit dev"},
	} {
		if got := format(tc.version, tc.info); got != tc.want+tail {
			t.Errorf("format(%q, %+v) = %q, want %q", tc.version, tc.info, got, tc.want+tail)
		}
	}
	if got := String("v9"); !strings.HasPrefix(got, "quantkit v9") || !strings.HasSuffix(got, tail) {
		t.Errorf("String(v9) = %q", got)
	}
}
