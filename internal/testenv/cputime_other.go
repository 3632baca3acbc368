//go:build !unix

package testenv

import "time"

// ProcessCPU is unknown here.
func ProcessCPU() (time.Duration, bool) { return 0, false }
