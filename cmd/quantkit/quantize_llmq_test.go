package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuantizeMethods runs --method mse and gptq on stories260K (gptq on
// a short text, --json) and checks the refusals of flags that do not
// apply.
func TestQuantizeMethods(t *testing.T) {
	dir := t.TempDir()
	in := "../../testdata/llm/stories260K/hf"
	text := filepath.Join(dir, "calib.txt")
	os.WriteFile(text, []byte(strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside. ", 30)), 0o666)
	out := mustRun(t, "quantize", in, "-o", filepath.Join(dir, "mse"), "--scheme", "int4", "--granularity", "group:32", "--method", "mse")
	if !strings.Contains(out, "method mse") || !strings.Contains(out, "35 tensors quantized") {
		t.Errorf("mse's report:\n%s", out)
	}
	out = mustRun(t, "quantize", in, "-o", filepath.Join(dir, "gptq"), "--scheme", "int4", "--granularity", "group:32", "--method", "gptq",
		"--calib", text, "--calib-samples", "4", "--calib-len", "64", "--seed", "2", "--json")
	var rep struct {
		Method      string `json:"method"`
		Calibration struct {
			Samples int `json:"samples"`
			SeqLen  int `json:"seq_len"`
		} `json:"calibration"`
		Tensors []struct{ Name string } `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.Method != "gptq" || rep.Calibration.Samples != 4 || rep.Calibration.SeqLen != 64 || len(rep.Tensors) != 35 {
		t.Errorf("gptq's report: %+v", rep)
	}
	// awq targets the float model with --awq-asymmetric, not with
	// --awq-asymmetric=false, and by default only from 2,500 distinct
	// calibration tokens: not on these 4 × 64.
	for k, flag := range []string{"--awq-asymmetric", "--awq-asymmetric=false", ""} {
		asym := k == 0
		args := []string{"quantize", in, "-o", filepath.Join(dir, fmt.Sprint("awq-", k)), "--scheme", "int4", "--granularity", "group:32",
			"--method", "awq", "--calib", text, "--calib-samples", "4", "--calib-len", "64", "--json"}
		if flag != "" {
			args = append(args, flag)
		}
		var awq struct {
			Asymmetric bool `json:"asymmetric"`
		}
		// 4 × 64 tokens: the float target warns of too little data
		// (on stderr, before the report).
		out := mustRun(t, args...)
		if warned := strings.Contains(out, "warning: calibration"); warned != asym {
			t.Errorf("awq %v: warned of too little data %v:\n%s", args[7:], warned, out)
		}
		if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &awq) != nil || awq.Asymmetric != asym {
			t.Errorf("awq %v: report says asymmetric %v:\n%s", args[7:], awq.Asymmetric, out)
		}
	}
	// smoothquant writes W8A8 by default: llm-compressor's activations.
	mustRun(t, "quantize", in, "-o", filepath.Join(dir, "sq"), "--method", "smoothquant", "--calib", text, "--calib-samples", "4", "--calib-len", "64")
	cfg, err := os.ReadFile(filepath.Join(dir, "sq", "config.json"))
	if err != nil || !strings.Contains(string(cfg), `"input_activations": {`) || !strings.Contains(string(cfg), `"strategy": "token"`) {
		t.Errorf("smoothquant's config.json (%v):\n%s", err, cfg)
	}
	out = mustRun(t, "quantize", in, "-o", filepath.Join(dir, "dry"), "--method", "gptq", "--calib", text, "--dry-run")
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "memory estimate") {
		t.Errorf("dry run:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--method", "awq+mse"}, "not one of rtn, mse, gptq"},
		{[]string{"--method", "awq"}, "needs calibration data"},
		{[]string{"--method", "gptq", "--calib", text, "--alpha", "0.7"}, "--alpha applies to --method smoothquant"},
		{[]string{"--method", "smoothquant", "--calib", text, "--alpha", "1.5"}, "not in (0, 1]"},
		{[]string{"--w8a8", "--scheme", "int4"}, "int8 symmetric per-channel"},
		{[]string{"--method", "gptq", "--calib", text, "--format", "gguf-q4_0"}, "writes compressed-tensors"},
		{[]string{"--method", "gptq", "--calib", text, "--format", "gguf", "--type", "Q4_0"}, "writes compressed-tensors"},
		{[]string{"--method", "mse", "--calib", text}, "applies to --method gptq"},
		{[]string{"--calib", text}, "applies to --method gptq"},
		{[]string{"--method", "gptq"}, "needs calibration data"},
		{[]string{"--method", "gptq", "--calib", text, "--shard", "0/2"}, "does not apply"},
		{[]string{"--method", "gptq", "--calib", text, "--calib-len", "100000"}, "fewer than one sequence"},
		{[]string{"--method", "gptq", "--calib", text, "--gptq-scales", "max"}, "mse or minmax"},
		{[]string{"--method", "gptq", "--calib", text, "--gptq-damp", "0"}, "not positive"},
		{[]string{"--method", "awq", "--calib", text, "--gptq-sequential"}, "applies to the gptq methods"},
		{[]string{"--method", "mse", "--gptq-scales", "minmax"}, "applies to the gptq methods"},
		{[]string{"--method", "gptq", "--calib", text, "--awq-asymmetric"}, "applies to --method awq"},
		{[]string{"--method", "awq+gptq", "--calib", text, "--awq-asymmetric=false"}, "applies to --method awq"},
	} {
		args := append([]string{"quantize", in, "-o", filepath.Join(dir, "x")}, tc.args...)
		out, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%v: %v\n%s\nwant an error saying %q", tc.args, err, out, tc.want)
		}
	}
}
