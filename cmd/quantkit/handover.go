//go:build !cuda

package main

import (
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/gpu/preflight"
	"github.com/quantkit/quantkit/gpu/telemetry"
	"github.com/quantkit/quantkit/job/devices"
)

// cudaBuild says whether this binary has the GPU backend.
const cudaBuild = false

// cudaKernels is nil: this build has no CUDA kernels (devices.Options).
var cudaKernels func() ([]devices.KernelCode, error)

// handOver runs the command with quantkit-cuda instead, when the command
// computes on --device auto or gpu, NVML sees a GPU, and quantkit-cuda sits
// beside this executable. It returns only when it does not hand over.
func handOver(app *cli.App, args []string) {
	cl := resolve(app, args, io.Discard)
	if os.Getenv(preflight.HandoverEnv) != "" || !cl.usesDevice() {
		return
	}
	if dev, ok := cl.device(); ok && dev == "cpu" {
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	cudaBin := filepath.Join(filepath.Dir(self), filepath.Base(self)+"-cuda")
	if st, err := os.Stat(cudaBin); err != nil || st.Mode()&0o111 == 0 {
		return
	}
	sys, err := telemetry.Open()
	if err != nil {
		return
	}
	n, err := sys.Count()
	sys.Close()
	if err != nil || n == 0 {
		return
	}
	env := append(os.Environ(), preflight.HandoverEnv+"=handed over by "+filepath.Base(self))
	syscall.Exec(cudaBin, append([]string{cudaBin}, args[1:]...), env)
	// Exec failed: carry on here, on the CPU.
}
