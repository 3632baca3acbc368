//go:build integration

package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/testenv"
	"github.com/quantkit/quantkit/model/gguf"
)

// hfResult is one text's answer from scripts/integration/hf-tokenize.mjs.
type hfResult struct {
	IDs     []int  `json:"ids"`
	Plain   []int  `json:"plain"`
	Decoded string `json:"decoded"`
}

// hfTokenize runs @huggingface/tokenizers (from
// $QUANTKIT_HFTOKENIZERS_NODE_MODULES) on texts.
func hfTokenize(t *testing.T, tokPath string, texts []string, flags ...string) []hfResult {
	t.Helper()
	nm := os.Getenv("QUANTKIT_HFTOKENIZERS_NODE_MODULES")
	if nm == "" {
		testenv.Missing(t, "QUANTKIT_HFTOKENIZERS_NODE_MODULES is not set (npm i @huggingface/tokenizers@0.2.0)")
	}
	if _, err := os.Stat(filepath.Join(nm, "@huggingface", "tokenizers")); err != nil {
		testenv.Missing(t, "@huggingface/tokenizers: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node: %v", err)
	}
	b, _ := json.Marshal(texts)
	tf := filepath.Join(t.TempDir(), "texts.json")
	if err := os.WriteFile(tf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"../scripts/integration/hf-tokenize.mjs"}, flags...), tokPath, tf)
	cmd := exec.Command(node, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hf-tokenize.mjs: %v", err)
	}
	var res []hfResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(texts) {
		t.Fatalf("hf-tokenize.mjs: %d results for %d texts: %v", len(res), len(texts), err)
	}
	return res
}

// integrationTexts are short varied texts and some real English: the
// repository's own documents, split into paragraphs and taken whole.
func integrationTexts(t *testing.T) []string {
	texts := append([]string(nil), variedTexts...)
	var all strings.Builder
	for _, f := range []string{"../README.md", "doc.go", "pretok.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		texts = append(texts, strings.Split(string(b), "\n\n")...)
	}
	return append(texts, all.String())
}

func compareHF(t *testing.T, tk *Tokenizer, tokPath string, texts []string, checkDecode bool) {
	res := hfTokenize(t, tokPath, texts)
	bad := 0
	for i, s := range texts {
		got, plain := tk.Encode(s), tk.EncodeWith(s, false)
		ok := slices.Equal(got, res[i].IDs) && slices.Equal(plain, res[i].Plain)
		if checkDecode && len(got) > 0 && tk.Decode(got) != res[i].Decoded {
			ok = false
			t.Errorf("text %d %.60q: Decode %.80q, reference %.80q", i, s, tk.Decode(got), res[i].Decoded)
		}
		if !ok {
			bad++
			if bad <= 5 {
				t.Errorf("text %d %.60q:\n got %v\nwant %v\n plain got %v\n plain want %v", i, s, head(got), head(res[i].IDs), head(plain), head(res[i].Plain))
			}
		}
	}
	t.Logf("%s: %d texts (%d bytes) compared, %d differ", tokPath, len(texts), totalLen(texts), bad)
}

func totalLen(texts []string) (n int) {
	for _, s := range texts {
		n += len(s)
	}
	return n
}

func TestHFReferenceStories260K(t *testing.T) {
	p := "../testdata/llm/stories260K/hf/tokenizer.json"
	tk, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	compareHF(t, tk, p, integrationTexts(t), true)
}

func TestHFReferenceGPT2(t *testing.T) {
	p := gpt2Path(t)
	tk, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	compareHF(t, tk, p, integrationTexts(t), true)
}

// TestHFReferenceGeneratedPatterns runs GPT-2's vocabulary and merges under
// Llama 3's and Qwen2's pre-tokenizers (a Split regex then ByteLevel
// without its own regex), with added tokens that are special and not.
func TestHFReferenceGeneratedPatterns(t *testing.T) {
	src := gpt2Path(t)
	for _, pat := range []string{llama3Pattern, qwen2Pattern} {
		p := writeVariant(t, src, pat)
		tk, err := LoadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		compareHF(t, tk, p, integrationTexts(t), true)
	}
}

// compareCorpus requires quantkit's ids (with BOS/EOS) and decoding of
// every document of the real-text corpus to be @huggingface/tokenizers'.
func compareCorpus(t *testing.T, tk *Tokenizer, tokPath string, docs []corpusDoc) {
	t.Helper()
	texts := make([]string, len(docs))
	for i, d := range docs {
		texts[i] = d.text
	}
	res := hfTokenize(t, tokPath, texts, "--no-plain")
	bad, badDecode, tokens := 0, 0, 0
	for i, d := range docs {
		got := tk.Encode(d.text)
		tokens += len(got)
		if !slices.Equal(got, res[i].IDs) {
			bad++
			if bad <= 3 {
				t.Errorf("%s (%d bytes): ids differ at %s", d.name, len(d.text), firstMismatch(tk, d.text, got, res[i].IDs))
			}
			continue
		}
		if dec := tk.Decode(got); len(got) > 0 && dec != res[i].Decoded {
			badDecode++
			if badDecode <= 3 {
				k := 0
				for k < len(dec) && k < len(res[i].Decoded) && dec[k] == res[i].Decoded[k] {
					k++
				}
				t.Errorf("%s: Decode differs at byte %d: quantkit %q, reference %q", d.name, k,
					dec[max(0, k-40):min(len(dec), k+40)], res[i].Decoded[max(0, k-40):min(len(res[i].Decoded), k+40)])
			}
		}
	}
	t.Logf("%s: %d documents (%d bytes, %d tokens) compared: ids differ in %d, decodings in %d",
		tokPath, len(docs), totalLen(texts), tokens, bad, badDecode)
}

// TestHFReferenceRealCorpus: on the real-text corpus (corpus_test.go: some
// megabytes of English, digits, Go source and multilingual text found on
// this machine, fed whole, by paragraph and by line), quantkit and
// @huggingface/tokenizers give the same ids and decodings with the shipped
// tokenizers (stories260K's SentencePiece-style, GPT-2's byte-level) and
// the generated ones (GPT-2's vocabulary under Llama 3's and Qwen2's
// pre-tokenizers, with added tokens).
func TestHFReferenceRealCorpus(t *testing.T) {
	files := realCorpus(t)
	logCorpus(t, files)
	docs := corpusDocs(files)
	src := gpt2Path(t)
	for _, c := range []struct{ name, path string }{
		{"stories260K", "../testdata/llm/stories260K/hf/tokenizer.json"},
		{"gpt2", src},
		{"llama3-pattern", writeVariant(t, src, llama3Pattern)},
		{"qwen2-pattern", writeVariant(t, src, qwen2Pattern)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // most of the time is node's, one process each
			tk, err := LoadFile(c.path)
			if err != nil {
				t.Fatal(err)
			}
			compareCorpus(t, tk, c.path, docs)
		})
	}
}

// TestHFReferenceDecode: stories260K's tokenizer.json and stories260K.gguf
// decode id sequences (special tokens anywhere, byte-fallback tokens of
// whole characters, "▁" and leading-space pieces) as @huggingface/
// tokenizers does, with and without skip_special_tokens. Byte tokens that
// are not valid UTF-8 are left out: there the JavaScript library differs
// from the Rust one that this package follows (see DecodeSkipSpecial).
func TestHFReferenceDecode(t *testing.T) {
	p := "../testdata/llm/stories260K/hf/tokenizer.json"
	hf, err := LoadFile(p)
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
	cases := storiesDecodeCases(3000, true)
	res := hfDecode(t, p, cases)
	bad := 0
	for i, ids := range cases {
		for name, tk := range map[string]*Tokenizer{"tokenizer.json": hf, "gguf": g} {
			if got := tk.Decode(ids); got != res[i].Decoded {
				bad++
				if bad <= 5 {
					t.Errorf("%s: Decode(%v) = %q, reference %q", name, ids, got, res[i].Decoded)
				}
			}
			if got := tk.DecodeSkipSpecial(ids); got != res[i].Skipped {
				bad++
				if bad <= 5 {
					t.Errorf("%s: DecodeSkipSpecial(%v) = %q, reference %q", name, ids, got, res[i].Skipped)
				}
			}
		}
	}
	t.Logf("%d id sequences decoded by both tokenizers, %d differences", len(cases), bad)
}

// hfDecode runs hf-tokenize.mjs --decode on id sequences.
func hfDecode(t *testing.T, tokPath string, seqs [][]int) []struct{ Decoded, Skipped string } {
	t.Helper()
	nm := os.Getenv("QUANTKIT_HFTOKENIZERS_NODE_MODULES")
	if nm == "" {
		testenv.Missing(t, "QUANTKIT_HFTOKENIZERS_NODE_MODULES is not set (npm i @huggingface/tokenizers@0.2.0)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node: %v", err)
	}
	b, _ := json.Marshal(seqs)
	tf := filepath.Join(t.TempDir(), "ids.json")
	if err := os.WriteFile(tf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "../scripts/integration/hf-tokenize.mjs", "--decode", tokPath, tf)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hf-tokenize.mjs --decode: %v", err)
	}
	var res []struct{ Decoded, Skipped string }
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(seqs) {
		t.Fatalf("hf-tokenize.mjs --decode: %d results for %d sequences: %v", len(res), len(seqs), err)
	}
	return res
}

// corpusDoc is one piece of text as a user would feed it.
type corpusDoc struct {
	name string // file, split and index, for messages
	text string
}

// corpusDocs splits the files as a user feeds text: each file whole, each
// paragraph (text between blank lines) and each non-empty line, all as
// they are in the file (separators left out, other whitespace kept).
func corpusDocs(files []corpusFile) []corpusDoc {
	var docs []corpusDoc
	for _, f := range files {
		docs = append(docs, corpusDoc(f))
		for i, p := range strings.Split(f.text, "\n\n") {
			if strings.TrimSpace(p) != "" {
				docs = append(docs, corpusDoc{fmt.Sprintf("%s paragraph %d", f.name, i), p})
			}
		}
		for i, l := range strings.Split(f.text, "\n") {
			if l != "" {
				docs = append(docs, corpusDoc{fmt.Sprintf("%s line %d", f.name, i+1), l})
			}
		}
	}
	return docs
}

// firstMismatch describes where got and want, the ids of text, first
// differ: the token index, the pieces around it on both sides, and the
// text around that place.
func firstMismatch(tk *Tokenizer, text string, got, want []int) string {
	k := 0
	for k < len(got) && k < len(want) && got[k] == want[k] {
		k++
	}
	pieces := func(ids []int) string {
		lo, hi := max(0, k-6), min(len(ids), k+6)
		var ps []string
		for i := lo; i < hi; i++ {
			mark := ""
			if i == k {
				mark = ">>"
			}
			ps = append(ps, fmt.Sprintf("%s%d:%q", mark, ids[i], tk.Piece(ids[i])))
		}
		return strings.Join(ps, " ")
	}
	// Where in text the common prefix ends, from the length of its
	// decoding (exact for byte-level, close for SentencePiece).
	at := len(tk.DecodeSkipSpecial(got[:k]))
	if at > len(text) {
		at = len(text)
	}
	lo, hi := max(0, at-80), min(len(text), at+80)
	return fmt.Sprintf("token %d of %d (reference %d):\n   quantkit  %s\n   reference %s\n   text near byte %d: %q | %q",
		k, len(got), len(want), pieces(got), pieces(want), at, text[lo:at], text[at:hi])
}
