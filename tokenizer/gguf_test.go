package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/llamacpp"
)

// stories260K.gguf (written by llama.cpp's converter) carries the same
// SentencePiece vocabulary as tokenizer.json with scores: FromGGUF's
// score-ordered merging must encode as tokenizer.json's ranked merges do,
// and decode as it does with special tokens skipped.
func TestFromGGUFLlama(t *testing.T) {
	f, err := gguf.Open("../testdata/llm/stories260K/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := FromGGUF("stories260K.gguf", f.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	hf, err := LoadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	if g.Kind() != SentencePiece || g.VocabSize() != 512 || g.BOS() != 1 || g.EOS() != 2 {
		t.Fatalf("kind %v, vocab %d, bos %d, eos %d", g.Kind(), g.VocabSize(), g.BOS(), g.EOS())
	}
	for _, s := range roundTripTexts() {
		if strings.Contains(s, metaspace) {
			continue // tokenizer.json reads a literal "▁" as a space
		}
		a, b := g.Encode(s), hf.Encode(s)
		if !slices.Equal(a, b) {
			t.Errorf("%q: GGUF %v, tokenizer.json %v", s, a, b)
			continue
		}
		if got, want := g.DecodeSkipSpecial(a), hf.DecodeSkipSpecial(a); got != want {
			t.Errorf("%q: DecodeSkipSpecial %q, tokenizer.json's %q", s, got, want)
		}
		if got, want := g.EncodeWith(s, false), hf.EncodeWith(s, false); !slices.Equal(got, want) {
			t.Errorf("%q without BOS: GGUF %v, tokenizer.json %v", s, got, want)
		}
	}
	// Decode keeps the special tokens and drops the space after BOS.
	if got := g.Decode(g.Encode("Once upon a time")); got != "<s>Once upon a time" {
		t.Errorf("Decode with BOS: %q", got)
	}
}

// A GGUF vocabulary that quantkit's converter writes from GPT-2's
// byte-level tokenizer.json encodes as that tokenizer.json does.
func TestFromGGUFByteLevel(t *testing.T) {
	path := gpt2Path(t)
	tj, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := os.ReadFile(filepath.Join(filepath.Dir(path), "tokenizer_config.json"))
	if err != nil {
		tc = nil
	}
	v, err := llamacpp.ParseVocab(tj, tc, &llamacpp.Hyper{Vocab: 50257})
	if err != nil {
		t.Fatal(err)
	}
	g, err := FromGGUF("gpt2.gguf", gguf.Metadata(v.KVs()))
	if err != nil {
		t.Fatal(err)
	}
	hf, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if g.Kind() != ByteLevel || g.VocabSize() != hf.VocabSize() {
		t.Fatalf("kind %v, vocab %d (tokenizer.json %d)", g.Kind(), g.VocabSize(), hf.VocabSize())
	}
	texts := append(roundTripTexts(), "a<|endoftext|>b", "<|endoftext|>", "  spaces   and\ttabs\n\nnew lines")
	for _, s := range texts {
		a, b := g.Encode(s), hf.Encode(s)
		if !slices.Equal(a, b) {
			t.Errorf("%q: GGUF %v, tokenizer.json %v", s, a, b)
			continue
		}
		if got := g.Decode(a); got != s {
			t.Errorf("%q decodes back to %q", s, got)
		}
	}
}

// Unknown models and pre-tokenizers, and broken keys, are refused.
func TestFromGGUFRefusals(t *testing.T) {
	base := gguf.Metadata{
		{Key: "tokenizer.ggml.model", Value: "gpt2"},
		{Key: "tokenizer.ggml.pre", Value: "gpt-2"},
		{Key: "tokenizer.ggml.tokens", Value: []string{"a", "b", "ab"}},
		{Key: "tokenizer.ggml.merges", Value: []string{"a b"}},
	}
	edit := func(key string, val any) gguf.Metadata {
		m := base.Clone()
		for i := range m {
			if m[i].Key == key {
				m[i].Value = val
				return m
			}
		}
		return append(m, gguf.KV{Key: key, Value: val})
	}
	for want, m := range map[string]gguf.Metadata{
		`model "bert"`:        edit("tokenizer.ggml.model", "bert"),
		`model ""`:            base[1:],
		`pre "smollm"`:        edit("tokenizer.ggml.pre", "smollm"),
		`pre "default"`:       edit("tokenizer.ggml.pre", "default"),
		`("a", "c")`:          edit("tokenizer.ggml.merges", []string{"a c"}),
		"bos_token_id 7":      edit("tokenizer.ggml.bos_token_id", uint32(7)),
		"token_type":          edit("tokenizer.ggml.token_type", []int32{1}),
		"scores":              edit("tokenizer.ggml.model", "llama"),
		"lacks the character": base,
	} {
		if _, err := FromGGUF("x.gguf", m); err == nil || !strings.Contains(err.Error(), "x.gguf") || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error with %q, got %v", want, err)
		}
	}
}

// DecodeSkipSpecial of llama2.c's, the GGUF's and tokenizer.json's
// stories260K tokenizers gives what @huggingface/tokenizers' decode with
// skip_special_tokens gives (these wants are its output): the first
// leading space goes whether or not a skipped BOS preceded it, and only
// that one.
func TestDecodeSkipSpecialAsHF(t *testing.T) {
	l2, err := LoadLlama2C("../testdata/llm/stories260K/tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	hf, err := LoadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open("../testdata/llm/stories260K/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := FromGGUF("stories260K.gguf", f.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	once := []int{403, 407, 261, 378} // "▁Once", "▁upon", "▁a", "▁time"
	for _, c := range []struct {
		ids  []int
		want string
	}{
		{slices.Concat([]int{1}, once), "Once upon a time"},
		{once, "Once upon a time"},
		{slices.Concat([]int{1}, once, []int{2, 1}, once), "Once upon a time Once upon a time"},
		{slices.Concat([]int{2}, once), "Once upon a time"},
		{slices.Concat([]int{0}, once), "Once upon a time"},
	} {
		for name, tk := range map[string]*Tokenizer{"llama2.c": l2, "tokenizer.json": hf, "gguf": g} {
			if got := tk.DecodeSkipSpecial(c.ids); got != c.want {
				t.Errorf("%s: DecodeSkipSpecial(%v) = %q, want %q", name, c.ids, got, c.want)
			}
		}
	}
}
