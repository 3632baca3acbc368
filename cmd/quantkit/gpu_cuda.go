//go:build cuda

package main

import (
	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/gpu"             // registers the gpu backend
	_ "github.com/quantkit/quantkit/gpu/preflight" // checks CUDA before gorgonia.org/cu's init can exit
	"github.com/quantkit/quantkit/job/devices"
)

// cudaBuild says whether this binary has the GPU backend.
const cudaBuild = true

// cudaKernels lists the CUDA devices and the code of the embedded kernels
// each runs (devices.Options).
func cudaKernels() ([]devices.KernelCode, error) {
	codes, err := gpu.KernelCodes()
	var out []devices.KernelCode
	for _, c := range codes {
		out = append(out, devices.KernelCode{Index: c.Index, Name: c.Name, ComputeCapability: c.ComputeCapability, Code: c.Code})
	}
	return out, err
}

// handOver does nothing in the CUDA build: it is the one handed to.
func handOver(*cli.App, []string) {}
