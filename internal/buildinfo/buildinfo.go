// Package buildinfo says which quantkit is running: its version, the
// commit it was built from, the Go release and the platform, as `quantkit
// version` prints them and as a report may record them.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// String is "quantkit VERSION (COMMIT) GO OS/ARCH". VERSION is version
// when not empty (set at link time: -ldflags "-X main.version=v1.2"),
// else the module's version when it was built from a tagged module, else
// "dev"; COMMIT, the first 12 digits of the VCS revision, is left out
// when the build did not record it.
func String(version string) string {
	info, _ := debug.ReadBuildInfo()
	return format(version, info)
}

func format(version string, info *debug.BuildInfo) string {
	v, rev := version, ""
	if info != nil {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if rev != "" {
		v += " (" + rev + ")"
	}
	return fmt.Sprintf("quantkit %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
