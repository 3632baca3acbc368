package main

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
)

// evalStory is a TinyStories-like text of a few hundred tokens, the kind
// stories260K was trained on.
const evalStory = `Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she saw a big red ball in the park. She ran to the ball and kicked it very high. The ball went over the tree and into the pond.
Lily was sad. She wanted her ball back. A friendly duck swam to the ball and pushed it to the shore. Lily smiled and said, "Thank you, duck!" The duck quacked and swam away.
The next day, Lily and her mom went to the store. Her mom bought apples, bread and milk. Lily saw a small teddy bear on a shelf. She asked, "Mom, can I have the bear?" Her mom said yes, and Lily hugged the bear all the way home.
At night, Lily put the bear in her bed. She told the bear a story about a brave little boy named Tim who found a shiny rock in the garden. Tim gave the rock to his sister, and she was very happy. Then Lily closed her eyes and fell asleep.
`

// evalText writes evalStory to a file in a new temporary directory.
func evalText(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "story.txt")
	if err := os.WriteFile(p, []byte(evalStory), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// quantizeEvalJSON is what these tests read of quantize --eval --json.
type quantizeEvalJSON struct {
	Output string
	Totals struct{ Tensors int }
	Eval   *struct {
		Ctx, Windows int
		Ref          struct{ Perplexity float64 }
		Models       []struct {
			Name       string
			Perplexity float64
			KL         *struct{ Mean, Max float64 }
		}
	}
}

// checkEval checks that the quantized model's report is close to the
// reference's: mean KL under 0.01, perplexity within 5%.
func checkEval(t *testing.T, text, out string) {
	t.Helper()
	var r quantizeEvalJSON
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, text)
	}
	e := r.Eval
	if r.Totals.Tensors == 0 || e == nil || e.Ctx != 64 || e.Windows < 2 || len(e.Models) != 1 || e.Models[0].Name != out || e.Models[0].KL == nil {
		t.Fatalf("report %s", text)
	}
	m, ref := e.Models[0], e.Ref.Perplexity
	if ref <= 1 || m.KL.Mean >= 0.01 || m.KL.Mean <= 0 || math.Abs(m.Perplexity/ref-1) > 0.05 {
		t.Errorf("perplexity %.4f against %.4f, mean KL %.3g:\n%s", m.Perplexity, ref, m.KL.Mean, text)
	}
}

// int8 compressed-tensors of stories260K, measured against the original.
func TestQuantizeEvalInt8(t *testing.T) {
	story := evalText(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "q")
	text, _, err := expRun(t, "quantize", "-o", out, "--eval", story, "--eval-ctx", "64", "--json", storiesDir+"hf")
	if err != nil {
		t.Fatal(err)
	}
	checkEval(t, text, out)
	side := filepath.Join(dir, "r.json")
	table, _, err := expRun(t, "quantize", "-o", out, "--force", "--eval", story, "--eval-ctx", "64", "--json-out", side, storiesDir+"hf")
	if err != nil {
		t.Fatal(err)
	}
	sum, ev, ok := strings.Cut(table, "eval on "+story)
	if !ok || !strings.Contains(sum, "SQNR") || !strings.Contains(ev, "mean KL") || !strings.Contains(ev, out) {
		t.Errorf("table: the summary, then the eval table:\n%s", table)
	}
	b, err := os.ReadFile(side)
	if err != nil {
		t.Fatal(err)
	}
	checkEval(t, string(b), out)
}

// --format gguf --type Q8_0, from the Hugging Face folder and from the
// GGUF file.
func TestQuantizeEvalGGUF(t *testing.T) {
	story := evalText(t)
	for _, in := range []string{storiesDir + "hf", storiesDir + "stories260K.gguf"} {
		out := filepath.Join(t.TempDir(), "q8.gguf")
		text, _, err := expRun(t, "quantize", "-o", out, "--format", "gguf", "--type", "Q8_0", "--eval", story, "--eval-ctx", "64", "--json", in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		checkEval(t, text, out)
	}
}

// --eval is refused, before anything is written, where it cannot apply.
func TestQuantizeEvalRefusals(t *testing.T) {
	story := evalText(t)
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, []byte(" \n"), 0o644)
	short := filepath.Join(t.TempDir(), "short.txt")
	os.WriteFile(short, []byte("Once upon a time."), 0o644)
	hf, gg := storiesDir+"hf", storiesDir+"stories260K.gguf"
	noTok, gpt2 := storiesCopy(t, nil), storiesCopy(t, func(config []byte) []byte {
		return []byte(strings.ReplaceAll(strings.ReplaceAll(string(config), "LlamaForCausalLM", "GPT2LMHeadModel"), `"llama"`, `"gpt2"`))
	})
	os.Remove(filepath.Join(noTok, "tokenizer.json"))
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"quantize", hf, "-o", out, "--eval", story, "--dry-run"}, "--dry-run"},
		{[]string{"quantize", hf, "-o", out, "--eval", story, "--shard", "0/2"}, "--shard"},
		{[]string{"quantize", hf, "-o", out + ".gguf", "--eval", story, "--format", "gguf", "--type", "Q8_0", "--shard", "0/2"}, "--shard"},
		{[]string{"quantize", hf, "-o", out, "--eval", story, "--format", "gguf-q8_0"}, "--format gguf --type Q8_0"},
		{[]string{"quantize", hf, "-o", out, "--eval", filepath.Join(dir, "absent.txt")}, "absent.txt"},
		{[]string{"quantize", hf, "-o", out, "--eval", empty}, "empty"},
		{[]string{"quantize", hf, "-o", out, "--eval", short}, "shorter than one window"},
		{[]string{"quantize", hf, "-o", out, "--eval", story, "--eval-ctx", "2"}, "--eval-ctx 2"},
		{[]string{"quantize", hf, "-o", out, "--eval-ctx", "64"}, "--eval-ctx needs --eval"},
		{[]string{"quantize", gg, "-o", out + ".gguf", "--format", "gguf", "--type", "Q8_0", "--eval", short}, "shorter than one window"},
		{[]string{"quantize", noTok, "-o", out, "--eval", story}, "no tokenizer.json"},
		{[]string{"quantize", gpt2, "-o", out, "--eval", story}, "Llama-family"},
	} {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%v: error %v, want a bad-input error saying %q", tc.args[3:], err, tc.want)
		}
		emptyDir(t, dir)
	}
}

// storiesCopy is a copy of stories260K's Hugging Face folder (the weights
// linked), its config.json passed through edit when not nil.
func storiesCopy(t *testing.T, edit func([]byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	src, err := filepath.Abs(storiesDir + "hf")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "config.json" && edit != nil {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, e.Name()), edit(b), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
