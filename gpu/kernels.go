//go:build cuda

package gpu

import (
	"fmt"
	"math"
	"regexp"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/cuda"
	"github.com/quantkit/quantkit/gpu/internal/cudrv"
)

// The kernels' launch constants (gemmS8BM, quantThreads, ...) are in
// constants_gen.go, generated with cuda/launch.cuh from the table of package
// cuda/launch (make ptx).
const (
	// pad_rows_s8 gets at most strideWaves·SMs·(2048/padRowsThreads)
	// blocks: a few waves of full occupancy.
	strideWaves = 4

	// defaultSmemLimit is the dynamic shared memory a launch may ask for
	// without raising CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
	defaultSmemLimit = 48 << 10
)

// kernels are the functions of the embedded PTX modules.
type kernels struct {
	gemmS8S32  kernel
	gemmS8F32  kernel
	gemmS8S8   kernel
	padRowsS8  kernel
	gemmF32    kernel
	absMax     kernel
	hist       kernel
	histGlobal kernel
	quantize   kernel
	dequantize kernel
	// cuda/lm.cu: the operations of backend.LMOps (lm.go).
	rmsNorm      kernel
	rope         kernel
	swiGLU       kernel
	softmax      kernel
	embed        kernel
	add          kernel
	quantizeRows kernel
	attend       kernel
	// cuda/packed.cu: backend.PackedGemmer (packed.go).
	packedGemv8 kernel
	packedGemv4 kernel
	packedGemm8 kernel
	packedGemm4 kernel
}

// kernel is one function of a loaded module.
type kernel struct {
	name string
	fn   cu.Function
	// smem is the dynamic shared memory its largest launch asks for.
	smem int
	// params are the kinds of its parameters, as the PTX declares them.
	params []argKind
}

// modules lists, for each PTX file of package cuda, the kernels it
// defines and where they go.
func (k *kernels) modules() []struct {
	file  string
	funcs []*kernel
} {
	k.gemmS8S32 = kernel{name: "gemm_s8_s32", smem: gemmS8Smem}
	k.gemmS8F32 = kernel{name: "gemm_s8_f32", smem: gemmS8Smem}
	k.gemmS8S8 = kernel{name: "gemm_s8_s8", smem: gemmS8Smem}
	k.padRowsS8 = kernel{name: "pad_rows_s8"}
	k.gemmF32 = kernel{name: "gemm_f32"}
	k.absMax = kernel{name: "absmax_f32"}
	k.hist = kernel{name: "hist_abs_f32", smem: histSmemMaxBins * 4}
	k.histGlobal = kernel{name: "hist_abs_f32_global"}
	k.quantize = kernel{name: "quantize_f32"}
	k.dequantize = kernel{name: "dequantize_f32"}
	k.rmsNorm = kernel{name: "rmsnorm_f32"}
	k.rope = kernel{name: "rope_f32"}
	k.swiGLU = kernel{name: "swiglu_f32"}
	k.softmax = kernel{name: "softmax_f32"}
	k.embed = kernel{name: "embed_f32"}
	k.add = kernel{name: "add_f32"}
	k.quantizeRows = kernel{name: "quantize_rows_s8"}
	k.attend = kernel{name: "attend_f32", smem: lmAttnMaxSmem}
	k.packedGemv8 = kernel{name: "packed_gemv_8"}
	k.packedGemv4 = kernel{name: "packed_gemv_4"}
	k.packedGemm8 = kernel{name: "packed_gemm_8"}
	k.packedGemm4 = kernel{name: "packed_gemm_4"}
	return []struct {
		file  string
		funcs []*kernel
	}{
		{"gemm_s8", []*kernel{&k.gemmS8S32, &k.gemmS8F32, &k.gemmS8S8, &k.padRowsS8}},
		{"gemm_f32", []*kernel{&k.gemmF32}},
		{"reduce", []*kernel{&k.absMax, &k.hist, &k.histGlobal}},
		{"quantize", []*kernel{&k.quantize, &k.dequantize}},
		{"lm", []*kernel{&k.rmsNorm, &k.rope, &k.swiGLU, &k.softmax, &k.embed, &k.add, &k.quantizeRows, &k.attend}},
		{"packed", []*kernel{&k.packedGemv8, &k.packedGemv4, &k.packedGemm8, &k.packedGemm4}},
	}
}

// jitLogSize is the size of the JIT compiler's error and info log buffers.
const jitLogSize = 16 << 10

// loadKernels loads every module, looks up its functions and raises the
// dynamic shared memory limit of those that need more than the default.
// Each module is the embedded fatbin, from which the driver takes the SASS
// for this GPU or, where there is none, JIT-compiles the PTX; b.code says
// which (cuda.CodeName). Should the driver refuse a fatbin, the module's
// PTX is loaded alone and b.code says so. It runs on the owner goroutine
// with the context current.
func (b *Backend) loadKernels() error {
	optin, err := cudrv.MaxSharedMemoryPerBlockOptin(b.dev)
	if err != nil {
		return fmt.Errorf("reading the shared memory limit: %w", cuErr(err))
	}
	b.code = cuda.CodeName(b.ccMajor, b.ccMinor)
	if _, ok := cuda.Code(b.ccMajor, b.ccMinor); !ok {
		return fmt.Errorf("the embedded kernels have %s", b.code)
	}
	for _, m := range b.k.modules() {
		ptx, err := cuda.PTX(m.file)
		if err != nil {
			return err
		}
		fatbin, err := cuda.Fatbin(m.file)
		if err != nil {
			return err
		}
		mod, infoLog, err := loadModule(fatbin)
		if err != nil {
			var perr error
			mod, infoLog, perr = loadModule(ptx)
			if perr != nil {
				return fmt.Errorf("loading module %s: the fatbin (%d bytes): %w; its PTX (%d bytes): %w", m.file, len(fatbin), err, len(ptx), perr)
			}
			b.code = fmt.Sprintf("PTX JIT from compute_%d (the driver refused fatbin %s: %v)", cuda.PTXArch(), m.file, err)
		}
		b.mods = append(b.mods, mod)
		sigs, err := ptxSignatures(ptx)
		if err != nil {
			return fmt.Errorf("module %s: %w", m.file, err)
		}
		if infoLog != "" {
			b.jitInfo += m.file + ": " + infoLog + "\n"
		}
		for _, k := range m.funcs {
			if k.fn, err = mod.Function(k.name); err != nil {
				return fmt.Errorf("module %s has no kernel %s: %w", m.file, k.name, cuErr(err))
			}
			var ok bool
			if k.params, ok = sigs[k.name]; !ok {
				return fmt.Errorf("module %s: no .entry %s in its PTX", m.file, k.name)
			}
			if k.smem <= defaultSmemLimit {
				continue
			}
			static, err := k.fn.Attribute(cu.SharedSizeBytes)
			if err != nil {
				return fmt.Errorf("reading the static shared memory of %s: %w", k.name, cuErr(err))
			}
			if static+k.smem > optin {
				return fmt.Errorf("kernel %s needs %d bytes of shared memory per block (%d static, %d dynamic), the device allows %d",
					k.name, static+k.smem, static, k.smem, optin)
			}
			if err := cudrv.FuncSetMaxDynamicSharedMemory(k.fn, k.smem); err != nil {
				return fmt.Errorf("raising the dynamic shared memory of %s to %d bytes: %w", k.name, k.smem, err)
			}
		}
	}
	return nil
}

// loadModule is cuModuleLoadDataEx of a PTX or fatbin image, with the JIT
// compiler's info log, and its error log in the error.
func loadModule(image []byte) (cu.Module, string, error) {
	errLog := &cu.JITErrorLogBuffer{Buffer: make([]byte, jitLogSize)}
	infoLog := &cu.JITInfoLogBuffer{Buffer: make([]byte, jitLogSize)}
	// cu copies the image with C.CString: all its bytes (NULs included) and
	// a NUL after, into malloc'd memory aligned for the fatbin's header.
	mod, err := cu.LoadDataEx(string(image), errLog, infoLog)
	if err != nil {
		logs := ""
		if l := cString(errLog.Buffer); l != "" {
			logs += "\nJIT error log:\n" + l
		}
		if l := cString(infoLog.Buffer); l != "" {
			logs += "\nJIT info log:\n" + l
		}
		return cu.Module{}, "", fmt.Errorf("%w%s", cuErr(err), logs)
	}
	return mod, cString(infoLog.Buffer), nil
}

// cString is the NUL-terminated string at the start of buf, without
// trailing white space.
func cString(buf []byte) string {
	n := 0
	for n < len(buf) && buf[n] != 0 {
		n++
	}
	for n > 0 && (buf[n-1] == '\n' || buf[n-1] == ' ' || buf[n-1] == '\r' || buf[n-1] == '\t') {
		n--
	}
	return string(buf[:n])
}

// Kernel parameters. cu's Function.Launch reads every parameter as 8
// bytes from the pointer it is given, so each goes through a uint64
// holder: device pointers as their address, int parameters sign-extended
// (the kernel reads the low 4 bytes), long long ones whole, float ones as
// their bits in the low 4 bytes. Each carries its kind, which launch
// checks against the parameter list the PTX declares, so that a kernel
// whose ABI changed fails with an error instead of reading garbage.

// argKind is the type class of a kernel parameter.
type argKind uint8

const (
	kind64  argKind = iota + 1 // pointer or long long: .u64, .s64, .b64
	kind32                     // int: .u32, .s32, .b32
	kindF32                    // float: .f32
)

func (k argKind) String() string {
	switch k {
	case kind64:
		return "64-bit integer or pointer"
	case kind32:
		return "32-bit integer"
	case kindF32:
		return "float"
	}
	return "unknown"
}

// arg is one kernel parameter in its holder.
type arg struct {
	v    uint64
	kind argKind
}

func ptrArg(p cu.DevicePtr) arg { return arg{uint64(p), kind64} }
func intArg(v int) arg          { return arg{uint64(int64(v)), kind32} }
func longArg(v int) arg         { return arg{uint64(int64(v)), kind64} }
func f32Arg(f float32) arg      { return arg{uint64(math.Float32bits(f)), kindF32} }

func boolArg(v bool) arg {
	if v {
		return intArg(1)
	}
	return intArg(0)
}

var (
	ptxEntry = regexp.MustCompile(`\.entry\s+([A-Za-z_$][\w$]*)\s*\(([^)]*)\)`)
	ptxParam = regexp.MustCompile(`\.param\s+\.(\w+)`)
)

// ptxSignatures reads the parameter kinds of every kernel a PTX module
// defines.
func ptxSignatures(ptx []byte) (map[string][]argKind, error) {
	sigs := map[string][]argKind{}
	for _, m := range ptxEntry.FindAllSubmatch(ptx, -1) {
		var kinds []argKind
		for _, p := range ptxParam.FindAllSubmatch(m[2], -1) {
			var k argKind
			switch string(p[1]) {
			case "u64", "s64", "b64":
				k = kind64
			case "u32", "s32", "b32":
				k = kind32
			case "f32":
				k = kindF32
			default:
				return nil, fmt.Errorf("kernel %s has a parameter of type .%s, which the Go side cannot pass", m[1], p[1])
			}
			kinds = append(kinds, k)
		}
		sigs[string(m[1])] = kinds
	}
	return sigs, nil
}

// launch runs k on the backend's stream with a grid of gx×gy blocks of
// threads threads and smem bytes of dynamic shared memory. what names the
// sizes for errors ("m=4096 n=4096 k=4096").
func (b *Backend) launch(k *kernel, gx, gy, threads, smem int, what string, args ...arg) error {
	if gx <= 0 || gy <= 0 {
		return b.errorf("%s %s: grid %d×%d", k.name, what, gx, gy)
	}
	if len(args) != len(k.params) {
		return b.errorf("%s %s: launched with %d parameters, the PTX declares %d", k.name, what, len(args), len(k.params))
	}
	if err := b.joinCopies(); err != nil {
		return err
	}
	holders := make([]uint64, len(args))
	params := make([]unsafe.Pointer, len(args))
	for i, a := range args {
		if a.kind != k.params[i] {
			return b.errorf("%s %s: parameter %d is a %v, the PTX declares a %v", k.name, what, i, a.kind, k.params[i])
		}
		holders[i] = a.v
		params[i] = unsafe.Pointer(&holders[i])
	}
	err := k.fn.Launch(gx, gy, 1, threads, 1, 1, smem, b.stream, params)
	// The holders are Go memory: keep them until cu has copied them.
	runtime.KeepAlive(holders)
	if err != nil {
		return b.errorf("%s %s: %w", k.name, what, cuErr(err))
	}
	b.lastLaunch = k.name + " " + what
	return nil
}

// strideGrid is the number of blocks of padRowsThreads threads
// pad_rows_s8 gets for n items: one item per thread, capped at a few
// waves.
func (b *Backend) strideGrid(n int) int {
	return clampGrid(ceilDiv(n, padRowsThreads), strideWaves*b.sms*(2048/padRowsThreads))
}

// quantGrid is the grid of quantize_f32 and dequantize_f32 over n
// elements (common.cuh's launch contract).
func (b *Backend) quantGrid(n int) int {
	return clampGrid(ceilDiv(n, quantElemsPerBlock), quantBlocksPerSM*b.sms)
}

// absMaxGrid is the grid of absmax_f32 over n values (reduce.cuh).
func (b *Backend) absMaxGrid(n int) int {
	return clampGrid(ceilDiv(n, absMaxElemsPerBlock), absMaxBlocksPerSM*b.sms)
}

// histGrid is the grid of hist_abs_f32 and hist_abs_f32_global over n
// values (reduce.cuh): every block zeroes and flushes a private histogram,
// so each gets many values.
func (b *Backend) histGrid(n int) int {
	return clampGrid(ceilDiv(n, histElemsPerBlock), histBlocksPerSM*b.sms)
}

func clampGrid(want, limit int) int {
	return max(1, min(want, limit))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// DeviceCode is the code of the embedded kernels one CUDA device runs.
type DeviceCode struct {
	Index             int    // CUDA's device number (gpu:N)
	Name              string // as the driver reports it
	ComputeCapability string // "9.0"
	Code              string // cuda.CodeName: "SASS sm_90", "PTX JIT from compute_80"
}

// KernelCodes lists the CUDA devices and which code of the embedded
// fatbins the driver runs on each (by compute capability, cuda.Code),
// without creating a context. Backend.Code says what Open loaded.
func KernelCodes() ([]DeviceCode, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("gpu: counting CUDA devices: %w", cuErr(err))
	}
	var out []DeviceCode
	for i := 0; i < n; i++ {
		dev, err := cu.GetDevice(i)
		if err != nil {
			return out, fmt.Errorf("gpu:%d: %w", i, cuErr(err))
		}
		name, err := dev.Name()
		if err != nil {
			return out, fmt.Errorf("gpu:%d: reading the name: %w", i, cuErr(err))
		}
		cc, err := dev.Attributes(cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor)
		if err != nil {
			return out, fmt.Errorf("gpu:%d: reading the compute capability: %w", i, cuErr(err))
		}
		out = append(out, DeviceCode{Index: i, Name: name, ComputeCapability: fmt.Sprintf("%d.%d", cc[0], cc[1]),
			Code: cuda.CodeName(cc[0], cc[1])})
	}
	return out, nil
}
