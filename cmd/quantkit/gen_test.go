package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/quantize"
)

func TestGen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	out, err := run(t, "gen", "--like", "llama", "--params", "1M", "--seed", "3", "-o", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"wrote " + dir, "75 tensors", "1016896", "model.safetensors", "config.json", "F32, seed 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A non-empty directory needs --force. (That the bytes are the seed's
	// is model/synth's test, that they reach the output job/quantize's.)
	if out, err := run(t, "gen", "--params", "1M", "--seed", "3", "-o", dir); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("non-empty directory accepted (%v):\n%s", err, out)
	}
	out, err = run(t, "gen", "--params", "1M", "--seed", "3", "-o", dir, "--force", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep quantize.GenerateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.Tensors != 75 || rep.Params != 1016896 || rep.Bytes != 4*1016896 || rep.Config.Hidden != 64 || len(rep.Files) != 4 || rep.Seconds <= 0 {
		t.Errorf("report %+v", rep)
	}

	// Sharded, in half precision: inspect reads the shards through the index.
	sharded := t.TempDir()
	out, err = run(t, "gen", "--params", "1M", "--dtype", "BF16", "--shard-size", "0.5MB", "-o", sharded)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "model-00001-of-00004.safetensors") || !strings.Contains(out, "model.safetensors.index.json") {
		t.Errorf("sharded output:\n%s", out)
	}
	out, err = run(t, "inspect", "--json", sharded)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ins InspectReport
	if err := json.Unmarshal([]byte(out), &ins); err != nil {
		t.Fatal(err)
	}
	if len(ins.Files) != 4 || ins.Total.Tensors != 75 || ins.Total.Params != 1016896 || ins.Total.Bytes != 2*1016896 || ins.DTypes[0].DType != "BF16" {
		t.Errorf("inspect of the shards: %d files, total %+v, dtypes %+v", len(ins.Files), ins.Total, ins.DTypes)
	}
}

func TestGenBadFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--params", "abc"}, "--params"},
		{[]string{"--params", "0"}, "--params"},
		{[]string{"--params", "1X"}, "--params"},
		{[]string{"--params", "1M", "--dtype", "f8"}, "F8"},
		{[]string{"--params", "1M", "--like", "gpt2"}, "llama"},
		{[]string{"--params", "1M", "--shard-size", "5 parsecs"}, "--shard-size"},
		{[]string{"--params", "1M", "--shard-size", "0"}, "--shard-size"},
		{[]string{"--params", "1M", "-o", file}, file + " exists; --force replaces it"},
	} {
		args := append([]string{"gen", "-o", filepath.Join(dir, "out")}, tc.args...)
		if out, err := run(t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one mentioning %q\n%s", tc.args, err, tc.want, out)
		}
	}
	if _, err := run(t, "gen", "--params", "1M"); err == nil {
		t.Error("no -o accepted")
	}
}

// --params is met within 5% (synth.LlamaLike's rule, tested there for
// every budget), down to the smallest budget gen takes.
func TestGenParamsBudget(t *testing.T) {
	dir := t.TempDir()
	side := filepath.Join(t.TempDir(), "g.json")
	out, err := run(t, "gen", "--params", "1K", "-o", filepath.Join(dir, "g"), "--json-out", side)
	if err != nil || !strings.Contains(out, "wrote ") {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep quantize.GenerateReport
	if b, err := os.ReadFile(side); err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("--json-out: %v", err)
	}
	if rep.Params < 950 || rep.Params > 1050 || rep.Bytes != 4*rep.Params {
		t.Errorf("--params 1K gave %d parameters", rep.Params)
	}
	if _, err := run(t, "gen", "--params", "999", "-o", filepath.Join(dir, "h")); err == nil || !strings.Contains(err.Error(), "1000") || !errors.Is(err, inputerr.ErrInput) {
		t.Errorf("--params 999: %v", err)
	}
}
