//go:build cuda

// Package cudrv adds the few CUDA driver calls that gorgonia.org/cu v0.9.6
// lacks: raising a function's dynamic shared memory limit
// (cuFuncSetAttribute), the opt-in shared memory limit of a device, pinned
// host memory (cuMemAllocHost / cuMemFreeHost), and the driver's names of
// error codes (cuGetErrorName / cuGetErrorString).
//
// Like cu, every call acts on the CUDA context current on the calling OS
// thread: call from the goroutine that holds it.
package cudrv

/*
#cgo LDFLAGS: -lcuda
#cgo linux CFLAGS: -I/usr/local/cuda/include
#cgo linux LDFLAGS: -L/usr/local/cuda/lib64
#include <cuda.h>

static CUresult cudrv_set_max_dyn_smem(CUfunction f, int bytes) {
	return cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
}

static CUresult cudrv_optin_smem(int *v, CUdevice dev) {
	return cuDeviceGetAttribute(v, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev);
}

static const char *cudrv_error_name(CUresult r) {
	const char *s = 0;
	if (cuGetErrorName(r, &s) != CUDA_SUCCESS) return 0;
	return s;
}

static const char *cudrv_error_string(CUresult r) {
	const char *s = 0;
	if (cuGetErrorString(r, &s) != CUDA_SUCCESS) return 0;
	return s;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// cu.Function is a struct holding one CUfunction; rawFunction reads it.
// The assertion below fails to compile should that layout change.
var _ [unsafe.Sizeof(cu.Function{}) - unsafe.Sizeof(C.CUfunction(nil))]struct{}
var _ [unsafe.Sizeof(C.CUfunction(nil)) - unsafe.Sizeof(cu.Function{})]struct{}

func rawFunction(fn cu.Function) C.CUfunction {
	return *(*C.CUfunction)(unsafe.Pointer(&fn))
}

// Error is a CUDA driver error code.
type Error int

// Error is the driver's name and description of the code, such as
// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
func (e Error) Error() string {
	name, desc := ErrorName(int(e))
	if desc == "" {
		return name
	}
	return name + " (" + desc + ")"
}

func check(r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return Error(r)
}

// ErrorName gives the driver's name ("CUDA_ERROR_LAUNCH_FAILED") and
// description ("unspecified launch failure") of a CUresult code; an unknown
// code is named "CUDA error N" with no description.
func ErrorName(code int) (name, desc string) {
	r := C.CUresult(code)
	if s := C.cudrv_error_name(r); s != nil {
		name = C.GoString(s)
	} else {
		name = fmt.Sprintf("CUDA error %d", code)
	}
	if s := C.cudrv_error_string(r); s != nil {
		desc = C.GoString(s)
	}
	return name, desc
}

// FuncSetMaxDynamicSharedMemory raises (or lowers) the dynamic shared
// memory that launches of fn may ask for to bytes: launches asking for more
// than 48 KiB fail without it.
func FuncSetMaxDynamicSharedMemory(fn cu.Function, bytes int) error {
	return check(C.cudrv_set_max_dyn_smem(rawFunction(fn), C.int(bytes)))
}

// MaxSharedMemoryPerBlockOptin is the most shared memory one block of a
// kernel may use on device dev once its limit is raised.
func MaxSharedMemoryPerBlockOptin(dev cu.Device) (int, error) {
	var v C.int
	if err := check(C.cudrv_optin_smem(&v, C.CUdevice(dev))); err != nil {
		return 0, err
	}
	return int(v), nil
}

// MemAllocHost allocates bytes of page-locked host memory, which the device
// copies to and from at full speed and asynchronously. Free it with
// MemFreeHost.
func MemAllocHost(bytes int) (unsafe.Pointer, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("cudrv: MemAllocHost of %d bytes", bytes)
	}
	var p unsafe.Pointer
	if err := check(C.cuMemAllocHost(&p, C.size_t(bytes))); err != nil {
		return nil, err
	}
	return p, nil
}

// MemFreeHost frees memory from MemAllocHost.
func MemFreeHost(p unsafe.Pointer) error {
	return check(C.cuMemFreeHost(p))
}
