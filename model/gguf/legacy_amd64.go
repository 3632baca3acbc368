//go:build !noasm && !gccgo && !safe

package gguf

import "golang.org/x/sys/cpu"

// hasF16C says the processor converts float32 to float16 (VCVTPS2PH), which
// the kernels of legacy_amd64.s use beside AVX2.
var hasF16C = cpu.X86.HasF16C

// noasmBuild says the kernels' names run their pure-Go twins (legacy_noasm.go).
const noasmBuild = false
