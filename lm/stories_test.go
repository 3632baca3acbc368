package lm

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/gguf"
)

const stories = "../testdata/llm/stories260K/"

// storiesTokens are a prompt of BOS and a few ids spread over the vocabulary.
var storiesTokens = []int{1, 403, 407, 261, 378, 29, 500, 13, 2, 7, 300, 511}

func loadStories(t *testing.T) map[string]*Model {
	t.Helper()
	b := cpu.New()
	ms := map[string]*Model{}
	var err error
	if ms["hf"], err = LoadHF(b, stories+"hf"); err != nil {
		t.Fatal(err)
	}
	if ms["gguf"], err = LoadGGUF(b, stories+"stories260K.gguf"); err != nil {
		t.Fatal(err)
	}
	if ms["llama2.c"], err = LoadLlama2C(b, stories+"stories260K.bin"); err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestStoriesFormatsAgree(t *testing.T) {
	ms := loadStories(t)
	want, err := ms["hf"].Forward(ms["hf"].NewCache(), storiesTokens)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gguf", "llama2.c"} {
		m := ms[name]
		if m.Config.Hidden != 64 || m.Config.Layers != 5 || m.Config.Heads != 8 || m.Config.KVHeads != 4 || m.Config.Vocab != 512 {
			t.Errorf("%s: config %+v", name, m.Config)
		}
		got, err := m.Forward(m.NewCache(), storiesTokens)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range got {
			worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("%s vs hf: max logit difference %.3g over %d tokens", name, worst, len(storiesTokens))
		if worst > 1e-4 {
			t.Errorf("%s vs hf: logits differ by %g", name, worst)
		}
	}
	// And the float64 twin on the real weights.
	m := ms["hf"]
	ref := naiveForward(m.Config, m.Weights, storiesTokens)
	worst := 0.0
	for i, g := range want {
		worst = math.Max(worst, math.Abs(float64(g)-ref[i/m.Config.Vocab][i%m.Config.Vocab]))
	}
	t.Logf("hf vs float64 twin: max logit difference %.3g", worst)
	if worst > 1e-4 {
		t.Errorf("hf vs float64 twin: logits differ by %g", worst)
	}
}

// decode turns ids into text with the GGUF's vocabulary as SentencePiece
// spells it: ▁ is a space, <0x0A> a newline.
func decode(t *testing.T, ids []int) string {
	f, err := gguf.Open(stories + "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vocab, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok {
		t.Fatal("no tokenizer.ggml.tokens")
	}
	var sb strings.Builder
	for _, id := range ids {
		p := vocab[id]
		if p == "<0x0A>" {
			p = "\n"
		}
		sb.WriteString(strings.ReplaceAll(p, "▁", " "))
	}
	return sb.String()
}

func TestStoriesGreedy(t *testing.T) {
	const want = "Once upon a time, there was a little girl named Lily"
	for name, m := range loadStories(t) {
		ids, err := m.Greedy([]int{1}, 40)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.TrimLeft(decode(t, ids), " ")
		t.Logf("%s: %q", name, text)
		if !strings.HasPrefix(text, want) {
			t.Errorf("%s: greedy from BOS gives %q, want it to start %q", name, text, want)
		}
	}
}

func TestLoadRefusesBrokenFiles(t *testing.T) {
	data, err := os.ReadFile(stories + "stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, d := range map[string][]byte{"short.bin": data[:len(data)/2], "header.bin": data[:20]} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, d, 0o666); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLlama2C(cpu.New(), p); err == nil {
			t.Errorf("%s: a truncated llama2.c checkpoint loaded", name)
		} else {
			t.Log(err)
		}
	}
	if _, err := LoadGGUF(cpu.New(), stories+"stories260K.bin"); err == nil {
		t.Error("a llama2.c file loaded as GGUF")
	}
	if _, err := LoadHF(cpu.New(), dir); err == nil {
		t.Error("a folder without safetensors loaded")
	}
}
