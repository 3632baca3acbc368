package llamacpp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// byID is the vocabulary of a tokenizer.json, read independently: model
// vocab and added tokens, by id.
func byID(t *testing.T, tokenizer []byte) map[int]string {
	t.Helper()
	var tj struct {
		Added []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(tokenizer, &tj); err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for s, id := range tj.Model.Vocab {
		out[id] = s
	}
	for _, a := range tj.Added {
		out[a.ID] = a.Content
	}
	return out
}

func mergesOf(t *testing.T, tokenizer []byte) []string {
	var tj struct {
		Model struct {
			Merges []string `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(tokenizer, &tj); err != nil {
		t.Fatal(err)
	}
	return tj.Model.Merges
}

// checkGPT2 checks what convert_hf_to_gguf.py's _set_vocab_gpt2 writes
// for GPT-2's tokenizer: every id's token as it is, all NORMAL but
// <|endoftext|> (CONTROL), ids past the tokenizer "[PADn]" UNUSED, the
// merges as they are, no scores, pre-tokenizer "gpt-2", and bos, eos and
// unk all <|endoftext|> (tokenizer_config.json names it for each).
func checkGPT2(t *testing.T, dir string, vocab int) {
	tok := readFile(t, filepath.Join(dir, "tokenizer.json"))
	tc := readFile(t, filepath.Join(dir, "tokenizer_config.json"))
	words := byID(t, tok)
	eot := len(words) - 1
	v, err := ParseVocab(tok, tc, &Hyper{Vocab: vocab, BOS: -1, EOS: -1, Pad: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "gpt2" || v.Pre != "gpt-2" || v.Scores != nil || len(v.Tokens) != vocab || len(v.Types) != vocab {
		t.Fatalf("model %q pre %q, %d scores, %d tokens, %d types", v.Model, v.Pre, len(v.Scores), len(v.Tokens), len(v.Types))
	}
	for i := range vocab {
		want, typ := words[i], TokenNormal
		switch {
		case i == eot:
			typ = TokenControl
		case i > eot:
			want, typ = "[PAD"+itoa(i)+"]", TokenUnused
		}
		if v.Tokens[i] != want || v.Types[i] != typ {
			t.Fatalf("token %d: %q type %d, want %q type %d", i, v.Tokens[i], v.Types[i], want, typ)
		}
	}
	if !slices.Equal(v.Merges, mergesOf(t, tok)) {
		t.Error("merges differ from tokenizer.json's")
	}
	want := []SpecialToken{{"bos", uint32(eot)}, {"eos", uint32(eot)}, {"unk", uint32(eot)}}
	if !slices.Equal(v.Special, want) || len(v.Add) != 0 || v.AddSpacePrefix == nil || *v.AddSpacePrefix {
		t.Errorf("special %v, add %v, add_space_prefix %v", v.Special, v.Add, v.AddSpacePrefix)
	}
	var keys []string
	for _, kv := range v.KVs() {
		keys = append(keys, kv.Key)
	}
	wantKeys := []string{"tokenizer.ggml.add_space_prefix", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
		"tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
		"tokenizer.ggml.unknown_token_id"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("keys %v\nwant %v", keys, wantKeys)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestGPT2Mini(t *testing.T) {
	checkGPT2(t, "testdata/gpt2-mini", 557)
	checkGPT2(t, "testdata/gpt2-mini", 560) // config.json's vocabulary larger than the tokenizer's
}

func TestGPT2Real(t *testing.T) {
	checkGPT2(t, "../../testdata/tokenizers/gpt2", 50257)
}

// editTokenizer returns the mini GPT-2 tokenizer.json edited.
func editTokenizer(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFile(t, "testdata/gpt2-mini/tokenizer.json"), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A Llama 3 style tokenizer: the split regex then ByteLevel, merges as
// pairs (one with a space, which gguf-py writes as U+0120), and a template
// that adds <|begin_of_text|>.
func TestLlama3StyleTokenizer(t *testing.T) {
	tok := editTokenizer(t, func(m map[string]any) {
		m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": llama3Split}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
		model := m["model"].(map[string]any)
		model["ignore_merges"] = true
		model["vocab"].(map[string]any)["a b"] = 557.0
		model["vocab"].(map[string]any)["a"] = 64.0 // already there: GPT-2's "a"
		model["merges"] = []any{[]any{"Ġ", "t"}, []any{"a", " b"}}
		m["added_tokens"] = []any{
			map[string]any{"id": 556, "content": "<|begin_of_text|>", "special": true},
			map[string]any{"id": 558, "content": "<|eot_id|>", "special": true},
			map[string]any{"id": 559, "content": "hello", "special": false},
		}
		m["post_processor"] = map[string]any{"type": "Sequence", "processors": []any{
			map[string]any{"type": "ByteLevel"},
			map[string]any{"type": "TemplateProcessing", "single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
			}},
		}}
		delete(model["vocab"].(map[string]any), "<|endoftext|>")
	})
	tc := []byte(`{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": "{{ messages }}"}`)
	v, err := ParseVocab(tok, tc, &Hyper{Vocab: 560, BOS: 556, EOS: 558, Pad: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "gpt2" || v.Pre != "llama-bpe" {
		t.Errorf("model %q pre %q", v.Model, v.Pre)
	}
	if !slices.Equal(v.Merges, []string{"Ġ t", "a Ġb"}) {
		t.Errorf("merges %q", v.Merges)
	}
	if v.Types[556] != TokenControl || v.Types[558] != TokenControl || v.Types[559] != TokenUserDefined || v.Types[557] != TokenNormal {
		t.Errorf("types %v", v.Types[555:])
	}
	if !slices.Equal(v.Special, []SpecialToken{{"bos", 556}, {"eos", 558}}) || !slices.Equal(v.Add, []AddToken{{"bos", true}}) {
		t.Errorf("special %v add %v", v.Special, v.Add)
	}
	if v.ChatTemplate != "{{ messages }}" {
		t.Errorf("chat template %q", v.ChatTemplate)
	}
}

// SmolLM's pre-tokenizer (single digits, then ByteLevel) is "smollm";
// others are refused, naming the file.
func TestPreTokenizers(t *testing.T) {
	h := &Hyper{Vocab: 557, BOS: -1, EOS: -1, Pad: -1}
	smol := editTokenizer(t, func(m map[string]any) {
		m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": true},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		}}
	})
	if v, err := ParseVocab(smol, nil, h); err != nil || v.Pre != "smollm" {
		t.Errorf("SmolLM: %v", err)
	}
	for name, pre := range map[string]any{
		"whitespace":      map[string]any{"type": "Whitespace"},
		"prefix space":    map[string]any{"type": "ByteLevel", "add_prefix_space": true},
		"none":            nil,
		"another regex":   map[string]any{"type": "Sequence", "pretokenizers": []any{map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\s+`}, "behavior": "Isolated"}, map[string]any{"type": "ByteLevel", "use_regex": false}}},
		"digits by three": map[string]any{"type": "Sequence", "pretokenizers": []any{map[string]any{"type": "Digits", "individual_digits": false}, map[string]any{"type": "ByteLevel"}}},
	} {
		tok := editTokenizer(t, func(m map[string]any) { m["pre_tokenizer"] = pre })
		if _, err := ParseVocab(tok, nil, h); err == nil || !strings.HasPrefix(err.Error(), "tokenizer.json: ") || !strings.Contains(err.Error(), "pre_tokenizer") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A SentencePiece-style tokenizer's added_tokens_decoder in
// tokenizer_config.json overrides types and scores as
// _create_vocab_sentencepiece does.
func TestAddedTokensDecoder(t *testing.T) {
	tok := readFile(t, filepath.Join(storiesHF, "tokenizer.json"))
	tc := []byte(`{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "add_prefix_space": true,
		"added_tokens_decoder": {"0": {"content": "<unk>", "special": true}, "300": {"content": "my\u2581word", "special": false}, "900": {"content": "x"}}}`)
	v, err := ParseVocab(tok, tc, &Hyper{Vocab: 512, BOS: 1, EOS: 2, Pad: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v.Types[0] != TokenControl || v.Scores[0] != -1000 || v.Tokens[300] != "my word" || v.Types[300] != TokenUserDefined || v.Scores[300] != -1000 {
		t.Errorf("token 0: %q %d %v; token 300: %q %d %v", v.Tokens[0], v.Types[0], v.Scores[0], v.Tokens[300], v.Types[300], v.Scores[300])
	}
	if v.AddSpacePrefix == nil || !*v.AddSpacePrefix || v.KVs()[0].Key != "tokenizer.ggml.add_space_prefix" {
		t.Error("add_prefix_space not carried first")
	}
	// No unk_token in tokenizer_config.json: the unknown id is not set by
	// name, and config.json has no unk_token_id.
	if !slices.Equal(v.Special, []SpecialToken{{"bos", 1}, {"eos", 2}}) {
		t.Errorf("special %v", v.Special)
	}
}
