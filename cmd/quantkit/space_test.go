package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/output"
)

// emptyDir fails the test unless dir holds nothing: no output, no
// temporary file or directory left behind.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left behind in %s", e.Name(), dir)
	}
}

func withFreeBytes(t *testing.T, fn func(string) (int64, bool)) {
	prev := output.FreeBytes
	output.FreeBytes = fn
	t.Cleanup(func() { output.FreeBytes = prev })
}

// A disk that cannot hold the output is refused before anything is
// written, with what is needed and what is free.
func TestOutputSpaceChecked(t *testing.T) {
	in := synthModel(t)
	q := filepath.Join(t.TempDir(), "q")
	mustRun(t, "quantize", in, "-o", q)
	withFreeBytes(t, func(string) (int64, bool) { return 1000, true })
	dir := t.TempDir()
	out := filepath.Join(dir, "q")
	for _, args := range [][]string{
		{"quantize", in, "-o", out},
		{"quantize", in, "-o", out, "--format", "gguf-q4_0"},
		{"dequantize", q, "-o", out},
	} {
		msg, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), out+": not enough space") || !strings.Contains(err.Error(), "1 kB is free") {
			t.Errorf("%v: error %v, want not enough space naming %s\n%s", args, err, out, msg)
		}
		emptyDir(t, dir)
	}
}

// A disk that fills during the run: quantize writes onto a 256 KiB tmpfs
// mounted in a private mount namespace (unshare, as any user where user
// namespaces are allowed) with the space check turned off, and must fail
// naming the output and the full disk, leaving the tmpfs empty.
func TestDiskFullDuringRun(t *testing.T) {
	if os.Getenv("QUANTKIT_DISKFULL_DIR") != "" {
		return // the child below runs diskFullChild instead
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) not found: cannot mount a small filesystem")
	}
	in := synthModel(t)
	q := filepath.Join(t.TempDir(), "q")
	mustRun(t, "quantize", in, "-o", q)
	mnt := t.TempDir()
	cmd := exec.Command(unshare, "--user", "--map-root-user", "--mount", "sh", "-c",
		`mount -t tmpfs -o size=256k quantkit-test "$1" || exit 42; exec "$2" -test.run='^TestDiskFullChild$' -test.v`,
		"sh", mnt, os.Args[0])
	cmd.Env = append(os.Environ(), "QUANTKIT_DISKFULL_DIR="+mnt, "QUANTKIT_DISKFULL_IN="+in, "QUANTKIT_DISKFULL_Q="+q)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 42 || !strings.Contains(string(out), "=== RUN") {
		t.Skipf("cannot mount a tmpfs in a private namespace here: %v\n%s", err, out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDiskFullChild") || strings.Contains(string(out), "finishing on the CPU") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestDiskFullChild(t *testing.T) {
	mnt, in, q := os.Getenv("QUANTKIT_DISKFULL_DIR"), os.Getenv("QUANTKIT_DISKFULL_IN"), os.Getenv("QUANTKIT_DISKFULL_Q")
	if mnt == "" {
		t.Skip("run by TestDiskFullDuringRun")
	}
	withFreeBytes(t, func(string) (int64, bool) { return 0, false })
	out := filepath.Join(mnt, "q")
	for _, args := range [][]string{
		{"quantize", in, "-o", out},
		{"quantize", in, "-o", out, "--format", "gguf-q8_0"},
		{"dequantize", q, "-o", out},
	} {
		msg, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), out+": no space left on device") {
			t.Errorf("%v: error %v, want no space left naming %s\n%s", args, err, out, msg)
		}
		emptyDir(t, mnt)
	}
}
