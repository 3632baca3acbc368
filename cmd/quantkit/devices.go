package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/job/devices"
)

var devicesCommand = &cli.Command{
	Name:  "devices",
	Usage: "list the CPU and NVIDIA GPUs quantkit can use",
	Description: "Prints the CPU model, its cores, the SIMD extensions quantkit's CPU kernels use on it,\n" +
		"the compute backends in this build, and every NVIDIA GPU that NVML reports (name,\n" +
		"memory, power, clocks). Without an NVIDIA driver it says so and still exits 0. The CUDA build\n" +
		"also lists the SASS and PTX its kernels embed and which of them each CUDA device runs\n" +
		"(\"SASS sm_90\", or \"PTX JIT from compute_80\" where no SASS fits the GPU).",
	Flags:  []cli.Flag{jsonFlag, jsonOutFlag},
	Action: runDevices,
}

func runDevices(c *cli.Context) error {
	if err := checkJSONOut(c); err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	r := devices.Read(devices.Options{CUDAKernels: cudaKernels})
	if err := report(c, r, r.WriteTable); err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	return nil
}
