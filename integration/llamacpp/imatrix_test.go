//go:build integration

package llamacpp

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/imatrix"
)

// writeImatrix writes a legacy .dat importance matrix for the model at
// model: log-normal values for every 2-D blk.* tensor and output.weight
// but one (blk.1.ffn_up.weight, quantized without, as llama-quantize does
// for a tensor with no entry), a few columns zero.
func writeImatrix(t *testing.T, model, path string) {
	t.Helper()
	g, err := gguf.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r := rand.New(rand.NewPCG(4, 2))
	a := imatrix.NewAccumulator()
	for _, ti := range g.Tensors() {
		if len(ti.Dims) != 2 || ti.Name == "blk.1.ffn_up.weight" || !(strings.HasPrefix(ti.Name, "blk.") || ti.Name == "output.weight") {
			continue
		}
		cols := ti.Dims[0]
		x := make([]float32, 64*cols)
		for i := range x {
			if i%cols%37 != 5 {
				x[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()))
			}
		}
		if err := a.Add(ti.Name, x, cols); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := imatrix.WriteLegacy(f, a.File(32, "calibration.txt")); err != nil {
		t.Fatal(err)
	}
}

// TestImatrixQuantizeMatchesLlamaQuantize: quantkit quantize --imatrix
// FILE writes the file llama_model_quantize writes with the same
// importance matrix (as tools/quantize loads it: values over ncall, and
// its quantize.imatrix.* keys), byte for byte, pure and as mixes.
func TestImatrixQuantizeMatchesLlamaQuantize(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "random-llama-256.gguf")
	writeRandomLlama(t, in, llamaShape{dim: 256, ffn: 768, layers: 8, heads: 8, kvHeads: 2}, 3)
	imat := filepath.Join(dir, "imatrix.dat")
	writeImatrix(t, in, imat)
	for _, c := range []struct {
		typ  string
		pure bool
	}{{"Q4_K_M", true}, {"Q4_K_M", false}, {"Q5_K_M", false}, {"Q6_K", true}, {"Q4_1", true}, {"Q5_1", true}, {"Q4_0", false}, {"Q5_0", false}, {"Q2_K", false}, {"Q2_K", true}, {"Q3_K_S", false}, {"Q3_K_M", false}, {"Q3_K_L", false}, {"Q3_K_M", true}} {
		name := c.typ
		if c.pure {
			name += "-pure"
		}
		t.Run(name, func(t *testing.T) {
			want := filepath.Join(t.TempDir(), "llama.cpp.gguf")
			got := filepath.Join(t.TempDir(), "quantkit.gguf")
			args := []string{"--nthread", "2", "--imatrix", imat}
			extra := []string{"--imatrix", imat}
			if c.pure {
				args = append(args, "--pure")
				extra = append(extra, "--pure")
			}
			run(t, "llama.cpp's llama_model_quantize", quantizeHarness(t), append(args, in, want, c.typ)...)
			quantkitQuantize(t, in, got, c.typ, extra...)
			diffs, err := diffGGUF(want, got)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Errorf("quantkit quantize --type %s --imatrix differs from llama_model_quantize:\n  %s", c.typ, strings.Join(diffs, "\n  "))
			}
		})
	}
}
