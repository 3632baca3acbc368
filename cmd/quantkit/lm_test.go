package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
)

const storiesDir = "../../testdata/llm/stories260K/"

func TestLMGenerateCLI(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "20", storiesDir + "hf"},
		{"--prompt", "Once", "-n", "20", storiesDir + "stories260K.gguf"},
		{"--tokenizer", storiesDir + "tok512.bin", "-n", "20", storiesDir + "stories260K.bin"},
	} {
		out, errOut, err := expRun(t, append([]string{"lm", "generate", "--device", "cpu"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		t.Logf("%v: %q / %q", args, out, errOut)
		if !strings.HasPrefix(out, "Once upon a time") || !strings.Contains(errOut, "tokens/s") {
			t.Errorf("%v: stdout %q, stderr %q", args, out, errOut)
		}
	}
	out, _, err := expRun(t, "lm", "generate", "--device", "cpu", "--json", "--temp", "0.8", "--top-p", "0.9", "--seed", "3", "-n", "10", storiesDir+"hf")
	var rep struct {
		Tokens []int
		Text   string
	}
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Tokens) == 0 {
		t.Errorf("--json: %q, %v", out, err)
	}
}

func TestLMCLIErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte(" \n"), 0o644)
	long := filepath.Join(dir, "x.safetensors")
	os.WriteFile(long, []byte("x"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lm", "generate", "--device", "cpu", long}, "unknown model format"},
		{[]string{"lm", "generate", "--device", "cpu", storiesDir + "stories260K.bin"}, "--tokenizer"},
		{[]string{"lm", "generate", "--device", "cpu", "--prompt", strings.Repeat("Once upon a time ", 200), storiesDir + "hf"}, "longer than the context of 512"},
		{[]string{"lm", "generate", "--device", "cpu"}, "one MODEL"},
		{[]string{"lm", "eval", "--device", "cpu", "--text", empty, storiesDir + "hf"}, "empty"},
		{[]string{"lm", "eval", "--device", "cpu", "--text", filepath.Join(dir, "none.txt"), storiesDir + "hf"}, "none.txt"},
		{[]string{"lm", "tokenize", "--decode", "1 x", storiesDir + "hf"}, "not a token id"},
		{[]string{"lm", "tokenize", storiesDir + "hf"}, "--text"},
	} {
		_, _, err := expRun(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.want)
		} else if !inputerr.Is(err) {
			t.Errorf("%v: %v is not marked as bad input", c.args, err)
		}
	}
}

func TestLMTokenizeCLI(t *testing.T) {
	for _, m := range []string{storiesDir + "hf", storiesDir + "stories260K.gguf"} {
		out, _, err := expRun(t, "lm", "tokenize", "--text", "Once upon a time", "--ids", m)
		if err != nil || strings.TrimSpace(out) != "1 403 407 261 378" {
			t.Errorf("%s: %q, %v", m, out, err)
		}
		out, _, err = expRun(t, "lm", "tokenize", "--decode", "1,403,407,261,378", m)
		// (the GGUF's llama2.c-style decoder keeps the space after a skipped BOS)
		if err != nil || strings.TrimSpace(out) != "Once upon a time" {
			t.Errorf("%s --decode: %q, %v", m, out, err)
		}
	}
	out, _, err := expRun(t, "lm", "tokenize", "--text", "Lily", "--json", storiesDir+"hf")
	if err != nil || !strings.Contains(out, `"pieces"`) {
		t.Errorf("--json: %q, %v", out, err)
	}
}

func TestLMEvalCLI(t *testing.T) {
	text := filepath.Join(t.TempDir(), "story.txt")
	os.WriteFile(text, []byte(strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ", 8)), 0o644)
	out, _, err := expRun(t, "lm", "eval", "--device", "cpu", "--ctx", "64", "--text", text, "--ref", storiesDir+"hf", "--json", storiesDir+"stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Windows int
		Ref     struct{ Perplexity float64 }
		Models  []struct {
			Perplexity float64
			KL         struct{ Max float64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if rep.Windows < 2 || len(rep.Models) != 1 || rep.Models[0].KL.Max > 1e-6 || rep.Ref.Perplexity <= 1 {
		t.Errorf("report %s", out)
	}
	out, _, err = expRun(t, "lm", "eval", "--device", "cpu", "--ctx", "64", "--text", text, storiesDir+"hf")
	if err != nil || !strings.Contains(out, "perplexity") {
		t.Errorf("table %q, %v", out, err)
	}
}

// --w8a8 on lm generate and lm eval: an int8 per-channel quantization of
// stories260K runs as W8A8 (the story comes out; eval names it "(w8a8)"
// and the other models run as they are), and a model without int8
// per-channel weights is refused as bad input, by name.
func TestLMW8A8CLI(t *testing.T) {
	dir := t.TempDir()
	q8, q4 := filepath.Join(dir, "q8"), filepath.Join(dir, "q4")
	for _, args := range [][]string{{"-o", q8}, {"-o", q4, "--scheme", "int4"}} {
		if _, _, err := expRun(t, append(append([]string{"quantize"}, args...), storiesDir+"hf")...); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, err := expRun(t, "lm", "generate", "--device", "cpu", "--w8a8", "-n", "20", q8)
	if err != nil || !strings.HasPrefix(out, "Once upon a time") || !strings.Contains(errOut, "tokens/s") {
		t.Errorf("generate --w8a8: %q, %q, %v", out, errOut, err)
	}
	for _, args := range [][]string{
		{"lm", "generate", "--device", "cpu", "--w8a8", storiesDir + "hf"},
		{"lm", "generate", "--device", "cpu", "--w8a8", q4},
		{"lm", "generate", "--device", "cpu", "--w8a8", storiesDir + "stories260K.gguf"},
		{"lm", "generate", "--device", "cpu", "--w8a8", "--tokenizer", storiesDir + "tok512.bin", storiesDir + "stories260K.bin"},
		{"lm", "eval", "--device", "cpu", "--w8a8", "--text", storiesDir + "README.md", "--ref", q8, storiesDir + "hf", q4},
	} {
		_, _, err := expRun(t, args...)
		if err == nil || !strings.Contains(err.Error(), "no int8 per-channel weights") || !strings.Contains(err.Error(), args[len(args)-1]) || !inputerr.Is(err) {
			t.Errorf("%v: %v, want a bad-input refusal naming the model", args, err)
		} else {
			t.Log(err)
		}
	}
	text := filepath.Join(dir, "story.txt")
	os.WriteFile(text, []byte(strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ", 8)), 0o644)
	out, _, err = expRun(t, "lm", "eval", "--device", "cpu", "--w8a8", "--ctx", "64", "--text", text, "--ref", storiesDir+"hf", "--json", storiesDir+"hf", q8, q4)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Ref    struct{ Name string }
		Models []struct {
			Name string
			KL   struct{ Mean float64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	var names []string
	for _, m := range rep.Models {
		names = append(names, m.Name)
	}
	want := []string{storiesDir + "hf", q8 + " (w8a8)", q4}
	if !slices.Equal(names, want) || rep.Ref.Name != storiesDir+"hf" || rep.Models[0].KL.Mean > 1e-9 || !(rep.Models[1].KL.Mean > 0 && rep.Models[1].KL.Mean < 0.01) {
		t.Errorf("eval --w8a8: models %q (want %q), report %s", names, want, out)
	}
	for _, cmd := range []string{"generate", "eval"} {
		help, _, err := expRun(t, "lm", cmd, "--help")
		if err != nil || !strings.Contains(help, "--w8a8") || !strings.Contains(help, "int8 per-channel") {
			t.Errorf("lm %s --help does not describe --w8a8: %q, %v", cmd, help, err)
		}
	}
}
