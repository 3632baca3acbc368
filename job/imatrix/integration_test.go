//go:build integration

package imatrix

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/internal/testenv"
	"github.com/quantkit/quantkit/model/imatrix"
)

// TestAgainstLlamaImatrix runs llama.cpp's own llama-imatrix
// (scripts/integration/build-llamacpp-imatrix.sh builds it from the cached
// source against the prebuilt libraries) and Run on stories260K.gguf with
// the same text and chunks, and compares the two files: the same entries,
// equal counts, chunk count and size, and sums within a relative 1e-4.
//
// Why 1e-4: both sum float32 x² token by token in the same order, so the
// sums differ only by the activations, which the two engines compute with
// float32 GEMMs summing in different orders (llama.cpp's with an F32 KV
// cache and flash attention off here, as in the other exact comparisons):
// relative differences of a few 1e-6 per activation after five layers, so
// a few 1e-6 on sums of non-negative terms; 1e-4 leaves a margin of 10×
// while a wrong input (the norm's input instead of its output, o's input
// taken after the projection, one chunk dropped or collected twice, a token
// not replaced by BOS) moves sums by far more than 1e-3.
func TestAgainstLlamaImatrix(t *testing.T) {
	bin, lib := os.Getenv("QUANTKIT_LLAMACPP_IMATRIX"), os.Getenv("QUANTKIT_LLAMACPP_LIB_DIR")
	if bin == "" || lib == "" {
		testenv.Missing(t, "QUANTKIT_LLAMACPP_IMATRIX and QUANTKIT_LLAMACPP_LIB_DIR (scripts/integration/build-llamacpp-imatrix.sh) are not set")
	}
	model, err := filepath.Abs(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "calib.txt")
	if err := os.WriteFile(text, []byte(storiesText(t, 4)), 0o666); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		ctx, chunks  int
		llamaOptions []string
	}{
		{"ctx128", 128, 0, []string{"-c", "128"}},
		{"ctx64-chunks5", 64, 5, []string{"-c", "64", "--chunks", "5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := filepath.Join(dir, tc.name+"-llama.gguf")
			args := append([]string{"-m", model, "-f", text, "-o", ref, "-t", "1", "-ctk", "f32", "-ctv", "f32", "-fa", "off", "--no-ppl"}, tc.llamaOptions...)
			cmd := exec.Command(bin, args...)
			cmd.Dir = lib // ggml loads its CPU backend from the working directory
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
			}
			want, err := imatrix.Read(ref)
			if err != nil {
				t.Fatal(err)
			}
			got, rep, err := Run(context.Background(), Options{Model: model, Calib: text, Ctx: tc.ctx, Chunks: tc.chunks})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d chunks of %d tokens, %d entries, %.2f s", rep.Chunks, rep.ChunkSize, rep.Entries, rep.Seconds)
			compareFiles(t, got, want, 1e-4)
			if got.ChunkCount != want.ChunkCount || got.ChunkSize != want.ChunkSize || len(want.Datasets) != 1 || got.Datasets[0] != want.Datasets[0] {
				t.Errorf("chunks %d of %d, datasets %q; llama-imatrix: %d of %d, %q", got.ChunkCount, got.ChunkSize, got.Datasets,
					want.ChunkCount, want.ChunkSize, want.Datasets)
			}
		})
	}
}

// compareFiles checks that got has want's entries, with equal counts and
// sums within rel of want's (relative to the entry's largest sum for
// columns near zero).
func compareFiles(t *testing.T, got, want *imatrix.File, rel float64) {
	t.Helper()
	if len(got.Entries) != len(want.Entries) {
		t.Errorf("%d entries, llama-imatrix %d", len(got.Entries), len(want.Entries))
	}
	worst := 0.0
	for _, w := range want.Entries {
		g, ok := got.Entry(w.Name)
		if !ok {
			t.Errorf("%s: missing", w.Name)
			continue
		}
		if len(g.Counts) != len(w.Counts) || g.Counts[0] != w.Counts[0] || len(g.Sums) != len(w.Sums) {
			t.Errorf("%s: %d sums, counts %v; llama-imatrix %d, %v", w.Name, len(g.Sums), g.Counts, len(w.Sums), w.Counts)
			continue
		}
		top := 0.0
		for _, v := range w.Sums {
			top = max(top, float64(v))
		}
		for j := range w.Sums {
			a, b := float64(g.Sums[j]), float64(w.Sums[j])
			d := math.Abs(a-b) / max(math.Abs(b), 1e-3*top)
			worst = max(worst, d)
			if !(d <= rel) {
				t.Errorf("%s[%d] = %g, llama-imatrix %g (relative %.2g)", w.Name, j, a, b, d)
				break
			}
		}
	}
	t.Logf("largest relative difference %.3g over %d entries", worst, len(want.Entries))
}
