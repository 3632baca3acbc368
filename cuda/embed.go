// Package cuda holds quantkit's CUDA kernels: the .cu sources and the PTX
// that `make ptx` generates from them, embedded here so that the GPU
// build carries its kernels (see README.md for the kernel ABI). It needs
// no CUDA to build.
package cuda

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed ptx/*.ptx
var ptx embed.FS

// PTX returns the PTX of one kernel file, by its name without extension
// ("gemm_s8").
func PTX(name string) ([]byte, error) {
	data, err := ptx.ReadFile("ptx/" + name + ".ptx")
	if err != nil {
		return nil, fmt.Errorf("cuda: no embedded PTX for %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return data, nil
}

// Names lists the embedded kernel files.
func Names() []string {
	var names []string
	entries, _ := fs.ReadDir(ptx, "ptx")
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".ptx"))
	}
	sort.Strings(names)
	return names
}
