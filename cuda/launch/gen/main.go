// Command gen writes the launch constants of package launch into
// cuda/launch.cuh and gpu/constants_gen.go; run it from the repository
// root (make ptx does).
package main

import (
	"fmt"
	"os"

	"github.com/quantkit/quantkit/cuda/launch"
)

func main() {
	for _, f := range []struct {
		path string
		data []byte
	}{{launch.CUHPath, launch.CUH()}, {launch.GoPath, launch.Go()}} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "gen: %v (run from the repository root)\n", err)
			os.Exit(1)
		}
		fmt.Printf("gen: %s\n", f.path)
	}
}
