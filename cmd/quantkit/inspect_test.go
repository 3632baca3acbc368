package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/inspect"
	"github.com/quantkit/quantkit/model/npy"
)

// InspectReport is what gen_test.go reads `inspect --json` of a checkpoint
// into.
type InspectReport = inspect.CheckpointReport

// The report itself is tested in model/inspect; here, what the command
// line adds: --json, --json-out, the text, errors and their prefix.
func TestInspectCLI(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "acts.npy")
	if err := npy.WriteFile(path, make([]float32, 6), []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	want, err := inspect.NPY(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "inspect", "--json", path)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got inspect.NPYReport
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.DType != want.DType || got.Elements != 6 || got.Path != path {
		t.Errorf("--json: %v, %+v\n%s", err, got, out)
	}
	if !strings.Contains(out, `"dtype": "<f4"`) {
		t.Errorf("--json escapes '<':\n%s", out)
	}
	jsonPath := filepath.Join(dir, "report.json")
	text, err := run(t, "inspect", "--json-out", jsonPath, path)
	if err != nil || !strings.Contains(text, "<f4 (float32), shape (2, 3), 6 elements, 24 B") {
		t.Errorf("--json-out: the text was not printed: %v\n%s", err, text)
	}
	if data, err := os.ReadFile(jsonPath); err != nil || string(data) != out {
		t.Errorf("--json-out wrote %q (%v), want what --json prints:\n%s", data, err, out)
	}
	// --json-out is checked before the input is read.
	missing := filepath.Join(dir, "missing.npy")
	if _, err := run(t, "inspect", "--json-out", filepath.Join(dir, "nodir", "r.json"), missing); err == nil ||
		!strings.Contains(err.Error(), "--json-out") || strings.Contains(err.Error(), "missing.npy") {
		t.Errorf("bad --json-out: %v", err)
	}
	if _, err := run(t, "inspect", missing); err == nil || !strings.HasPrefix(err.Error(), "inspect: ") || !strings.Contains(err.Error(), "missing.npy") {
		t.Errorf("missing input: %v", err)
	}
	if _, err := run(t, "inspect"); err == nil {
		t.Error("no PATH accepted")
	}
	if _, err := run(t, "inspect", path, path); err == nil {
		t.Error("two PATHs accepted")
	}
}

// The help says where the JSON shapes are: in the description, which the
// help prints above the options.
func TestInspectHelp(t *testing.T) {
	out, err := run(t, "inspect", "--help")
	if err != nil {
		t.Fatal(err)
	}
	desc, opts := strings.Index(out, "--json prints one object"), strings.Index(out, "OPTIONS")
	if desc < 0 || opts < desc || strings.Contains(out, "described below") {
		t.Errorf("help:\n%s", out)
	}
}
