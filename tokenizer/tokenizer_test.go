package tokenizer

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

const storiesJSON = "../testdata/llm/stories260K/hf/tokenizer.json"

type golden struct {
	text    string
	ids     []int
	decoded string
}

// The golden ids and decodings below are @huggingface/tokenizers 0.2.0's
// encode(text).ids and decode(ids), printed by
// scripts/integration/hf-tokenize.mjs on the tokenizer.json named.
var storiesGolden = []golden{
	{"Hello world", []int{1, 346, 306, 414, 263, 304, 341}, "<s> Hello world"},
	{"", []int{1}, "<s>"},
	{" Hello  world\n", []int{1, 410, 346, 306, 414, 410, 263, 304, 341, 13}, "<s>  Hello  world\n"},
	{"<s>hi</s>", []int{1, 1, 270, 417, 2}, "<s><s> hi</s>"},
	{"héllo 日本 123456", []int{1, 270, 485, 306, 414, 410, 233, 154, 168, 233, 159, 175, 410, 475, 479, 472, 484, 480, 490}, "<s> héllo 日本 123456"},
	{"I'm  don't\t\ttabs\n\n\nx   ", []int{1, 359, 439, 423, 410, 279, 289, 439, 413, 12, 12, 413, 412, 430, 419, 13, 13, 13, 444, 410, 410, 410}, "<s> I'm  don't\t\ttabs\n\n\nx   "},
	{"a  <|endoftext|> b", []int{1, 261, 410, 410, 504, 506, 367, 414, 431, 413, 411, 444, 413, 506, 505, 268}, "<s> a  <|endoftext|> b"},
	{"emoji 😀 done", []int{1, 344, 423, 414, 449, 417, 410, 243, 162, 155, 131, 279, 289, 411}, "<s> emoji 😀 done"},
	{"Once upon a time, there was a little girl named Lily.", []int{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}, "<s> Once upon a time, there was a little girl named Lily."},
}

var gpt2Golden = []golden{
	{"Hello world", []int{15496, 995}, "Hello world"},
	{"", []int{}, ""},
	{" Hello  world\n", []int{18435, 220, 995, 198}, " Hello  world\n"},
	{"<s>hi</s>", []int{27, 82, 29, 5303, 3556, 82, 29}, "<s>hi</s>"},
	{"héllo 日本 123456", []int{71, 2634, 18798, 10545, 245, 98, 17312, 105, 17031, 29228}, "héllo 日本 123456"},
	{"I'm  don't\t\ttabs\n\n\nx   ", []int{40, 1101, 220, 836, 470, 197, 197, 8658, 82, 628, 198, 87, 220, 220, 220}, "I'm  don't\t\ttabs\n\n\nx   "},
	{"a  <|endoftext|> b", []int{64, 220, 220, 50256, 275}, "a  <|endoftext|> b"},
	{"emoji 😀 done", []int{368, 31370, 30325, 222, 1760}, "emoji 😀 done"},
	{"Once upon a time, there was a little girl named Lily.", []int{7454, 2402, 257, 640, 11, 612, 373, 257, 1310, 2576, 3706, 20037, 13}, "Once upon a time, there was a little girl named Lily."},
}

func checkGolden(t *testing.T, tk *Tokenizer, gs []golden) {
	t.Helper()
	for _, g := range gs {
		got := tk.Encode(g.text)
		if !slices.Equal(got, g.ids) {
			t.Errorf("Encode(%q) = %v, reference %v", g.text, got, g.ids)
		}
		if d := tk.Decode(g.ids); d != g.decoded {
			t.Errorf("Decode(%v) = %q, reference %q", g.ids, d, g.decoded)
		}
	}
}

func TestGoldenStories260K(t *testing.T) {
	tk, err := LoadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Kind() != SentencePiece || tk.VocabSize() != 512 || tk.BOS() != 1 || tk.EOS() != 2 {
		t.Fatalf("kind %v, vocab %d, BOS %d, EOS %d", tk.Kind(), tk.VocabSize(), tk.BOS(), tk.EOS())
	}
	checkGolden(t, tk, storiesGolden)
}

func TestGoldenGPT2(t *testing.T) {
	tk, err := LoadFile(gpt2Path(t))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Kind() != ByteLevel || tk.VocabSize() != 50257 || tk.BOS() != 50256 {
		t.Fatalf("kind %v, vocab %d, BOS %d", tk.Kind(), tk.VocabSize(), tk.BOS())
	}
	checkGolden(t, tk, gpt2Golden)
}

// roundTripTexts are variedTexts and random strings over a mix of ASCII,
// whitespace, accented, CJK and astral characters.
func roundTripTexts() []string {
	texts := slices.Clone(variedTexts)
	alphabet := []rune("aAzZ09 .,'!?\n\t\r  éßж日本😀▁<>|")
	rng := rand.New(rand.NewPCG(1, 1))
	for range 200 {
		n := rng.IntN(40)
		var sb strings.Builder
		for range n {
			sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		texts = append(texts, sb.String())
	}
	return texts
}

// Decoding the ids of a text gives the text back: for SentencePiece with
// special tokens skipped (the decoder strips the space the normalizer put
// in front), for byte-level with clean_up_tokenization off.
func TestRoundTrip(t *testing.T) {
	sp, err := LoadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	bl, err := LoadFile(gpt2Path(t))
	if err != nil {
		t.Fatal(err)
	}
	bl.cleanUpSpaces = false
	for _, s := range roundTripTexts() {
		if strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>") {
			continue // special tokens, which DecodeSkipSpecial drops
		}
		// A literal "▁" decodes to " " in SentencePiece's form.
		if got := sp.DecodeSkipSpecial(sp.Encode(s)); got != s && !strings.Contains(s, metaspace) {
			t.Errorf("stories260K: %q decodes back to %q", s, got)
		}
		if got := bl.Decode(bl.Encode(s)); got != s {
			t.Errorf("GPT-2: %q decodes back to %q", s, got)
		}
	}
}

// llama2.c's tok512.bin holds the same vocabulary as the HF tokenizer.json
// (with " " for "▁"), whose merges were derived from its scores: the two
// encoders must agree.
func TestLlama2CMatchesHF(t *testing.T) {
	l2, err := LoadLlama2C("../testdata/llm/stories260K/tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	hf, err := LoadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Kind() != Llama2C || l2.VocabSize() != 512 {
		t.Fatalf("kind %v, vocab %d", l2.Kind(), l2.VocabSize())
	}
	for _, s := range roundTripTexts() {
		if strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>") {
			continue // llama2.c does not match special tokens in text
		}
		if strings.Contains(s, metaspace) {
			continue // a literal "▁" is a space to tokenizer.json, bytes to llama2.c
		}
		a, b := l2.Encode(s), hf.Encode(s)
		if !slices.Equal(a, b) {
			t.Errorf("%q: llama2.c %v, tokenizer.json %v", s, a, b)
		}
		// Skipping BOS, both strip the dummy-prefix space, as the Hugging
		// Face library does.
		if got, want := l2.DecodeSkipSpecial(a), hf.DecodeSkipSpecial(b); got != want || got != s {
			t.Errorf("%q: DecodeSkipSpecial %q, tokenizer.json's %q", s, got, want)
		}
		if got := l2.Decode(a[1:]); s != "" && got != " "+s {
			t.Errorf("%q: Decode without BOS %q", s, got)
		}
	}
	if got := l2.Decode(l2.Encode("Once upon a time")); got != "\n<s>\nOnce upon a time" {
		t.Errorf("Decode with BOS: %q", got)
	}
}

func TestRefusals(t *testing.T) {
	base, err := os.ReadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ old, new, want string }{
		{`"type": "BPE"`, `"type": "WordPiece"`, `model type "WordPiece" is not supported`},
		{`"type": "BPE"`, `"type": "Unigram"`, `model type "Unigram" is not supported`},
		{`"type": "Prepend"`, `"type": "NFKC"`, `normalizer "NFKC" is not supported`},
		{`"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": false}`, `Split pattern "\\s+" is not supported`},
		{`"type": "ByteFallback"`, `"type": "CTC"`, `decoder "CTC" is not supported`},
		{`"type": "TemplateProcessing"`, `"type": "BertProcessing"`, `post_processor "BertProcessing" is not supported`},
		{`"▁ t"`, `"▁ zzz"`, `merge 0 ("▁", "zzz"): a token is not in the vocabulary`},
	} {
		text := strings.Replace(string(base), c.old, c.new, 1)
		if text == string(base) {
			t.Fatalf("%q not found in %s", c.old, storiesJSON)
		}
		_, err := Parse("x/tokenizer.json", []byte(text), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x/tokenizer.json") {
			t.Errorf("%s → %s: error %v, want one naming the file and saying %q", c.old, c.new, err, c.want)
		}
	}
	if _, err := Parse("y.json", []byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`), nil); err == nil || !strings.Contains(err.Error(), "not a form this package supports") {
		t.Errorf("BPE without normalizer or byte level: %v", err)
	}
	bin, err := os.ReadFile("../testdata/llm/stories260K/tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 3, 100, len(bin) - 1} {
		if _, err := ParseLlama2C("t.bin", bin[:n]); err == nil || !strings.Contains(err.Error(), "t.bin") {
			t.Errorf("tokenizer.bin cut to %d bytes: %v", n, err)
		}
	}
}

// TestConfigAddBOS: tokenizer_config.json's add_bos_token/add_eos_token
// override the template, as transformers' Llama tokenizers do.
func TestConfigAddBOS(t *testing.T) {
	b, err := os.ReadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := Parse("t.json", b, []byte(`{"bos_token": "<s>", "eos_token": {"content": "</s>"}, "add_bos_token": false, "add_eos_token": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("Hello"); !slices.Equal(got, []int{346, 306, 414, 2}) {
		t.Errorf("Encode without BOS, with EOS: %v", got)
	}
}

func TestLossyUTF8(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte("ok"), "ok"},
		{[]byte{0xE6, 0x97}, "\uFFFD"},       // a truncated 3-byte character: one maximal subpart
		{[]byte{0xE6, 0x97, 'x'}, "\uFFFDx"}, //
		{[]byte{0xFF, 0xC0, 0x80}, "\uFFFD\uFFFD\uFFFD"},
		{[]byte{0xED, 0xA0, 0x80}, "\uFFFD\uFFFD\uFFFD"}, // a surrogate
		{[]byte{0xF0, 0x9F, 0x98}, "\uFFFD"},
	} {
		if got := lossyUTF8(c.in); got != c.want {
			t.Errorf("lossyUTF8(% x) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The per-word merge with its cache (spaceSplits) equals one merge over
// the whole text, its slow twin.
func TestSpaceSplitsMatchesWholeMerge(t *testing.T) {
	fast, err := LoadFile(storiesJSON)
	if err != nil {
		t.Fatal(err)
	}
	slow, _ := LoadFile(storiesJSON)
	slow.spaceSplits = false
	l2, err := LoadLlama2C("../testdata/llm/stories260K/tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	l2slow, _ := LoadLlama2C("../testdata/llm/stories260K/tok512.bin")
	l2slow.spaceSplits = false
	if !fast.spaceSplits || !l2.spaceSplits {
		t.Fatal("stories260K's vocabularies should allow splitting at spaces")
	}
	texts := roundTripTexts()
	texts = append(texts, strings.Repeat("the  big   dog ", 500))
	for _, s := range texts {
		if a, b := fast.Encode(s), slow.Encode(s); !slices.Equal(a, b) {
			t.Errorf("%q: split %v, whole %v", s, a, b)
		}
		if a, b := l2.Encode(s), l2slow.Encode(s); !slices.Equal(a, b) {
			t.Errorf("llama2.c %q: split %v, whole %v", s, a, b)
		}
	}
}
