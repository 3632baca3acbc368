package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/job/lmbench"
)

const storiesHF = "../../testdata/llm/stories260K/hf"

func TestBenchLMFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no MODEL"},
		{[]string{storiesHF, "--precisions", ""}, "--precisions is empty"},
		{[]string{storiesHF, "--precisions", "fp32,fp8"}, `unknown precision "fp8"`},
		{[]string{storiesHF, "--prompt-len", "0"}, "prompt length 0"},
		{[]string{storiesHF, "--batch", "0"}, "batch 0"},
		{[]string{storiesHF, "--rounds", "0"}, "rounds 0"},
		{[]string{storiesHF, "--device", "npu"}, `device "npu"`},
		{[]string{storiesHF, "--csv", filepath.Join(t.TempDir(), "x.txt")}, "csv"},
		{[]string{storiesHF, "--plot", filepath.Join(t.TempDir(), "x.jpg")}, ".png or .svg"},
		{[]string{storiesHF}, "past the model's context of 512"}, // 512 + 128 positions
	} {
		out, err := run(t, append([]string{"bench", "lm"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench lm %q: %v, want an error with %q\n%s", c.args, err, c.want, out)
		}
	}
	// Every flag reaches the options.
	var got *lmbench.Options
	benchLMCommand.Action = func(c *cli.Context) error {
		var err error
		got, err = parseBenchLMFlags(c)
		return err
	}
	defer func() { benchLMCommand.Action = runBenchLM }()
	app := newApp()
	args := []string{"quantkit", "bench", "lm", "a", "b", "--precisions", "w4a16, fp32", "--group-size", "32", "--prompt-len", "7",
		"--gen", "3", "--batch", "4", "--rounds", "5", "--seed", "9", "--threads", "2", "--energy", "--idle", "0s", "--in-process"}
	if err := app.Run(resolve(app, args, io.Discard).Args); err != nil {
		t.Fatal(err)
	}
	want := lmbench.Options{Models: []string{"a", "b"}, Precisions: []string{"w4a16", "fp32"}, GroupSize: 32, PromptLen: 7, Gen: 3,
		Batch: 4, Rounds: 5, Seed: 9, Threads: 2, Device: "cpu", InProcess: true}
	if got == nil || got.Energy == nil || got.Energy.Window.MinWindow == 0 || got.Energy.Idle != 0 {
		t.Fatalf("options %+v", got)
	}
	g := *got
	g.Energy = nil
	if gs, ws := fmt.Sprintf("%+v", g), fmt.Sprintf("%+v", want); gs != ws {
		t.Errorf("options\n%s\nwant\n%s", gs, ws)
	}
}

// TestBenchLMJSON runs two precisions of stories260K, each in a child
// process of this test binary (the init of bench_lm.go), and checks the
// --json shape, --json-out and --csv.
func TestBenchLMJSON(t *testing.T) {
	dir := t.TempDir()
	side, csvPath := filepath.Join(dir, "lm.json"), filepath.Join(dir, "lm.csv")
	out := mustRun(t, "bench", "lm", storiesHF, "--precisions", "fp32,w8a16", "--prompt-len", "8", "--gen", "2", "--rounds", "1",
		"--json", "--json-out", side, "--csv", csvPath)
	var shape map[string]any
	if err := json.Unmarshal([]byte(out), &shape); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, k := range []string{"date", "machine", "device", "prompt_len", "gen", "batch", "rounds", "prompt", "isolation", "rows", "reference"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("--json lacks %q:\n%s", k, out)
		}
	}
	rows, _ := shape["rows"].([]any)
	if len(rows) != 2 {
		t.Fatalf("%d rows:\n%s", len(rows), out)
	}
	row := rows[1].(map[string]any)
	for _, k := range []string{"model", "precision", "label", "weight_bytes", "kv_cache_bytes", "peak_rss_bytes", "ttft_seconds",
		"prefill_tokens_per_second", "decode_tokens_per_second", "prefill_vs_ref", "decode_vs_ref"} {
		if _, ok := row[k]; !ok {
			t.Errorf("a row lacks %q: %v", k, row)
		}
	}
	if s, ok := row["decode_tokens_per_second"].(map[string]any); !ok || s["median"] == nil || s["rounds"] == nil {
		t.Errorf("decode_tokens_per_second %v: want median, min, max, rounds", row["decode_tokens_per_second"])
	}
	var rep lmbench.Report
	json.Unmarshal([]byte(out), &rep)
	if rep.PromptLen != 8 || rep.Gen != 2 || rep.Rows[0].Precision != "fp32" || rep.Rows[1].Precision != "w8a16" || rep.Rows[1].PeakRSSBytes <= 0 {
		t.Errorf("report %+v", rep)
	}
	b, err := os.ReadFile(side)
	var f lmbench.Report
	if err != nil || json.Unmarshal(b, &f) != nil || len(f.Rows) != 2 {
		t.Errorf("--json-out: %v", err)
	}
	cf, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	recs, err := csv.NewReader(cf).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][0] != "model" || recs[2][2] != "w8a16" {
		t.Errorf("--csv: %v %q", err, recs)
	}
}
