//go:build cuda

package preflight

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*cuInit_t)(unsigned int);
typedef int (*cuDeviceGetCount_t)(int *);
typedef int (*cuGetErrorName_t)(int, const char **);

// probe loads libcuda.so.1, calls cuInit and cuDeviceGetCount, and returns
// 0 with *count set, or a negative code: -1 no library, -2 missing symbol,
// or the CUresult of the call that failed.
static int probe(int *count, const char **err_name) {
	*err_name = 0;
	void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (!lib) return -1;
	cuInit_t init = (cuInit_t)dlsym(lib, "cuInit");
	cuDeviceGetCount_t getCount = (cuDeviceGetCount_t)dlsym(lib, "cuDeviceGetCount");
	cuGetErrorName_t getName = (cuGetErrorName_t)dlsym(lib, "cuGetErrorName");
	if (!init || !getCount) return -2;
	int r = init(0);
	if (r == 0) r = getCount(count);
	if (r != 0 && getName) getName(r, err_name);
	return r;
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Reason is why CUDA cannot start, "" when it can.
var Reason = check()

func check() string {
	// Number CUDA devices as NVML and nvidia-smi do (by PCI bus), not
	// fastest first, so that gpu:N and the telemetry of GPU N are the same
	// card. It must be set before the first cuInit, which is below.
	if os.Getenv("CUDA_DEVICE_ORDER") == "" {
		os.Setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
	}
	var count C.int
	var name *C.char
	switch r := C.probe(&count, &name); {
	case r == -1:
		return "libcuda.so.1 not found: no NVIDIA driver on this machine"
	case r == -2:
		return "libcuda.so.1 lacks cuInit or cuDeviceGetCount"
	case r != 0:
		n := "CUresult " + fmt.Sprint(int(r))
		if name != nil {
			n = C.GoString(name) + " (" + fmt.Sprint(int(r)) + ")"
		}
		return "cuInit failed: " + n
	case count == 0:
		return "the CUDA driver reports no devices"
	}
	return ""
}

func init() {
	if Reason == "" {
		return
	}
	prog := filepath.Base(os.Args[0])
	cpuBin := cpuBinary()
	if cpuBin != "" && os.Getenv(NoHandoverEnv) == "" && os.Getenv(HandoverEnv) == "" && !wantsGPU(os.Args[1:]) {
		env := append(os.Environ(), HandoverEnv+"="+prog+": "+Reason)
		err := syscall.Exec(cpuBin, append([]string{cpuBin}, os.Args[1:]...), env)
		fmt.Fprintf(os.Stderr, "%s: cannot hand over to %s: %v\n", prog, cpuBin, err)
	}
	fmt.Fprintf(os.Stderr, "%s: no usable CUDA GPU: %s\n", prog, Reason)
	if cpuBin == "" {
		fmt.Fprintf(os.Stderr, "%s: the CPU build (quantkit, `make build`) runs everything without a GPU\n", prog)
	} else if wantsGPU(os.Args[1:]) {
		fmt.Fprintf(os.Stderr, "%s: use --device auto or cpu, or run %s\n", prog, cpuBin)
	}
	os.Exit(ExitNoGPU)
}

// cpuBinary is the CPU build beside this executable ("quantkit" beside
// "quantkit-cuda"), or "".
func cpuBinary() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	name := strings.TrimSuffix(filepath.Base(self), "-cuda")
	if name == filepath.Base(self) {
		return ""
	}
	p := filepath.Join(filepath.Dir(self), name)
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return ""
	}
	return p
}

// wantsGPU reports whether the arguments ask for the GPU explicitly
// (--device gpu or gpu:N).
func wantsGPU(args []string) bool {
	v, ok := DeviceArg(args)
	return ok && strings.HasPrefix(v, "gpu")
}
