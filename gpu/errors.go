//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/quantkit/quantkit/gpu/internal/cudrv"
)

// errorf formats an error that names the device: "gpu:0 (NVIDIA H100 80GB
// HBM3): …".
func (b *Backend) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{b.label()}, args...)...)
}

// label is the device as errors name it.
func (b *Backend) label() string {
	if b.devName == "" {
		return b.name
	}
	return b.name + " (" + b.devName + ")"
}

// cudaError is an error of the CUDA driver, reported by its name and
// description ("CUDA_ERROR_LAUNCH_FAILED (unspecified launch failure)")
// rather than cu's short form; it unwraps to cu's error, so that
// errors.Is(err, cu.OutOfMemory) holds.
type cudaError struct {
	code int
	err  error
}

func (e *cudaError) Error() string { return cudrv.Error(e.code).Error() }
func (e *cudaError) Unwrap() error { return e.err }

// cuErr turns an error of package cu (a CUresult of an unexported integer
// type) into a cudaError; other errors pass unchanged.
func cuErr(err error) error {
	if err == nil {
		return nil
	}
	var ce *cudaError
	if errors.As(err, &ce) {
		return err
	}
	if v := reflect.ValueOf(err); v.Kind() == reflect.Int {
		return &cudaError{code: int(v.Int()), err: err}
	}
	return err
}
