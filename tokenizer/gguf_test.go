package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

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
	// Decode keeps the special tokens and the space after BOS, as the
	// tokenizer.json's decoder does (@huggingface/tokenizers: "<s> Once
	// upon a time").
	if got := g.Decode(g.Encode("Once upon a time")); got != "<s> Once upon a time" {
		t.Errorf("Decode with BOS: %q", got)
	}
}

// storiesDecodeCases are id sequences of stories260K's vocabulary that
// stress decoding: special tokens (<unk> 0, <s> 1, </s> 2) at the start,
// in the middle and at the end, byte-fallback tokens (<0x00> 3 to <0xFF>
// 258) making valid and invalid UTF-8, "▁" pieces and pieces with and
// without a leading "▁"; then random sequences, from a fixed seed, drawn
// so that each of those kinds is frequent.
func storiesDecodeCases(n int, validBytesOnly bool) [][]int {
	const bos, eos, unk, byte0 = 1, 2, 0, 3
	b := func(s string) []int { // the byte tokens of s
		ids := []int{}
		for i := 0; i < len(s); i++ {
			ids = append(ids, byte0+int(s[i]))
		}
		return ids
	}
	once := []int{403, 407, 261, 378} // "▁Once", "▁upon", "▁a", "▁time"
	cases := [][]int{
		{}, {bos}, {eos}, {unk}, {bos, eos},
		slices.Concat([]int{bos}, once),
		once,
		slices.Concat([]int{bos}, once, []int{eos, bos}, once, []int{eos}),
		slices.Concat([]int{bos, 410}, once), // "▁" after BOS
		slices.Concat([]int{410, 410}, once), // two leading spaces
		slices.Concat([]int{bos}, b(" "), once),
		slices.Concat([]int{bos}, b("日本"), once),
		slices.Concat(b("\n"), []int{bos}, once),
		slices.Concat([]int{unk}, once, []int{unk, unk}),
		slices.Concat([]int{bos, 300}, b("é"), []int{eos}), // "▁ha" then é
	}
	if !validBytesOnly {
		cases = append(cases,
			slices.Concat([]int{bos}, b("\xe6\x9a"), once),           // a truncated character
			slices.Concat(b("\n\xc5\xc6\xc7"), []int{eos}),           // invalid after valid
			slices.Concat([]int{bos}, b("\xff"), []int{bos}, b("a"))) // split by a special token
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range n {
		ids := []int{}
		for range rng.IntN(24) {
			switch k := rng.IntN(10); {
			case k == 0:
				ids = append(ids, rng.IntN(3)) // a special token
			case k <= 2 && validBytesOnly:
				rs := []rune("a \n日é😀ж\t")
				r := rs[rng.IntN(len(rs))]
				ids = append(ids, b(string(r))...)
			case k <= 2:
				ids = append(ids, byte0+rng.IntN(256))
			case k == 3:
				ids = append(ids, 410) // "▁"
			default:
				ids = append(ids, 259+rng.IntN(512-259))
			}
		}
		cases = append(cases, ids)
	}
	return cases
}

// TestFromGGUFDecodeAsTokenizerJSON: stories260K.gguf's tokenizer decodes
// every sequence as the tokenizer.json of the same vocabulary does, with
// and without skipping special tokens (tokenizer.json's decoding is checked
// against @huggingface/tokenizers in TestHFReferenceDecode), and a few
// sequences decode to what @huggingface/tokenizers gives.
func TestFromGGUFDecodeAsTokenizerJSON(t *testing.T) {
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
	bad := 0
	for _, ids := range storiesDecodeCases(2000, false) {
		if got, want := g.Decode(ids), hf.Decode(ids); got != want {
			bad++
			if bad <= 5 {
				t.Errorf("Decode(%v): GGUF %q, tokenizer.json %q", ids, got, want)
			}
		}
		if got, want := g.DecodeSkipSpecial(ids), hf.DecodeSkipSpecial(ids); got != want {
			bad++
			if bad <= 5 {
				t.Errorf("DecodeSkipSpecial(%v): GGUF %q, tokenizer.json %q", ids, got, want)
			}
		}
	}
	// @huggingface/tokenizers 0.2.0's decode and decode with
	// skip_special_tokens (scripts/integration/hf-tokenize.mjs --decode).
	for _, c := range []struct {
		ids         []int
		plain, skip string
	}{
		{[]int{1, 403, 407}, "<s> Once upon", "Once upon"},
		{[]int{1, 403, 2, 1, 403}, "<s> Once</s><s> Once", "Once Once"},
		{[]int{403}, "Once", "Once"},
		{[]int{3, 1, 35, 300}, "\x00<s>  ha", "\x00  ha"},
		{[]int{1, 233, 154, 168, 403}, "<s>日 Once", "日 Once"},
		{[]int{1, 410, 403}, "<s>  Once", " Once"},
		{[]int{1}, "<s>", ""},
	} {
		for name, tk := range map[string]*Tokenizer{"gguf": g, "tokenizer.json": hf} {
			if got := tk.Decode(c.ids); got != c.plain {
				t.Errorf("%s: Decode(%v) = %q, @huggingface/tokenizers %q", name, c.ids, got, c.plain)
			}
			if got := tk.DecodeSkipSpecial(c.ids); got != c.skip {
				t.Errorf("%s: DecodeSkipSpecial(%v) = %q, @huggingface/tokenizers %q", name, c.ids, got, c.skip)
			}
		}
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
		`pre "deepseek-llm"`:  edit("tokenizer.ggml.pre", "deepseek-llm"),
		`pre "bailingmoe"`:    edit("tokenizer.ggml.pre", "bailingmoe"),
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

// smolLMReference is llama.cpp's split for tokenizer.ggml.pre "smollm",
// from its two regexes with Go's regexp: `\p{N}` isolates each number
// character, then on each stretch between them GPT-2's regex, whose
// lookahead `\s+(?!\S)` Go lacks: a whitespace match of more than one
// character that does not reach the stretch's end gives its last
// character back. \s is spelled out as Unicode's White_Space.
func smolLMReference(text string) []string {
	const ws = `\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`
	digit := regexp.MustCompile(`\p{N}`)
	space := regexp.MustCompile(`^[` + ws + `]+$`)
	gpt2 := regexp.MustCompile(`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^` + ws + `\p{L}\p{N}]+|[` + ws + `]+`)
	var pieces []string
	stretch := func(s string) {
		for s != "" {
			loc := gpt2.FindStringIndex(s)
			if loc == nil || loc[0] != 0 {
				panic(fmt.Sprintf("regex leaves %q", s))
			}
			m := s[:loc[1]]
			if space.MatchString(m) {
				if _, w := utf8.DecodeLastRuneInString(m); len(m) < len(s) && len(m) > w {
					m = m[:len(m)-w]
				}
			}
			pieces = append(pieces, m)
			s = s[len(m):]
		}
	}
	prev := 0
	for _, loc := range digit.FindAllStringIndex(text, -1) {
		stretch(text[prev:loc[0]])
		pieces = append(pieces, text[loc[0]:loc[1]])
		prev = loc[1]
	}
	stretch(text[prev:])
	return pieces
}

// A "gpt2" GGUF vocabulary with tokenizer.ggml.pre "smollm" (GPT-2's
// vocabulary and merges, as quantkit's converter writes them) splits text
// as llama.cpp's two regexes for it do (smolLMReference), and encodes each
// piece as GPT-2's tokenizer.json encodes that piece alone.
func TestFromGGUFSmolLM(t *testing.T) {
	path := gpt2Path(t)
	tj, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := llamacpp.ParseVocab(tj, nil, &llamacpp.Hyper{Vocab: 50257})
	if err != nil {
		t.Fatal(err)
	}
	meta := gguf.Metadata(v.KVs()).Clone()
	found := false
	for i := range meta {
		if meta[i].Key == "tokenizer.ggml.pre" {
			meta[i].Value, found = "smollm", true
		}
	}
	if !found {
		meta = append(meta, gguf.KV{Key: "tokenizer.ggml.pre", Value: "smollm"})
	}
	g, err := FromGGUF("smollm.gguf", meta)
	if err != nil {
		t.Fatal(err)
	}
	hf, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	texts := append(append([]string(nil), variedTexts...), roundTripTexts()...)
	texts = append(texts, "a 12", "x  3y", "version 1.2.3 of 2024", "tab\t1\t22", "  \n 5  ", "1 2  3   4",
		"١٢٣ عربي ٤", "ⅫⅣ roman ½ frac", "it's 5's 6'll", "9\u00a0\u00a0x", "end 7 ", "  ", "'s1'd")
	for _, f := range []string{"pretok.go", "tokenizer.go", "../README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
		texts = append(texts, strings.Split(string(b), "\n")...)
	}
	bad := 0
	for _, s := range texts {
		want := smolLMReference(s)
		var got []string
		for i := 0; i < len(s); {
			j := g.split.next(s, i)
			got = append(got, s[i:j])
			i = j
		}
		if !slices.Equal(got, want) {
			bad++
			if bad <= 5 {
				k := 0
				for k < len(got) && k < len(want) && got[k] == want[k] {
					k++
				}
				t.Errorf("%.60q: split differs at piece %d: %q, regexes %q", s, k, got[k:min(len(got), k+4)], want[k:min(len(want), k+4)])
			}
			continue
		}
		if strings.Contains(s, "<|endoftext|>") {
			continue // an added token, matched before the split
		}
		var ids []int
		for _, p := range want {
			ids = append(ids, hf.EncodeWith(p, false)...)
		}
		if got := g.EncodeWith(s, false); !slices.Equal(got, ids) {
			bad++
			if bad <= 5 {
				t.Errorf("%.60q: ids %v, piece by piece %v", s, head(got), head(ids))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d texts differ", bad, len(texts))
	}
	// Digits stand apart, even after a space: GPT-2's own split keeps " 12".
	if got := g.Decode(g.EncodeWith("a 12", false)); got != "a 12" {
		t.Errorf("round trip %q", got)
	}
}
