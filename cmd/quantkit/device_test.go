package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/npy"
)

// flakyGPU stands in for a GPU backend: the CPU backend under another
// name, whose histogram fails (as a launch failure would) while failHist is
// set.
type flakyGPU struct{ *cpu.Backend }

var failHist atomic.Bool

func (flakyGPU) Name() string { return "gpu:0" }

func (g flakyGPU) HistogramAbs(x backend.Buffer, width float32, counts []int64) (int64, error) {
	if failHist.Load() {
		return 0, errors.New("gpu:0 (test card): hist_abs_f32 n=1000: CUDA_ERROR_LAUNCH_FAILED")
	}
	return g.Backend.HistogramAbs(x, width, counts)
}

func TestMain(m *testing.M) {
	// QUANTKIT_TEST_MAIN=1 makes the test binary quantkit itself, with its
	// arguments, for tests that signal or kill a real process.
	if os.Getenv("QUANTKIT_TEST_MAIN") == "1" {
		os.Args[0] = "quantkit"
		if d, err := time.ParseDuration(os.Getenv("QUANTKIT_TEST_SLOW")); err == nil {
			writeHook = func(string) { time.Sleep(d) } // a run long enough to signal
		}
		if d, err := time.ParseDuration(os.Getenv("QUANTKIT_TEST_GRACE")); err == nil {
			interruptGrace = d // 0: the forced way out, with no command cleanup
		}
		os.Exit(mainStatus())
	}
	backend.Register("gpu", func(int) (backend.Backend, error) { return flakyGPU{cpu.New()}, nil })
	os.Exit(m.Run())
}

func TestAutoFinishesOnCPU(t *testing.T) {
	path := filepath.Join(t.TempDir(), "act.npy")
	if err := npy.WriteFile(path, gaussian(1000, 3), []int{1000}); err != nil {
		t.Fatal(err)
	}
	want, err := run(t, "calibrate", "--device", "cpu", "--json", path)
	if err != nil {
		t.Fatal(err)
	}
	failHist.Store(true)
	defer failHist.Store(false)
	if _, err := run(t, "calibrate", "--device", "gpu", path); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_LAUNCH_FAILED") {
		t.Fatalf("--device gpu should fail with the device's error, got %v", err)
	}
	got, err := run(t, "calibrate", "--device", "auto", "--json", path)
	if err != nil || got != want {
		t.Fatalf("--device auto did not finish on the CPU: %v\n%s\nwant\n%s", err, got, want)
	}
	// Bad input is not retried: the error is the file's.
	if _, err := run(t, "calibrate", "--device", "auto", path+".missing.npy"); !errors.Is(err, inputerr.ErrInput) {
		t.Errorf("missing file: %v is not marked bad input", err)
	}
}

func TestUsesDevice(t *testing.T) {
	app := newApp()
	cases := map[string]bool{
		"bench gemm --sizes 64": true, "calibrate x.npy": true, "bench": false,
		"devices": false, "version": false, "--help": false, "": false,
	}
	for args, want := range cases {
		if got := resolve(app, append([]string{"quantkit"}, strings.Fields(args)...), io.Discard).usesDevice(); got != want {
			t.Errorf("usesDevice(%q) = %v, want %v", args, got, want)
		}
	}
}
