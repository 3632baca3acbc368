//go:build cuda

package main

import (
	"github.com/urfave/cli/v2"

	_ "github.com/quantkit/quantkit/gpu"           // registers the gpu backend
	_ "github.com/quantkit/quantkit/gpu/preflight" // checks CUDA before gorgonia.org/cu's init can exit
)

// cudaBuild says whether this binary has the GPU backend.
const cudaBuild = true

// handOver does nothing in the CUDA build: it is the one handed to.
func handOver(*cli.App, []string) {}
