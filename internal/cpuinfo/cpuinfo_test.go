package cpuinfo

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// Two packages of two cores with two threads each: eight blocks, four
// cores.
const twoSockets = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
flags		: fpu avx2 fma
physical id	: 0
core id		: 0

processor	: 1
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 0
core id		: 1

processor	: 2
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 1
core id		: 0

processor	: 3
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 1
core id		: 1

processor	: 4
physical id	: 0
core id		: 0

processor	: 5
physical id	: 0
core id		: 1

processor	: 6
physical id	: 1
core id		: 0

processor	: 7
physical id	: 1
core id		: 1
`

func TestParse(t *testing.T) {
	got := Parse(strings.NewReader(twoSockets))
	if want := (Info{Model: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", Cores: 4}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// arm64 kernels name no model and no cores.
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
	if got := Parse(strings.NewReader(arm)); got.Model != runtime.GOARCH || got.Cores != 0 {
		t.Errorf("arm64 file: %+v, want GOARCH and no core count", got)
	}
	if got := Parse(strings.NewReader("")); got.Model != runtime.GOARCH {
		t.Errorf("empty file: %+v", got)
	}
	// A flags line longer than bufio's default 64 KiB does not stop the
	// reading before the model name.
	long := "flags\t: " + strings.Repeat("x", 200<<10) + "\nmodel name\t: after\n"
	if got := Parse(strings.NewReader(long)); got.Model != "after" {
		t.Errorf("after a long line: %+v", got)
	}
}

// Read agrees with a plain reading of this machine's file.
func TestReadThisMachine(t *testing.T) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo here")
	}
	want := runtime.GOARCH
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			want = strings.TrimSpace(v)
			break
		}
	}
	got := Read()
	if got.Model != want {
		t.Errorf("model %q, want %q", got.Model, want)
	}
	if got.Cores > runtime.NumCPU() {
		t.Errorf("%d cores for %d logical processors", got.Cores, runtime.NumCPU())
	}
}
