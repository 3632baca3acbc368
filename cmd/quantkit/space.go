package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/progress"
	"github.com/quantkit/quantkit/job/quantize"
)

// What the commands that write checkpoints (quantize, dequantize, merge,
// gen, bench checkpoint) share on the command line: the claim of the
// output and the free-space check are package output's, the work is
// package quantize's.

var (
	// ckptDeviceFlag is --device of the checkpoint jobs, which run on the
	// CPU. It is not deviceFlag, so commandLine.usesDevice does not hand these
	// commands over to the CUDA build.
	ckptDeviceFlag = &cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu or auto, which is the same: checkpoint " +
		"jobs run on the CPU, on every core (they are memory-bound; gpu is refused)"}
	ckptWorkFlag = &cli.IntFlag{Name: "workers", Usage: "blocks of rows processed at once", DefaultText: "one per core"}
	ckptMemFlag  = &cli.StringFlag{Name: "max-memory", Value: "256MiB", Usage: "memory budget `SIZE` (256MiB, 1GiB, 500MB): tensors are streamed in blocks of rows sized so that the blocks in flight, the scales of the tensor being written and the program fit; --dry-run prints the planned peak"}
)

// parseMaxMemory reads --max-memory.
func parseMaxMemory(c *cli.Context) (int64, error) {
	return parseShardSize(c, ckptMemFlag)
}

// checkCPUDevice accepts --device cpu and auto, and refuses the GPU with
// the reason.
func checkCPUDevice(c *cli.Context) error {
	switch d := c.String(ckptDeviceFlag.Name); {
	case d == "cpu" || d == "auto":
		return nil
	case strings.HasPrefix(d, "gpu"):
		return badInput(fmt.Errorf("--device %s: checkpoint quantization runs on the CPU because it is memory-bound: each "+
			"weight is read, scaled, rounded and written once, and a GPU would add PCIe copies to a job bounded by memory "+
			"and disk bandwidth (it would pay only with the whole per-tensor chain on the device, pinned memory and "+
			"overlapped copies); use --device cpu", d))
	default:
		return badInput(fmt.Errorf("--device %s: not cpu or auto", d))
	}
}

// tensorProgress is the Progress of a checkpoint job: a bar of the input's
// bytes on stderr, when it is a terminal, labelled with the tensor; and
// afterWrite. done clears the bar.
func tensorProgress() (update func(quantize.Progress), done func()) {
	bar := progress.Start(0, progress.Bytes)
	return func(p quantize.Progress) {
		bar.SetTotal(p.BytesTotal)
		bar.Update(p.BytesDone, fmt.Sprintf("%d/%d tensors %s", p.TensorsDone, p.TensorsTotal, p.Tensor))
		afterWrite(p.Output)
	}, bar.Finish
}

// writeHook, when set, is called by quantize, dequantize, merge and gen
// after each tensor (or block) they write, with the output's path. It is
// nil but in tests, which use it to act during a run: make the output
// appear, or slow the run down to signal it.
var writeHook func(out string)

func afterWrite(out string) {
	if writeHook != nil {
		writeHook(out)
	}
}
