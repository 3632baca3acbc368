package preflight

import "strings"

// Env names. HandoverEnv is set on a process that was handed over, so that
// the two binaries never hand a command back and forth.
const (
	HandoverEnv   = "QUANTKIT_HANDOVER"
	NoHandoverEnv = "QUANTKIT_NO_HANDOVER" // set to anything: never hand over, just report
)

// ExitNoGPU is the exit status when the GPU cannot be used and the command
// cannot be handed to the CPU build.
const ExitNoGPU = 3

// DeviceArg finds the value of a --device flag in command-line arguments
// ("--device gpu", "--device=gpu:1", also with one dash), stopping at "--".
func DeviceArg(args []string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "device" {
			continue
		}
		if hasVal {
			return val, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}
