// Command quantkit quantizes AI models (FP32 → INT8/INT4): calibration,
// kernels on the CPU and GPU, and benchmarks.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	_ "github.com/quantkit/quantkit/cpu" // registers the cpu backend
	"github.com/quantkit/quantkit/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func newApp() *cli.App {
	return &cli.App{
		Name:  "quantkit",
		Usage: "quantize AI models (FP32 → INT8/INT4): checkpoints, GGUF for llama.cpp, LLM eval, PTQ and QAT, kernels, benchmarks",
		Description: "quantkit quantizes checkpoints (safetensors, sharded or not, to compressed-tensors or\n" +
			"safetensors) in bounded memory; writes the GGUF files llama.cpp runs (from Hugging Face\n" +
			"Llama-family checkpoints or F16 GGUF, llama-quantize's mixes, byte for byte); runs language\n" +
			"models to measure what quantization cost them (quantkit lm: perplexity, KL against the\n" +
			"original); quantizes ONNX classifiers after training (PTQ, with max, percentile,\n" +
			"entropy/KL as TensorRT does it, or MSE calibration) or during it (QAT) and runs them in\n" +
			"integer arithmetic; and runs FP32 and INT8 kernels on the CPU (and the GPU in the CUDA\n" +
			"build), measured against the strongest baseline in the same run.\n" +
			"Start with `quantkit demo`.",
		Version:     buildinfo.String(version),
		HideVersion: true,
		Commands: withUsageErrors(withInterrupts([]*cli.Command{versionCommand, devicesCommand, calibrateCommand, benchCommand, profileCommand, genCommand,
			inspectCommand, quantizeCommand, dequantizeCommand, mergeCommand, demoCommand, qatCommand, evalCommand, lmCommand, imatrixCommand, monitorCommand}, "profile", "monitor")),
		EnableBashCompletion: true,
		Action:               noCommand,
		OnUsageError:         onUsageError,
		// Exit statuses are mainStatus's alone: urfave/cli would call
		// os.Exit inside Run for its own errors ("No help topic").
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// exitUsage is the exit status of a command line that does not parse: an
// unknown command or flag, a missing flag value, no command at all.
const exitUsage = 2

// usageError is a command line that does not parse.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitStatus makes quantkit exit with Code, printing Err (when set) as any
// error. It is not a cli.ExitCoder, whose handling calls os.Exit inside
// app.Run (and so inside tests); main handles it.
type exitStatus struct {
	Code int
	Err  error
}

func (e *exitStatus) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *exitStatus) Unwrap() error { return e.Err }

func onUsageError(c *cli.Context, err error, _ bool) error {
	path := commandPath(c)
	if path == "" {
		return usageError{fmt.Errorf("%w (quantkit --help says how)", err)}
	}
	return usageError{fmt.Errorf("%s: %w (quantkit %s --help says how)", path, err, path)}
}

// noCommand runs when the first argument names no command: the app's help
// and a usage error.
func noCommand(c *cli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unknown command %q (quantkit help lists them)", c.Args().First())}
	}
	cli.ShowAppHelp(c)
	return usageError{errors.New("no command given")}
}

// withUsageErrors makes a flag that does not parse, in cmds and their
// subcommands, a usage error (exit status 2). cmds are changed in place:
// withInterrupts has already copied them.
func withUsageErrors(cmds []*cli.Command) []*cli.Command {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		withUsageErrors(cmd.Subcommands)
	}
	return cmds
}

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print the version",
	Action: func(c *cli.Context) error {
		fmt.Fprintln(c.App.Writer, buildinfo.String(version))
		return nil
	},
}

func main() { os.Exit(mainStatus()) }

// mainStatus runs the command line and returns the exit status, so that
// deferred work (a CPU profile) finishes before the process exits.
func mainStatus() int {
	app := newApp()
	handOver(app, os.Args)
	// QUANTKIT_CPUPROFILE=FILE writes a CPU profile of the run (go tool pprof).
	if path := os.Getenv("QUANTKIT_CPUPROFILE"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "quantkit:", err)
			return 1
		}
		defer stop()
	}
	err := app.Run(resolve(app, os.Args, os.Stderr).Args)
	if err == nil {
		return 0
	}
	if _, ok := errors.AsType[cli.ExitCoder](err); ok {
		err = usageError{err} // only urfave/cli's own: "help bogus"
	}
	if _, ok := errors.AsType[usageError](err); ok {
		fmt.Fprintln(os.Stderr, "quantkit:", err)
		return exitUsage
	}
	if st, ok := errors.AsType[*exitStatus](err); ok {
		if st.Err == nil {
			return st.Code // the status says it all (profile: the command's own)
		}
		fmt.Fprintln(os.Stderr, "quantkit:", err)
		return st.Code
	}
	fmt.Fprintln(os.Stderr, "quantkit:", err)
	return 1
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("QUANTKIT_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("QUANTKIT_CPUPROFILE: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
