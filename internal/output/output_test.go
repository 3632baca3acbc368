package output

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
)

func withFreeBytes(t *testing.T, fn func(string) (int64, bool)) {
	prev := FreeBytes
	FreeBytes = fn
	t.Cleanup(func() { FreeBytes = prev })
}

func TestClaimRefusals(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	os.WriteFile(filepath.Join(in, "model.safetensors"), []byte("x"), 0o644)
	for _, tc := range []struct {
		out   string
		force bool
		need  int64
		want  string
	}{
		{in, false, 0, in + " exists; --force replaces it"},
		{in, true, 0, in + " is the input: replacing it would destroy the input"},
		{dir, true, 0, dir + " holds the input " + in},
		{filepath.Join(dir, "sub", "out"), false, 5000, "the output needs 5 kB, 1 kB is free on the filesystem of " + dir},
	} {
		withFreeBytes(t, func(string) (int64, bool) { return 1000, true })
		_, err := Claim(nil, tc.out, tc.force, tc.need, in, filepath.Join(in, "model.safetensors"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !inputerr.Is(err) {
			t.Errorf("Claim(%s, force %v, need %d): %v, want an input error saying %q", tc.out, tc.force, tc.need, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); err == nil {
		t.Error("a refused claim made the output's directory")
	}
	c, err := Claim(nil, filepath.Join(dir, "out"), false, 10, in)
	if err != nil || c.Path != filepath.Join(dir, "out") {
		t.Errorf("Claim of a free path: %+v, %v", c, err)
	}
}

func TestClaimRemovesStale(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	stale := filepath.Join(dir, ".out.tmp-999999999-1")
	os.Mkdir(stale, 0o755)
	var log bytes.Buffer
	if _, err := Claim(&log, out, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("%s, the temporary of a process that does not exist, was kept", stale)
	}
	if !strings.Contains(log.String(), "removed "+stale+", the unfinished output of a run that was killed") {
		t.Errorf("log %q", log.String())
	}
}

func TestNoSpace(t *testing.T) {
	err := NoSpace("/o", 2e6, fmt.Errorf("write /o/x: %w", syscall.ENOSPC))
	if err == nil || !strings.Contains(err.Error(), "/o: no space left on device while writing the output (2 MB in all)") {
		t.Errorf("ENOSPC: %v", err)
	}
	err = NoSpace("/o", 2e6, syscall.EDQUOT)
	if !strings.Contains(err.Error(), "disk quota exceeded") {
		t.Errorf("EDQUOT: %v", err)
	}
	other := fmt.Errorf("boom")
	if NoSpace("/o", 1, other) != other || NoSpace("/o", 1, nil) != nil {
		t.Error("other errors are not returned as they are")
	}
}
