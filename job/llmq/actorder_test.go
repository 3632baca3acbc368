package llmq

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/plan"
)

// TestActOrderRecorded checks that GPTQ with activation order records it
// as llm-compressor does (weights "actorder": "weight" in the
// quantization_config, a checkpoint without g_idx that reads back as the
// same scheme), and that GPTQ without it and rtn record none.
func TestActOrderRecorded(t *testing.T) {
	dir := t.TempDir()
	_, calib, _ := storiesText(t, dir, 100, 1, 0, 0)
	for _, c := range []struct {
		name     string
		method   Method
		actOrder bool
		want     any
	}{{"gptq-actorder", GPTQ, true, "weight"}, {"gptq", GPTQ, false, nil}, {"rtn", RTN, false, nil}} {
		opt := Options{Input: stories, Output: filepath.Join(dir, c.name), Format: plan.CompressedTensors, Scheme: int4g32(t), Method: c.method}
		if c.method == GPTQ {
			opt.Calib = CalibOptions{Path: calib, Samples: 4, SeqLen: 64, Seed: 1}
			opt.GPTQ.ActOrder = c.actOrder
		}
		if _, err := Run(context.Background(), opt); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		raw, err := os.ReadFile(filepath.Join(opt.Output, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			QC struct {
				Groups map[string]struct {
					Weights map[string]any `json:"weights"`
				} `json:"config_groups"`
			} `json:"quantization_config"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		if got := cfg.QC.Groups["group_0"].Weights["actorder"]; got != c.want {
			t.Errorf("%s: actorder %v, want %v", c.name, got, c.want)
		}
		if rc, ok, err := ctensors.ReadConfig(raw); err != nil || !ok || rc.Scheme != int4g32(t) {
			t.Errorf("%s: read back %+v %v %v", c.name, rc, ok, err)
		}
	}
}
