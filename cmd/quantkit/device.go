package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/gpu/preflight"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
)

var deviceFlag = &cli.StringFlag{
	Name:  "device",
	Value: "auto",
	Usage: "where to compute: auto, cpu, gpu or gpu:N (auto: the GPU when there is a usable one, else the CPU; " +
		"work that fails on the GPU is finished on the CPU with a warning)",
}

// onDevice opens the backend --device names and runs job on it. With
// --device auto, a job that fails on the GPU (out of memory, a failed
// launch) is run again on the CPU, with a warning, instead of being lost;
// one that failed for a reason another device would not change (bad
// input, a full disk, any file error) is not.
func onDevice(c *cli.Context, job func(b backend.Backend) error) error {
	spec := c.String(deviceFlag.Name)
	b, fellBack, err := backend.Open(spec)
	if err != nil {
		if strings.HasPrefix(spec, "gpu") && !cudaBuild {
			return fmt.Errorf("--device %s: this quantkit is the CPU build; build the GPU one with `make cuda` "+
				"(build/quantkit-cuda, which this one hands GPU work to when it sits beside it)", spec)
		}
		return fmt.Errorf("--device %s: %w", spec, err)
	}
	if fellBack != nil {
		if why := os.Getenv(preflight.HandoverEnv); why != "" {
			warnf("GPU not used (%s); running on the CPU", why)
		} else if cudaBuild {
			warnf("GPU not used (%v); running on the CPU", fellBack)
		}
	}
	err = job(b)
	b.Close()
	if err == nil || spec != "auto" || b.Name() == "cpu" || !deviceMightFix(err) {
		return err
	}
	warnf("%v\nquantkit: finishing on the CPU", err)
	cpu, _, cerr := backend.Open("cpu")
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	defer cpu.Close()
	return job(cpu)
}

// deviceMightFix reports whether running again on another device could
// end err: not for bad input, nor for errors of files and the operating
// system (a full disk, a read error, an output that appeared meanwhile),
// which would happen again, nor for a run that was told to stop.
func deviceMightFix(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	var se *os.SyscallError
	var errno syscall.Errno
	return !errors.Is(err, inputerr.ErrInput) && !errors.As(err, &pe) && !errors.As(err, &le) &&
		!errors.As(err, &se) && !errors.As(err, &errno) && !errors.Is(err, fs.ErrExist) &&
		!errors.Is(err, atomicfile.ErrChanged) && !errors.Is(err, context.Canceled)
}

func warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "quantkit: "+format+"\n", args...)
}

// badInput marks err as the user's input's fault (inputerr), which
// another device would not fix.
func badInput(err error) error { return inputerr.Mark(err) }
