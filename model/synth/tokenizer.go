package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Tokenizer side files Write adds for vocabularies of at least
// MinTokenizerVocab tokens.
const (
	TokenizerFileName       = "tokenizer.json"
	TokenizerConfigFileName = "tokenizer_config.json"
)

// MinTokenizerVocab is the smallest vocabulary that gets a tokenizer: the
// three special tokens and the 256 byte tokens.
const MinTokenizerVocab = 3 + 256

// tokenizerChars are the single-character tokens, in id order: the
// SentencePiece word boundary, then printable ASCII.
func tokenizerChars() []string {
	chars := []string{"\u2581"}
	for c := byte('!'); c <= '~'; c++ {
		chars = append(chars, string(rune(c)))
	}
	return chars
}

// tokenizerVocab lists the tokens of a vocabulary of n tokens in id order,
// and the merges, in rank order. Layout, as SentencePiece BPE lays it out:
// <unk> <s> </s>, <0x00>…<0xFF>, then the merged tokens in the order of
// their merges, then the single characters. The merged tokens are all
// strings over the characters in length order (two characters, then
// three…), each the merge of its prefix and its last character.
func tokenizerVocab(n int) (tokens []string, merges [][2]string) {
	tokens = []string{"<unk>", "<s>", "</s>"}
	for b := range 256 {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
	}
	rest := n - len(tokens)
	chars := tokenizerChars()
	chars = chars[:min(rest, len(chars))]
	want := rest - len(chars)
	level := chars // the tokens of the previous length
	for len(merges) < want {
		var next []string
		for _, p := range level {
			for _, c := range chars {
				if len(merges) == want {
					break
				}
				merges = append(merges, [2]string{p, c})
				next = append(next, p+c)
				tokens = append(tokens, p+c)
			}
		}
		level = next
	}
	return append(tokens, chars...), merges
}

// TokenizerJSON returns the tokenizer.json Write writes for cfg, or nil
// when cfg.Vocab is below MinTokenizerVocab: a SentencePiece-style
// tokenizer as Llama 2's (BPE with byte fallback, "▁" for spaces,
// <s> added in front) over cfg.Vocab tokens: <unk>, <s>, </s>, the 256
// byte tokens <0x00>…<0xFF>, then filler tokens made by merges of the
// printable ASCII characters and "▁" (tokenizerVocab). tokenizer.json
// holds no scores: a converter derives SentencePiece's (0, -1, -2, … in
// merge order) from the order of the merges. The output depends on
// cfg.Vocab alone.
func TokenizerJSON(cfg Config) []byte {
	if cfg.Vocab < MinTokenizerVocab {
		return nil
	}
	tokens, merges := tokenizerVocab(cfg.Vocab)
	var b bytes.Buffer
	str := func(s string) {
		q, _ := json.Marshal(s)
		b.Write(q)
	}
	b.WriteString(`{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [
`)
	for i, s := range tokens[:3] {
		fmt.Fprintf(&b, `    {"id": %d, "content": `, i)
		str(s)
		b.WriteString(`, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}`)
		if i < 2 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(`  ],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {
    "type": "BPE",
    "dropout": null,
    "unk_token": "<unk>",
    "continuing_subword_prefix": null,
    "end_of_word_suffix": null,
    "fuse_unk": true,
    "byte_fallback": true,
    "ignore_merges": false,
    "vocab": {
`)
	for i, s := range tokens {
		b.WriteString("      ")
		str(s)
		b.WriteString(": " + strconv.Itoa(i))
		if i < len(tokens)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("    },\n    \"merges\": [\n")
	for i, m := range merges {
		b.WriteString("      ")
		str(m[0] + " " + m[1])
		if i < len(merges)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("    ]\n  }\n}\n")
	return b.Bytes()
}

// TokenizerConfigJSON returns the tokenizer_config.json Write writes
// beside TokenizerJSON's tokenizer (nil where that is nil): Llama 2's
// LlamaTokenizer settings, adding <s> and not </s>.
func TokenizerConfigJSON(cfg Config) []byte {
	if cfg.Vocab < MinTokenizerVocab {
		return nil
	}
	return []byte(`{
  "tokenizer_class": "LlamaTokenizer",
  "bos_token": "<s>",
  "eos_token": "</s>",
  "unk_token": "<unk>",
  "pad_token": null,
  "add_bos_token": true,
  "add_eos_token": false,
  "legacy": true,
  "clean_up_tokenization_spaces": false,
  "model_max_length": 4096
}
`)
}
