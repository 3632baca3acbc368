package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantkit/quantkit/internal/testenv"
)

// gpt2Path is GPT-2's tokenizer.json, committed in testdata/tokenizers/gpt2
// ($QUANTKIT_GPT2_TOKENIZER overrides it).
func gpt2Path(t testing.TB) string {
	t.Helper()
	p := os.Getenv("QUANTKIT_GPT2_TOKENIZER")
	if p == "" {
		p = "../testdata/tokenizers/gpt2/tokenizer.json"
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "GPT-2 tokenizer.json: %v", err)
	}
	return p
}

// writeVariant writes GPT-2's tokenizer.json with its pre-tokenizer
// replaced by Split(pattern) + ByteLevel(use_regex false), as Llama 3 and
// Qwen2 ship, a BOS template, and two added tokens (one not special), in a
// temporary folder of its own, and returns its path.
func writeVariant(t testing.TB, src, pattern string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
	}}
	f["added_tokens"] = append(f["added_tokens"].([]any),
		map[string]any{"id": 50257, "content": "<|begin_of_text|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
		map[string]any{"id": 50258, "content": "<tool>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false})
	f["post_processor"] = map[string]any{"type": "Sequence", "processors": []any{
		map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{},
			"special_tokens": map[string]any{"<|begin_of_text|>": map[string]any{"id": "<|begin_of_text|>", "ids": []int{50257}, "tokens": []string{"<|begin_of_text|>"}}}},
	}}
	dir := t.TempDir()
	out, _ := json.Marshal(f)
	p := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `{"bos_token": "<|begin_of_text|>", "eos_token": "<|endoftext|>", "clean_up_tokenization_spaces": false}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// variedTexts are the short texts both the golden test and the reference
// comparison use.
var variedTexts = []string{
	"Hello world",
	"",
	" ",
	" Hello  world\n",
	"<s>hi</s>",
	"héllo 日本 123456",
	"I'm  don't\t\ttabs\n\n\nx   ",
	"a  <|endoftext|> b<|endoftext|>",
	"1234567 3.14 ..!!?? 'LL 'll I'VE",
	"  leading",
	"trailing  ",
	"emoji 😀🤖 done",
	"Once upon a time, there was a little girl named Lily.",
	"\r\n\r\n  \n \tmixed\r\n",
	"<tool>call</tool> <|begin_of_text|>x",
	"Ελληνικά кириллица العربية",
	"ab123456789cd ١٢٣٤",
}
