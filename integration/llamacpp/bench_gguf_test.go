//go:build integration

package llamacpp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/job/quantize"
)

// TestBenchGGUFAgainstLlamaQuantize runs bench gguf's job with the real
// llama_model_quantize harness and the quantkit binary on a small
// Llama-shaped model (rows of 256): every type's outputs are byte-identical
// in every round, and each tool's run is measured (time, CPU, peak RSS of
// its own process, output size equal to the file llama.cpp wrote).
func TestBenchGGUFAgainstLlamaQuantize(t *testing.T) {
	harness, qk := quantizeHarness(t), quantkitBin(t)
	in := filepath.Join(t.TempDir(), "random-llama-256.gguf")
	writeRandomLlama(t, in, llamaShape{dim: 256, ffn: 768, layers: 4, heads: 8, kvHeads: 2}, 3)
	work := t.TempDir()
	rep, err := quantize.BenchGGUF(context.Background(), quantize.BenchGGUFOptions{Input: in,
		Types: []string{"Q4_K_M", "Q8_0", "Q6_K"}, Threads: 2, Rounds: 2, Workdir: work,
		Quantkit: []string{qk}, LlamaQuantize: harness, LlamaVersion: os.Getenv("QUANTKIT_LLAMACPP_VERSION")})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	for _, row := range rep.Rows {
		if !row.Identical {
			t.Errorf("%s: quantkit's output differs from llama_model_quantize's: %s", row.Type, row.Difference)
		}
		for _, tool := range []quantize.BenchGGUFTool{row.Quantkit, row.LlamaQuantize} {
			if len(tool.Seconds) != 2 || tool.MedianSeconds <= 0 || tool.MaxPeakRSS <= 0 || tool.MedianCPUSeconds <= 0 {
				t.Errorf("%s: measurements %+v", row.Type, tool)
			}
		}
		if row.Quantkit.BytesOut != row.LlamaQuantize.BytesOut {
			t.Errorf("%s: quantkit wrote %d bytes, llama.cpp %d", row.Type, row.Quantkit.BytesOut, row.LlamaQuantize.BytesOut)
		}
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("left in the work directory: %v", left)
	}
}
