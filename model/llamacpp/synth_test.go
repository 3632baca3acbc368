package llamacpp

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/synth"
)

// A checkpoint from quantkit gen converts: its tokenizer in SentencePiece's
// layout (scores 0 for specials and bytes, then 0, -1, -2… by id), its
// untied lm_head as output.weight, and the same file for the same config.
func TestSynthConverts(t *testing.T) {
	cfg := synth.Config{Layers: 2, Hidden: 64, Intermediate: 128, Heads: 4, KVHeads: 2, Vocab: 600, DType: "BF16", Seed: 5}
	var files [][]byte
	for range 2 {
		dir := t.TempDir()
		if _, err := synth.Write(filepath.Join(dir, "ck"), cfg, synth.Options{}); err != nil {
			t.Fatal(err)
		}
		c, err := Plan(filepath.Join(dir, "ck"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		v := c.Vocab
		for i := range cfg.Vocab {
			typ, score := TokenNormal, -float32(i-259)
			switch {
			case i == 0:
				typ, score = TokenUnknown, 0
			case i < 3:
				typ, score = TokenControl, 0
			case i < 259:
				typ, score = TokenByte, 0
			}
			if v.Types[i] != typ || v.Scores[i] != score {
				t.Fatalf("token %d %q: type %d score %v, want %d %v", i, v.Tokens[i], v.Types[i], v.Scores[i], typ, score)
			}
		}
		if math.Signbit(float64(v.Scores[259])) != true {
			t.Error("the first merged token's score is +0, SentencePiece writes -0")
		}
		if _, ok := c.Tensor("output.weight"); !ok {
			t.Error("no output.weight for an untied checkpoint")
		}
		out := filepath.Join(dir, "x.gguf")
		if err := Write(c, out, WriteOptions{Type: gguf.TypeF16}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("two conversions of the same generated checkpoint differ")
	}
}
