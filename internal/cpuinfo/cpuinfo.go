// Package cpuinfo reads the processor's description from /proc/cpuinfo:
// the one reader of that file, for devices, bench reports and the CPU
// backend's Describe. What the kernels can use (SIMD extensions) is not
// read here: ask the cpu package (cpu.KernelFeatures), which reports what
// it dispatched to rather than what a file claims.
package cpuinfo

import (
	"bufio"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
)

// Info describes the host processor.
type Info struct {
	// Model is the processor's name ("AMD EPYC 9654 96-Core Processor"):
	// the first "model name" of /proc/cpuinfo, or GOARCH where there is
	// none (other systems; arm64 kernels often omit it).
	Model string `json:"model"`
	// Cores counts the physical cores (distinct physical id and core id
	// pairs); 0 where the file does not say.
	Cores int `json:"cores,omitempty"`
}

// Read describes the host processor. The file is read once per process.
func Read() Info { return read() }

var read = sync.OnceValue(func() Info {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return Info{Model: runtime.GOARCH}
	}
	defer f.Close()
	return Parse(f)
})

// Parse reads the /proc/cpuinfo format from r: "key<tabs>: value" lines,
// one block per logical processor, blocks apart by blank lines. Model is
// GOARCH when r names none.
func Parse(r io.Reader) Info {
	var info Info
	type core struct{ pkg, id string }
	cores := map[core]bool{}
	var cur core
	hasCore := false
	flush := func() {
		if hasCore {
			cores[cur] = true
		}
		cur, hasCore = core{}, false
	}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), 1<<20) // a flags line runs to kilobytes
	for s.Scan() {
		line := s.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k, v = strings.TrimSpace(k), strings.TrimSpace(v); k {
		case "model name":
			if info.Model == "" {
				info.Model = v
			}
		case "physical id":
			cur.pkg = v
		case "core id":
			cur.id, hasCore = v, true
		}
	}
	flush()
	if info.Model == "" {
		info.Model = runtime.GOARCH
	}
	info.Cores = len(cores)
	return info
}
