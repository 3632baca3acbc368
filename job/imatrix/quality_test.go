package imatrix

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/ggufmix"
)

// TestImatrixLowersKL quantizes stories260K.gguf to Q4_K_M (whose rows of
// 64 make llama-quantize fall back to Q5_0, and Q8_0 for ffn_down's 172)
// with and without the importance matrix Run computes on text the model
// generated (seeds 1…4), and with a uniform one (every importance 1),
// and compares each with the F32 model on other generated text (seeds
// 101…103) as lm eval --ref does: the importance matrix must give a lower
// mean KL than both. (Here 0.0144 without, 0.0140 uniform, 0.0126 with
// the engine's: any importance makes llama.cpp's quantizers search the
// scales instead of rounding, which helps by itself; a matrix with each
// entry's columns reversed gives 0.0140 too.)
func TestImatrixLowersKL(t *testing.T) {
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib.txt")
	os.WriteFile(calib, []byte(storiesText(t, 4)), 0o666)
	f, _, err := Run(context.Background(), Options{Model: storiesGGUF, Calib: calib, Ctx: 256})
	if err != nil {
		t.Fatal(err)
	}
	mix, err := ggufmix.ParseMix("Q4_K_M")
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New()
	ref, err := lmeval.Open(b, storiesGGUF, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var models []lmeval.NamedModel
	uniform := *f
	uniform.Entries = nil
	for _, e := range f.Entries {
		u := e
		u.Sums = make([]float32, len(e.Sums))
		for j := range u.Sums {
			u.Sums[j] = float32(e.Counts[0])
		}
		uniform.Entries = append(uniform.Entries, u)
	}
	for _, name := range []string{"plain", "uniform", "imatrix"} {
		opt := quantize.GGUFOptions{Input: storiesGGUF, Output: filepath.Join(dir, name+".gguf"), Mix: mix}
		switch name {
		case "uniform":
			opt.Imatrix = &uniform
		case "imatrix":
			opt.Imatrix = f
		}
		if _, err := quantize.RunGGUF(context.Background(), opt); err != nil {
			t.Fatal(err)
		}
		q, err := lmeval.Open(b, opt.Output, "")
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		models = append(models, lmeval.NamedModel{Name: name, Model: q.Model})
	}
	held := storiesTextSeeds(t, 101, 3)
	er, err := lmeval.Eval(context.Background(), lmeval.EvalOptions{Models: models, Ref: &lmeval.NamedModel{Name: "f32", Model: ref.Model},
		Text: held, Tokenizer: ref.Tokenizer, Ctx: 256})
	if err != nil {
		t.Fatal(err)
	}
	kl := map[string]float64{}
	for _, m := range er.Models {
		if m.KL != nil {
			kl[m.Name] = m.KL.Mean
			t.Logf("%s: perplexity %.4f, mean KL %.5f, top-1 %.3f", m.Name, m.Perplexity, m.KL.Mean, m.KL.Top1)
		}
	}
	if !(kl["imatrix"] < kl["plain"] && kl["imatrix"] < kl["uniform"]) {
		t.Errorf("mean KL with the importance matrix %g, without %g, uniform %g: want the lowest", kl["imatrix"], kl["plain"], kl["uniform"])
	}
}
