// Package cuda holds quantkit's CUDA kernels: the .cu sources, the PTX
// that `make ptx` generates from them and the fatbins it builds from the
// PTX (SASS for every architecture of SASSArchs plus the PTX itself),
// embedded here so that the GPU build carries its kernels (see README.md
// for the kernel ABI). It needs no CUDA to build.
package cuda

import (
	"embed"
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
)

//go:embed ptx/*.ptx
var ptx embed.FS

//go:embed fatbin/*.fatbin
var fatbins embed.FS

// PTX returns the PTX of one kernel file, by its name without extension
// ("gemm_s8").
func PTX(name string) ([]byte, error) {
	data, err := ptx.ReadFile("ptx/" + name + ".ptx")
	if err != nil {
		return nil, fmt.Errorf("cuda: no embedded PTX for %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return data, nil
}

// Fatbin returns the fatbin of one kernel file, by its name without
// extension: SASS for each of SASSArchs and the PTX for PTXArch, which
// cuModuleLoadData accepts as it is (the driver takes the SASS that fits
// the GPU, else JIT-compiles the PTX).
func Fatbin(name string) ([]byte, error) {
	data, err := fatbins.ReadFile("fatbin/" + name + ".fatbin")
	if err != nil {
		return nil, fmt.Errorf("cuda: no embedded fatbin for %q (have %s)", name, strings.Join(Names(), ", "))
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

// SASSArchs are the architectures the fatbins hold SASS for, as compute
// capabilities times ten (80 is sm_80), ascending.
func SASSArchs() []int { return slices.Clone(sassArchs) }

// PTXArch is the compute capability, times ten, of the PTX in the fatbins.
func PTXArch() int { return ptxArch }

// Code says which of a fatbin's images the driver runs on a GPU of compute
// capability major.minor, by the driver's rule: the SASS of the highest
// architecture sm_XY with X = major and Y ≤ minor (SASS runs on later GPUs
// of its major version only), else the PTX, JIT-compiled, when the GPU is
// at least its compute capability. sass is the architecture of that SASS
// (0 when the PTX is used); ok is false when neither fits (a GPU older
// than PTXArch).
func Code(major, minor int) (sass int, ok bool) {
	cc := 10*major + minor
	for _, a := range sassArchs {
		if a/10 == major && a%10 <= minor && a > sass {
			sass = a
		}
	}
	if sass != 0 {
		return sass, true
	}
	return 0, cc >= ptxArch
}

// CodeName is Code in words: "SASS sm_90", "PTX JIT from compute_80", or
// "no code for compute capability 7.5 (the PTX needs 8.0)".
func CodeName(major, minor int) string {
	sass, ok := Code(major, minor)
	switch {
	case sass != 0:
		return fmt.Sprintf("SASS sm_%d", sass)
	case ok:
		return fmt.Sprintf("PTX JIT from compute_%d", ptxArch)
	}
	return fmt.Sprintf("no code for compute capability %d.%d (the PTX needs %d.%d)", major, minor, ptxArch/10, ptxArch%10)
}

// Image is one entry of a fatbin: SASS (an ELF cubin) or PTX for an
// architecture.
type Image struct {
	PTX  bool // PTX; false: SASS
	Arch int  // compute capability times ten
}

func (im Image) String() string {
	if im.PTX {
		return fmt.Sprintf("compute_%d", im.Arch)
	}
	return fmt.Sprintf("sm_%d", im.Arch)
}

// Images lists the entries of a fatbin, read from its headers (the layout
// nvcc and fatbinary write, which cuobjdump reads: a 16-byte header, magic
// 0xBA55ED50, then entries of a header and a payload; kind 1 is PTX, 2
// ELF, the architecture a 32-bit word 28 bytes into the entry).
func Images(fatbin []byte) ([]Image, error) {
	const (
		magic     = 0xBA55ED50
		kindPTX   = 1
		kindELF   = 2
		entryHead = 32
	)
	le := binary.LittleEndian
	if len(fatbin) < 16 || le.Uint32(fatbin) != magic {
		return nil, fmt.Errorf("cuda: not a fatbin (no magic 0x%X)", magic)
	}
	hs := uint64(le.Uint16(fatbin[6:]))
	end := hs + le.Uint64(fatbin[8:])
	if hs < 16 || end > uint64(len(fatbin)) || end < hs {
		return nil, fmt.Errorf("cuda: fatbin of %d bytes declares %d bytes of entries after a %d-byte header", len(fatbin), end-hs, hs)
	}
	var ims []Image
	for off := hs; off < end; {
		if end-off < entryHead {
			return nil, fmt.Errorf("cuda: fatbin entry at byte %d is cut short", off)
		}
		e := fatbin[off:end]
		kind, ehs, size := le.Uint16(e), uint64(le.Uint32(e[4:])), le.Uint64(e[8:])
		if ehs < entryHead || size > uint64(len(e)) || ehs > uint64(len(e))-size {
			return nil, fmt.Errorf("cuda: fatbin entry at byte %d: header %d and payload %d bytes overrun the fatbin", off, ehs, size)
		}
		arch := int(le.Uint32(e[28:]))
		switch kind {
		case kindPTX:
			ims = append(ims, Image{PTX: true, Arch: arch})
		case kindELF:
			ims = append(ims, Image{Arch: arch})
		default:
			return nil, fmt.Errorf("cuda: fatbin entry at byte %d is of unknown kind %d", off, kind)
		}
		off += ehs + size
	}
	return ims, nil
}
