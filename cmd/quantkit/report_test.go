package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A side output that fails (its directory gone) stops none of the others,
// and the error names its flag and path; outputs without a path are
// skipped; a plot-like output saves itself.
func TestWriteSideOutputs(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "gone", "r.json")
	csv, png := filepath.Join(dir, "r.csv"), filepath.Join(dir, "p.png")
	text := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	saved := ""
	bad := errors.New("encoding failed")
	err := writeSideOutputs(
		sideOutput{flag: "json-out", path: gone, write: text("{}")},
		sideOutput{flag: "none", path: "", write: text("never")},
		sideOutput{flag: "csv", path: csv, write: text("a,b\n")},
		sideOutput{flag: "plot", path: png, save: func(p string) error { saved = p; return nil }},
		sideOutput{flag: "cache", path: filepath.Join(dir, "c"), write: func(io.Writer) error { return bad }},
	)
	if err == nil || !strings.Contains(err.Error(), "--json-out: ") || !strings.Contains(err.Error(), gone) || !errors.Is(err, bad) ||
		!strings.Contains(err.Error(), "--cache: ") {
		t.Errorf("error %v: want both failures, each naming its flag", err)
	}
	if b, rerr := os.ReadFile(csv); rerr != nil || string(b) != "a,b\n" || saved != png {
		t.Errorf("the outputs after a failure: csv %q %v, plot saved to %q", b, rerr, saved)
	}
	if _, serr := os.Stat(filepath.Join(dir, "c")); serr == nil {
		t.Error("an output whose content failed was written")
	}
	if err := writeSideOutputs(); err != nil {
		t.Errorf("nothing to write: %v", err)
	}
}
