// Package testenv decides what a test does when something it needs from
// outside the repository (MNIST from the module proxy, a Debian data
// package, a mountable filesystem) is missing.
package testenv

import (
	"fmt"
	"os"
)

// T is the part of testing.TB that Missing uses.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Missing ends the test because a resource it needs is unavailable: in CI
// (the environment variable CI is set and not "false" or "0") that is a
// failure, since CI installs everything the tests use; elsewhere the test
// is skipped with the message, so a newcomer offline still gets a green
// run that says what it left out.
func Missing(t T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set: everything the tests need must be installed)", msg)
		return
	}
	t.Skipf("%s", msg)
}

// InCI reports whether the tests run in CI.
func InCI() bool {
	v, ok := os.LookupEnv("CI")
	return ok && v != "" && v != "false" && v != "0"
}
