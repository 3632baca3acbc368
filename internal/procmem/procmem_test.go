package procmem

import (
	"runtime"
	"testing"
)

// TestStatus reads the resident set while 64 MiB more of it is touched:
// VmRSS grows by about that much, VmHWM is at least VmRSS, and a field
// that does not exist reads 0.
func TestStatus(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc/self/status")
	}
	before := Status("VmRSS")
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = 1
	}
	after := Status("VmRSS")
	if before <= 0 || after-before < 48<<20 {
		t.Errorf("VmRSS %d then %d bytes after touching 64 MiB", before, after)
	}
	if hwm := Status("VmHWM"); hwm < after {
		t.Errorf("VmHWM %d below VmRSS %d", hwm, after)
	}
	runtime.KeepAlive(b)
	if Status("NoSuchField") != 0 {
		t.Error("a missing field did not read 0")
	}
}
